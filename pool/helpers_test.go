package pool_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/sqlident"
	"github.com/tenantry/tenantry/pool"
	"github.com/tenantry/tenantry/tenantrytest"
)

var actor = catalog.Actor{Name: "pool-test", Reason: "test"}

// testBundle is one test's world: a catalog with one cluster (the shared
// test server) and a login role of its own.
type testBundle struct {
	admin   *pgxpool.Pool // superuser, maintenance database
	store   *catalog.Store
	cache   *catalog.Cache
	role    string
	cluster string
}

func uniqueName(prefix string) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// setup registers cluster "main" with the given budget in a fresh catalog.
func setup(t testing.TB, budget int) *testBundle {
	t.Helper()
	ctx := context.Background()
	b := &testBundle{admin: tenantrytest.Pool(t, tenantrytest.ServerURL(t)), cluster: "main"}
	// The role is made before any database so that it is dropped after
	// them (cleanups run last-in first-out).
	b.role = newRole(t, b.admin)
	catURL := tenantrytest.NewDatabase(t)
	store, err := catalog.NewStore(tenantrytest.Pool(t, catURL), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatalf("migrate catalog: %v", err)
	}
	if _, err := store.CreateCluster(ctx, actor, catalog.Cluster{Name: b.cluster, ConnString: tenantrytest.ServerURL(t), MaxConns: budget}); err != nil {
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
	return b
}

// newRole creates a login role like Tenantry's runtime role and drops it at
// cleanup.
func newRole(t testing.TB, admin *pgxpool.Pool) string {
	t.Helper()
	role := uniqueName("tt_rt_")
	q := sqlident.MustQuote(role)
	if _, err := admin.Exec(context.Background(), "CREATE ROLE "+q+" LOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP ROLE IF EXISTS "+q); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	return role
}

// manager opens a Manager on the bundle's catalog.
func (b *testBundle) manager(t testing.TB, cfg *pool.Config) *pool.Manager {
	t.Helper()
	if cfg == nil {
		cfg = &pool.Config{}
	}
	cfg.Catalog = b.cache
	m, err := pool.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// newDatabase creates an empty database and returns its name.
func (b *testBundle) newDatabase(t testing.TB) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(tenantrytest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

func (b *testBundle) key(db string) pool.Key {
	return pool.Key{Cluster: b.cluster, Database: db, Role: b.role}
}

// newDatabases creates n databases from a template holding one table the
// bundle's role may read, four at a time, and drops them at cleanup. It
// returns their names and how long creating them took.
func (b *testBundle) newDatabases(t testing.TB, n int) ([]string, time.Duration) {
	t.Helper()
	ctx := context.Background()
	tpl := b.newDatabase(t)
	tp := tenantrytest.Pool(t, tenantrytest.Shared(t).URL(tpl))
	role := sqlident.MustQuote(b.role)
	if _, err := tp.Exec(ctx, `CREATE SCHEMA app;
CREATE TABLE app.notes (tenant_id uuid NOT NULL, id bigint GENERATED ALWAYS AS IDENTITY, body text NOT NULL, PRIMARY KEY (tenant_id, id));
GRANT USAGE ON SCHEMA app TO `+role+`; GRANT SELECT ON app.notes TO `+role); err != nil {
		t.Fatal(err)
	}
	tp.Close()

	prefix := uniqueName("tt_many_")
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s_%04d", prefix, i)
	}
	start := time.Now()
	err := parallel(4, names, func(name string) error {
		_, err := b.admin.Exec(ctx, "CREATE DATABASE "+sqlident.MustQuote(name)+" TEMPLATE "+sqlident.MustQuote(tpl)+" STRATEGY file_copy")
		return err
	})
	took := time.Since(start)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		err := parallel(4, names, func(name string) error {
			_, err := b.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+sqlident.MustQuote(name)+" WITH (FORCE)")
			return err
		})
		if err != nil {
			t.Errorf("dropping databases: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("creating databases: %v", err)
	}
	return names, took
}

// parallel runs f on every item with n workers and returns the first error.
func parallel(n int, items []string, f func(string) error) error {
	ch := make(chan string)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for it := range ch {
				if err := f(it); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("%s: %w", it, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, it := range items {
		ch <- it
	}
	close(ch)
	wg.Wait()
	return first
}

// backends counts the server backends of role.
func (b *testBundle) backends(t testing.TB, ctx context.Context) int {
	var n int
	if err := b.admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", b.role).Scan(&n); err != nil && ctx.Err() == nil {
		t.Errorf("counting backends: %v", err)
	}
	return n
}

func clusterStats(m *pool.Manager, name string) pool.ClusterStats {
	for _, c := range m.Stats().Clusters {
		if c.Cluster == name {
			return c
		}
	}
	return pool.ClusterStats{}
}

// eventually polls cond for up to 10 seconds.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// use acquires a connection of k, checks it reaches database db, and
// releases it.
func use(ctx context.Context, m *pool.Manager, k pool.Key) error {
	c, err := m.Acquire(ctx, k)
	if err != nil {
		return err
	}
	defer c.Release()
	var db string
	if err := c.Conn().QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		return err
	}
	if db != k.Database {
		return fmt.Errorf("connected to %s, want %s", db, k.Database)
	}
	return nil
}
