// Package router runs application code written once for every tenant,
// whatever its storage model: shared tables under row-level security, a
// schema per tenant, a database per tenant, or shared tables on one of
// several shards.
//
// Router.Tx runs a function in a transaction scoped to the tenant of the
// context (tenant.FromContext; none is ErrNoTenant, before any SQL). The
// tenant's placement and state are read from the catalog cache at the start
// of every transaction; its connection comes from the pool manager (package
// pool): to the tenant's database, on its cluster, as the runtime role.
//
// The scope is three transaction-local settings, set in one statement that
// travels in the same round trip as BEGIN and the transaction's first
// statement, and checked against the server's answer:
//
//	tenantry.tenant_id  the tenant's UUID, read by row-level security policies
//	search_path         the placement's schema (app, or t_acme for a schema tenant)
//	role                the per-tenant role for schema and database tenants;
//	                    "none" (the runtime role, under forced RLS) otherwise
//
// So application SQL names tables unqualified and never mentions a tenant.
// After COMMIT or ROLLBACK the settings revert, so a pooled connection
// carries nothing of one tenant into the next transaction. An error, a panic
// (re-raised after the rollback) or a cancelled context rolls back; a
// connection whose state is uncertain is closed rather than pooled.
//
//	err := r.Tx(ctx, func(ctx context.Context, tx router.Tx) error {
//		_, err := tx.Exec(ctx, "insert into notes (tenant_id, body) values ($1, $2)",
//			tx.Tenant().ID, body)
//		return err
//	})
//
// Package sqladapter gives code written for database/sql a scoped *sql.Tx.
package router
