package migrate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/sqlident"
	"github.com/tenantry/tenantry/migrate/internal/sqlscan"
)

// StepError says which step failed on which target.
type StepError struct {
	Target  Target
	Version int
	// Line is the line of the failing statement in the step's file, 0 when
	// the failure was not a statement's.
	Line int
	Err  error
}

func (e *StepError) Error() string {
	where := fmt.Sprintf("step %d", e.Version)
	if e.Line > 0 {
		where += " line " + strconv.Itoa(e.Line)
	}
	return fmt.Sprintf("target %s: %s: %v", e.Target.Key(), where, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// connector hands out the engine's connections to targets: a pool per
// database that holds several targets (shared databases, the schemas
// database), a connection of its own for a tenant database or a template.
type connector struct {
	e        *Engine
	maxConns int32

	mu    sync.Mutex
	pools map[string]*pgxpool.Pool
}

func newConnector(e *Engine, maxConns int) *connector {
	return &connector{e: e, maxConns: int32(max(1, maxConns)), pools: map[string]*pgxpool.Pool{}}
}

// acquire returns a connection to t's database and its release; own asks
// for a connection of its own, closed on release.
func (c *connector) acquire(ctx context.Context, cl *catalog.Cluster, t Target, own bool) (*pgx.Conn, func(healthy bool), error) {
	if own {
		conn, err := c.e.connect(ctx, cl, t.Database)
		if err != nil {
			return nil, nil, err
		}
		return conn, func(bool) { _ = conn.Close(context.Background()) }, nil
	}
	pool, err := c.pool(ctx, cl, t.Database)
	if err != nil {
		return nil, nil, err
	}
	pc, err := pool.Acquire(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster %s: connect to %s: %w", cl.Name, t.Database, err)
	}
	return pc.Conn(), func(healthy bool) {
		if !healthy {
			_ = pc.Conn().Close(context.Background())
		}
		pc.Release()
	}, nil
}

func (c *connector) pool(ctx context.Context, cl *catalog.Cluster, database string) (*pgxpool.Pool, error) {
	key := cl.Name + "/" + database
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.pools[key]; p != nil {
		return p, nil
	}
	cc, err := c.e.connConfig(cl, database)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig = cc
	cfg.MaxConns = c.maxConns
	cfg.MinConns = 0
	cfg.MaxConnIdleTime = 30 * time.Second
	p, err := pgxpool.NewWithConfig(context.WithoutCancel(ctx), cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cl.Name, err)
	}
	c.pools[key] = p
	return p, nil
}

func (c *connector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, p := range c.pools {
		p.Close()
		delete(c.pools, k)
	}
}

// templateRef returns the configured template t is, if any.
func (e *Engine) templateRef(t Target) (TemplateRef, bool) {
	if t.Kind != KindTemplate {
		return TemplateRef{}, false
	}
	for _, r := range e.config.Templates {
		if r.Database == t.Database && r.Schema == t.Schema {
			return r, true
		}
	}
	return TemplateRef{}, false
}

// openTemplate takes a template database's exclusive lock on the cluster's
// maintenance database and allows connections to it, and returns the
// function that seals it again (ALLOW_CONNECTIONS false, as provisioning
// keeps templates, so that no stray session stops a clone) and unlocks. A
// template a crashed migrator left open is sealed by the next one.
func (e *Engine) openTemplate(ctx context.Context, cl *catalog.Cluster, database string) (func(), error) {
	mconn, err := e.connect(ctx, cl, "")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (func(), error) {
		_ = mconn.Close(context.Background())
		return nil, err
	}
	lctx, cancel := context.WithTimeout(ctx, e.config.TargetLockWait)
	_, err = mconn.Exec(lctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, TemplateLockKey(database))
	cancel()
	if err != nil {
		if lctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w: template %s", ErrTargetLocked, database)
		}
		return fail(fmt.Errorf("lock template %s: %w", database, err))
	}
	q, err := sqlident.Quote(database)
	if err != nil {
		return fail(err)
	}
	if _, err := mconn.Exec(ctx, `ALTER DATABASE `+q+` ALLOW_CONNECTIONS true`); err != nil {
		return fail(fmt.Errorf("open template %s: %w", database, err))
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := mconn.Exec(ctx, `ALTER DATABASE `+q+` ALLOW_CONNECTIONS false`); err != nil {
			e.logger.Error("could not close template to connections again", "database", database, "error", err)
		}
		_ = mconn.Close(ctx) // releases the advisory lock
	}, nil
}

