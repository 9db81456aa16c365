package provision_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/sqlident"
	"github.com/tenantry/tenantry/provision"
	"github.com/tenantry/tenantry/tenant"
	"github.com/tenantry/tenantry/tenantrytest"
)

// checkBundle is a data plane of its own (databases with a random suffix)
// with tenants of the models a test asks for.
type checkBundle struct {
	dp      *tenantrytest.DataPlane
	tenants map[tenant.Model][]*tenant.Tenant
}

// checkSetup provisions n tenants of each model in models on a fresh data
// plane (the shared server as primary, one shard).
func checkSetup(t *testing.T, n int, models ...tenant.Model) *checkBundle {
	t.Helper()
	b := &checkBundle{
		dp:      tenantrytest.NewDataPlane(t, &tenantrytest.DataPlaneConfig{DDL: testDDL, Shards: 1}),
		tenants: map[tenant.Model][]*tenant.Tenant{},
	}
	for _, m := range models {
		for range n {
			b.tenants[m] = append(b.tenants[m], b.dp.Tenant("chk", m, ""))
		}
	}
	return b
}

func (b *checkBundle) tenant(m tenant.Model, i int) *tenant.Tenant { return b.tenants[m][i] }

// config names this data plane's databases.
func (b *checkBundle) config() *provision.CheckConfig {
	cfg := &provision.CheckConfig{}
	if ts := b.tenants[tenant.ModelShared]; len(ts) > 0 {
		cfg.SharedDatabase = ts[0].Placement.Database
	}
	if ts := b.tenants[tenant.ModelSharded]; len(ts) > 0 {
		cfg.ShardDatabase = ts[0].Placement.Database
	}
	if ts := b.tenants[tenant.ModelSchema]; len(ts) > 0 {
		cfg.SchemasDatabase = ts[0].Placement.Database
	}
	return cfg
}

// exec runs statements as the cluster's superuser in database db.
func (b *checkBundle) exec(t *testing.T, cluster, db string, stmts ...string) {
	t.Helper()
	b.execCtx(t.Context(), t, cluster, db, stmts...)
}

func (b *checkBundle) execCtx(ctx context.Context, t *testing.T, cluster, db string, stmts ...string) {
	t.Helper()
	cl, err := b.dp.Store.Cluster(ctx, cluster)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := pgx.ParseConfig(cl.ConnString)
	if err != nil {
		t.Fatal(err)
	}
	cc.Database = db
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// dropAtEnd drops table from tn's database when the test ends, before the
// data plane deprovisions its tenants: Deprovision deletes a shared
// tenant's rows from every table of the shared schema, and fails on a table
// without tenant_id.
func (b *checkBundle) dropAtEnd(t *testing.T, tn *tenant.Tenant, table string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b.execCtx(ctx, t, tn.Placement.Cluster, tn.Placement.Database, "DROP TABLE IF EXISTS "+table)
	})
}

// execAt runs statements in the database of tn's placement.
func (b *checkBundle) execAt(t *testing.T, tn *tenant.Tenant, stmts ...string) {
	t.Helper()
	b.exec(t, tn.Placement.Cluster, tn.Placement.Database, stmts...)
}

// check runs CheckSecurity and returns its findings, failing the test on
// any other error.
func (b *checkBundle) check(t *testing.T, cfg *provision.CheckConfig) []provision.Finding {
	t.Helper()
	if cfg == nil {
		cfg = b.config()
	}
	err := provision.CheckSecurity(t.Context(), b.dp.Store, cfg)
	if err == nil {
		return nil
	}
	var se *provision.SecurityError
	if !errors.As(err, &se) {
		t.Fatalf("CheckSecurity: %v", err)
	}
	if !errors.Is(err, provision.ErrInsecure) {
		t.Errorf("%v does not match ErrInsecure", err)
	}
	if len(se.Findings) == 0 {
		t.Fatal("SecurityError without findings")
	}
	return se.Findings
}

func role(t *testing.T, tn *tenant.Tenant) string {
	t.Helper()
	r, err := provision.TenantRole(tn.Slug)
	if err != nil {
		t.Fatal(err)
	}
	return sqlident.MustQuote(r)
}

