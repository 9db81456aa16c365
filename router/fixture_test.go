package router_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/sqlident"
	"github.com/tenantry/tenantry/pool"
	"github.com/tenantry/tenantry/router"
	"github.com/tenantry/tenantry/tenant"
	"github.com/tenantry/tenantry/tenantrytest"
)

// The fixture follows the contract agreed with provisioning, minimally:
// every tenant table has tenant_id uuid NOT NULL leading its primary key;
// shared tables are under FORCEd row-level security on
// NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid; the
// runtime role is NOBYPASSRLS, NOINHERIT, owns nothing and is a member of
// the per-tenant roles, which alone may use their schema or database.

var actor = catalog.Actor{Name: "router-test", Reason: "test"}

const cluster = "main"

// tableSQL creates the notes table in schema s, under row-level security if
// rls is set.
func tableSQL(s string, rls bool) string {
	q := sqlident.MustQuote(s)
	ddl := `CREATE SCHEMA ` + q + `;
CREATE TABLE ` + q + `.notes (
	tenant_id uuid NOT NULL DEFAULT NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid,
	id bigint GENERATED ALWAYS AS IDENTITY,
	body text NOT NULL,
	PRIMARY KEY (tenant_id, id));`
	if !rls {
		return ddl
	}
	return ddl + `
ALTER TABLE ` + q + `.notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE ` + q + `.notes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ` + q + `.notes
	USING (tenant_id = NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid)
	WITH CHECK (tenant_id = NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid);`
}

func grantSQL(schema, role string) string {
	s, r := sqlident.MustQuote(schema), sqlident.MustQuote(role)
	return `GRANT USAGE ON SCHEMA ` + s + ` TO ` + r + `; GRANT SELECT, INSERT, UPDATE, DELETE ON ` + s + `.notes TO ` + r + `;`
}

