package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tenantry/tenantry/migrate/internal/sqlscan"
	"github.com/tenantry/tenantry/migrate/lint"
)

// Mode says how a step runs.
type Mode string

const (
	// ModeTx runs the whole step in one transaction together with its
	// ledger row: it applies exactly once or not at all.
	ModeTx Mode = "tx"
	// ModeNoTx runs the step statement by statement. A statement that can
	// run in a transaction runs in one with the ledger's progress counter,
	// so it too applies exactly once; one that cannot (CREATE INDEX
	// CONCURRENTLY, ...) runs between an intent and a completion record and
	// must be idempotent, since a crash between the two runs it again (an
	// INVALID index it left is dropped and rebuilt first).
	ModeNoTx Mode = "no-tx"
	// ModeBatch runs the step's one statement again and again, each run in
	// its own transaction with the ledger's batch counter, until a run
	// affects no row: a batched backfill that resumes where it stopped.
	ModeBatch Mode = "batch"
)

// Step is one versioned migration of the tenant application schema: one
// file NNNN_name.sql.
type Step struct {
	// Version is the file's number; versions are unique and positive.
	Version int `json:"version"`
	// Name is the file name without the number and extension.
	Name string `json:"name"`
	// File is the file name.
	File string `json:"file"`
	// Mode is declared by the header line "-- migrate:mode tx|no-tx|batch".
	Mode Mode `json:"mode"`
	// SQL is the whole file.
	SQL string `json:"-"`
	// Statements are the file's statements.
	Statements []Statement `json:"-"`
	// Checksum is the hex SHA-256 of the file; a target that applied a
	// version with another checksum is refused (the file was edited).
	Checksum string `json:"checksum"`
	// LockTimeout overrides the engine's lock_timeout for this step
	// ("-- migrate:lock-timeout 2s"). Zero: the engine's.
	LockTimeout time.Duration `json:"lock_timeout,omitempty"`
	// StatementTimeout overrides the engine's statement_timeout
	// ("-- migrate:statement-timeout 10m"). Zero: the engine's.
	StatementTimeout time.Duration `json:"statement_timeout,omitempty"`
	// BatchPause is the pause between two batches of a batch step
	// ("-- migrate:batch-pause 20ms"). Default 0.
	BatchPause time.Duration `json:"batch_pause,omitempty"`
	// Allow maps a lint rule the step opts out of to the reason given
	// ("-- migrate:allow drop-column release 41 stopped reading it").
	Allow map[string]string `json:"allow,omitempty"`
}

// Statement is one statement of a step.
type Statement struct {
	SQL string
	// Line is the 1-based line in the file where the statement starts.
	Line int
	// OutsideTx is true for a statement that cannot run inside a
	// transaction block.
	OutsideTx bool
	// Index is the name of the index a CREATE INDEX CONCURRENTLY statement
	// builds, "" otherwise.
	Index string
}

// Source is an ordered, validated set of steps.
type Source struct {
	steps []*Step
}

// Steps returns the steps in version order. The caller must not modify
// them.
func (s *Source) Steps() []*Step { return s.steps }

// Head is the newest version, 0 for an empty source.
func (s *Source) Head() int {
	if len(s.steps) == 0 {
		return 0
	}
	return s.steps[len(s.steps)-1].Version
}

// Step returns the step of version v.
func (s *Source) Step(v int) (*Step, bool) {
	i := sort.Search(len(s.steps), func(i int) bool { return s.steps[i].Version >= v })
	if i < len(s.steps) && s.steps[i].Version == v {
		return s.steps[i], true
	}
	return nil, false
}

// Lint runs the safety lint over every step (see package lint). The result
// includes allowed findings; lint.Blocking filters them.
func (s *Source) Lint() []lint.Finding {
	steps := make([]lint.Step, len(s.steps))
	for i, st := range s.steps {
		ls := lint.Step{Version: st.Version, File: st.File, Mode: string(st.Mode), Allow: st.Allow}
		for _, x := range st.Statements {
			ls.Statements = append(ls.Statements, lint.Statement{SQL: x.SQL, Line: x.Line})
		}
		steps[i] = ls
	}
	return lint.Check(steps)
}

// SourceError is returned by Load for a malformed migration file.
type SourceError struct {
	File string
	Line int
	Msg  string
}

