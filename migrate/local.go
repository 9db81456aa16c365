package migrate

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/sqlident"
)

// LedgerTable is the table in every target schema that records the versions
// the target has applied: the authoritative ledger, written in the same
// transaction as each transactional step. It is readable by every role with
// USAGE on the schema (application code reads its version with
// ReadVersion); it has no tenant_id, being about the schema, not a tenant.
//
//	version     integer PRIMARY KEY
//	name        text          the step's name
//	checksum    text          the file's SHA-256
//	state       text          'running' (a no-tx or batch step under way) or 'done'
//	progress    bigint        statements (no-tx) or batches (batch) completed
//	started_at  timestamptz
//	finished_at timestamptz
//	run_id      text          the rollout that applied it ('' outside one)
const LedgerTable = "tenantry_migration"

const ledgerDDL = `CREATE TABLE IF NOT EXISTS %s (
    version     integer PRIMARY KEY CHECK (version > 0),
    name        text NOT NULL,
    checksum    text NOT NULL,
    state       text NOT NULL CHECK (state IN ('running', 'done')),
    progress    bigint NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    run_id      text NOT NULL DEFAULT ''
);
GRANT SELECT ON %[1]s TO PUBLIC`

// ledgerName returns the qualified ledger table of schema.
func ledgerName(schema string) (string, error) {
	return sqlident.Qualified(schema, LedgerTable)
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// ensureLedger creates the ledger table in schema if missing, as the current
// role, and reports whether it did.
func ensureLedger(ctx context.Context, q querier, schema string) (bool, error) {
	table, err := ledgerName(schema)
	if err != nil {
		return false, err
	}
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
		return false, fmt.Errorf("look up ledger: %w", err)
	}
	if exists {
		return false, nil
	}
	if _, err := q.Exec(ctx, fmt.Sprintf(ledgerDDL, table)); err != nil {
		return false, fmt.Errorf("create ledger %s: %w", table, err)
	}
	// Default privileges of the schema (provisioning grants the runtime and
	// tenant roles DML on every table the owner creates) would let
	// application code rewrite the ledger; it may only read it.
	rows, err := q.Query(ctx, `SELECT DISTINCT pg_get_userbyid(a.grantee) FROM pg_class c, aclexplode(c.relacl) a
WHERE c.oid = $1::regclass AND a.grantee <> c.relowner AND a.grantee <> 0 AND a.privilege_type <> 'SELECT'`, table)
	if err != nil {
		return false, fmt.Errorf("ledger %s privileges: %w", table, err)
	}
	grantees, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return false, fmt.Errorf("ledger %s privileges: %w", table, err)
	}
	for _, g := range grantees {
		role, err := sqlident.Quote(g)
		if err != nil {
			return false, err
		}
		if _, err := q.Exec(ctx, `REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON `+table+` FROM `+role); err != nil {
			return false, fmt.Errorf("ledger %s: revoke from %s: %w", table, g, err)
		}
	}
	return true, nil
}

// stamp records the steps of src up to version as done without running
// them: the baseline of a target built by other means.
func stamp(ctx context.Context, q querier, schema string, src *Source, version int, runID string) error {
	table, err := ledgerName(schema)
	if err != nil {
		return err
	}
	for _, st := range src.Steps() {
		if st.Version > version {
			break
		}
		if _, err := q.Exec(ctx, `INSERT INTO `+table+` (version, name, checksum, state, progress, finished_at, run_id)
VALUES ($1, $2, $3, 'done', 0, now(), $4) ON CONFLICT (version) DO NOTHING`, st.Version, st.Name, st.Checksum, runID); err != nil {
			return fmt.Errorf("stamp version %d: %w", st.Version, err)
		}
	}
	return nil
}

// applied is a ledger row.
type applied struct {
	Version  int
	Checksum string
	State    string
	Progress int64
}

// readLedger returns the ledger of schema by version.
func readLedger(ctx context.Context, q querier, schema string) (map[int]applied, error) {
	table, err := ledgerName(schema)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, `SELECT version, checksum, state, progress FROM `+table)
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	out := map[int]applied{}
	for rows.Next() {
		var a applied
		if err := rows.Scan(&a.Version, &a.Checksum, &a.State, &a.Progress); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read ledger: %w", err)
		}
		out[a.Version] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	return out, nil
}

// versionOf returns the newest version v of src such that every step up to v
// is done in led.
func versionOf(src *Source, led map[int]applied) int {
	v := 0
	for _, s := range src.Steps() {
		if a, ok := led[s.Version]; !ok || a.State != "done" {
			break
		}
		v = s.Version
	}
	return v
}

// Querier is what ReadVersion and TenantVersion query through: a pgx.Tx, a
// *pgx.Conn, a *pgxpool.Pool or a *pgxpool.Conn.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ReadVersion returns the schema version of the target that q's
// search_path points at: the newest version its ledger records as done, 0
// for a target that has none. Call it inside a tenant's scoped transaction
// (the router sets search_path to the tenant's schema), so that application
// code can gate a feature on the schema it runs against while old and new
// releases both run:
//
//	v, err := migrate.ReadVersion(ctx, tx)
//	if v >= 7 { /* the column of migration 7 exists */ }
func ReadVersion(ctx context.Context, q Querier) (int, error) {
	var v int
	err := q.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM `+LedgerTable+` WHERE state = 'done'`).Scan(&v)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table: never migrated
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("migrate: read schema version: %w", err)
	}
	return v, nil
}

// TenantVersion returns the schema version of the target of a tenant (by
// ID or slug) as the catalog's ledger last saw it, without connecting to the
// tenant's database: the version is recorded after the target commits each
// step, so it may lag the target by a moment, never lead it. q is the
// catalog. A tenant without placement, or whose target no rollout has
// visited yet, is at 0.
func TenantVersion(ctx context.Context, q Querier, tenant string) (int, error) {
	where := `t.slug = $1`
	if uuidRe.MatchString(tenant) {
		where = `t.id = $1::uuid`
	}
	var v int
	err := q.QueryRow(ctx, `SELECT COALESCE(mt.version, 0)
FROM tenantry.tenant t
LEFT JOIN tenantry.migration_target mt
  ON mt.cluster = t.placement_cluster AND mt.database = t.placement_database AND mt.schema = t.placement_schema
WHERE `+where, tenant).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("migrate: tenant %q: %w", truncate(tenant, 64), catalog.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("migrate: tenant version: %w", err)
	}
	return v, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
