package provision_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/sqlident"
	"github.com/tenantry/tenantry/provision"
	"github.com/tenantry/tenantry/tenant"
	"github.com/tenantry/tenantry/tenantrytest"
)

// testDDL follows the table contract with two tables and a foreign key, so
// that deprovisioning has an order to respect.
var testDDL = []string{
	`CREATE TABLE items (
    tenant_id uuid NOT NULL DEFAULT NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid,
    id        bigint NOT NULL,
    owner     text NOT NULL,
    PRIMARY KEY (tenant_id, id)
)`,
	`CREATE TABLE item_tags (
    tenant_id uuid NOT NULL DEFAULT NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid,
    item_id   bigint NOT NULL,
    tag       text NOT NULL,
    PRIMARY KEY (tenant_id, item_id, tag),
    FOREIGN KEY (tenant_id, item_id) REFERENCES items (tenant_id, id)
)`,
}

// suffix makes this test binary's shared databases its own, so that binaries
// sharing a server (TENANTRY_TEST_DATABASE_URL) do not share them.
var suffix = func() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}()

func testConfig(ddl []string) *provision.Config {
	return &provision.Config{
		DDL:              ddl,
		SharedDatabase:   "tenantry_shared_" + suffix,
		ShardDatabase:    "tenantry_shard_" + suffix,
		SchemasDatabase:  "tenantry_schemas_" + suffix,
		TemplateDatabase: "tenantry_template_" + suffix,
	}
}

var actor = catalog.Actor{Name: "provision-test"}

type testBundle struct {
	store  *catalog.Store
	prov   *provision.Provisioner
	shards []*tenantrytest.Server
}

// setup returns a fresh catalog with the shared server as primary cluster
// "main" and two shard clusters, and a provisioner over it.
func setup(t *testing.T) *testBundle { return setupB(t) }