type testBundle struct {
	admin   *pgxpool.Pool
	store   *catalog.Store
	cache   *catalog.Cache
	pools   *pool.Manager
	router  *router.Router
	runtime string // runtime role
	prefix  string // of per-tenant role names, unique to the test
	appDB   string // database of shared and schema tenants
	appPool *pgxpool.Pool
	tenants map[string]*tenant.Tenant // by slug
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func dbName(t testing.TB, url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

// setup builds the catalog, the runtime role and the shared database;
// tenants are added with addTenant. poolCfg may be nil.
func setup(t testing.TB, poolCfg *pool.Config) *testBundle {
	t.Helper()
	return setupBudget(t, poolCfg, 20)
}

// setupBudget is setup with a cluster budget of budget connections.
func setupBudget(t testing.TB, poolCfg *pool.Config, budget int) *testBundle {
	t.Helper()
	ctx := context.Background()
	b := &testBundle{
		admin:   tenantrytest.Pool(t, tenantrytest.ServerURL(t)),
		prefix:  "tt_" + randHex(4) + "_",
		tenants: map[string]*tenant.Tenant{},
	}
	b.runtime = b.prefix + "app"
	b.createRole(t, b.runtime, "LOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT")

	catURL := tenantrytest.NewDatabase(t)
	store, err := catalog.NewStore(tenantrytest.Pool(t, catURL), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateCluster(ctx, actor, catalog.Cluster{Name: cluster, ConnString: tenantrytest.ServerURL(t), MaxConns: budget}); err != nil {
		t.Fatal(err)
	}
	cache, err := catalog.NewCache(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Stop)
	b.store, b.cache = store, cache

	appURL := tenantrytest.NewDatabase(t)
	b.appDB = dbName(t, appURL)
	b.appPool = tenantrytest.Pool(t, appURL)
	if _, err := b.appPool.Exec(ctx, tableSQL("app", true)+grantSQL("app", b.runtime)); err != nil {
		t.Fatal(err)
	}

	if poolCfg == nil {
		poolCfg = &pool.Config{}
	}
	poolCfg.Catalog = cache
	b.pools, err = pool.New(poolCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.pools.Close)
	b.router, err = router.New(cache, b.pools, &router.Config{RuntimeRole: b.runtime, TenantRole: b.tenantRole})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *testBundle) tenantRole(t *tenant.Tenant) string {
	return b.prefix + strings.ReplaceAll(t.Slug, "-", "_")
}

func (b *testBundle) createRole(t testing.TB, role, options string) {
	t.Helper()
	q := sqlident.MustQuote(role)
	if _, err := b.admin.Exec(context.Background(), "CREATE ROLE "+q+" "+options); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := b.admin.Exec(ctx, "DROP ROLE IF EXISTS "+q); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
}

// addTenant provisions a tenant of model m in state st and waits until the
// cache knows it.
func (b *testBundle) addTenant(t testing.TB, slug string, m tenant.Model, st tenant.State) *tenant.Tenant {
	t.Helper()
	ctx := context.Background()
	p := tenant.Placement{Model: m, Cluster: cluster, Database: b.appDB, Schema: "app"}
	role := b.prefix + strings.ReplaceAll(slug, "-", "_")
	switch m {
	case tenant.ModelSchema:
		p.Schema = "t_" + strings.ReplaceAll(slug, "-", "_")
		b.createRole(t, role, "NOLOGIN")
		if _, err := b.admin.Exec(ctx, "GRANT "+sqlident.MustQuote(role)+" TO "+sqlident.MustQuote(b.runtime)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.appPool.Exec(ctx, tableSQL(p.Schema, false)+grantSQL(p.Schema, role)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = b.appPool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+sqlident.MustQuote(p.Schema)+" CASCADE")
		})
	case tenant.ModelDatabase:
		b.createRole(t, role, "NOLOGIN")
		if _, err := b.admin.Exec(ctx, "GRANT "+sqlident.MustQuote(role)+" TO "+sqlident.MustQuote(b.runtime)); err != nil {
			t.Fatal(err)
		}
		url := tenantrytest.NewDatabase(t)
		p.Database = dbName(t, url)
		dp := tenantrytest.Pool(t, url)
		if _, err := dp.Exec(ctx, tableSQL("app", false)+grantSQL("app", role)); err != nil {
			t.Fatal(err)
		}
		dp.Close()
	}
	tn, err := b.store.CreateTenant(ctx, actor, catalog.NewTenant{Slug: slug, State: st, Placement: p})
	if err != nil {
		t.Fatal(err)
	}
	b.waitCached(t, tn)
	b.tenants[slug] = tn
	return tn
}

func (b *testBundle) waitCached(t testing.TB, tn *tenant.Tenant) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := b.cache.ByID(tn.ID)
		if err == nil && got.Version >= tn.Version {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tenant %s version %d not cached within 10s", tn.Slug, tn.Version)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func ctxFor(tn *tenant.Tenant) context.Context {
	return tenant.NewContext(context.Background(), tn, "test")
}

// scopeSeen is what a transaction sees of its scope.
type scopeSeen struct {
	tenantID, searchPath, user string
	notes                      int
}

func (b *testBundle) see(t testing.TB, tn *tenant.Tenant) scopeSeen {
	t.Helper()
	var s scopeSeen
	err := b.router.ReadTx(ctxFor(tn), func(ctx context.Context, tx router.Tx) error {
		return tx.QueryRow(ctx, `SELECT current_setting('tenantry.tenant_id'), current_setting('search_path'), current_user::text,
			(SELECT count(*) FROM notes)`).Scan(&s.tenantID, &s.searchPath, &s.user, &s.notes)
	})
	if err != nil {
		t.Fatalf("tenant %s: %v", tn.Slug, err)
	}
	return s
}

func (b *testBundle) insert(t testing.TB, tn *tenant.Tenant, body string) {
	t.Helper()
	err := b.router.Tx(ctxFor(tn), func(ctx context.Context, tx router.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO notes (tenant_id, body) VALUES ($1, $2)", tx.Tenant().ID, body)
		return err
	})
	if err != nil {
		t.Fatalf("insert for %s: %v", tn.Slug, err)
	}
}

func (b *testBundle) inUse() int {
	n := 0
	for _, c := range b.pools.Stats().Clusters {
		n += c.InUse
	}
	return n
}

// parallel runs f on every item with n workers and returns the first error.
func parallel(n int, items []string, f func(string) error) error {
	ch := make(chan string)
	errs := make(chan error, len(items))
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for it := range ch {
				if err := f(it); err != nil {
					errs <- fmt.Errorf("%s: %w", it, err)
				}
			}
		})
	}
	for _, it := range items {
		ch <- it
	}
	close(ch)
	wg.Wait()
	close(errs)
	return <-errs
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