func TestCheckSecurityClean(t *testing.T) {
	t.Parallel()
	b := checkSetup(t, 2, tenant.Models...)
	// A migration ledger as package migrate makes it: no tenant_id, no
	// row-level security, readable by every role.
	for _, tn := range []*tenant.Tenant{b.tenant(tenant.ModelShared, 0), b.tenant(tenant.ModelSchema, 0)} {
		ledger := sqlident.MustQuote(tn.Placement.Schema) + "." + provision.DefaultLedgerTable
		grantee := provision.AppRole // what the schema's default privileges grant DML to
		if tn.Placement.Model == tenant.ModelSchema {
			grantee = role(t, tn)
		}
		b.execAt(t, tn, "SET ROLE "+provision.OwnerRole, "CREATE TABLE "+ledger+" (version integer PRIMARY KEY)",
			"REVOKE ALL ON "+ledger+" FROM "+grantee, "GRANT SELECT ON "+ledger+" TO PUBLIC")
		b.dropAtEnd(t, tn, ledger)
	}
	cfg := b.config()
	cfg.TenantDatabases = true
	if f := b.check(t, cfg); f != nil {
		t.Fatalf("a provisioned setup fails the check:\n%s", list(f))
	}
}

// TestCheckSecurityFreshInstall: registered clusters, nothing provisioned.
func TestCheckSecurityFreshInstall(t *testing.T) {
	t.Parallel()
	b := checkSetup(t, 0)
	if f := b.check(t, &provision.CheckConfig{SharedDatabase: "tenantry_shared_none", ShardDatabase: "tenantry_shard_none", SchemasDatabase: "tenantry_schemas_none"}); f != nil {
		t.Fatalf("an empty installation fails the check:\n%s", list(f))
	}
}

func list(findings []provision.Finding) string {
	var sb strings.Builder
	for _, f := range findings {
		sb.WriteString("  " + f.String() + "\n")
	}
	return sb.String()
}

