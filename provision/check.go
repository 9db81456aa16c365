package provision

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/sqlident"
	"github.com/tenantry/tenantry/tenant"
)

// CheckConfig configures CheckSecurity. The zero value checks the databases
// of a zero Config.
type CheckConfig struct {
	// SharedDatabase, ShardDatabase, SchemasDatabase and AppSchema are the
	// names the provisioner uses (see Config). Databases named by tenants'
	// placements in the catalog are checked too, whatever these say.
	// Defaults: those of Config.
	SharedDatabase  string
	ShardDatabase   string
	SchemasDatabase string
	AppSchema       string

	// RuntimeRole is the login role of the pool manager and the router.
	// Default AppRole.
	RuntimeRole string

	// TenantDatabases also checks the database of every database-model
	// tenant, one connection each. Default false: start-up stays fast with
	// many tenants; `tenantry check` turns it on.
	TenantDatabases bool

	// LedgerTables are tables in shared locations that hold no tenant data
	// (so neither tenant_id nor row-level security), which the runtime and
	// tenant roles may read but never write. Default {"tenantry_migration"},
	// the per-schema ledger of package migrate.
	LedgerTables []string

	// AllowUnreachable reports a cluster or database that cannot be reached
	// as a finding only when false. Default false: an unverified location
	// fails the check, so a process does not serve what it could not check.
	AllowUnreachable bool
}

// DefaultLedgerTable is the migration ledger every migrated schema holds.
const DefaultLedgerTable = "tenantry_migration"

// CheckConfig returns the CheckConfig matching the database names of c.
func (c *Config) CheckConfig() *CheckConfig {
	d := c.WithDefaults()
	return &CheckConfig{
		SharedDatabase:  d.SharedDatabase,
		ShardDatabase:   d.ShardDatabase,
		SchemasDatabase: d.SchemasDatabase,
		AppSchema:       d.AppSchema,
	}
}

// WithDefaults returns a copy of c with defaults filled in. c may be nil.
func (c *CheckConfig) WithDefaults() *CheckConfig {
	out := CheckConfig{}
	if c != nil {
		out = *c
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&out.SharedDatabase, DefaultSharedDatabase)
	def(&out.ShardDatabase, DefaultShardDatabase)
	def(&out.SchemasDatabase, DefaultSchemasDatabase)
	def(&out.AppSchema, DefaultAppSchema)
	def(&out.RuntimeRole, AppRole)
	if out.LedgerTables == nil {
		out.LedgerTables = []string{DefaultLedgerTable}
	}
	out.LedgerTables = slices.Clone(out.LedgerTables)
	return &out
}

func (c *CheckConfig) validate() error {
	for field, name := range map[string]string{
		"SharedDatabase": c.SharedDatabase, "ShardDatabase": c.ShardDatabase,
		"SchemasDatabase": c.SchemasDatabase, "AppSchema": c.AppSchema, "RuntimeRole": c.RuntimeRole,
	} {
		if err := sqlident.Validate(name); err != nil {
			return fmt.Errorf("provision: CheckConfig.%s: %w", field, err)
		}
	}
	if c.RuntimeRole == OwnerRole || c.RuntimeRole == ReportingRole {
		return fmt.Errorf("provision: CheckConfig.RuntimeRole must not be %s", c.RuntimeRole)
	}
	return nil
}

// FindingCode names what a Finding is about. Codes are stable: match on them.
type FindingCode string

// Finding codes.
const (
	// CodeUnreachable: a cluster or database could not be checked.
	CodeUnreachable FindingCode = "unreachable"
	// CodeRuntimeSuperuser: the runtime role is a superuser, which ignores
	// row-level security and every privilege.
	CodeRuntimeSuperuser FindingCode = "runtime_superuser"
	// CodeRuntimeBypassRLS: the runtime role has BYPASSRLS.
	CodeRuntimeBypassRLS FindingCode = "runtime_bypassrls"
	// CodeRuntimeAttribute: the runtime role has CREATEROLE, CREATEDB,
	// REPLICATION or INHERIT.
	CodeRuntimeAttribute FindingCode = "runtime_attribute"
	// CodeRuntimeMember: the runtime role can SET ROLE to a role other than
	// the per-tenant roles (the owner, the reporting role, a superuser...).
	CodeRuntimeMember FindingCode = "runtime_member"
	// CodeRuntimeOwns: the runtime role owns a database, schema, table or
	// function: an owner can disable row-level security and grant itself
	// anything on it.
	CodeRuntimeOwns FindingCode = "runtime_owns"
	// CodeRuntimePrivilege: the runtime role holds a privilege it must not
	// (TRUNCATE or TRIGGER anywhere, any direct privilege on a tenant
	// schema or database, a write on a ledger table).
	CodeRuntimePrivilege FindingCode = "runtime_privilege"
	// CodeRuntimeTemporary: the runtime role may create temporary tables,
	// which outlive a transaction on a pooled connection and shadow the
	// next tenant's tables.
	CodeRuntimeTemporary FindingCode = "runtime_temporary"
	// CodeRuntimeCreate: the runtime role may create schemas or tables,
	// which it would then own.
	CodeRuntimeCreate FindingCode = "runtime_create"
	// CodePublicPrivilege: PUBLIC (every role, every per-tenant role
	// included) holds a privilege on tenant data.
	CodePublicPrivilege FindingCode = "public_privilege"
	// CodeRLSDisabled: a shared or sharded table has row-level security
	// disabled.
	CodeRLSDisabled FindingCode = "rls_disabled"
	// CodeRLSNotForced: a shared or sharded table does not FORCE row-level
	// security, so its owner is not subject to it.
	CodeRLSNotForced FindingCode = "rls_not_forced"
	// CodePolicyMissing: a shared or sharded table has no policy that
	// scopes the runtime role to tenant_id.
	CodePolicyMissing FindingCode = "policy_missing"
	// CodePolicyUnscoped: a permissive policy that applies to the runtime
	// role does not require the transaction's tenant; permissive policies
	// combine with OR, so it opens the table to every tenant.
	CodePolicyUnscoped FindingCode = "policy_unscoped"
	// CodeTenantIDMissing: a table in a shared or sharded location has no
	// tenant_id column.
	CodeTenantIDMissing FindingCode = "tenant_id_missing"
	// CodeUnprotected: an object lets the runtime role read tenant data
	// around row-level security: a materialized view or foreign table, a
	// view owned by a role that bypasses it, a SECURITY DEFINER function.
	CodeUnprotected FindingCode = "unprotected"
	// CodeRoleAttribute: the owner, reporting or a per-tenant role has an
	// attribute it must not (SUPERUSER, BYPASSRLS, CREATEROLE,
	// REPLICATION, LOGIN for the owner).
	CodeRoleAttribute FindingCode = "role_attribute"
	// CodeReportingWrite: the reporting role may write.
	CodeReportingWrite FindingCode = "reporting_write"
	// CodeTenantRoleMember: a per-tenant role is a member of another role.
	CodeTenantRoleMember FindingCode = "tenant_role_member"
	// CodeTenantRolePrivilege: a per-tenant role holds a privilege outside
	// its own schema (schema model) or database (database model), or may
	// create temporary tables.
	CodeTenantRolePrivilege FindingCode = "tenant_role_privilege"
)

