// Package lint is the safety lint of fleet migrations: it reads the SQL of
// migration steps before anything runs and flags what would block or
// rewrite a busy table, or break the release still running during an
// expand/contract rollout, and says what to write instead.
//
// It flags a non-concurrent index build on an existing table, a volatile
// default, SET NOT NULL without a validated CHECK (col IS NOT NULL) NOT VALID
// first, column type changes, constraints added without NOT VALID, dropped or
// renamed columns and tables, table rewrites, unbatched updates, badly shaped
// batch steps, statements that are not idempotent where they must be, and
// statements that cannot run in a transaction in a transactional step. Rules
// lists them all.
//
// A table created by a step is new within that step, so anything goes on it
// there. A step opts out of a rule with a stated reason in its header:
//
//	-- migrate:mode tx
//	-- migrate:allow drop-column release 41 stopped reading notes.legacy_body
//	ALTER TABLE notes DROP COLUMN legacy_body;
//
// Example:
//
//	findings := lint.Check([]lint.Step{{
//		Version: 7, File: "0007_idx.sql", Mode: lint.ModeTx,
//		Statements: []lint.Statement{{SQL: "CREATE INDEX notes_at ON notes (created_at)", Line: 2}},
//	}})
//	for _, f := range lint.Blocking(findings) {
//		fmt.Println(f) // 0007_idx.sql:2: index-not-concurrent: CREATE INDEX on existing table "notes" ...
//	}
package lint