// applyTarget brings t to the head of the source and returns the version it
// reached.
func (e *Engine) applyTarget(ctx context.Context, cn *connector, cl *catalog.Cluster, t Target, runID string, ev *targetEvents) (int, error) {
	own := t.Kind == KindDatabase
	if ref, ok := e.templateRef(t); ok && ref.IsDatabase {
		own = true
		closeTemplate, err := e.openTemplate(ctx, cl, t.Database)
		if err != nil {
			return 0, err
		}
		defer closeTemplate()
	}
	conn, release, err := cn.acquire(ctx, cl, t, own)
	if err != nil {
		return 0, err
	}
	s := &session{e: e, conn: conn, t: t, runID: runID, ev: ev, version: -1}
	v, err := s.run(ctx)
	if own {
		release(false) // closing the connection ends the session and its locks
	} else {
		release(s.cleanup(ctx))
	}
	return v, err
}

// session is the engine's work on one target over one connection.
type session struct {
	e      *Engine
	conn   *pgx.Conn
	t      Target
	runID  string
	ev     *targetEvents
	schema string // quoted
	owner  string // quoted
	// version is the newest contiguous done version, -1 until known.
	version int
	// timeouts are the lock and statement timeouts set on the session.
	timeouts [2]time.Duration
}

func (s *session) run(ctx context.Context) (int, error) {
	var err error
	if s.schema, err = sqlident.Quote(s.t.Schema); err != nil {
		return 0, err
	}
	if s.owner, err = sqlident.Quote(s.e.config.OwnerRole); err != nil {
		return 0, err
	}
	// One round trip: the schema exists, search_path and role are set, the
	// target's advisory lock is tried.
	// (Every output column is evaluated, in order; an AND could skip some.)
	var exists, locked bool
	var path, role string
	err = s.conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1),
    set_config('search_path', $2, false), set_config('role', $3, false), pg_try_advisory_lock($4)`,
		s.t.Schema, s.schema, s.e.config.OwnerRole, LockKey(s.t.Database, s.t.Schema)).Scan(&exists, &path, &role, &locked)
	if err != nil {
		return 0, fmt.Errorf("target %s: become %s in schema %s: %w", s.t.Key(), s.e.config.OwnerRole, s.t.Schema, err)
	}
	if !exists {
		return 0, fmt.Errorf("target %s: schema %s does not exist (is the tenant provisioned?)", s.t.Key(), s.t.Schema)
	}
	if !locked {
		if err := s.lock(ctx); err != nil {
			return 0, err
		}
	}
	created, err := ensureLedger(ctx, s.conn, s.t.Schema)
	if err != nil {
		return 0, fmt.Errorf("target %s: %w", s.t.Key(), err)
	}
	if created && s.e.config.Baseline > 0 {
		if err := stamp(ctx, s.conn, s.t.Schema, s.e.src, s.e.config.Baseline, s.runID); err != nil {
			return 0, fmt.Errorf("target %s: baseline: %w", s.t.Key(), err)
		}
	}
	led, err := readLedger(ctx, s.conn, s.t.Schema)
	if err != nil {
		return 0, fmt.Errorf("target %s: %w", s.t.Key(), err)
	}
	src := s.e.src
	for v, a := range led {
		st, ok := src.Step(v)
		if !ok {
			if v > src.Head() {
				return versionOf(src, led), fmt.Errorf("target %s: %w: it applied version %d, the source ends at %d", s.t.Key(), ErrAhead, v, src.Head())
			}
			return versionOf(src, led), fmt.Errorf("target %s: applied version %d is not in the source (a migration file was removed)", s.t.Key(), v)
		}
		if a.Checksum != st.Checksum {
			return versionOf(src, led), fmt.Errorf("target %s: %w: %s", s.t.Key(), ErrChecksumMismatch, st.File)
		}
	}
	s.version = versionOf(src, led)
	if err := s.checkRowSecurity(ctx, led); err != nil {
		return s.version, err
	}
	for _, st := range src.Steps() {
		a, ok := led[st.Version]
		if ok && a.State == "done" {
			continue
		}
		s.ev.emit(EventStepStarted, st.Version, 0, nil)
		s.e.mirrorStep(ctx, s.t, s.version, st.Version)
		var from int64
		if ok {
			from = a.Progress
		}
		if err := s.setTimeouts(ctx, st); err != nil {
			return s.version, &StepError{Target: s.t, Version: st.Version, Err: err}
		}
		switch st.Mode {
		case ModeTx:
			err = s.applyTx(ctx, st)
		case ModeNoTx:
			err = s.applyNoTx(ctx, st, from, ok)
		case ModeBatch:
			err = s.applyBatch(ctx, st, ok)
		}
		if err != nil {
			var se *StepError
			if !errors.As(err, &se) {
				err = &StepError{Target: s.t, Version: st.Version, Err: err}
			}
			return s.version, err
		}
		led[st.Version] = applied{Version: st.Version, Checksum: st.Checksum, State: "done"}
		s.version = versionOf(src, led)
		s.ev.emit(EventStepDone, st.Version, 0, nil)
	}
	return s.version, nil
}

// lock takes the target's advisory lock, waiting up to TargetLockWait for
// another migrator (or a crashed one's dying session) to let go.
func (s *session) lock(ctx context.Context) error {
	key := LockKey(s.t.Database, s.t.Schema)
	deadline := time.Now().Add(s.e.config.TargetLockWait)
	for attempt := 0; ; attempt++ {
		var ok bool
		if err := s.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
			return fmt.Errorf("target %s: advisory lock: %w", s.t.Key(), err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("target %s: %w for %s", s.t.Key(), ErrTargetLocked, s.e.config.TargetLockWait)
		}
		if err := sleep(ctx, min(s.e.backoff(attempt), time.Second)); err != nil {
			return err
		}
	}
}

// cleanup puts the session back as it found it and reports whether the
// connection may be reused.
func (s *session) cleanup(ctx context.Context) bool {
	if s.conn.IsClosed() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.conn.Exec(ctx, `RESET ROLE; RESET ALL; SELECT pg_advisory_unlock_all()`); err != nil {
		return false
	}
	return s.conn.PgConn().TxStatus() == 'I'
}

// checkRowSecurity refuses to run data changes on a shared or sharded
// target as a role that row-level security would blind: they would silently
// touch no row.
func (s *session) checkRowSecurity(ctx context.Context, led map[int]applied) error {
	if s.t.Kind != KindShared && s.t.Kind != KindSharded {
		return nil
	}
	needs := false
	for _, st := range s.e.src.Steps() {
		if a, ok := led[st.Version]; ok && a.State == "done" {
			continue
		}
		for _, x := range st.Statements {
			if isData(x.SQL) {
				needs = true
			}
		}
	}
	if !needs {
		return nil
	}
	var bypass bool
	if err := s.conn.QueryRow(ctx, `SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = session_user`).Scan(&bypass); err != nil {
		return fmt.Errorf("target %s: %w", s.t.Key(), err)
	}
	if !bypass {
		return fmt.Errorf("target %s: pending steps change data in shared tables under row-level security, and the cluster's administrative role is neither superuser nor BYPASSRLS: the changes would see no rows", s.t.Key())
	}
	return nil
}

// isData reports whether a statement changes rows (and so runs as the
// administrative role rather than the owner).
func isData(sql string) bool {
	toks := sqlscan.Tokens(sql)
	if len(toks) == 0 {
		return false
	}
	switch toks[0].Upper {
	case "UPDATE", "INSERT", "DELETE", "MERGE", "WITH":
		return true
	}
	return false
}

// setTimeouts sets lock_timeout and statement_timeout for st, if they are
// not set so already.
func (s *session) setTimeouts(ctx context.Context, st *Step) error {
	lt, stt := s.e.config.LockTimeout, s.e.config.StatementTimeout
	if st.LockTimeout > 0 {
		lt = st.LockTimeout
	}
	if st.StatementTimeout > 0 {
		stt = st.StatementTimeout
	}
	if s.timeouts == [2]time.Duration{lt, stt} {
		return nil
	}
	_, err := s.conn.Exec(ctx, `SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false)`,
		strconv.FormatInt(lt.Milliseconds(), 10), strconv.FormatInt(stt.Milliseconds(), 10))
	if err == nil {
		s.timeouts = [2]time.Duration{lt, stt}
	}
	return err
}

// exec runs one statement of a step in tx, as the administrative role if it
// changes data, as the owner otherwise.
func (s *session) exec(ctx context.Context, tx pgx.Tx, st *Step, x Statement) error {
	data := isData(x.SQL)
	if data {
		if _, err := tx.Exec(ctx, `SET LOCAL ROLE NONE`); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, x.SQL); err != nil {
		return &StepError{Target: s.t, Version: st.Version, Line: x.Line, Err: err}
	}
	if data {
		if _, err := tx.Exec(ctx, `SET LOCAL ROLE `+s.owner); err != nil {
			return err
		}
	}
	return nil
}

// record writes the step's ledger row.
func (s *session) record(ctx context.Context, q querier, st *Step, state string, progress int64) error {
	table, _ := ledgerName(s.t.Schema)
	_, err := q.Exec(ctx, `INSERT INTO `+table+` (version, name, checksum, state, progress, finished_at, run_id)