// Finding is one weakness found by CheckSecurity.
type Finding struct {
	// Code says what kind of weakness it is.
	Code FindingCode `json:"code"`
	// Cluster is the catalog name of the cluster.
	Cluster string `json:"cluster"`
	// Database is the database, "" for a cluster-wide finding (roles).
	Database string `json:"database,omitempty"`
	// Object is the role, table, schema, policy or function concerned.
	Object string `json:"object,omitempty"`
	// Problem says what is wrong and why it matters.
	Problem string `json:"problem"`
	// Fix says what to do, as SQL when one statement does it.
	Fix string `json:"fix"`
}

// Where returns "cluster/database", or the cluster for a cluster-wide finding.
func (f Finding) Where() string {
	if f.Database == "" {
		return f.Cluster
	}
	return f.Cluster + "/" + f.Database
}

func (f Finding) String() string {
	return fmt.Sprintf("[%s] %s: %s (fix: %s)", f.Code, f.Where(), f.Problem, f.Fix)
}

// ErrInsecure is matched (errors.Is) by every *SecurityError.
var ErrInsecure = errors.New("database security check failed")

// SecurityError is what CheckSecurity returns when it finds weaknesses.
type SecurityError struct {
	// Findings lists every weakness, ordered by cluster, database, code and
	// object.
	Findings []Finding
}

func (e *SecurityError) Error() string {
	parts := make([]string, len(e.Findings))
	for i, f := range e.Findings {
		parts[i] = f.String()
	}
	return fmt.Sprintf("%s: %d finding(s): %s", ErrInsecure, len(e.Findings), strings.Join(parts, "; "))
}

// Is makes errors.Is(err, ErrInsecure) true.
func (e *SecurityError) Is(target error) bool { return target == ErrInsecure }

// CheckSecurity checks the PostgreSQL side of tenant isolation on every
// cluster of the catalog (replicas excepted: they mirror their primary) and
// returns nil, a *SecurityError listing every weakness with what to do about
// it, or another error when the catalog cannot be read. Call it before
// serving: a process that serves despite a finding serves tenant data that
// one tenant, or one bug, can read across tenants.
//
// Per cluster, about roles:
//
//   - the runtime role is not a superuser and has neither BYPASSRLS nor
//     CREATEROLE, CREATEDB, REPLICATION or INHERIT;
//   - it can SET ROLE to no role but the per-tenant roles (not the owner,
//     not the reporting role, not a superuser);
//   - the owner cannot log in and, like the reporting role, has neither
//     SUPERUSER nor BYPASSRLS;
//   - the per-tenant roles of the catalog's tenants on the cluster have no
//     such attributes either and are members of no role.
//
// Per database (the shared database of each primary, the shard database of
// each shard, the schemas database, every database a tenant is placed in
// for those models, and with TenantDatabases each tenant database):
//
//   - the runtime role owns nothing (database, schema, table, function);
//     per-tenant roles own nothing outside their own schema or database;
//   - neither may create temporary tables; neither may create schemas or
//     tables, except per-tenant roles at home;
//   - the runtime role has no TRUNCATE (which ignores row-level security)
//     nor TRIGGER, no direct privilege in tenant schemas and databases, and
//     writes no ledger table; PUBLIC is granted nothing on tenant data;
//   - per-tenant roles have no privilege outside their own schema or
//     database; the reporting role writes nothing.
//
// And in shared and shard databases, for every table in AppSchema and every
// other table the runtime role can reach (ledger tables excepted):
//
//   - it has a tenant_id column;
//   - row-level security is ENABLEd and FORCEd;
//   - a permissive policy that applies to the runtime role requires
//     tenant_id = NULLIF(current_setting('tenantry.tenant_id', true), ”)::uuid
//     (possibly AND more), and no permissive policy that applies to it
//     lacks that condition;
//   - no materialized view, foreign table, view owned by a role that
//     bypasses row-level security, or SECURITY DEFINER function is open to
//     the runtime role.
//
// A database that does not exist yet is skipped (nothing is stored there);
// roles that do not exist yet are skipped too, so a fresh installation
// passes. The check connects with each cluster's connection string, which
// only needs to read the system catalogs.
func CheckSecurity(ctx context.Context, store *catalog.Store, cfg *CheckConfig) error {
	if store == nil {
		return errors.New("provision: store is nil")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	clusters, err := store.Clusters(ctx)
	if err != nil {
		return fmt.Errorf("provision: check: %w", err)
	}
	tenants, err := allTenants(ctx, store)
	if err != nil {
		return fmt.Errorf("provision: check: %w", err)
	}
	c := &checker{cfg: cfg}
	for _, cl := range clusters {
		if cl.Role == catalog.RoleReplica {
			continue
		}
		if err := c.cluster(ctx, cl, tenants); err != nil {
			return err
		}
	}
	if len(c.findings) == 0 {
		return nil
	}
	slices.SortStableFunc(c.findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Cluster, b.Cluster), cmp.Compare(a.Database, b.Database),
			cmp.Compare(a.Code, b.Code), cmp.Compare(a.Object, b.Object))
	})
	return &SecurityError{Findings: c.findings}
}

