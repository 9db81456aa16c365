package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/internal/sqlident"
)

// ContractError lists the tables of the application DDL that break the
// shared table contract: a tenant_id uuid NOT NULL column defaulting to the
// transaction's tenant, leading the primary key.
type ContractError struct {
	// Problems holds one sentence per offending table.
	Problems []string
}

func (e *ContractError) Error() string {
	return "application DDL breaks the tenant table contract: " + strings.Join(e.Problems, "; ")
}

// tenantDefault is what every tenant_id default must read.
const tenantSetting = "current_setting('tenantry.tenant_id'"

// schemaComment returns the comment on schema (its marker), and whether the
// schema exists.
func schemaComment(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, schema string) (string, bool, error) {
	var comment *string
	err := q.QueryRow(ctx, `SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1`, schema).Scan(&comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("look up schema %s: %w", schema, err)
	}
	if comment == nil {
		return "", true, nil
	}
	return *comment, true, nil
}

// createSchema creates schema in tx, owned by OwnerRole, runs the DDL in it
// as OwnerRole, checks the table contract and records the marker. Role and
// search_path are set transaction-locally and put back before it returns.
func (p *Provisioner) createSchema(ctx context.Context, tx pgx.Tx, schema string) error {
	qs := sqlident.MustQuote(schema)
	if _, err := tx.Exec(ctx, "CREATE SCHEMA "+qs+" AUTHORIZATION "+sqlident.MustQuote(OwnerRole)); err != nil {
		return fmt.Errorf("create schema %s: %w", schema, err)
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('role', $1, true), set_config('search_path', $2, true)`, OwnerRole, qs); err != nil {
		return fmt.Errorf("become %s: %w", OwnerRole, err)
	}
	if p.config.Build != nil {
		if err := p.config.Build(ctx, tx, schema); err != nil {
			return fmt.Errorf("build application schema %s: %w", schema, err)
		}
	} else {
		for i, stmt := range p.config.DDL {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("application DDL #%d in schema %s: %w", i+1, schema, err)
			}
		}
	}
	if _, err := tx.Exec(ctx, `SET LOCAL ROLE NONE; SET LOCAL search_path TO DEFAULT`); err != nil {
		return err
	}
	if err := checkContract(ctx, tx, schema); err != nil {
		return err
	}
	m, _ := sqlident.Literal(p.marker())
	if _, err := tx.Exec(ctx, "COMMENT ON SCHEMA "+qs+" IS "+m); err != nil {
		return fmt.Errorf("mark schema %s: %w", schema, err)
	}
	return nil
}

// tenantTables returns the tables of schema with a tenant_id column: the
// tables holding tenant rows. Others (the migration ledger that migrate
// keeps in every location) hold no tenant's data.
func tenantTables(ctx context.Context, tx pgx.Tx, schema string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
ORDER BY c.relname`, schema)
	if err != nil {
		return nil, fmt.Errorf("list tenant tables of %s: %w", schema, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// checkContract returns a *ContractError if a table of schema breaks the
// table contract, or if the schema has no table at all.
func checkContract(ctx context.Context, tx pgx.Tx, schema string) error {
	rows, err := tx.Query(ctx, `SELECT c.relname,
    a.attname IS NOT NULL, COALESCE(a.atttypid = 'uuid'::regtype, false), COALESCE(a.attnotnull, false),
    COALESCE(pg_get_expr(d.adbin, d.adrelid), ''),
    COALESCE((SELECT pa.attname = 'tenant_id' FROM pg_index i
              JOIN pg_attribute pa ON pa.attrelid = i.indrelid AND pa.attnum = i.indkey[0]
              WHERE i.indrelid = c.oid AND i.indisprimary), false)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND c.relname <> $2 -- the migration ledger holds no tenant rows
ORDER BY c.relname`, schema, DefaultLedgerTable)
	if err != nil {
		return fmt.Errorf("check table contract: %w", err)
	}
	var problems []string
	n := 0
	for rows.Next() {
		n++
		var name, def string
		var has, isUUID, notNull, pkFirst bool
		if err := rows.Scan(&name, &has, &isUUID, &notNull, &def, &pkFirst); err != nil {
			return err
		}
		switch {
		case !has:
			problems = append(problems, fmt.Sprintf("table %s has no tenant_id column", name))
		case !isUUID || !notNull:
			problems = append(problems, fmt.Sprintf("table %s: tenant_id must be uuid NOT NULL", name))
		case !strings.Contains(def, tenantSetting):
			problems = append(problems, fmt.Sprintf("table %s: tenant_id must default to NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid", name))
		case !pkFirst:
			problems = append(problems, fmt.Sprintf("table %s: the primary key must start with tenant_id", name))
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("check table contract: %w", err)
	}
	if n == 0 {
		problems = append(problems, "the DDL created no table")
	}
	if len(problems) > 0 {
		return &ContractError{Problems: problems}
	}
	return nil
}

// tenantPredicate is the row-level security predicate of the shared and
// sharded models. NULLIF turns the empty string a reused connection reports after an
// earlier transaction's set_config(..., true) into NULL, and a comparison
// with NULL is never true: no tenant means no rows and no writes.
const tenantPredicate = `tenant_id = NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid`

// Policy names on shared tables.
const (
	tenantPolicy    = "tenantry_tenant"
	reportingPolicy = "tenantry_reporting"
)

// secureShared enables and forces row-level security on every table of
// schema with the tenant policy, adds the reporting role's read policy, and
// grants DML to AppRole and SELECT to ReportingRole. Idempotent.
func secureShared(ctx context.Context, tx pgx.Tx, schema string) error {
	names, err := tenantTables(ctx, tx, schema)
	if err != nil {
		return err
	}
	for _, name := range names {
		qt, err := sqlident.Qualified(schema, name)
		if err != nil {
			return err
		}
		var have []string
		rows, err := tx.Query(ctx, `SELECT polname FROM pg_policy WHERE polrelid = $1::regclass`, qt)
		if err != nil {
			return fmt.Errorf("list policies of %s: %w", name, err)
		}
		if have, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		sql := "ALTER TABLE " + qt + " ENABLE ROW LEVEL SECURITY; ALTER TABLE " + qt + " FORCE ROW LEVEL SECURITY;"
		if !contains(have, tenantPolicy) {
			sql += " CREATE POLICY " + tenantPolicy + " ON " + qt + " FOR ALL TO PUBLIC USING (" + tenantPredicate + ") WITH CHECK (" + tenantPredicate + ");"
		}
		if !contains(have, reportingPolicy) {
			sql += " CREATE POLICY " + reportingPolicy + " ON " + qt + " FOR SELECT TO " + sqlident.MustQuote(ReportingRole) + " USING (true);"
		}
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("row-level security on %s: %w", name, err)
		}
	}
	return grant(ctx, tx, schema, AppRole)
}

// grant gives role USAGE on schema and SELECT, INSERT, UPDATE, DELETE on its
// tables (never TRUNCATE, which ignores row-level security, nor REFERENCES
// or TRIGGER), and sequences; ReportingRole gets SELECT. Default privileges
// extend both to tables OwnerRole creates there later (migrations).
func grant(ctx context.Context, tx pgx.Tx, schema, role string) error {
	qs, qr := sqlident.MustQuote(schema), sqlident.MustQuote(role)
	qrep, qown := sqlident.MustQuote(ReportingRole), sqlident.MustQuote(OwnerRole)
	sql := strings.Join([]string{
		"GRANT USAGE ON SCHEMA " + qs + " TO " + qr + ", " + qrep,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA " + qs + " TO " + qr,
		"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA " + qs + " TO " + qr,
		"GRANT SELECT ON ALL TABLES IN SCHEMA " + qs + " TO " + qrep,
		"ALTER DEFAULT PRIVILEGES FOR ROLE " + qown + " IN SCHEMA " + qs + " GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO " + qr,
		"ALTER DEFAULT PRIVILEGES FOR ROLE " + qown + " IN SCHEMA " + qs + " GRANT USAGE, SELECT ON SEQUENCES TO " + qr,
		"ALTER DEFAULT PRIVILEGES FOR ROLE " + qown + " IN SCHEMA " + qs + " GRANT SELECT ON TABLES TO " + qrep,
	}, "; ")
	if _, err := tx.Exec(ctx, sql); err != nil {
		return fmt.Errorf("grant schema %s to %s: %w", schema, role, err)
	}
	// The migration ledger, when the schema has one, is shared metadata
	// with no tenant_id: the runtime and tenant roles may read it, never
	// write it.
	ledger, err := sqlident.Qualified(schema, DefaultLedgerTable)
	if err != nil {
		return err
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, ledger).Scan(&exists); err != nil {
		return fmt.Errorf("look for the migration ledger of %s: %w", schema, err)
	}
	if exists {
		if _, err := tx.Exec(ctx, "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON "+ledger+" FROM "+qr); err != nil {
			return fmt.Errorf("make the migration ledger of %s read-only for %s: %w", schema, role, err)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