VALUES ($1, $2, $3, $4, $5, CASE WHEN $4 = 'done' THEN now() END, $6)
ON CONFLICT (version) DO UPDATE SET state = EXCLUDED.state, progress = EXCLUDED.progress,
    finished_at = EXCLUDED.finished_at, run_id = EXCLUDED.run_id`,
		st.Version, st.Name, st.Checksum, state, progress, s.runID)
	if err != nil {
		return fmt.Errorf("record step %d: %w", st.Version, err)
	}
	return nil
}

func (s *session) setProgress(ctx context.Context, q querier, st *Step, progress int64) error {
	table, _ := ledgerName(s.t.Schema)
	if _, err := q.Exec(ctx, `UPDATE `+table+` SET progress = $2 WHERE version = $1`, st.Version, progress); err != nil {
		return fmt.Errorf("record progress of step %d: %w", st.Version, err)
	}
	return nil
}

// finish runs the AfterStep hook and records the step done, in tx.
func (s *session) finish(ctx context.Context, tx pgx.Tx, st *Step, progress int64) error {
	if hook := s.e.config.AfterStep; hook != nil {
		if _, err := tx.Exec(ctx, `SET LOCAL ROLE NONE`); err != nil {
			return err
		}
		if err := hook(ctx, tx, s.t); err != nil {
			return fmt.Errorf("after step %d: %w", st.Version, err)
		}
		if _, err := tx.Exec(ctx, `SET LOCAL ROLE `+s.owner); err != nil {
			return err
		}
	}
	return s.record(ctx, tx, st, "done", progress)
}

// applyTx runs a tx step and its ledger row in one transaction. Without an
// AfterStep hook the whole transaction travels in one round trip, so the
// locks its DDL takes are held only while the server works, never while
// the engine waits for a CPU or the network.
func (s *session) applyTx(ctx context.Context, st *Step) error {
	if s.e.config.AfterStep == nil {
		var parts []part
		for i, x := range st.Statements {
			parts = append(parts, s.statementParts(i, x)...)
		}
		parts = append(parts, part{sql: s.recordSQL(st, "done", int64(len(st.Statements))), stmt: -1})
		return s.retry(ctx, st.Version, func() error {
			_, err := s.script(ctx, st, parts)
			return err
		}, nil)
	}
	return s.retry(ctx, st.Version, func() error {
		return pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
			for _, x := range st.Statements {
				if err := s.exec(ctx, tx, st, x); err != nil {
					return err
				}
			}
			return s.finish(ctx, tx, st, int64(len(st.Statements)))
		})
	}, nil)
}

// applyNoTx runs a no-tx step from statement from on. Statements that can
// run in a transaction run in one with the progress counter; the others run
// bare between the intent row and the counter, and must be idempotent.
func (s *session) applyNoTx(ctx context.Context, st *Step, from int64, started bool) error {
	if !started {
		if err := s.record(ctx, s.conn, st, "running", 0); err != nil {
			return err
		}
	}
	for i := int(from); i < len(st.Statements); i++ {
		x := st.Statements[i]
		var err error
		if x.OutsideTx {
			repair := func() error { return nil }
			if x.Index != "" {
				repair = func() error { return s.repairIndex(ctx, st, x.Index) }
			}
			if err := repair(); err != nil {
				return err
			}
			err = s.retry(ctx, st.Version, func() error {
				if _, err := s.conn.Exec(ctx, x.SQL); err != nil {
					return &StepError{Target: s.t, Version: st.Version, Line: x.Line, Err: err}
				}
				return nil
			}, repair)
			if err == nil {
				err = s.setProgress(ctx, s.conn, st, int64(i+1))
			}
		} else {
			parts := append(s.statementParts(i, x), part{sql: s.progressSQL(st, fmt.Sprint(i+1)), stmt: -1})
			err = s.retry(ctx, st.Version, func() error {
				_, err := s.script(ctx, st, parts)
				return err
			}, nil)
		}
		if err != nil {
			return err
		}
	}
	return pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		return s.finish(ctx, tx, st, int64(len(st.Statements)))
	})
}

// applyBatch runs a batch step's statement until it affects no row, each
// run in a transaction with the batch counter.
func (s *session) applyBatch(ctx context.Context, st *Step, started bool) error {
	if !started {
		if err := s.record(ctx, s.conn, st, "running", 0); err != nil {
			return err
		}
	}
	x := st.Statements[0]
	table, _ := ledgerName(s.t.Schema)
	for batches := 0; ; batches++ {
		if batches >= s.e.config.MaxBatches {
			return &StepError{Target: s.t, Version: st.Version, Line: x.Line,
				Err: fmt.Errorf("batch statement still affects rows after %d runs (Config.MaxBatches)", batches)}
		}
		// SET LOCAL ROLE NONE, the batch, the counter: one round trip, so
		// the batch's row locks last only as long as the server works.
		parts := []part{{sql: `SET LOCAL ROLE NONE`, stmt: -1}, {sql: x.SQL, stmt: 0}, {sql: s.progressSQL(st, "progress + 1"), stmt: -1}}
		var n int64
		err := s.retry(ctx, st.Version, func() error {
			tags, err := s.script(ctx, st, parts)
			if err == nil {
				n = tags[2].RowsAffected()
			}
			return err
		}, nil)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if st.BatchPause > 0 {
			if err := sleep(ctx, st.BatchPause); err != nil {
				return err
			}
		}
	}
	return pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		var progress int64
		if err := tx.QueryRow(ctx, `SELECT progress FROM `+table+` WHERE version = $1`, st.Version).Scan(&progress); err != nil {
			return err
		}
		return s.finish(ctx, tx, st, progress)
	})
}

// part is one statement of a script: a statement of the step (stmt its
// index) or bookkeeping (stmt -1).
type part struct {
	sql  string
	stmt int
}

// statementParts returns statement i of a step as script parts: a data
// change runs as the administrative role, the rest as the owner.
func (s *session) statementParts(i int, x Statement) []part {
	if !isData(x.SQL) {
		return []part{{sql: x.SQL, stmt: i}}
	}
	return []part{{sql: `SET LOCAL ROLE NONE`, stmt: -1}, {sql: x.SQL, stmt: i}, {sql: `SET LOCAL ROLE ` + s.owner, stmt: -1}}
}

// script runs parts in one transaction sent as one simple query, and
// returns the command tags (index 0 is BEGIN). A failing statement rolls
// the transaction back; the error names its line.
func (s *session) script(ctx context.Context, st *Step, parts []part) ([]pgconn.CommandTag, error) {
	var b strings.Builder
	b.WriteString("BEGIN;\n")
	for _, p := range parts {
		b.WriteString(p.sql)
		b.WriteString("\n;\n") // a newline first: the statement may end in a -- comment
	}
	b.WriteString("COMMIT")
	results, err := s.conn.PgConn().Exec(ctx, b.String()).ReadAll()
	if err == nil {
		tags := make([]pgconn.CommandTag, len(results))
		for i, r := range results {
			if r.Err != nil {
				err = r.Err
				break
			}
			tags[i] = r.CommandTag
		}
		if err == nil {
			return tags, nil
		}
	}
	if s.conn.PgConn().TxStatus() != 'I' && !s.conn.IsClosed() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, rerr := s.conn.Exec(rctx, `ROLLBACK`)
		cancel()
		if rerr != nil {
			_ = s.conn.Close(rctx) // never reuse a session in an unknown state
		}
	}
	se := &StepError{Target: s.t, Version: st.Version, Err: err}
	if i := len(results) - 1; i >= 0 && i < len(parts) && parts[i].stmt >= 0 {
		se.Line = st.Statements[parts[i].stmt].Line
	}
	return nil, se
}

// recordSQL is the ledger row of st as a statement with literal values.
func (s *session) recordSQL(st *Step, state string, progress int64) string {
	table, _ := ledgerName(s.t.Schema)
	name, _ := sqlident.Literal(st.Name)
	sum, _ := sqlident.Literal(st.Checksum)
	run, _ := sqlident.Literal(s.runID)
	finished := "NULL"
	if state == "done" {
		finished = "now()"
	}
	return fmt.Sprintf(`INSERT INTO %s (version, name, checksum, state, progress, finished_at, run_id) VALUES (%d, %s, %s, '%s', %d, %s, %s)