// allTenants reads every tenant of the catalog, page by page.
func allTenants(ctx context.Context, store *catalog.Store) ([]*tenant.Tenant, error) {
	var out []*tenant.Tenant
	after := ""
	for {
		page, err := store.Tenants(ctx, catalog.ListOptions{After: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < 1000 {
			return out, nil
		}
		after = page[len(page)-1].Slug
	}
}

type checker struct {
	cfg      *CheckConfig
	findings []Finding
}

func (c *checker) add(f Finding) { c.findings = append(c.findings, f) }

// Kinds of checked databases.
const (
	dbShared  = "shared"  // shared or shard: tables under row-level security
	dbSchemas = "schemas" // tenant schemas
	dbTenant  = "tenant"  // one tenant's database
)

// cluster checks the roles of cl and each of its databases.
func (c *checker) cluster(ctx context.Context, cl *catalog.Cluster, tenants []*tenant.Tenant) error {
	cc, err := pgx.ParseConfig(cl.ConnString)
	if err != nil {
		return fmt.Errorf("provision: check: cluster %s: connection string: %w", cl.Name, err)
	}
	// The databases to check, by kind, and the per-tenant roles of the
	// catalog's tenants on the cluster.
	kinds := map[string]string{}
	var tenantRoles []string
	switch cl.Role {
	case catalog.RoleShard:
		kinds[c.cfg.ShardDatabase] = dbShared
	default:
		kinds[c.cfg.SharedDatabase] = dbShared
		kinds[c.cfg.SchemasDatabase] = dbSchemas
	}
	for _, t := range tenants {
		p := t.Placement
		if p.Cluster != cl.Name || p.Database == "" {
			continue
		}
		switch p.Model {
		case tenant.ModelShared, tenant.ModelSharded:
			kinds[p.Database] = dbShared
		case tenant.ModelSchema, tenant.ModelDatabase:
			role, err := TenantRole(t.Slug)
			if err != nil {
				continue
			}
			tenantRoles = append(tenantRoles, role)
			if p.Model == tenant.ModelSchema {
				kinds[p.Database] = dbSchemas
			} else if c.cfg.TenantDatabases {
				kinds[p.Database] = dbTenant
			}
		}
	}

	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		c.unreachable(cl.Name, "", err)
		return nil
	}
	defer conn.Close(context.WithoutCancel(ctx))
	names := make([]string, 0, len(kinds))
	for n := range kinds {
		names = append(names, n)
	}
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname = ANY($1) ORDER BY datname`, names)
	if err != nil {
		return fmt.Errorf("provision: check: cluster %s: %w", cl.Name, err)
	}
	existing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("provision: check: cluster %s: %w", cl.Name, err)
	}
	runtime, err := c.roles(ctx, conn, cl.Name, tenantRoles)
	if err != nil {
		return fmt.Errorf("provision: check: cluster %s: %w", cl.Name, err)
	}
	conn.Close(ctx)

	for _, db := range existing {
		dc := cc.Copy()
		dc.Database = db
		conn, err := pgx.ConnectConfig(ctx, dc)
		if err != nil {
			c.unreachable(cl.Name, db, err)
			continue
		}
		d := &dbCheck{checker: c, conn: conn, cluster: cl.Name, db: db, kind: kinds[db], runtime: runtime}
		err = d.run(ctx)
		conn.Close(context.WithoutCancel(ctx))
		if err != nil {
			return fmt.Errorf("provision: check: %s/%s: %w", cl.Name, db, err)
		}
	}
	return nil
}

func (c *checker) unreachable(cluster, db string, err error) {
	if c.cfg.AllowUnreachable {
		return
	}
	what := "cluster"
	if db != "" {
		what = "database"
	}
	c.add(Finding{Code: CodeUnreachable, Cluster: cluster, Database: db,
		Problem: fmt.Sprintf("the %s could not be checked: %v", what, err),
		Fix:     "make it reachable with the cluster's connection string, or remove the cluster from the catalog"})
}

// roleAttrs are the attributes of a role that matter here.
type roleAttrs struct {
	name                                                string
	super, bypassRLS, createRole, createDB, repl, login bool
	inherit                                             bool
}

// roles checks role attributes and memberships on the cluster and reports
// whether the runtime role exists.
func (c *checker) roles(ctx context.Context, conn *pgx.Conn, cluster string, tenantRoles []string) (bool, error) {
	rt := c.cfg.RuntimeRole
	names := append([]string{rt, OwnerRole, ReportingRole}, tenantRoles...)
	rows, err := conn.Query(ctx, `SELECT rolname, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication, rolcanlogin, rolinherit
FROM pg_roles WHERE rolname = ANY($1)`, names)
	if err != nil {
		return false, err
	}
	attrs := map[string]roleAttrs{}
	var a roleAttrs
	_, err = pgx.ForEachRow(rows, []any{&a.name, &a.super, &a.bypassRLS, &a.createRole, &a.createDB, &a.repl, &a.login, &a.inherit}, func() error {
		attrs[a.name] = a
		return nil
	})
	if err != nil {
		return false, err
	}
	role := func(code FindingCode, name, problem, fix string) {
		c.add(Finding{Code: code, Cluster: cluster, Object: name, Problem: problem, Fix: fix})
	}
	alter := func(name, attr string) string { return "ALTER ROLE " + sqlident.MustQuote(name) + " " + attr }

	r, runtime := attrs[rt]
	if runtime {
		if r.super {
			role(CodeRuntimeSuperuser, rt, "the runtime role "+rt+" is a superuser: row-level security and privileges do not apply to it", alter(rt, "NOSUPERUSER"))
		}
		if r.bypassRLS {
			role(CodeRuntimeBypassRLS, rt, "the runtime role "+rt+" has BYPASSRLS: shared and sharded tables show it every tenant's rows", alter(rt, "NOBYPASSRLS"))
		}
		for _, x := range []struct {
			has       bool
			attr, why string
		}{
			{r.createRole, "CREATEROLE", "it can create roles and grant itself membership in them"},
			{r.createDB, "CREATEDB", "it can create databases, which it would own"},
			{r.repl, "REPLICATION", "it can stream every database of the cluster"},
			{r.inherit, "INHERIT", "it holds the privileges of every per-tenant role at once, so any transaction can read any tenant schema by its qualified name"},
		} {
			if x.has {
				role(CodeRuntimeAttribute, rt, "the runtime role "+rt+" has "+x.attr+": "+x.why, alter(rt, "NO"+x.attr))
			}
		}
		// Roles the runtime role can become: only per-tenant roles.
		rows, err := conn.Query(ctx, `SELECT r.rolname, r.rolsuper, r.rolbypassrls FROM pg_roles r
WHERE r.rolname <> $1 AND r.rolname <> 'pg_database_owner' AND pg_has_role($1, r.oid, 'MEMBER')
ORDER BY r.rolname`, rt)
		if err != nil {
			return false, err
		}
		var name string
		var super, bypass bool
		_, err = pgx.ForEachRow(rows, []any{&name, &super, &bypass}, func() error {
			if strings.HasPrefix(name, TenantRolePrefix) && !super && !bypass {
				return nil
			}
			why := "it gains that role's privileges with SET ROLE"
			fix := "REVOKE " + sqlident.MustQuote(name) + " FROM " + sqlident.MustQuote(rt) + " (and from any role that passes it on)"
			if strings.HasPrefix(name, TenantRolePrefix) {
				fix = alter(name, "NOSUPERUSER NOBYPASSRLS")
			}
			switch {
			case name == OwnerRole:
				why = "the owner owns every tenant table, schema and database, so SET ROLE to it escapes row-level security and schema isolation"
			case name == ReportingRole:
				why = "the reporting role reads every tenant's rows"
			case super:
				why = "that role is a superuser"
			case bypass:
				why = "that role has BYPASSRLS"
			}
			role(CodeRuntimeMember, rt, fmt.Sprintf("the runtime role %s can SET ROLE to %s: %s", rt, name, why), fix)
			return nil
		})
		if err != nil {
			return false, err
		}
	}
	if o, ok := attrs[OwnerRole]; ok {
		if o.login {
			role(CodeRoleAttribute, OwnerRole, "the owner role "+OwnerRole+" can log in: it is for DDL only and must never be a runtime login", alter(OwnerRole, "NOLOGIN"))
		}
		c.superBypass(cluster, o, "the owner role")
	}
	if rep, ok := attrs[ReportingRole]; ok {
		c.superBypass(cluster, rep, "the reporting role")
	}
	for _, name := range tenantRoles {
		t, ok := attrs[name]
		if !ok {
			continue
		}
		c.superBypass(cluster, t, "the per-tenant role")
		for _, x := range []struct {
			has  bool
			attr string
		}{{t.createRole, "CREATEROLE"}, {t.repl, "REPLICATION"}, {t.createDB, "CREATEDB"}} {
			if x.has {
				role(CodeRoleAttribute, name, "the per-tenant role "+name+" has "+x.attr+", which reaches beyond its tenant", alter(name, "NO"+x.attr))
			}
		}
	}
	// Per-tenant roles are members of nothing.
	rows, err = conn.Query(ctx, `SELECT u.rolname, r.rolname FROM pg_auth_members m
JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
WHERE u.rolname = ANY($1) ORDER BY 1, 2`, tenantRoles)
	if err != nil {
		return false, err
	}
	var member, of string
	_, err = pgx.ForEachRow(rows, []any{&member, &of}, func() error {
		role(CodeTenantRoleMember, member, fmt.Sprintf("the per-tenant role %s is a member of %s, whose privileges reach beyond its tenant; the runtime role, a member of every per-tenant role, can follow it", member, of),
			"REVOKE "+sqlident.MustQuote(of)+" FROM "+sqlident.MustQuote(member))
		return nil
	})
	return runtime, err
}

// superBypass reports SUPERUSER and BYPASSRLS on a role Tenantry made.
func (c *checker) superBypass(cluster string, a roleAttrs, what string) {
	for _, x := range []struct {
		has  bool
		attr string
	}{{a.super, "SUPERUSER"}, {a.bypassRLS, "BYPASSRLS"}} {
		if x.has {
			c.add(Finding{Code: CodeRoleAttribute, Cluster: cluster, Object: a.name,
				Problem: fmt.Sprintf("%s %s has %s, which ignores row-level security", what, a.name, x.attr),
				Fix:     "ALTER ROLE " + sqlident.MustQuote(a.name) + " NO" + x.attr})
		}
	}
}

// dbCheck checks one database.
type dbCheck struct {
	*checker
	conn    *pgx.Conn
	cluster string
	db      string
	kind    string
	runtime bool // the runtime role exists
}

func (d *dbCheck) add(code FindingCode, object, problem, fix string) {
	d.checker.add(Finding{Code: code, Cluster: d.cluster, Database: d.db, Object: object, Problem: problem, Fix: fix})
}

// isTenantRole reports whether name is a per-tenant role by its name.
func isTenantRole(name string) bool { return strings.HasPrefix(name, TenantRolePrefix) }

// atHome reports whether role may hold privileges in schema of this
// database: a per-tenant role in its tenant's schema (schema model) or in
// the application schema of its tenant's database (database model). Homes
// follow from names, as provisioning derives them all from the slug, so a
// role left behind by a tenant the catalog no longer knows is judged the
// same way.
func (d *dbCheck) atHome(role, schema string) bool {
	suffix, ok := strings.CutPrefix(role, TenantRolePrefix)
	if !ok || suffix == "" || d.kind == dbShared {
		return false
	}
	return schema == TenantPrefix+suffix || (d.db == TenantPrefix+suffix && schema == d.cfg.AppSchema)
}

func (d *dbCheck) isLedger(name string) bool { return slices.Contains(d.cfg.LedgerTables, name) }

// userSchemas filters out PostgreSQL's own schemas (n is pg_namespace).
const userSchemas = `n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'`

func (d *dbCheck) run(ctx context.Context) error {
	for _, step := range []func(context.Context) error{d.database, d.owned, d.schemaPrivileges, d.relationPrivileges, d.definers} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	if d.kind == dbShared {
		return d.rowSecurity(ctx)
	}
	return nil
}

// who names a grantee for a sentence; "" is PUBLIC.
func who(grantee string) string {
	if grantee == "" {
		return "PUBLIC (every role, including the runtime role and every per-tenant role)"
	}
	return grantee
}

func quoteGrantee(grantee string) string {
	if grantee == "" {
		return "PUBLIC"
	}
	return sqlident.MustQuote(grantee)
}

// database checks the database's owner and its TEMPORARY and CREATE grants.
func (d *dbCheck) database(ctx context.Context) error {
	rt := d.cfg.RuntimeRole
	qdb := sqlident.MustQuote(d.db)
	var owner string
	if err := d.conn.QueryRow(ctx, `SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()`).Scan(&owner); err != nil {
		return err
	}
	if owner == rt || isTenantRole(owner) {
		code := CodeRuntimeOwns
		if owner != rt {
			code = CodeTenantRolePrivilege
		}
		d.add(code, d.db, fmt.Sprintf("%s owns the database %s", owner, d.db), "ALTER DATABASE "+qdb+" OWNER TO "+sqlident.MustQuote(OwnerRole))
	}
	rows, err := d.conn.Query(ctx, `SELECT CASE a.grantee WHEN 0 THEN '' ELSE pg_get_userbyid(a.grantee) END, a.privilege_type
FROM pg_database db, aclexplode(COALESCE(db.datacl, acldefault('d', db.datdba))) a
WHERE db.datname = current_database() AND a.grantee <> db.datdba AND a.privilege_type IN ('TEMPORARY', 'CREATE')
ORDER BY 1, 2`)
	if err != nil {
		return err
	}
	var grantee, priv string
	_, err = pgx.ForEachRow(rows, []any{&grantee, &priv}, func() error {
		if grantee != "" && grantee != rt && !isTenantRole(grantee) {
			return nil
		}
		fix := "REVOKE " + priv + " ON DATABASE " + qdb + " FROM " + quoteGrantee(grantee)
		var code FindingCode
		var why string
		switch {
		case priv == "TEMPORARY" && isTenantRole(grantee):
			code, why = CodeTenantRolePrivilege, "a temporary table outlives the transaction on a pooled connection and shadows the next tenant's table of the same name"
		case priv == "TEMPORARY":
			code, why = CodeRuntimeTemporary, "a temporary table outlives the transaction on a pooled connection and shadows the next tenant's table of the same name"
		case isTenantRole(grantee):
			code, why = CodeTenantRolePrivilege, "it can create schemas, outside its own"
		default:
			code, why = CodeRuntimeCreate, "it can create schemas, which it would own"
		}
		d.add(code, d.db, fmt.Sprintf("%s has %s on database %s: %s", who(grantee), priv, d.db, why), fix)
		return nil
	})
	return err
}

// owned checks that the runtime role owns nothing and per-tenant roles own
// nothing outside their home.
func (d *dbCheck) owned(ctx context.Context) error {
	rt := d.cfg.RuntimeRole
	rows, err := d.conn.Query(ctx, `SELECT kind, name, schema, owner FROM (
    SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence'
           WHEN 'f' THEN 'foreign table' ELSE 'table' END AS kind,
           quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name, n.nspname AS schema,
           pg_get_userbyid(c.relowner) AS owner
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE `+userSchemas+` AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
    UNION ALL
    SELECT 'schema', quote_ident(n.nspname), n.nspname, pg_get_userbyid(n.nspowner)
    FROM pg_namespace n WHERE `+userSchemas+`
    UNION ALL
    SELECT 'function', quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')',
           n.nspname, pg_get_userbyid(p.proowner)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE `+userSchemas+`
) o WHERE owner = $1 OR owner LIKE 'tenantry\_t\_%' ORDER BY name`, rt)
	if err != nil {
		return err
	}
	var kind, name, schema, owner string
	_, err = pgx.ForEachRow(rows, []any{&kind, &name, &schema, &owner}, func() error {
		fix := "ALTER " + strings.ToUpper(kind) + " " + name + " OWNER TO " + sqlident.MustQuote(OwnerRole)
		if owner == rt {
			d.add(CodeRuntimeOwns, name, fmt.Sprintf("the runtime role %s owns %s %s: an owner can disable row-level security on it, alter it and grant it to anyone", rt, kind, name), fix)
			return nil
		}
		if !d.atHome(owner, schema) {
			d.add(CodeTenantRolePrivilege, name, fmt.Sprintf("the per-tenant role %s owns %s %s, outside its own schema or database", owner, kind, name), fix)
		}
		return nil
	})
	return err
}

// schemaPrivileges checks USAGE and CREATE on schemas.
func (d *dbCheck) schemaPrivileges(ctx context.Context) error {
	rt := d.cfg.RuntimeRole
	rows, err := d.conn.Query(ctx, `SELECT n.nspname, quote_ident(n.nspname), CASE a.grantee WHEN 0 THEN '' ELSE pg_get_userbyid(a.grantee) END, a.privilege_type
FROM pg_namespace n, aclexplode(COALESCE(n.nspacl, acldefault('n', n.nspowner))) a
WHERE `+userSchemas+` AND a.grantee <> n.nspowner ORDER BY 1, 3, 4`)
	if err != nil {
		return err
	}
	var schema, qs, grantee, priv string
	_, err = pgx.ForEachRow(rows, []any{&schema, &qs, &grantee, &priv}, func() error {
		fix := "REVOKE " + priv + " ON SCHEMA " + qs + " FROM " + quoteGrantee(grantee)
		switch {
		case isTenantRole(grantee) && !d.atHome(grantee, schema):
			d.add(CodeTenantRolePrivilege, qs, fmt.Sprintf("the per-tenant role %s has %s on schema %s, which is not its own", grantee, priv, schema), fix)
		case priv == "CREATE" && (grantee == rt || grantee == ""):
			d.add(CodeRuntimeCreate, qs, fmt.Sprintf("%s has CREATE on schema %s: a table it creates is its own, outside row-level security, and shadows tables of schemas later in the search path", who(grantee), schema), fix)
		case priv == "USAGE" && grantee == "" && strings.HasPrefix(schema, TenantPrefix) && d.kind != dbShared:
			d.add(CodePublicPrivilege, qs, fmt.Sprintf("PUBLIC has USAGE on the tenant schema %s: every role can reach what is granted there", schema), fix)
		case priv == "USAGE" && grantee == rt && d.kind != dbShared:
			d.add(CodeRuntimePrivilege, qs, fmt.Sprintf("the runtime role has USAGE on schema %s: tenant schemas and databases are reached only through the per-tenant role", schema), fix)
		}
		return nil
	})
	return err
}

// relationPrivileges checks grants on tables, views and the like.
func (d *dbCheck) relationPrivileges(ctx context.Context) error {
	rt := d.cfg.RuntimeRole
	// The per-tenant roles at home are left out here already (see atHome).
	rows, err := d.conn.Query(ctx, `SELECT n.nspname, c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname),
       CASE a.grantee WHEN 0 THEN '' ELSE pg_get_userbyid(a.grantee) END AS grantee, a.privilege_type
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
     aclexplode(COALESCE(c.relacl, acldefault('r', c.relowner))) a
WHERE `+userSchemas+` AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.grantee <> c.relowner
  AND (a.grantee = 0 OR pg_get_userbyid(a.grantee)::text IN ($1::text, $2::text) OR pg_get_userbyid(a.grantee) LIKE 'tenantry\_t\_%')
  AND NOT ($3 AND starts_with(pg_get_userbyid(a.grantee)::text, $4::text) AND (
        n.nspname = $5::text || substr(pg_get_userbyid(a.grantee)::text, length($4::text) + 1)
     OR (current_database() = $5::text || substr(pg_get_userbyid(a.grantee)::text, length($4::text) + 1) AND n.nspname = $6::text)))
ORDER BY 3, 4, 5`, rt, ReportingRole, d.kind != dbShared, TenantRolePrefix, TenantPrefix, d.cfg.AppSchema)
	if err != nil {
		return err
	}
	var schema, rel, name, grantee, priv string
	_, err = pgx.ForEachRow(rows, []any{&schema, &rel, &name, &grantee, &priv}, func() error {
		fix := "REVOKE " + priv + " ON " + name + " FROM " + quoteGrantee(grantee)
		ledger := d.isLedger(rel)
		read := priv == "SELECT"
		switch {
		case grantee == ReportingRole:
			if !read {
				d.add(CodeReportingWrite, name, fmt.Sprintf("the reporting role has %s on %s: it must only read", priv, name), fix)
			}
		case ledger && read:
			// Ledgers are readable by design.
		case isTenantRole(grantee) && !d.atHome(grantee, schema):
			d.add(CodeTenantRolePrivilege, name, fmt.Sprintf("the per-tenant role %s has %s on %s, outside its own schema or database", grantee, priv, name), fix)
		case isTenantRole(grantee):
		case priv == "TRUNCATE" || priv == "TRIGGER" || priv == "REFERENCES":
			code := CodeRuntimePrivilege
			if grantee == "" {
				code = CodePublicPrivilege
			}
			why := map[string]string{
				"TRUNCATE":   "TRUNCATE empties the table for every tenant, ignoring row-level security",
				"TRIGGER":    "a trigger runs its code on other tenants' writes",
				"REFERENCES": "a foreign key to the table reveals which keys exist, across tenants",
			}[priv]
			d.add(code, name, fmt.Sprintf("%s has %s on %s: %s", who(grantee), priv, name, why), fix)
		case ledger:
			d.add(CodeRuntimePrivilege, name, fmt.Sprintf("%s has %s on the ledger %s, which holds no tenant_id and is shared by all tenants: it must only be read", who(grantee), priv, name), fix)
		case grantee == "":
			d.add(CodePublicPrivilege, name, fmt.Sprintf("PUBLIC has %s on %s: every role, every per-tenant role included, holds it", priv, name), fix)
		case d.kind != dbShared:
			d.add(CodeRuntimePrivilege, name, fmt.Sprintf("the runtime role has %s on %s: in tenant schemas and databases it acts only through the per-tenant role", priv, name), fix)
		}
		return nil
	})
	return err
}

// definers checks SECURITY DEFINER functions callable at runtime: they run
// as their owner, whatever the caller's tenant.
func (d *dbCheck) definers(ctx context.Context) error {
	rows, err := d.conn.Query(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       pg_get_userbyid(p.proowner)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE `+userSchemas+` AND p.prosecdef
  AND EXISTS (SELECT FROM aclexplode(COALESCE(p.proacl, acldefault('f', p.proowner))) a
              WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
                AND (a.grantee = 0 OR pg_get_userbyid(a.grantee) = $1 OR pg_get_userbyid(a.grantee) LIKE 'tenantry\_t\_%'))
ORDER BY 1`, d.cfg.RuntimeRole)
	if err != nil {
		return err
	}
	var fn, owner string
	_, err = pgx.ForEachRow(rows, []any{&fn, &owner}, func() error {
		d.add(CodeUnprotected, fn, fmt.Sprintf("the SECURITY DEFINER function %s runs as %s for any caller that may execute it, the runtime and per-tenant roles included, whatever their tenant", fn, owner),
			"ALTER FUNCTION "+fn+" SECURITY INVOKER, or REVOKE EXECUTE ON FUNCTION "+fn+" FROM PUBLIC and the runtime and per-tenant roles")
		return nil
	})
	return err
}

// scopedConjunct matches a policy condition that scopes rows to the
// transaction's tenant, as pg_get_expr prints it: the provisioner's
// predicate, or the same without NULLIF.
var scopedConjunct = regexp.MustCompile(`^tenant_id = \((NULLIF\(current_setting\('tenantry\.tenant_id'::text(, true)?\), ''::text\)|current_setting\('tenantry\.tenant_id'::text(, true)?\))\)::uuid$`)

// tenantScoped reports whether expr (from pg_get_expr) requires
// scopedConjunct: it is the condition, or an AND with it among its terms.
func tenantScoped(expr string) bool {
	expr = stripParens(strings.TrimSpace(expr))
	if scopedConjunct.MatchString(expr) {
		return true
	}
	terms := splitTopLevel(expr, " AND ")
	if len(terms) < 2 {
		return false
	}
	for _, t := range terms {
		if tenantScoped(t) {
			return true
		}
	}
	return false
}

// stripParens removes parentheses that enclose all of s.
func stripParens(s string) string {
	for len(s) >= 2 && s[0] == '(' && s[len(s)-1] == ')' && closing(s, 0) == len(s)-1 {
		s = s[1 : len(s)-1]
	}
	return s
}

// closing returns the index of the parenthesis closing the one at open,
// skipping quoted literals and identifiers, or -1.
func closing(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '\'', '"':
			j := skipQuoted(s, i)
			if j < 0 {
				return -1
			}
			i = j
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// skipQuoted returns the index of the quote that closes the literal or
// identifier starting at i (” and "" are escaped quotes), or -1.
func skipQuoted(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		if s[j] == q {
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j
		}
	}
	return -1
}

// splitTopLevel splits s at sep outside parentheses and quotes.
func splitTopLevel(s, sep string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\'', '"':
			j := skipQuoted(s, i)
			if j < 0 {
				return []string{s}
			}
			i = j
		case '(':
			depth++
		case ')':
			depth--
		default:
			if depth == 0 && strings.HasPrefix(s[i:], sep) {
				out = append(out, s[start:i])
				i += len(sep) - 1
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// rowSecurity checks the tables of a shared or shard database.
func (d *dbCheck) rowSecurity(ctx context.Context) error {
	rt := d.cfg.RuntimeRole
	// The tables to check: AppSchema's, and any other the runtime role
	// can reach.
	reach, args := "false", []any{d.cfg.AppSchema}
	if d.runtime {
		reach = `(has_schema_privilege($2, n.oid, 'USAGE') AND has_table_privilege($2, c.oid, 'SELECT,INSERT,UPDATE,DELETE'))`
		args = append(args, rt)
	}
	rows, err := d.conn.Query(ctx, `SELECT c.oid::int8, c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname),
       c.relrowsecurity, c.relforcerowsecurity,
       EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND a.attnum > 0 AND NOT a.attisdropped)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE `+userSchemas+` AND c.relkind IN ('r', 'p') AND (n.nspname = $1 OR `+reach+`)
ORDER BY 3`, args...)
	if err != nil {
		return err
	}
	type table struct {
		oid                   int64
		rel, name             string
		rls, forced, tenantID bool
	}
	var tables []table
	var t table
	if _, err := pgx.ForEachRow(rows, []any{&t.oid, &t.rel, &t.name, &t.rls, &t.forced, &t.tenantID}, func() error {
		if !d.isLedger(t.rel) {
			tables = append(tables, t)
		}
		return nil
	}); err != nil {
		return err
	}
	if len(tables) == 0 {
		return nil
	}
	// Policies that apply to the runtime role, per table.
	type policy struct {
		name, cmd, qual, check string
		permissive             bool
	}
	policies := map[int64][]policy{}
	if d.runtime {
		rows, err := d.conn.Query(ctx, `SELECT p.polrelid::int8, p.polname, p.polcmd::text, p.polpermissive,
       COALESCE(pg_get_expr(p.polqual, p.polrelid), ''), COALESCE(pg_get_expr(p.polwithcheck, p.polrelid), '')
FROM pg_policy p
WHERE EXISTS (SELECT FROM unnest(p.polroles) r WHERE r = 0 OR pg_has_role($1, r, 'USAGE'))
ORDER BY 2`, rt)
		if err != nil {
			return err
		}
		var oid int64
		var p policy
		if _, err := pgx.ForEachRow(rows, []any{&oid, &p.name, &p.cmd, &p.permissive, &p.qual, &p.check}, func() error {
			policies[oid] = append(policies[oid], p)
			return nil
		}); err != nil {
			return err
		}
	}
	for _, t := range tables {
		if !t.tenantID {
			d.add(CodeTenantIDMissing, t.name, fmt.Sprintf("table %s in a shared location has no tenant_id column: its rows belong to no tenant and every tenant sees them", t.name),
				"move the table out of the shared schema, or add tenant_id uuid NOT NULL DEFAULT NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid and the tenant policy")
		}
		if !t.rls {
			d.add(CodeRLSDisabled, t.name, fmt.Sprintf("row-level security is disabled on %s: the runtime role sees every tenant's rows", t.name),
				"ALTER TABLE "+t.name+" ENABLE ROW LEVEL SECURITY")
		}
		if !t.forced {
			d.add(CodeRLSNotForced, t.name, fmt.Sprintf("row-level security is not forced on %s: its owner, and anything running as it, sees every tenant's rows", t.name),
				"ALTER TABLE "+t.name+" FORCE ROW LEVEL SECURITY")
		}
		if !d.runtime {
			continue
		}
		scoped := false
		for _, p := range policies[t.oid] {
			if !p.permissive {
				continue // restrictive policies only narrow
			}
			ok := p.qual != "" || p.check != ""
			if p.qual != "" && !tenantScoped(p.qual) {
				ok = false
			}
			if p.check != "" && !tenantScoped(p.check) {
				ok = false
			}
			if ok {
				scoped = true
				continue
			}
			d.add(CodePolicyUnscoped, t.name+" policy "+p.name, fmt.Sprintf("the permissive policy %s on %s applies to the runtime role without requiring the transaction's tenant; permissive policies combine with OR, so it opens the table across tenants", p.name, t.name),
				"DROP POLICY "+sqlident.MustQuote(p.name)+" ON "+t.name+", or add AND "+tenantPredicate+" to its USING and WITH CHECK")
		}
		if !scoped {
			d.add(CodePolicyMissing, t.name, fmt.Sprintf("no policy on %s scopes the runtime role to tenant_id", t.name),
				"CREATE POLICY "+tenantPolicy+" ON "+t.name+" FOR ALL TO PUBLIC USING ("+tenantPredicate+") WITH CHECK ("+tenantPredicate+")")
		}
	}
	if !d.runtime {
		return nil
	}
	// Relations that read tables around row-level security.
	rows, err = d.conn.Query(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relkind::text, pg_get_userbyid(c.relowner),
       o.rolsuper OR o.rolbypassrls,
       EXISTS (SELECT FROM unnest(c.reloptions) x WHERE lower(x) IN ('security_invoker=true', 'security_invoker=on', 'security_invoker=1', 'security_invoker=yes'))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_roles o ON o.oid = c.relowner
WHERE `+userSchemas+` AND c.relkind IN ('v', 'm', 'f')
  AND has_schema_privilege($1, n.oid, 'USAGE') AND has_table_privilege($1, c.oid, 'SELECT')
ORDER BY 1`, rt)
	if err != nil {
		return err
	}
	var name, kind, owner string
	var bypass, invoker bool
	_, err = pgx.ForEachRow(rows, []any{&name, &kind, &owner, &bypass, &invoker}, func() error {
		fix := "REVOKE ALL ON " + name + " FROM " + sqlident.MustQuote(rt) + ", PUBLIC"
		switch {
		case kind == "m":
			d.add(CodeUnprotected, name, fmt.Sprintf("the runtime role can read the materialized view %s, which row-level security does not cover", name), fix)
		case kind == "f":
			d.add(CodeUnprotected, name, fmt.Sprintf("the runtime role can read the foreign table %s, which row-level security does not cover", name), fix)
		case bypass && !invoker:
			d.add(CodeUnprotected, name, fmt.Sprintf("the view %s runs as its owner %s, which bypasses row-level security", name, owner),
				"ALTER VIEW "+name+" SET (security_invoker = true), or "+fix)
		}
		return nil
	})
	return err
}
