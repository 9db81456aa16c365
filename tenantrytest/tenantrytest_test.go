package tenantrytest_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/tenantrytest"
)

func exists(t *testing.T, pool *pgxpool.Pool, sql, name string) bool {
	t.Helper()
	var ok bool
	if err := pool.QueryRow(context.Background(), sql, name).Scan(&ok); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return ok
}

const (
	databaseExists = "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)"
	schemaExists   = "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)"
)

func databaseName(t *testing.T, url string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

func TestNewDatabase(t *testing.T) {
	t.Parallel()

	t.Run("Isolated", func(t *testing.T) {
		t.Parallel()
		a := tenantrytest.Pool(t, tenantrytest.NewDatabase(t))
		b := tenantrytest.Pool(t, tenantrytest.NewDatabase(t))
		if _, err := a.Exec(t.Context(), "CREATE TABLE only_in_a (id int)"); err != nil {
			t.Fatal(err)
		}
		_, err := b.Exec(t.Context(), "SELECT FROM only_in_a")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
			t.Fatalf("table of database a seen from b: err = %v", err)
		}
	})

	t.Run("DroppedAtCleanup", func(t *testing.T) {
		t.Parallel()
		var name string
		t.Run("Inner", func(t *testing.T) {
			url := tenantrytest.NewDatabase(t)
			name = databaseName(t, url)
			// An open connection must not keep the database alive.
			conn, err := pgx.Connect(t.Context(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close(context.Background()) })
			_ = conn
		})
		admin := tenantrytest.Pool(t, tenantrytest.ServerURL(t))
		if !strings.HasPrefix(name, "tt_") {
			t.Fatalf("database name %q", name)
		}
		if exists(t, admin, databaseExists, name) {
			t.Fatalf("database %s still exists after cleanup", name)
		}
	})

	t.Run("ManyConcurrent", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		seen := map[string]bool{}
		for i := range 8 {
			t.Run("", func(t *testing.T) {
				t.Parallel()
				name := databaseName(t, tenantrytest.NewDatabase(t))
				mu.Lock()
				defer mu.Unlock()
				if seen[name] {
					t.Errorf("database name %s handed out twice (i=%d)", name, i)
				}
				seen[name] = true
			})
		}
	})
}

func TestNewSchema(t *testing.T) {
	t.Parallel()
	pool := tenantrytest.Pool(t, tenantrytest.NewDatabase(t))
	var name string
	t.Run("Inner", func(t *testing.T) {
		name = tenantrytest.NewSchema(t, pool)
		if !exists(t, pool, schemaExists, name) {
			t.Fatalf("schema %s not created", name)
		}
		if _, err := pool.Exec(t.Context(), `CREATE TABLE "`+name+`".t (id int)`); err != nil {
			t.Fatal(err)
		}
	})
	if exists(t, pool, schemaExists, name) {
		t.Fatalf("schema %s still exists after cleanup", name)
	}
}

func TestPoolSearchPath(t *testing.T) {
	t.Parallel()
	url := tenantrytest.NewDatabase(t)
	setup := tenantrytest.Pool(t, url)
	schema := tenantrytest.NewSchema(t, setup)
	if _, err := setup.Exec(t.Context(), `CREATE TABLE public.pub (id int); CREATE TABLE "`+schema+`".mine (id int)`); err != nil {
		t.Fatal(err)
	}

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		pool := tenantrytest.Pool(t, url, tenantrytest.WithSearchPath())
		if _, err := pool.Exec(t.Context(), "SELECT FROM pub"); err == nil {
			t.Fatal("unqualified table found with an empty search_path")
		}
		if _, err := pool.Exec(t.Context(), "SELECT FROM public.pub"); err != nil {
			t.Fatalf("qualified table: %v", err)
		}
	})

	t.Run("Schema", func(t *testing.T) {
		t.Parallel()
		pool := tenantrytest.Pool(t, url, tenantrytest.WithSearchPath(schema))
		if _, err := pool.Exec(t.Context(), "SELECT FROM mine"); err != nil {
			t.Fatalf("table in search_path: %v", err)
		}
		if _, err := pool.Exec(t.Context(), "SELECT FROM pub"); err == nil {
			t.Fatal("public visible with search_path set to another schema")
		}
	})
}

func TestTestTx(t *testing.T) {
	t.Parallel()
	pool := tenantrytest.Pool(t, tenantrytest.NewDatabase(t))
	if _, err := pool.Exec(t.Context(), "CREATE TABLE t (id int)"); err != nil {
		t.Fatal(err)
	}
	t.Run("Inner", func(t *testing.T) {
		tx := tenantrytest.TestTx(t, pool)
		if _, err := tx.Exec(t.Context(), "INSERT INTO t VALUES (1)"); err != nil {
			t.Fatal(err)
		}
	})
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d rows after the test transaction, want 0 (rolled back)", n)
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	shard1 := tenantrytest.Cluster(t, "shard-1")
	shard2 := tenantrytest.Cluster(t, "shard-2")
	if again := tenantrytest.Cluster(t, "shard-1"); again != shard1 {
		t.Fatal("Cluster(shard-1) started twice")
	}
	ports := map[string]bool{}
	for _, s := range []*tenantrytest.Server{tenantrytest.Shared(t), shard1, shard2} {
		var port string
		pool := tenantrytest.Pool(t, s.AdminURL())
		if err := pool.QueryRow(t.Context(), "SHOW port").Scan(&port); err != nil {
			t.Fatal(err)
		}
		if ports[port] {
			t.Fatalf("two servers on port %s", port)
		}
		ports[port] = true
	}

	// A database made on one server is not on another.
	name := databaseName(t, shard1.NewDatabase(t))
	if !exists(t, tenantrytest.Pool(t, shard1.AdminURL()), databaseExists, name) {
		t.Fatal("database missing on shard-1")
	}
	if exists(t, tenantrytest.Pool(t, shard2.AdminURL()), databaseExists, name) {
		t.Fatal("database of shard-1 found on shard-2")
	}
}

func TestClusterName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", "Shard", "-x", "a b", "a/b", "../x", "x;drop", strings.Repeat("a", 33), "é"} {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			ft := &fatalRecorder{TB: t}
			func() {
				defer func() { _ = recover() }()
				tenantrytest.Cluster(ft, name)
			}()
			if !ft.failed {
				t.Fatalf("Cluster(%q) accepted", name)
			}
		})
	}
}

// fatalRecorder records Fatalf instead of ending the test, which it does by
// panicking out of the helper.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Fatalf(string, ...any) { f.failed = true; panic("fatal") }