ON CONFLICT (version) DO UPDATE SET state = EXCLUDED.state, progress = EXCLUDED.progress, finished_at = EXCLUDED.finished_at, run_id = EXCLUDED.run_id`,
		table, st.Version, name, sum, state, progress, finished, run)
}

// progressSQL sets the ledger's progress of st to expr.
func (s *session) progressSQL(st *Step, expr string) string {
	table, _ := ledgerName(s.t.Schema)
	return fmt.Sprintf(`UPDATE %s SET progress = %s WHERE version = %d`, table, expr, st.Version)
}

// repairIndex drops index in the target schema if it is INVALID: what a
// CREATE INDEX CONCURRENTLY that failed, was cancelled or was killed leaves
// behind, and what CREATE INDEX CONCURRENTLY IF NOT EXISTS would otherwise
// silently keep.
func (s *session) repairIndex(ctx context.Context, st *Step, index string) error {
	var invalid bool
	err := s.conn.QueryRow(ctx, `SELECT NOT i.indisvalid FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`, s.t.Schema, index).Scan(&invalid)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && !invalid {
		return nil
	}
	if err != nil {
		return fmt.Errorf("target %s: look up index %s: %w", s.t.Key(), index, err)
	}
	q, err := sqlident.Qualified(s.t.Schema, index)
	if err != nil {
		return err
	}
	err = s.retry(ctx, st.Version, func() error {
		_, err := s.conn.Exec(ctx, `DROP INDEX CONCURRENTLY IF EXISTS `+q)
		return err
	}, nil)
	if err != nil {
		return &StepError{Target: s.t, Version: st.Version, Err: fmt.Errorf("drop invalid index %s: %w", index, err)}
	}
	s.e.logger.InfoContext(ctx, "invalid index dropped for rebuild", "target", s.t.Key(), "index", index, "version", st.Version)
	s.ev.emit(EventIndexRepaired, st.Version, 0, nil)
	return nil
}

// retry runs fn, and again after a back-off while it fails on a lock
// timeout or deadlock, at most Config.LockRetries more times; before each
// retry it runs before (when not nil).
func (s *session) retry(ctx context.Context, version int, fn func() error, before func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || !retryable(err) {
			return err
		}
		if attempt >= s.e.config.LockRetries {
			var se *StepError
			if errors.As(err, &se) {
				return &StepError{Target: s.t, Version: version, Line: se.Line,
					Err: fmt.Errorf("%w after %d attempts: %w", ErrLockTimeout, attempt+1, se.Err)}
			}
			return &StepError{Target: s.t, Version: version, Err: fmt.Errorf("%w after %d attempts: %w", ErrLockTimeout, attempt+1, err)}
		}
		s.ev.emit(EventLockRetry, version, attempt+1, err)
		s.e.logger.DebugContext(ctx, "lock retry", "target", s.t.Key(), "version", version, "attempt", attempt+1, "error", err)
		if err := sleep(ctx, s.e.backoff(attempt)); err != nil {
			return err
		}
		if before != nil {
			if err := before(); err != nil {
				return err
			}
		}
	}
}

// retryable reports whether err is a lock timeout, deadlock or
// serialization failure: worth another try after a pause.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "55P03", "40P01", "40001":
		return true
	}
	return false
}

// backoff is the wait before retry attempt+1: RetryBackoff doubled per
// attempt, capped, with jitter in [d/2, d].
func (e *Engine) backoff(attempt int) time.Duration {
	d := e.config.RetryBackoff
	for i := 0; i < attempt && d < e.config.MaxRetryBackoff; i++ {
		d *= 2
	}
	d = min(d, e.config.MaxRetryBackoff)
	return d/2 + rand.N(d/2+1) //nolint:gosec // jitter for retry back-off, not a secret
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
