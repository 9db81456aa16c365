package migrate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/internal/sqlident"
	"github.com/tenantry/tenantry/migrate/internal/sqlscan"
)

// Build brings schema, new and empty or built by an earlier Build, to the
// head of src inside the caller's transaction tx, recording every step in
// the schema's ledger: how provisioning creates a tenant schema, a shared
// database's schema or a template at the current version in one go, rather
// than rolling each step out. On empty tables nothing blocks, so statements
// that cannot run in a transaction are adapted: CONCURRENTLY is dropped from
// CREATE INDEX, DROP INDEX and REINDEX; VACUUM is skipped. Batch steps run
// until they affect no row (at once, on empty tables).
//
// Build runs as the current role (provisioning sets it to the owner role)
// and sets search_path to schema for the transaction. It returns the version
// reached.
func Build(ctx context.Context, tx pgx.Tx, schema string, src *Source) (int, error) {
	q, err := sqlident.Quote(schema)
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, q); err != nil {
		return 0, fmt.Errorf("migrate: build %s: %w", schema, err)
	}
	if _, err := ensureLedger(ctx, tx, schema); err != nil {
		return 0, fmt.Errorf("migrate: build %s: %w", schema, err)
	}
	led, err := readLedger(ctx, tx, schema)
	if err != nil {
		return 0, fmt.Errorf("migrate: build %s: %w", schema, err)
	}
	table, _ := ledgerName(schema)
	for _, st := range src.Steps() {
		if a, ok := led[st.Version]; ok {
			if a.Checksum != st.Checksum {
				return 0, fmt.Errorf("migrate: build %s: %w: %s", schema, ErrChecksumMismatch, st.File)
			}
			if a.State == "done" {
				continue
			}
		}
		for _, x := range st.Statements {
			sql, skip := inTransaction(x)
			if skip {
				continue
			}
			for batch := 0; ; batch++ {
				tag, err := tx.Exec(ctx, sql)
				if err != nil {
					return 0, fmt.Errorf("migrate: build %s: %s line %d: %w", schema, st.File, x.Line, err)
				}
				if st.Mode != ModeBatch || tag.RowsAffected() == 0 {
					break
				}
				if batch >= DefaultMaxBatches {
					return 0, fmt.Errorf("migrate: build %s: %s: batch never reaches zero rows", schema, st.File)
				}
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO `+table+` (version, name, checksum, state, progress, finished_at)
VALUES ($1, $2, $3, 'done', $4, now())
ON CONFLICT (version) DO UPDATE SET state = 'done', progress = EXCLUDED.progress, finished_at = now()`,
			st.Version, st.Name, st.Checksum, len(st.Statements))
		if err != nil {
			return 0, fmt.Errorf("migrate: build %s: record %s: %w", schema, st.File, err)
		}
	}
	return src.Head(), nil
}

// inTransaction returns the form of x that runs inside a transaction on
// empty tables, or skip for a statement that has nothing to do there.
func inTransaction(x Statement) (sql string, skip bool) {
	if !x.OutsideTx {
		return x.SQL, false
	}
	toks := sqlscan.Tokens(x.SQL)
	if toks[0].Is("VACUUM") {
		return "", true
	}
	for _, t := range toks {
		if t.Is("CONCURRENTLY") {
			return x.SQL[:t.Offset] + x.SQL[t.Offset+len(t.Text):], false
		}
	}
	return x.SQL, false
}

// Until returns the source's steps up to version v: for building a target
// at an older version (tests, benchmarks, a staged rollout).
func (s *Source) Until(v int) *Source {
	out := &Source{}
	for _, st := range s.steps {
		if st.Version <= v {
			out.steps = append(out.steps, st)
		}
	}
	return out
}
