// Package provision creates and drops the PostgreSQL storage of tenants, in
// each of Tenantry's four storage models, from one application schema.
//
// A Provisioner reads a tenant from the catalog, decides its placement with
// a Policy the first time (TierPolicy by default: free -> shared, pro ->
// schema, enterprise -> database, unless the tenant asked for a model), and
// records the decision in the catalog, where it is never recomputed: adding a
// shard or changing the policy moves no existing tenant. It then creates what
// the model needs, idempotently:
//
//	model     database               schema      per-tenant role
//	shared    tenantry_shared        app         none (row-level security)
//	sharded   tenantry_shard (shard) app         none (row-level security)
//	schema    tenantry_schemas       t_<slug>    tenantry_t_<slug>
//	database  t_<slug>               app         tenantry_t_<slug>
//
// (slug with '-' replaced by '_'). Shared and shard databases and their
// tables are created on first use; a tenant database is cloned from a
// template database (CREATE DATABASE ... TEMPLATE) that the provisioner
// rebuilds whenever the DDL changes, which costs tens of milliseconds
// instead of running the DDL.
//
// # The table contract
//
// The application's DDL (Config.DDL) uses unqualified names and runs as
// OwnerRole in the tenant's schema. Every table has the same shape in every
// model, so that a tenant can later move between models by copying rows:
//
//	tenant_id uuid NOT NULL DEFAULT NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid
//
// leading the primary key. The provisioner checks this and refuses DDL that
// breaks it (ContractError).
//
// # Roles and privileges
//
//   - OwnerRole (NOLOGIN) owns every tenant table, schema and database.
//   - AppRole (LOGIN, NOBYPASSRLS, NOINHERIT, owns nothing) is the runtime
//     role. It has SELECT, INSERT, UPDATE, DELETE on the shared and shard
//     tables (never TRUNCATE, which ignores row-level security), CONNECT on
//     Tenantry's databases, no TEMPORARY anywhere (a temporary table would
//     shadow an application table for the next tenant on a pooled
//     connection), and is a member of every per-tenant role.
//   - A per-tenant role (NOLOGIN, NOINHERIT) has USAGE and DML on its own
//     schema or database only; the router switches to it per transaction.
//   - ReportingRole (NOLOGIN) reads everything: SELECT on every tenant
//     table, plus a SELECT-only policy of its own on shared tables. It has no
//     BYPASSRLS and no write privilege; grant it to your reporting login.
//
// On shared and shard tables row-level security is enabled and forced, with
// this predicate in USING and WITH CHECK:
//
//	tenant_id = NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid
//
// With no tenant set, or with the empty string a reused connection reports
// after a scoped transaction, a query sees no rows and a write is rejected.
//
// The cluster connection strings in the catalog must be a superuser (to
// create roles and databases and to act as OwnerRole). Work on one cluster
// object is serialised by advisory locks on the cluster, so several
// provisioners may run at once.
//
//	p, err := provision.New(store, &provision.Config{DDL: notes.DDL()})
//	if err != nil {
//		return err
//	}
//	defer p.Close()
//	res, err := p.Provision(ctx, catalog.Actor{Name: "ops"}, "acme")
//	// res.Tenant.Placement: {shared main tenantry_shared app}
package provision