func (e *SourceError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("migration %s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("migration %s: %s", e.File, e.Msg)
}

// Load reads the migrations in the top directory of fsys (use fs.Sub for a
// sub-directory of an embed.FS): every file NNNN_name.sql, where NNNN is the
// version. Other files are ignored. Each file starts with header comment
// lines, before its first statement:
//
//	-- migrate:mode tx                     required: tx, no-tx or batch
//	-- migrate:lock-timeout 2s             optional
//	-- migrate:statement-timeout 10m       optional
//	-- migrate:batch-pause 20ms            optional, batch steps only
//	-- migrate:allow <lint-rule> <reason>  optional, repeatable
func Load(fsys fs.FS) (*Source, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("migrate: read migrations: %w", err)
	}
	src := &Source{}
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, rest, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || version <= 0 || rest == "" || num != strings.TrimLeft(num, "+-") {
			return nil, &SourceError{File: name, Msg: "name must be NNNN_description.sql with NNNN > 0"}
		}
		if prev, dup := seen[version]; dup {
			return nil, &SourceError{File: name, Msg: fmt.Sprintf("version %d is also %s", version, prev)}
		}
		seen[version] = name
		body, err := fs.ReadFile(fsys, path.Clean(name))
		if err != nil {
			return nil, fmt.Errorf("migrate: read %s: %w", name, err)
		}
		step, err := parseStep(version, rest, name, string(body))
		if err != nil {
			return nil, err
		}
		src.steps = append(src.steps, step)
	}
	sort.Slice(src.steps, func(i, j int) bool { return src.steps[i].Version < src.steps[j].Version })
	return src, nil
}

// directive is the prefix of a header line.
const directive = "-- migrate:"

func parseStep(version int, name, file, body string) (*Step, error) {
	sum := sha256.Sum256([]byte(body))
	st := &Step{Version: version, Name: name, File: file, SQL: body, Checksum: hex.EncodeToString(sum[:]), Allow: map[string]string{}}
	bad := func(line int, format string, args ...any) error {
		return &SourceError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	for _, s := range sqlscan.Split(body) {
		toks := sqlscan.Tokens(s.Text)
		x := Statement{SQL: s.Text, Line: s.Line, OutsideTx: sqlscan.OutsideTransaction(toks)}
		if idx, _, ok := sqlscan.ConcurrentIndex(toks); ok {
			x.Index = idx
		}
		st.Statements = append(st.Statements, x)
	}
	if len(st.Statements) == 0 {
		return nil, bad(0, "no statements")
	}
	firstStmt := st.Statements[0].Line
	for i, line := range strings.Split(body, "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, directive) {
			continue
		}
		if n >= firstStmt {
			return nil, bad(n, "%q must be in the header, before the first statement", line)
		}
		key, arg, _ := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, directive)), " ")
		arg = strings.TrimSpace(arg)
		switch key {
		case "mode":
			if st.Mode != "" {
				return nil, bad(n, "mode declared twice")
			}
			switch Mode(arg) {
			case ModeTx, ModeNoTx, ModeBatch:
				st.Mode = Mode(arg)
			default:
				return nil, bad(n, "mode must be tx, no-tx or batch, not %q", arg)
			}
		case "lock-timeout", "statement-timeout", "batch-pause":
			d, err := time.ParseDuration(arg)
			if err != nil || d <= 0 {
				return nil, bad(n, "%s needs a positive duration such as 500ms or 2m, not %q", key, arg)
			}
			switch key {
			case "lock-timeout":
				st.LockTimeout = d
			case "statement-timeout":
				st.StatementTimeout = d
			default:
				st.BatchPause = d
			}
		case "allow":
			rule, reason, _ := strings.Cut(arg, " ")
			reason = strings.TrimSpace(reason)
			if !lint.Known(rule) {
				return nil, bad(n, "allow: unknown lint rule %q", rule)
			}
			if !allowableRule(rule) {
				return nil, bad(n, "allow: rule %s cannot be allowed", rule)
			}
			if len(strings.Fields(reason)) < 2 {
				return nil, bad(n, "allow %s needs a stated reason (a few words after the rule)", rule)
			}
			st.Allow[rule] = reason
		default:
			return nil, bad(n, "unknown directive %q (known: mode, lock-timeout, statement-timeout, batch-pause, allow)", key)
		}
	}
	if st.Mode == "" {
		return nil, bad(1, "the header must declare -- migrate:mode tx, no-tx or batch")
	}
	if st.BatchPause > 0 && st.Mode != ModeBatch {
		return nil, bad(0, "batch-pause is for batch steps only")
	}
	if st.Mode == ModeBatch && len(st.Statements) != 1 {
		return nil, bad(0, "a batch step holds exactly one statement, this one %d", len(st.Statements))
	}
	return st, nil
}

func allowableRule(name string) bool {
	for _, r := range lint.Rules {
		if r.Name == name {
			return r.Allowable
		}
	}
	return false
}

// errEmptySource is returned by New for a source without steps.
var errEmptySource = errors.New("migrate: the source has no migrations")