// TestCheckSecurityWeakened weakens a provisioned setup one way at a time
// and expects the finding that names it.
func TestCheckSecurityWeakened(t *testing.T) {
	t.Parallel()
	const (
		shared  = tenant.ModelShared
		sharded = tenant.ModelSharded
		schema  = tenant.ModelSchema
		dbModel = tenant.ModelDatabase
	)
	items := func(tn *tenant.Tenant) string { return sqlident.MustQuote(tn.Placement.Schema) + ".items" }
	type want struct {
		code   provision.FindingCode
		object string // substring of Finding.Object
		db     bool   // Finding.Database is the tenant's database ("" for cluster-wide)
	}
	tests := []struct {
		name   string
		models []tenant.Model
		weaken func(t *testing.T, b *checkBundle) *tenant.Tenant // returns the tenant whose location was weakened
		want   []want
		also   []provision.FindingCode // may come with it
		cfg    func(*provision.CheckConfig)
	}{
		{"NoForceRowLevelSecurity", []tenant.Model{shared}, func(t *testing.T, b *checkBundle) *tenant.Tenant {
			tn := b.tenant(shared, 0)
			b.execAt(t, tn, "ALTER TABLE "+items(tn)+" NO FORCE ROW LEVEL SECURITY")
			return tn
		}, []want{{provision.CodeRLSNotForced, "items", true}}, nil, nil},
		{"DisableRowLevelSecurityOnShard", []tenant.Model{sharded}, func(t *testing.T, b *checkBundle) *tenant.Tenant {
			tn := b.tenant(sharded, 0)
			b.execAt(t, tn, "ALTER TABLE "+items(tn)+" DISABLE ROW LEVEL SECURITY")
			return tn
		}, []want{{provision.CodeRLSDisabled, "items", true}}, nil, nil},
		{"DropPolicy", []tenant.Model{shared}, func(t *testing.T, b *checkBundle) *tenant.Tenant {
			tn := b.tenant(shared, 0)
			b.execAt(t, tn, "DROP POLICY tenantry_tenant ON "+items(tn))
			return tn
		}, []want{{provision.CodePolicyMissing, "items", true}}, nil, nil},
		{"PermissivePolicyWithoutTenant", []tenant.Model{shared}, func(t *testing.T, b *checkBundle) *tenant.Tenant {
			tn := b.tenant(shared, 0)
			b.execAt(t, tn, "CREATE POLICY peek ON "+items(tn)+" FOR SELECT USING (true)")
			return tn
		}, []want{{provision.CodePolicyUnscoped, "policy peek", true}}, nil, nil},
		{"TableWithoutTenantIDOnShard", []tenant.Model{sharded}, func(t *testing.T, b *checkBundle) *tenant.Tenant {
			tn := b.tenant(sharded, 0)
			// As the owner: the default privileges grant it to the runtime role.
			table := sqlident.MustQuote(tn.Placement.Schema) + ".settings"
			b.execAt(t, tn, "SET ROLE "+provision.OwnerRole, "CREATE TABLE "+table+" (key text PRIMARY KEY, value text)")
			b.dropAtEnd(t, tn, table)
			return tn
		}, []want{{provision.CodeTenantIDMissing, "settings", true}},
			[]provision.FindingCode{provision.CodeRLSDisabled, provision.CodeRLSNotForced, provision.CodePolicyMissing}, nil},
		{"TableOwnedByRuntimeRole", []tenant.Model{shared}, func(t *testing.T, b *checkBundle) *tenant.Tenant {
			tn := b.tenant(shared, 0)
			b.execAt(t, tn, "ALTER TABLE "+sqlident.MustQuote(tn.Placement.Schema)+".item_tags OWNER TO "+provision.AppRole)
			return tn
		}, []want{{provision.CodeRuntimeOwns, "item_tags", true}}, nil, nil},
		{"GrantTruncate", []tenant.Model{shared}, func(t *testing.T, b *checkBundle) *tenant.Tenant {
			tn := b.tenant(shared, 0)
			b.execAt(t, tn, "GRANT TRUNCATE ON "+items(tn)+" TO "+provision.AppRole)
			return tn
		}, []want{{provision.CodeRuntimePrivilege, "items", true}}, nil, nil},
		{"GrantTemporary", []tenant.Model{shared}, func(t *testing.T, b *checkBundle) *tenant.Tenant {
			tn := b.tenant(shared, 0)
			b.execAt(t, tn, "GRANT TEMPORARY ON DATABASE "+sqlident.MustQuote(tn.Placement.Database)+" TO PUBLIC")
			return tn
		}, []want{{provision.CodeRuntimeTemporary, "", true}}, nil, nil},
		{"GrantCreateOnSchema", []tenant.Model{shared}, func(t *testing.T, b *checkBundle) *tenant.Tenant {
			tn := b.tenant(shared, 0)
			b.execAt(t, tn, "GRANT CREATE ON SCHEMA public TO "+provision.AppRole)
			return tn
		}, []want{{provision.CodeRuntimeCreate, "public", true}}, nil, nil},
		{"GrantToPublic", []tenant.Model{shared}, func(t *testing.T, b *checkBundle) *tenant.Tenant {
			tn := b.tenant(shared, 0)
			b.execAt(t, tn, "GRANT SELECT ON "+items(tn)+" TO PUBLIC")
			return tn
		}, []want{{provision.CodePublicPrivilege, "items", true}}, nil, nil},
		{"ReportingRoleWrites", []tenant.Model{shared}, func(t *testing.T, b *checkBundle) *tenant.Tenant {
			tn := b.tenant(shared, 0)
			b.execAt(t, tn, "GRANT DELETE ON "+items(tn)+" TO "+provision.ReportingRole)
			return tn
		}, []want{{provision.CodeReportingWrite, "items", true}}, nil, nil},
		{"LedgerWritable", []tenant.Model{shared}, func(t *testing.T, b *checkBundle) *tenant.Tenant {
			tn := b.tenant(shared, 0)
			// The default privileges give the runtime role DML on it.
			table := sqlident.MustQuote(tn.Placement.Schema) + "." + provision.DefaultLedgerTable
			b.execAt(t, tn, "SET ROLE "+provision.OwnerRole, "CREATE TABLE "+table+" (version integer PRIMARY KEY)")
			b.dropAtEnd(t, tn, table)
			return tn
		}, []want{{provision.CodeRuntimePrivilege, provision.DefaultLedgerTable, true}}, nil, nil},
		{"MaterializedView", []tenant.Model{shared}, func(t *testing.T, b *checkBundle) *tenant.Tenant {
			tn := b.tenant(shared, 0)
			b.execAt(t, tn, "SET ROLE "+provision.OwnerRole, "CREATE MATERIALIZED VIEW "+sqlident.MustQuote(tn.Placement.Schema)+".all_items AS SELECT * FROM "+items(tn))
			return tn
		}, []want{{provision.CodeUnprotected, "all_items", true}}, nil, nil},
		{"ViewOwnedBySuperuser", []tenant.Model{shared}, func(t *testing.T, b *checkBundle) *tenant.Tenant {
			tn := b.tenant(shared, 0)
			v := sqlident.MustQuote(tn.Placement.Schema) + ".everyone"
			b.execAt(t, tn, "CREATE VIEW "+v+" AS SELECT * FROM "+items(tn), "GRANT SELECT ON "+v+" TO "+provision.AppRole)
			return tn
		}, []want{{provision.CodeUnprotected, "everyone", true}}, nil, nil},
		{"SecurityDefinerFunction", []tenant.Model{shared}, func(t *testing.T, b *checkBundle) *tenant.Tenant {
			tn := b.tenant(shared, 0)
			b.execAt(t, tn, "CREATE FUNCTION public.count_all() RETURNS bigint SECURITY DEFINER LANGUAGE sql AS 'SELECT count(*) FROM "+items(tn)+"'")
			return tn
		}, []want{{provision.CodeUnprotected, "count_all", true}}, nil, nil},
		{"RuntimeRoleInTenantSchema", []tenant.Model{schema}, func(t *testing.T, b *checkBundle) *tenant.Tenant {
			tn := b.tenant(schema, 0)
			b.execAt(t, tn, "GRANT USAGE ON SCHEMA "+sqlident.MustQuote(tn.Placement.Schema)+" TO "+provision.AppRole,
				"GRANT SELECT ON "+items(tn)+" TO "+provision.AppRole)
			return tn
		}, []want{{provision.CodeRuntimePrivilege, tn0Schema, true}, {provision.CodeRuntimePrivilege, "items", true}}, nil, nil},
		{"TenantRoleInAnotherSchema", []tenant.Model{schema}, func(t *testing.T, b *checkBundle) *tenant.Tenant {
			a, other := b.tenant(schema, 0), b.tenant(schema, 1)
			b.execAt(t, other, "GRANT USAGE ON SCHEMA "+sqlident.MustQuote(other.Placement.Schema)+" TO "+role(t, a),
				"GRANT SELECT ON "+items(other)+" TO "+role(t, a))
			return other
		}, []want{{provision.CodeTenantRolePrivilege, tn1Schema, true}, {provision.CodeTenantRolePrivilege, "items", true}}, nil, nil},
		{"TenantRoleMemberOfAnother", []tenant.Model{schema}, func(t *testing.T, b *checkBundle) *tenant.Tenant {
			a, other := b.tenant(schema, 0), b.tenant(schema, 1)
			b.execAt(t, a, "GRANT "+role(t, other)+" TO "+role(t, a))
			return a
		}, []want{{provision.CodeTenantRoleMember, "tenantry_t_", false}}, nil, nil},
		{"TenantDatabaseTemporary", []tenant.Model{dbModel}, func(t *testing.T, b *checkBundle) *tenant.Tenant {
			tn := b.tenant(dbModel, 0)
			b.execAt(t, tn, "GRANT TEMPORARY ON DATABASE "+sqlident.MustQuote(tn.Placement.Database)+" TO "+role(t, tn))
			return tn
		}, []want{{provision.CodeTenantRolePrivilege, "", true}}, nil, func(c *provision.CheckConfig) { c.TenantDatabases = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := 1
			if slices.Contains(tt.models, schema) {
				n = 2
			}
			b := checkSetup(t, n, tt.models...)
			cfg := b.config()
			if tt.cfg != nil {
				tt.cfg(cfg)
			}
			if f := b.check(t, cfg); f != nil {
				t.Fatalf("fails before weakening:\n%s", list(f))
			}
			weakened := tt.weaken(t, b)
			findings := b.check(t, cfg)
			t.Logf("findings:\n%s", list(findings))
			for _, w := range tt.want {
				object := w.object
				switch object {
				case tn0Schema:
					object = b.tenant(schema, 0).Placement.Schema
				case tn1Schema:
					object = b.tenant(schema, 1).Placement.Schema
				}
				db := ""
				if w.db {
					db = weakened.Placement.Database
				}
				found := slices.ContainsFunc(findings, func(f provision.Finding) bool {
					return f.Code == w.code && strings.Contains(f.Object, object) && f.Database == db &&
						f.Cluster == weakened.Placement.Cluster && f.Problem != "" && f.Fix != ""
				})
				if !found {
					t.Errorf("no %s finding on %q in %s/%s", w.code, object, weakened.Placement.Cluster, db)
				}
			}
			for _, f := range findings {
				if !slices.ContainsFunc(tt.want, func(w want) bool { return w.code == f.Code }) && !slices.Contains(tt.also, f.Code) {
					t.Errorf("unexpected finding %s", f)
				}
			}
		})
	}
}

