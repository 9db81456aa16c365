package lint_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/migrate/internal/sqlscan"
	"github.com/tenantry/tenantry/migrate/lint"
)

// step builds a lint step from a script.
func step(version int, mode, script string, allow ...string) lint.Step {
	s := lint.Step{Version: version, File: fmt.Sprintf("%04d.sql", version), Mode: mode, Allow: map[string]string{}}
	for _, st := range sqlscan.Split(script) {
		s.Statements = append(s.Statements, lint.Statement{SQL: st.Text, Line: st.Line})
	}
	for _, a := range allow {
		s.Allow[a] = "test says so"
	}
	return s
}

// base creates the table the cases alter, in an earlier step.
var base = step(1, lint.ModeTx, `CREATE TABLE notes (tenant_id uuid NOT NULL, id bigint NOT NULL, body text, n int, PRIMARY KEY (tenant_id, id));
CREATE INDEX notes_body_idx ON notes (tenant_id, body);`)

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		steps []lint.Step
		want  []string // blocking rules, in order
	}{
		{"initial schema is clean", nil, nil},
		{"index on existing table", []lint.Step{step(2, lint.ModeTx, "CREATE INDEX notes_n ON notes (n)")}, []string{lint.RuleIndexNotConcurrent}},
		{"unique index on existing table", []lint.Step{step(2, lint.ModeTx, "create unique index notes_n on app.notes using btree (n)")}, []string{lint.RuleIndexNotConcurrent}},
		{"index on table of same step", []lint.Step{step(2, lint.ModeTx, "CREATE TABLE tags (tenant_id uuid, id int); CREATE INDEX tags_id ON tags (id)")}, nil},
		{"concurrent index in tx step", []lint.Step{step(2, lint.ModeTx, "CREATE INDEX CONCURRENTLY IF NOT EXISTS notes_n ON notes (n)")}, []string{lint.RuleNeedsNoTx}},
		{"concurrent index ok", []lint.Step{step(2, lint.ModeNoTx, "CREATE INDEX CONCURRENTLY IF NOT EXISTS notes_n ON notes (n)")}, nil},
		{"concurrent index no if not exists", []lint.Step{step(2, lint.ModeNoTx, "CREATE INDEX CONCURRENTLY notes_n ON notes (n)")}, []string{lint.RuleNotIdempotent}},
		{"concurrent index unnamed", []lint.Step{step(2, lint.ModeNoTx, "CREATE INDEX CONCURRENTLY ON notes (n)")}, []string{lint.RuleNotIdempotent}},
		{"drop index", []lint.Step{step(2, lint.ModeTx, "DROP INDEX notes_body_idx")}, []string{lint.RuleIndexNotConcurrent}},
		{"drop index concurrently", []lint.Step{step(2, lint.ModeNoTx, "DROP INDEX CONCURRENTLY IF EXISTS notes_body_idx")}, nil},
		{"drop index concurrently no if exists", []lint.Step{step(2, lint.ModeNoTx, "DROP INDEX CONCURRENTLY notes_body_idx")}, []string{lint.RuleNotIdempotent}},
		{"reindex", []lint.Step{step(2, lint.ModeTx, "REINDEX INDEX notes_body_idx")}, []string{lint.RuleIndexNotConcurrent}},
		{"reindex concurrently", []lint.Step{step(2, lint.ModeNoTx, "REINDEX INDEX CONCURRENTLY notes_body_idx")}, nil},
		{"constant default", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes ADD COLUMN status text NOT NULL DEFAULT 'draft', ADD COLUMN at timestamptz DEFAULT now()")}, nil},
		{"volatile default", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes ADD COLUMN token uuid DEFAULT gen_random_uuid()")}, []string{lint.RuleVolatileDefault}},
		{"volatile default clock", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes ADD COLUMN IF NOT EXISTS at timestamptz NOT NULL DEFAULT clock_timestamp()")}, []string{lint.RuleVolatileDefault}},
		{"serial column", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes ADD seq bigserial")}, []string{lint.RuleVolatileDefault}},
		{"identity column", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY")}, []string{lint.RuleVolatileDefault}},
		{"stored generated", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes ADD COLUMN len int GENERATED ALWAYS AS (length(body)) STORED")}, []string{lint.RuleVolatileDefault}},
		{"volatile default in string is fine", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes ADD COLUMN s text DEFAULT 'random()'")}, nil},
		{"not null without default", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes ADD COLUMN s text NOT NULL")}, []string{lint.RuleSetNotNull}},
		{"set not null", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes ALTER COLUMN body SET NOT NULL")}, []string{lint.RuleSetNotNull}},
		{"set not null after validated check", []lint.Step{
			step(2, lint.ModeTx, "ALTER TABLE notes ADD CONSTRAINT body_nn CHECK (body IS NOT NULL) NOT VALID"),
			step(3, lint.ModeNoTx, "ALTER TABLE notes VALIDATE CONSTRAINT body_nn"),
			step(4, lint.ModeTx, "ALTER TABLE notes ALTER COLUMN body SET NOT NULL; ALTER TABLE notes DROP CONSTRAINT body_nn"),
		}, nil},
		{"set not null validated in same tx", []lint.Step{
			step(2, lint.ModeTx, "ALTER TABLE notes ADD CONSTRAINT body_nn CHECK (body IS NOT NULL) NOT VALID; ALTER TABLE notes VALIDATE CONSTRAINT body_nn; ALTER TABLE notes ALTER body SET NOT NULL"),
		}, []string{lint.RuleSetNotNull}},
		{"set not null, check never validated", []lint.Step{
			step(2, lint.ModeTx, "ALTER TABLE notes ADD CONSTRAINT body_nn CHECK (body IS NOT NULL) NOT VALID"),
			step(3, lint.ModeTx, "ALTER TABLE notes ALTER COLUMN body SET NOT NULL"),
		}, []string{lint.RuleSetNotNull}},
		{"set not null, check of another column", []lint.Step{
			step(2, lint.ModeTx, "ALTER TABLE notes ADD CONSTRAINT n_nn CHECK (n IS NOT NULL) NOT VALID"),
			step(3, lint.ModeNoTx, "ALTER TABLE notes VALIDATE CONSTRAINT n_nn"),
			step(4, lint.ModeTx, "ALTER TABLE notes ALTER COLUMN body SET NOT NULL"),
		}, []string{lint.RuleSetNotNull}},
		{"type change", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes ALTER COLUMN n TYPE bigint")}, []string{lint.RuleTypeChange}},
		{"set data type", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE ONLY notes ALTER n SET DATA TYPE bigint USING n::bigint")}, []string{lint.RuleTypeChange}},
		{"check without not valid", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes ADD CONSTRAINT n_pos CHECK (n > 0)")}, []string{lint.RuleConstraintNotValid}},
		{"fk without not valid", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes ADD FOREIGN KEY (tenant_id, n) REFERENCES notes (tenant_id, id)")}, []string{lint.RuleConstraintNotValid}},
		{"fk not valid", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes ADD CONSTRAINT fk FOREIGN KEY (tenant_id, n) REFERENCES notes (tenant_id, id) NOT VALID")}, nil},
		{"unique constraint", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes ADD CONSTRAINT body_u UNIQUE (tenant_id, body)")}, []string{lint.RuleUniqueConstraint}},
		{"unique using index", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes ADD CONSTRAINT body_u UNIQUE USING INDEX notes_body_u")}, nil},
		{"drop column", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes DROP COLUMN n")}, []string{lint.RuleDropColumn}},
		{"drop column allowed", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes DROP COLUMN IF EXISTS n", lint.RuleDropColumn)}, nil},
		{"drop constraint is fine", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes DROP CONSTRAINT IF EXISTS x")}, nil},
		{"drop table", []lint.Step{step(2, lint.ModeTx, "DROP TABLE IF EXISTS notes")}, []string{lint.RuleDropTable}},
		{"rename column", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes RENAME COLUMN body TO text")}, []string{lint.RuleRename}},
		{"rename table", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes RENAME TO memos")}, []string{lint.RuleRename}},
		{"set tablespace", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes SET TABLESPACE fast")}, []string{lint.RuleTableRewrite}},
		{"vacuum full in no-tx", []lint.Step{step(2, lint.ModeNoTx, "VACUUM FULL notes")}, []string{lint.RuleTableRewrite}},
		{"vacuum in tx", []lint.Step{step(2, lint.ModeTx, "VACUUM notes")}, []string{lint.RuleNeedsNoTx}},
		{"needs-no-tx cannot be allowed", []lint.Step{step(2, lint.ModeTx, "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON notes (n)", lint.RuleNeedsNoTx)}, []string{lint.RuleNeedsNoTx}},
		{"unbatched update", []lint.Step{step(2, lint.ModeTx, "UPDATE notes SET n = 0")}, []string{lint.RuleUnbatchedUpdate}},
		{"batch update", []lint.Step{step(2, lint.ModeBatch, "UPDATE notes SET n = 0 WHERE ctid IN (SELECT ctid FROM notes WHERE n IS NULL LIMIT 500)")}, nil},
		{"batch without limit", []lint.Step{step(2, lint.ModeBatch, "UPDATE notes SET n = 0 WHERE n IS NULL")}, []string{lint.RuleBatchShape}},
		{"batch of two statements", []lint.Step{step(2, lint.ModeBatch, "UPDATE notes SET n = 0 WHERE ctid IN (SELECT ctid FROM notes LIMIT 5); SELECT 1")}, []string{lint.RuleBatchShape}},
		{"batch of DDL", []lint.Step{step(2, lint.ModeBatch, "ALTER TABLE notes ADD COLUMN x int")}, []string{lint.RuleBatchShape}},
		{"several in one statement", []lint.Step{step(2, lint.ModeTx, "ALTER TABLE notes ALTER n TYPE bigint, DROP COLUMN body, ADD COLUMN z uuid DEFAULT gen_random_uuid()")},
			[]string{lint.RuleTypeChange, lint.RuleDropColumn, lint.RuleVolatileDefault}},
		{"hostile text does not confuse", []lint.Step{step(2, lint.ModeTx, `COMMENT ON TABLE notes IS 'CREATE INDEX x ON notes (n); ALTER TABLE notes DROP COLUMN n'; /* DROP TABLE notes; */ SELECT $$ UPDATE notes SET n = 1 $$`)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			findings := lint.Check(append([]lint.Step{base}, tt.steps...))
			var got []string
			for _, f := range lint.Blocking(findings) {
				got = append(got, f.Rule)
				if f.Suggestion == "" || f.Message == "" || f.Line < 1 {
					t.Errorf("finding without message, suggestion or line: %+v", f)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("blocking rules = %v, want %v\n%v", got, tt.want, findings)
			}
		})
	}
}

func TestAllowedFindingKeepsReason(t *testing.T) {
	t.Parallel()
	findings := lint.Check([]lint.Step{base, step(2, lint.ModeTx, "ALTER TABLE notes DROP COLUMN n", lint.RuleDropColumn)})
	if len(findings) != 1 || !findings[0].Allowed || findings[0].Reason != "test says so" {
		t.Fatalf("findings = %+v", findings)
	}
	if !strings.Contains(findings[0].String(), "allowed: test says so") {
		t.Fatalf("String() = %q", findings[0].String())
	}
}

func TestRulesDocumented(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, r := range lint.Rules {
		if r.Summary == "" || seen[r.Name] || !lint.Known(r.Name) {
			t.Fatalf("rule %+v", r)
		}
		seen[r.Name] = true
	}
	if lint.Known("no-such-rule") {
		t.Fatal("unknown rule known")
	}
}

func Example() {
	findings := lint.Check([]lint.Step{{
		Version: 7, File: "0007_idx.sql", Mode: lint.ModeTx,
		Statements: []lint.Statement{{SQL: "CREATE INDEX notes_at ON notes (created_at)", Line: 2}},
	}})
	for _, f := range lint.Blocking(findings) {
		fmt.Println(f.File, f.Line, f.Rule)
		fmt.Println(f.Suggestion)
	}
	// Output:
	// 0007_idx.sql 2 index-not-concurrent
	// CREATE INDEX CONCURRENTLY IF NOT EXISTS <name> ON ... in a step of its own with -- migrate:mode no-tx
}