func setupB(t testing.TB) *testBundle {
	t.Helper()
	ctx := t.Context()
	store, err := catalog.NewStore(tenantrytest.Pool(t, tenantrytest.NewDatabase(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	b := &testBundle{store: store}
	register(t, store, "main", tenantrytest.Shared(t), catalog.RolePrimary, "")
	for _, name := range []string{"shard-1", "shard-2"} {
		s := tenantrytest.Cluster(t, name)
		b.shards = append(b.shards, s)
		register(t, store, name, s, catalog.RoleShard, "")
	}
	b.prov = newProvisioner(t, store, testConfig(testDDL))
	return b
}

func newProvisioner(t testing.TB, store *catalog.Store, cfg *provision.Config) *provision.Provisioner {
	t.Helper()
	p, err := provision.New(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func register(t testing.TB, store *catalog.Store, name string, s *tenantrytest.Server, role, region string) {
	t.Helper()
	if _, err := store.CreateCluster(t.Context(), actor, catalog.Cluster{Name: name, ConnString: s.AdminURL(), Role: role, Region: region}); err != nil {
		t.Fatal(err)
	}
}

// slug returns a slug no other test uses: names derived from slugs are
// cluster-wide (roles, databases).
func slug(prefix string) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func (b *testBundle) create(t *testing.T, in catalog.NewTenant) *tenant.Tenant {
	t.Helper()
	tn, err := b.store.CreateTenant(t.Context(), actor, in)
	if err != nil {
		t.Fatal(err)
	}
	// Storage is cluster-wide: drop whatever a test left.
	t.Cleanup(func() { _ = b.prov.Deprovision(context.Background(), actor, in.Slug) })
	return tn
}

// appConn connects to the tenant's database as the runtime role, the way
// the router does.
func appConn(t *testing.T, b *testBundle, p tenant.Placement) *pgx.Conn {
	t.Helper()
	cl, err := b.store.Cluster(t.Context(), p.Cluster)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(cl.ConnString)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database, cfg.User = p.Database, provision.AppRole
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// scoped runs fn in a transaction scoped to tn as the router scopes it.
func scoped(ctx context.Context, conn *pgx.Conn, tn *tenant.Tenant, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		role := ""
		if tn.Placement.Model == tenant.ModelSchema || tn.Placement.Model == tenant.ModelDatabase {
			r, err := provision.TenantRole(tn.Slug)
			if err != nil {
				return err
			}
			role = r
		}
		if _, err := tx.Exec(ctx, `SELECT set_config('tenantry.tenant_id', $1, true), set_config('search_path', $2, true),
    CASE WHEN $3 <> '' THEN set_config('role', $3, true) END`, tn.ID, tn.Placement.Schema, role); err != nil {
			return err
		}
		return fn(tx)
	})
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func TestProvisionModels(t *testing.T) {
	t.Parallel()
	b := setup(t)

	tests := []struct {
		name  string
		in    catalog.NewTenant
		model tenant.Model
	}{
		{"FreeTierShared", catalog.NewTenant{Tier: "free"}, tenant.ModelShared},
		{"ExplicitSharded", catalog.NewTenant{Tier: "enterprise", Placement: tenant.Placement{Model: tenant.ModelSharded}}, tenant.ModelSharded},
		{"ProTierSchema", catalog.NewTenant{Tier: "pro"}, tenant.ModelSchema},
		{"EnterpriseTierDatabase", catalog.NewTenant{Tier: "enterprise"}, tenant.ModelDatabase},
		{"LabelOverridesTier", catalog.NewTenant{Tier: "enterprise", Labels: map[string]string{provision.ModelLabel: "shared"}}, tenant.ModelShared},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			tt.in.Slug = slug("m")
			b.create(t, tt.in)

			res, err := b.prov.Provision(ctx, actor, tt.in.Slug)
			if err != nil {
				t.Fatal(err)
			}
			tn := res.Tenant
			if !res.Placed || tn.Placement.Model != tt.model {
				t.Fatalf("placed=%v placement=%+v, want model %s", res.Placed, tn.Placement, tt.model)
			}
			hasOwn := tt.model == tenant.ModelSchema || tt.model == tenant.ModelDatabase
			if res.Created != hasOwn {
				t.Fatalf("Created = %v, want %v", res.Created, hasOwn)
			}
			t.Logf("%s: %s/%s/%s in %v", tt.model, tn.Placement.Cluster, tn.Placement.Database, tn.Placement.Schema, res.Elapsed)
			stored, err := b.store.Tenant(ctx, tn.ID)
			if err != nil || stored.Placement != tn.Placement {
				t.Fatalf("catalog placement %+v (%v), want %+v", stored.Placement, err, tn.Placement)
			}
			if want := provision.ClusterRole(tt.model); clusterRole(t, b, tn.Placement.Cluster) != want {
				t.Fatalf("cluster %s is not a %s", tn.Placement.Cluster, want)
			}

			// The runtime role can use the tables within the tenant's scope.
			conn := appConn(t, b, tn.Placement)
			err = scoped(ctx, conn, tn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `INSERT INTO items (id, owner) VALUES (1, $1)`, tn.Slug); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO item_tags (item_id, tag) VALUES (1, 'x')`)
				return err
			})
			if err != nil {
				t.Fatalf("scoped write: %v", err)
			}
			var owner, tid string
			err = scoped(ctx, conn, tn, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, `SELECT owner, tenant_id::text FROM items`).Scan(&owner, &tid)
			})
			if err != nil || owner != tn.Slug || tid != tn.ID {
				t.Fatalf("scoped read: owner %q tenant_id %q err %v", owner, tid, err)
			}

			// Idempotent: nothing new the second time, placement unchanged.
			again, err := b.prov.Provision(ctx, actor, tt.in.Slug)
			if err != nil {
				t.Fatal(err)
			}
			if again.Placed || again.Created || again.Tenant.Placement != tn.Placement {
				t.Fatalf("second Provision: placed=%v created=%v placement=%+v", again.Placed, again.Created, again.Tenant.Placement)
			}

			conn.Close(ctx)
			if !hasOwn {
				// A table without tenant_id in a shared location (as migrate's
				// ledger) holds no tenant's rows: deprovisioning leaves it be.
				cl, err := b.store.Cluster(ctx, tn.Placement.Cluster)
				if err != nil {
					t.Fatal(err)
				}
				cfg, err := pgx.ParseConfig(cl.ConnString)
				if err != nil {
					t.Fatal(err)
				}
				cfg.Database = tn.Placement.Database
				admin, err := pgx.ConnectConfig(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				qt := sqlident.MustQuote(tn.Placement.Schema) + ".ledger_like"
				if _, err := admin.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+qt+" (version int PRIMARY KEY)"); err != nil {
					t.Fatal(err)
				}
				admin.Close(ctx)
			}
			if err := b.prov.Deprovision(ctx, actor, tt.in.Slug); err != nil {
				t.Fatal(err)
			}
			assertGone(t, b, tn)
			if err := b.prov.Deprovision(ctx, actor, tt.in.Slug); err != nil {
				t.Fatalf("second Deprovision: %v", err)
			}
			after, err := b.store.Tenant(ctx, tn.ID)
			if err != nil {
				t.Fatal(err)
			}
			if after.Placement.Cluster != "" || after.Placement.Database != "" {
				t.Fatalf("placement after Deprovision: %+v", after.Placement)
			}
		})
	}
}

func clusterRole(t *testing.T, b *testBundle, name string) string {
	t.Helper()
	cl, err := b.store.Cluster(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return cl.Role
}

// admin returns a superuser pool on database of the tenant's cluster.
func admin(t *testing.T, b *testBundle, cluster, database string) *pgxpool.Pool {
	t.Helper()
	cl, err := b.store.Cluster(t.Context(), cluster)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(cl.ConnString)
	if err != nil {
		t.Fatal(err)
	}
	if database != "" {
		cfg.ConnConfig.Database = database
	}
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func exists(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) bool {
	t.Helper()
	var ok bool
	if err := pool.QueryRow(t.Context(), sql, args...).Scan(&ok); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return ok
}

// assertGone checks that the tenant's data and role are gone.
func assertGone(t *testing.T, b *testBundle, tn *tenant.Tenant) {
	t.Helper()
	p := tn.Placement
	maint := admin(t, b, p.Cluster, "")
	role, _ := provision.TenantRole(tn.Slug)
	if exists(t, maint, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`, role) {
		t.Errorf("role %s still exists", role)
	}
	switch p.Model {
	case tenant.ModelDatabase:
		if exists(t, maint, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, p.Database) {
			t.Errorf("database %s still exists", p.Database)
		}
	case tenant.ModelSchema:
		db := admin(t, b, p.Cluster, p.Database)
		if exists(t, db, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, p.Schema) {
			t.Errorf("schema %s still exists", p.Schema)
		}
	default:
		db := admin(t, b, p.Cluster, p.Database)
		for _, table := range []string{"items", "item_tags"} {
			if exists(t, db, `SELECT EXISTS (SELECT FROM app.`+table+` WHERE tenant_id = $1)`, tn.ID) {
				t.Errorf("rows of the tenant still in %s", table)
			}
		}
	}
}

func TestSharedFailsClosed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	for _, model := range []tenant.Model{tenant.ModelShared, tenant.ModelSharded} {
		t.Run(string(model), func(t *testing.T) {
			t.Parallel()
			s := slug("fc")
			b.create(t, catalog.NewTenant{Slug: s, Placement: tenant.Placement{Model: model}, Labels: map[string]string{provision.ModelLabel: string(model)}})
			res, err := b.prov.Provision(ctx, actor, s)
			if err != nil {
				t.Fatal(err)
			}
			tn := res.Tenant
			conn := appConn(t, b, tn.Placement)
			if err := scoped(ctx, conn, tn, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO items (id, owner) VALUES (1, 'fc')`)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			count := func(setup string) (int, error) {
				var n int
				err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
					if setup != "" {
						if _, err := tx.Exec(ctx, setup); err != nil {
							return err
						}
					}
					return tx.QueryRow(ctx, `SELECT count(*) FROM app.items`).Scan(&n)
				})
				return n, err
			}
			// After a scoped transaction the setting reads '' on this
			// connection, not NULL: the policy must still match nothing.
			for _, setup := range []string{"", `SELECT set_config('tenantry.tenant_id', '', true)`} {
				if n, err := count(setup); err != nil || n != 0 {
					t.Fatalf("no tenant (%q): %d rows, err %v; want 0", setup, n, err)
				}
			}
			err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO app.items (tenant_id, id, owner) VALUES ($1, 2, 'forged')`, tn.ID)
				return err
			})
			if sqlState(err) != "42501" {
				t.Fatalf("write with no tenant: err %v, want RLS violation 42501", err)
			}
			err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO app.items (id, owner) VALUES (3, 'none')`)
				return err
			})
			if sqlState(err) != "23502" && sqlState(err) != "42501" {
				t.Fatalf("write with no tenant and default tenant_id: err %v, want not-null or RLS violation", err)
			}
			// TRUNCATE would ignore row-level security: never granted.
			_, err = conn.Exec(ctx, `TRUNCATE app.items CASCADE`)
			if sqlState(err) != "42501" {
				t.Fatalf("TRUNCATE as %s: err %v, want permission denied", provision.AppRole, err)
			}
			// Temporary tables would outlive the transaction on a pooled
			// connection and shadow the application's tables.
			_, err = conn.Exec(ctx, `CREATE TEMP TABLE items (id int)`)
			if sqlState(err) != "42501" {
				t.Fatalf("CREATE TEMP TABLE as %s: err %v, want permission denied", provision.AppRole, err)
			}
		})
	}
}

func TestRoles(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := slug("roles")
	b.create(t, catalog.NewTenant{Slug: s, Tier: "pro"})
	if _, err := b.prov.Provision(t.Context(), actor, s); err != nil {
		t.Fatal(err)
	}
	maint := admin(t, b, "main", "")
	role, _ := provision.TenantRole(s)
	for _, tt := range []struct {
		role  string
		check string
	}{
		{provision.AppRole, `rolcanlogin AND NOT rolsuper AND NOT rolbypassrls AND NOT rolinherit AND NOT rolcreaterole AND NOT rolcreatedb`},
		{provision.OwnerRole, `NOT rolcanlogin AND NOT rolsuper AND NOT rolbypassrls`},
		{provision.ReportingRole, `NOT rolcanlogin AND NOT rolsuper AND NOT rolbypassrls`},
		{role, `NOT rolcanlogin AND NOT rolsuper AND NOT rolbypassrls AND NOT rolinherit`},
	} {
		if !exists(t, maint, `SELECT `+tt.check+` FROM pg_roles WHERE rolname = $1`, tt.role) {
			t.Errorf("role %s: want %s", tt.role, tt.check)
		}
	}
	if !exists(t, maint, `SELECT pg_has_role($1, $2, 'MEMBER')`, provision.AppRole, role) {
		t.Errorf("%s is not a member of %s", provision.AppRole, role)
	}
	if exists(t, maint, `SELECT EXISTS (SELECT FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = $1)`, provision.AppRole) {
		t.Errorf("%s owns relations", provision.AppRole)
	}
}

func TestHostileSlugs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, s := range []string{
		"", "Acme", "acme;drop database postgres", `a"b`, "a'b", "a b", "a--b", "-a", "a-", "1abc",
		"t_x", "acme\x00", "аcme", "ａｃｍｅ", "public", "postgres", strings.Repeat("a", 49), "../etc", "a/b",
	} {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			if _, err := b.prov.Provision(t.Context(), actor, s); !errors.Is(err, tenant.ErrInvalidSlug) {
				t.Errorf("Provision(%q) = %v, want ErrInvalidSlug", s, err)
			}
			if err := b.prov.Deprovision(t.Context(), actor, s); !errors.Is(err, tenant.ErrInvalidSlug) {
				t.Errorf("Deprovision(%q) = %v, want ErrInvalidSlug", s, err)
			}
			if _, err := provision.TenantRole(s); err == nil {
				t.Errorf("TenantRole(%q) accepted", s)
			}
		})
	}
}

func TestPlacementMismatchRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	s := slug("mis")
	cfg := testConfig(testDDL)
	// A database-model tenant whose recorded database is the shared one:
	// deprovisioning must not drop it.
	tn := b.create(t, catalog.NewTenant{Slug: s, Placement: tenant.Placement{
		Model: tenant.ModelDatabase, Cluster: "main", Database: cfg.SharedDatabase, Schema: "app"}})
	if err := b.prov.Deprovision(ctx, actor, s); !errors.Is(err, provision.ErrPlacementMismatch) {
		t.Fatalf("Deprovision = %v, want ErrPlacementMismatch", err)
	}
	if _, err := b.prov.Provision(ctx, actor, s); !errors.Is(err, provision.ErrPlacementMismatch) {
		t.Fatalf("Provision = %v, want ErrPlacementMismatch", err)
	}
	if got, _ := b.store.Tenant(ctx, tn.ID); got.Placement != tn.Placement {
		t.Fatalf("placement changed to %+v", got.Placement)
	}
}

func TestContractViolation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tt := range []struct {
		name, ddl, want string
	}{
		{"NoTenantColumn", `CREATE TABLE bad (id int PRIMARY KEY)`, "no tenant_id"},
		{"NoDefault", `CREATE TABLE bad (tenant_id uuid NOT NULL, id int, PRIMARY KEY (tenant_id, id))`, "must default"},
		{"Nullable", `CREATE TABLE bad (tenant_id uuid DEFAULT NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid, id int UNIQUE)`, "uuid NOT NULL"},
		{"PrimaryKeyOrder", `CREATE TABLE bad (tenant_id uuid NOT NULL DEFAULT NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid, id int, PRIMARY KEY (id, tenant_id))`, "primary key"},
		{"NoTable", `SELECT 1`, "no table"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig([]string{tt.ddl})
			n := strings.ToLower(tt.name)
			cfg.SharedDatabase, cfg.SchemasDatabase = "x_shared_"+n+suffix, "x_schemas_"+n+suffix
			cfg.ShardDatabase, cfg.TemplateDatabase = "x_shard_"+n+suffix, "x_template_"+n+suffix
			prov := newProvisioner(t, b.store, cfg)
			s := slug("bad")
			b.create(t, catalog.NewTenant{Slug: s, Tier: "pro"})
			_, err := prov.Provision(t.Context(), actor, s)
			var ce *provision.ContractError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Provision = %v, want ContractError mentioning %q", err, tt.want)
			}
			// Nothing was left behind: the schema was created in the failed transaction.
			schema, _ := provision.TenantSchema(s)
			t.Cleanup(func() { dropDatabase(b, cfg.SchemasDatabase) })
			if exists(t, admin(t, b, "main", cfg.SchemasDatabase), `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, schema) {
				t.Fatalf("schema %s left behind", schema)
			}
		})
	}
}

func dropDatabase(b *testBundle, name string) {
	ctx := context.Background()
	cl, err := b.store.Cluster(ctx, "main")
	if err != nil {
		return
	}
	conn, err := pgx.Connect(ctx, cl.ConnString)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+sqlident.MustQuote(name)+" WITH (FORCE)")
}

func TestConcurrentProvision(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	// Two provisioners (two processes) race on the same tenants.
	other := newProvisioner(t, b.store, testConfig(testDDL))
	var slugs []string
	for i, tier := range []string{"free", "pro", "enterprise", "free", "pro", "enterprise"} {
		s := slug(fmt.Sprintf("cc%d", i))
		slugs = append(slugs, s)
		b.create(t, catalog.NewTenant{Slug: s, Tier: tier})
	}
	var wg sync.WaitGroup
	results := make([][2]*provision.Result, len(slugs))
	for i, s := range slugs {
		for j, p := range []*provision.Provisioner{b.prov, other} {
			wg.Go(func() {
				r, err := p.Provision(ctx, actor, s)
				if err != nil {
					t.Errorf("Provision(%s): %v", s, err)
					return
				}
				results[i][j] = r
			})
		}
	}
	wg.Wait()
	for i, r := range results {
		if r[0] == nil || r[1] == nil {
			continue
		}
		if r[0].Tenant.Placement != r[1].Tenant.Placement {
			t.Errorf("%s placed twice: %+v vs %+v", slugs[i], r[0].Tenant.Placement, r[1].Tenant.Placement)
		}
		if r[0].Placed == r[1].Placed {
			t.Errorf("%s: placed=%v by both provisioners", slugs[i], r[0].Placed)
		}
	}
}

// TestTemplateFollowsDDL changes the DDL: the template is rebuilt, tenant
// databases cloned afterwards have the new table, older ones are left alone.
func TestTemplateFollowsDDL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	cfg := testConfig(testDDL)
	cfg.CloneStrategy = "FILE_COPY"
	cfg.TemplateDatabase = "tenantry_template_v_" + suffix
	t.Cleanup(func() { dropTemplate(b, cfg.TemplateDatabase) })
	v1 := newProvisioner(t, b.store, cfg)
	cfg2 := *cfg
	cfg2.DDL = append(append([]string(nil), testDDL...), `CREATE TABLE extra (
    tenant_id uuid NOT NULL DEFAULT NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid,
    id int NOT NULL, PRIMARY KEY (tenant_id, id))`)
	v2 := newProvisioner(t, b.store, &cfg2)
	if v1.SchemaVersion() == v2.SchemaVersion() {
		t.Fatal("different DDL, same version")
	}

	hasExtra := func(p *provision.Provisioner) bool {
		t.Helper()
		s := slug("tpl")
		b.create(t, catalog.NewTenant{Slug: s, Tier: "enterprise"})
		res, err := p.Provision(ctx, actor, s)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Deprovision(context.Background(), actor, s) })
		t.Logf("database %s cloned in %v", res.Tenant.Placement.Database, res.Elapsed)
		return exists(t, admin(t, b, "main", res.Tenant.Placement.Database), `SELECT to_regclass('app.extra') IS NOT NULL`)
	}
	if hasExtra(v1) {
		t.Fatal("v1 tenant has the v2 table")
	}
	if !hasExtra(v2) {
		t.Fatal("v2 tenant lacks the v2 table: template not rebuilt")
	}
	if hasExtra(v1) {
		t.Fatal("v1 tenant after v2 has the v2 table: template not rebuilt back")
	}
}

func dropTemplate(b *testBundle, name string) {
	ctx := context.Background()
	cl, err := b.store.Cluster(ctx, "main")
	if err != nil {
		return
	}
	conn, err := pgx.Connect(ctx, cl.ConnString)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	q := sqlident.MustQuote(name)
	_, _ = conn.Exec(ctx, "ALTER DATABASE "+q+" WITH IS_TEMPLATE false")
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+q+" WITH (FORCE)")
}

func TestDemo(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, err := catalog.NewStore(tenantrytest.Pool(t, tenantrytest.NewDatabase(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := provision.Demo(ctx, newProvisioner(t, store, testConfig(testDDL)), actor); err == nil {
		t.Fatal("Demo without clusters succeeded")
	}
	register(t, store, "main", tenantrytest.Shared(t), catalog.RolePrimary, "")
	p := newProvisioner(t, store, testConfig(testDDL))
	t.Cleanup(func() {
		for _, d := range provision.DemoTenants {
			_ = p.Deprovision(context.Background(), actor, d.Slug)
		}
	})
	for range 2 { // idempotent
		tenants, err := provision.Demo(ctx, p, actor)
		if err != nil {
			t.Fatal(err)
		}
		for i, tn := range tenants {
			if d := provision.DemoTenants[i]; tn.Slug != d.Slug || tn.Placement.Model != d.Model {
				t.Fatalf("demo tenant %d: %s on %+v, want %s on %s", i, tn.Slug, tn.Placement, d.Slug, d.Model)
			}
		}
		if tenants[1].Placement.Cluster != provision.DemoShardCluster {
			t.Fatalf("sharded demo tenant on %s", tenants[1].Placement.Cluster)
		}
	}
}

// TestReportingRole checks the reporting role: it reads every tenant's rows
// in every model and writes nothing.
func TestReportingRole(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	var tenants []*tenant.Tenant
	for _, m := range []tenant.Model{tenant.ModelShared, tenant.ModelShared, tenant.ModelSchema, tenant.ModelDatabase} {
		s := slug("rep")
		b.create(t, catalog.NewTenant{Slug: s, Labels: map[string]string{provision.ModelLabel: string(m)}})
		res, err := b.prov.Provision(ctx, actor, s)
		if err != nil {
			t.Fatal(err)
		}
		tn := res.Tenant
		if err := scoped(ctx, appConn(t, b, tn.Placement), tn, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO items (id, owner) VALUES (1, $1)`, tn.Slug)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		tenants = append(tenants, tn)
	}
	for _, tn := range tenants {
		db := admin(t, b, tn.Placement.Cluster, tn.Placement.Database)
		qt := sqlident.MustQuote(tn.Placement.Schema) + ".items"
		err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL ROLE `+provision.ReportingRole); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+qt+` WHERE owner = $1`, tn.Slug).Scan(&n); err != nil {
				return err
			}
			if n != 1 {
				t.Errorf("reporting role sees %d rows of %s (%s), want 1", n, tn.Slug, tn.Placement.Model)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("reporting read of %s: %v", tn.Slug, err)
		}
		err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL ROLE `+provision.ReportingRole); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DELETE FROM `+qt)
			return err
		})
		if sqlState(err) != "42501" {
			t.Errorf("reporting role deleting in %s (%s): %v, want permission denied", tn.Slug, tn.Placement.Model, err)
		}
	}
}

// TestForeignStorageLeftAlone: a schema or database that carries a tenant's
// name but was not made by Tenantry is neither taken over by Provision nor
// dropped by Deprovision (which a caller rolling back a failed Provision
// would otherwise do), and its privileges are left as they were.
func TestForeignStorageLeftAlone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	cfg := testConfig(testDDL)

	// The schemas database exists once a schema tenant is provisioned.
	own := slug("own")
	b.create(t, catalog.NewTenant{Slug: own, Placement: tenant.Placement{Model: tenant.ModelSchema, Cluster: "main"}})
	if _, err := b.prov.Provision(ctx, actor, own); err != nil {
		t.Fatal(err)
	}

	sc := slug("fsch")
	schema, _ := provision.TenantSchema(sc)
	schemas := admin(t, b, "main", cfg.SchemasDatabase)
	if _, err := schemas.Exec(ctx, "CREATE SCHEMA "+schema+"; CREATE TABLE "+schema+".precious (v int); INSERT INTO "+schema+".precious VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = schemas.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })

	db := slug("fdb")
	database, _ := provision.TenantDatabase(db)
	maint := admin(t, b, "main", "")
	if _, err := maint.Exec(ctx, "CREATE DATABASE "+database); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = maint.Exec(context.Background(), "DROP DATABASE IF EXISTS "+database+" WITH (FORCE)") })

	for _, tc := range []struct {
		slug  string
		model tenant.Model
	}{{sc, tenant.ModelSchema}, {db, tenant.ModelDatabase}} {
		b.create(t, catalog.NewTenant{Slug: tc.slug, Placement: tenant.Placement{Model: tc.model, Cluster: "main"}})
		if _, err := b.prov.Provision(ctx, actor, tc.slug); !errors.Is(err, provision.ErrForeignStorage) {
			t.Fatalf("Provision %s = %v, want ErrForeignStorage", tc.model, err)
		}
		if err := b.prov.Deprovision(ctx, actor, tc.slug); !errors.Is(err, provision.ErrForeignStorage) {
			t.Fatalf("Deprovision %s = %v, want ErrForeignStorage", tc.model, err)
		}
	}
	var v int
	if err := schemas.QueryRow(ctx, "SELECT v FROM "+schema+".precious").Scan(&v); err != nil || v != 42 {
		t.Fatalf("the foreign schema's row: %d %v", v, err)
	}
	if !exists(t, maint, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1 AND datacl IS NULL)`, database) {
		t.Fatal("the foreign database was dropped or its privileges changed")
	}
}