// Placeholders for the schema names of the first and second schema tenant,
// known only once they are provisioned.
const (
	tn0Schema = "<schema of tenant 0>"
	tn1Schema = "<schema of tenant 1>"
)

// TestCheckSecurityPolicies: which policies scope the runtime role to its
// tenant, and which open a table across tenants.
func TestCheckSecurityPolicies(t *testing.T) {
	t.Parallel()
	b := checkSetup(t, 1, tenant.ModelShared)
	tn := b.tenant(tenant.ModelShared, 0)
	const scoped = `tenant_id = NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid`
	tests := []struct {
		name     string
		policies []string // %s is the table
		want     provision.FindingCode
	}{
		{"Provisioned", []string{`CREATE POLICY p ON %s USING (` + scoped + `) WITH CHECK (` + scoped + `)`}, ""},
		{"UsingOnly", []string{`CREATE POLICY p ON %s USING (` + scoped + `)`}, ""},
		{"WithoutNullif", []string{`CREATE POLICY p ON %s USING (tenant_id = current_setting('tenantry.tenant_id')::uuid)`}, ""},
		{"NarrowedByAnd", []string{`CREATE POLICY p ON %s USING (` + scoped + ` AND body <> '')`}, ""},
		{"NestedAnd", []string{`CREATE POLICY p ON %s USING (body <> '' AND (id > 0 AND ` + scoped + `))`}, ""},
		{"QuotedOrInLiteral", []string{`CREATE POLICY p ON %s USING (` + scoped + ` AND body <> ') OR (true')`}, ""},
		{"PerCommand", []string{`CREATE POLICY s ON %s FOR SELECT USING (` + scoped + `)`, `CREATE POLICY i ON %s FOR INSERT WITH CHECK (` + scoped + `)`}, ""},
		{"RestrictiveTrue", []string{`CREATE POLICY p ON %s USING (` + scoped + `)`, `CREATE POLICY r ON %s AS RESTRICTIVE USING (true)`}, ""},
		{"OtherRoleOnly", []string{`CREATE POLICY p ON %s USING (` + scoped + `)`, `CREATE POLICY r ON %s FOR SELECT TO ` + provision.ReportingRole + ` USING (true)`}, ""},
		{"None", nil, provision.CodePolicyMissing},
		{"OnlyRestrictive", []string{`CREATE POLICY r ON %s AS RESTRICTIVE USING (` + scoped + `)`}, provision.CodePolicyMissing},
		{"True", []string{`CREATE POLICY p ON %s USING (true)`}, provision.CodePolicyUnscoped},
		{"OrTrue", []string{`CREATE POLICY p ON %s USING (` + scoped + ` OR true)`}, provision.CodePolicyUnscoped},
		{"OrInsideAnd", []string{`CREATE POLICY p ON %s USING (body <> '' AND (` + scoped + ` OR id > 0))`}, provision.CodePolicyUnscoped},
		{"NotNull", []string{`CREATE POLICY p ON %s USING (tenant_id IS NOT NULL)`}, provision.CodePolicyUnscoped},
		{"OtherSetting", []string{`CREATE POLICY p ON %s USING (tenant_id = NULLIF(current_setting('tenantry.tenant', true), '')::uuid)`}, provision.CodePolicyUnscoped},
		{"OtherColumn", []string{`CREATE POLICY p ON %s USING (owner_id = NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid)`}, provision.CodePolicyUnscoped},
		{"Negated", []string{`CREATE POLICY p ON %s USING (NOT (` + scoped + `))`}, provision.CodePolicyUnscoped},
		{"CheckOpen", []string{`CREATE POLICY p ON %s USING (` + scoped + `) WITH CHECK (true)`}, provision.CodePolicyUnscoped},
		{"SecondPolicyOpen", []string{`CREATE POLICY p ON %s USING (` + scoped + `)`, `CREATE POLICY q ON %s FOR DELETE USING (id > 0)`}, provision.CodePolicyUnscoped},
		{"ToRuntimeRole", []string{`CREATE POLICY p ON %s USING (` + scoped + `)`, `CREATE POLICY q ON %s FOR SELECT TO ` + provision.AppRole + ` USING (true)`}, provision.CodePolicyUnscoped},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Findings name objects as quote_ident does: the schema is "app".
			object := fmt.Sprintf("%s.policy_%d", tn.Placement.Schema, i)
			table := sqlident.MustQuote(tn.Placement.Schema) + "." + fmt.Sprintf("policy_%d", i)
			stmts := []string{"SET ROLE " + provision.OwnerRole,
				"CREATE TABLE " + table + ` (tenant_id uuid NOT NULL, id bigint NOT NULL, owner_id uuid, body text NOT NULL DEFAULT '', PRIMARY KEY (tenant_id, id))`,
				"ALTER TABLE " + table + " ENABLE ROW LEVEL SECURITY", "ALTER TABLE " + table + " FORCE ROW LEVEL SECURITY"}
			for _, p := range tt.policies {
				stmts = append(stmts, strings.ReplaceAll(p, "%s", table))
			}
			b.execAt(t, tn, stmts...)
			var mine []provision.Finding
			for _, f := range b.check(t, nil) {
				if f.Object == object || strings.HasPrefix(f.Object, object+" ") {
					mine = append(mine, f)
				}
			}
			switch {
			case tt.want == "" && len(mine) > 0:
				t.Errorf("refused:\n%s", list(mine))
			case tt.want != "" && !slices.ContainsFunc(mine, func(f provision.Finding) bool { return f.Code == tt.want }):
				t.Errorf("want %s, got:\n%s", tt.want, list(mine))
			}
		})
	}
}

// TestCheckSecurityRuntimeRole weakens the cluster-wide roles, on a server
// of its own (roles are shared by every database of a server).
func TestCheckSecurityRuntimeRole(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, err := catalog.NewStore(tenantrytest.Pool(t, tenantrytest.NewDatabase(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	srv := tenantrytest.Cluster(t, "check-roles")
	register(t, store, "roles", srv, catalog.RolePrimary, "")
	pcfg := testConfig(testDDL)
	p := newProvisioner(t, store, pcfg)
	var tenantRole string
	for _, m := range []tenant.Model{tenant.ModelShared, tenant.ModelSchema} {
		s := slug("rt")
		if _, err := store.CreateTenant(ctx, actor, catalog.NewTenant{Slug: s, Placement: tenant.Placement{Model: m}}); err != nil {
			t.Fatal(err)
		}
		res, err := p.Provision(ctx, actor, s)
		if err != nil {
			t.Fatal(err)
		}
		tenantRole = role(t, res.Tenant)
	}
	check := func() []provision.Finding {
		t.Helper()
		err := provision.CheckSecurity(ctx, store, pcfg.CheckConfig())
		if err == nil {
			return nil
		}
		var se *provision.SecurityError
		if !errors.As(err, &se) {
			t.Fatal(err)
		}
		return se.Findings
	}
	if f := check(); f != nil {
		t.Fatalf("fails before weakening:\n%s", list(f))
	}
	conn, err := pgx.Connect(ctx, srv.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	app := provision.AppRole
	// Put the roles back, for the next run in this test binary (-count).
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, st := range []string{
			"ALTER ROLE " + app + " NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOINHERIT",
			"REVOKE " + provision.OwnerRole + " FROM " + app,
			"ALTER ROLE " + provision.OwnerRole + " NOLOGIN",
			"ALTER ROLE " + tenantRole + " NOBYPASSRLS",
		} {
			if _, err := conn.Exec(ctx, st); err != nil {
				t.Errorf("%s: %v", st, err)
			}
		}
	})
	for _, st := range []string{
		"ALTER ROLE " + app + " BYPASSRLS CREATEROLE INHERIT",
		"GRANT " + provision.OwnerRole + " TO " + app,
		"ALTER ROLE " + provision.OwnerRole + " LOGIN",
		"ALTER ROLE " + tenantRole + " BYPASSRLS",
	} {
		if _, err := conn.Exec(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	findings := check()
	t.Logf("findings:\n%s", list(findings))
	for _, w := range []struct {
		code provision.FindingCode
		text string
	}{
		{provision.CodeRuntimeBypassRLS, "BYPASSRLS"},
		{provision.CodeRuntimeAttribute, "CREATEROLE"},
		{provision.CodeRuntimeAttribute, "INHERIT"},
		{provision.CodeRuntimeMember, "SET ROLE to " + provision.OwnerRole},
		{provision.CodeRoleAttribute, "can log in"},
		{provision.CodeRoleAttribute, "per-tenant role " + strings.Trim(tenantRole, `"`) + " has BYPASSRLS"},
		{provision.CodeRuntimeMember, "SET ROLE to " + strings.Trim(tenantRole, `"`) + ": that role has BYPASSRLS"},
	} {
		if !slices.ContainsFunc(findings, func(f provision.Finding) bool {
			return f.Code == w.code && strings.Contains(f.Problem, w.text) && f.Cluster == "roles" && f.Database == ""
		}) {
			t.Errorf("no %s finding saying %q", w.code, w.text)
		}
	}
	if _, err := conn.Exec(ctx, "ALTER ROLE "+app+" SUPERUSER"); err != nil {
		t.Fatal(err)
	}
	findings = check()
	if !slices.ContainsFunc(findings, func(f provision.Finding) bool { return f.Code == provision.CodeRuntimeSuperuser }) {
		t.Errorf("no %s finding:\n%s", provision.CodeRuntimeSuperuser, list(findings))
	}
	// The error lists every finding with its fix.
	err = provision.CheckSecurity(ctx, store, pcfg.CheckConfig())
	for _, f := range findings {
		if !strings.Contains(err.Error(), f.Fix) {
			t.Errorf("error does not carry the fix %q", f.Fix)
		}
	}
}

func TestCheckSecurityUnreachable(t *testing.T) {
	t.Parallel()
	b := checkSetup(t, 0)
	// Nothing listens on port 1 of the loopback address.
	if _, err := b.dp.Store.CreateCluster(t.Context(), tenantrytest.Actor, catalog.Cluster{
		Name: "gone", ConnString: "postgres://nobody@127.0.0.1:1/postgres?connect_timeout=5", Role: catalog.RoleShard,
	}); err != nil {
		t.Fatal(err)
	}
	findings := b.check(t, nil)
	if len(findings) != 1 || findings[0].Code != provision.CodeUnreachable || findings[0].Cluster != "gone" {
		t.Fatalf("want one unreachable finding on gone, got:\n%s", list(findings))
	}
	if f := b.check(t, &provision.CheckConfig{AllowUnreachable: true}); f != nil {
		t.Fatalf("AllowUnreachable still fails:\n%s", list(f))
	}
}

func TestCheckConfig(t *testing.T) {
	t.Parallel()
	b := checkSetup(t, 0)
	tests := []struct {
		name    string
		cfg     *provision.CheckConfig
		invalid bool
	}{
		// Names travel as bind parameters: a hostile one names a database
		// that does not exist.
		{"HostileName", &provision.CheckConfig{SharedDatabase: `x"; DROP DATABASE postgres; --`, AppSchema: `a' OR '1'='1`}, false},
		{"ControlByte", &provision.CheckConfig{AppSchema: "app\nx"}, true},
		{"TooLong", &provision.CheckConfig{SchemasDatabase: strings.Repeat("s", 64)}, true},
		{"OwnerAsRuntime", &provision.CheckConfig{RuntimeRole: provision.OwnerRole}, true},
		{"ReportingAsRuntime", &provision.CheckConfig{RuntimeRole: provision.ReportingRole}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := provision.CheckSecurity(t.Context(), b.dp.Store, tt.cfg)
			switch {
			case tt.invalid && (err == nil || !strings.Contains(err.Error(), "CheckConfig")):
				t.Errorf("want a configuration error, got %v", err)
			case !tt.invalid && err != nil:
				t.Errorf("refused: %v", err)
			}
		})
	}
	got := (&provision.Config{SharedDatabase: "s", SchemasDatabase: "c"}).CheckConfig()
	if got.SharedDatabase != "s" || got.SchemasDatabase != "c" || got.ShardDatabase != provision.DefaultShardDatabase || got.AppSchema != provision.DefaultAppSchema {
		t.Errorf("Config.CheckConfig = %+v", got)
	}
}
