package tenantrytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/sqlident"
	"github.com/tenantry/tenantry/pool"
	"github.com/tenantry/tenantry/provision"
	"github.com/tenantry/tenantry/router"
	"github.com/tenantry/tenantry/tenant"
)

// DataPlaneConfig configures NewDataPlane.
type DataPlaneConfig struct {
	// DDL is the application schema (see provision.Config.DDL). Required.
	DDL []string
	// Shards is the number of shard clusters (extra servers named
	// "shard-1", "shard-2", ...). Default 2.
	Shards int
	// MaxConns is the connection budget of every cluster in the catalog.
	// Default 50.
	MaxConns int
	// Pool changes the pool manager's configuration (Catalog and
	// ConfigureConn are set by NewDataPlane). Default none.
	Pool func(*pool.Config)
}

// DataPlane is a complete Tenantry data plane on real PostgreSQL servers: a
// catalog with a primary cluster (the shared server) and shard clusters, its
// cache, a provisioner for DDL, a pool manager and a router. Everything is
// closed and every provisioned tenant dropped at cleanup.
type DataPlane struct {
	Store       *catalog.Store
	Cache       *catalog.Cache
	Provisioner *provision.Provisioner
	Pools       *pool.Manager
	Router      *router.Router
	// Queries counts what the pool manager's connections send: a query,
	// batch, prepare, copy or connect each adds one.
	Queries *QueryCounter
	// Primary names the primary cluster; Shards the shard clusters.
	Primary string
	Shards  []string

	tb       testing.TB
	mu       sync.Mutex
	tenants  []string
	prefix   string
	sequence atomic.Int64
}

// Actor is the catalog actor of the harness's administrative changes.
var Actor = catalog.Actor{Name: "tenantrytest"}

// NewDataPlane builds a data plane for a test. The provisioner's shared
// databases carry a random suffix, so data planes with different DDL can
// share the servers of a test binary.
func NewDataPlane(tb testing.TB, cfg *DataPlaneConfig) *DataPlane {
	tb.Helper()
	c := DataPlaneConfig{}
	if cfg != nil {
		c = *cfg
	}
	if c.Shards == 0 {
		c.Shards = 2
	}
	if c.MaxConns == 0 {
		c.MaxConns = 50
	}
	ctx := tb.Context()
	store, err := catalog.NewStore(Pool(tb, NewDatabase(tb)), nil)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := store.Migrate(ctx); err != nil {
		tb.Fatalf("tenantrytest: catalog migrations: %v", err)
	}
	dp := &DataPlane{Store: store, Queries: &QueryCounter{}, Primary: "main", tb: tb, prefix: randomHex(4)}
	addCluster := func(name string, s *Server, role string) {
		tb.Helper()
		if _, err := store.CreateCluster(ctx, Actor, catalog.Cluster{Name: name, ConnString: s.AdminURL(), Role: role, MaxConns: c.MaxConns}); err != nil {
			tb.Fatalf("tenantrytest: register cluster %s: %v", name, err)
		}
	}
	addCluster(dp.Primary, Shared(tb), catalog.RolePrimary)
	for i := 1; i <= c.Shards; i++ {
		name := fmt.Sprintf("shard-%d", i)
		addCluster(name, Cluster(tb, name), catalog.RoleShard)
		dp.Shards = append(dp.Shards, name)
	}

	suffix := "_" + dp.prefix
	dp.Provisioner, err = provision.New(store, &provision.Config{
		DDL:              c.DDL,
		SharedDatabase:   provision.DefaultSharedDatabase + suffix,
		ShardDatabase:    provision.DefaultShardDatabase + suffix,
		SchemasDatabase:  provision.DefaultSchemasDatabase + suffix,
		TemplateDatabase: provision.DefaultTemplateDatabase + suffix,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { dp.cleanup(suffix) })

	if dp.Cache, err = catalog.NewCache(store, nil); err != nil {
		tb.Fatal(err)
	}
	if err := dp.Cache.Start(ctx); err != nil {
		tb.Fatalf("tenantrytest: catalog cache: %v", err)
	}
	tb.Cleanup(dp.Cache.Stop)

	pc := &pool.Config{Catalog: dp.Cache}
	if c.Pool != nil {
		c.Pool(pc)
	}
	pc.Catalog = dp.Cache
	configure := pc.ConfigureConn
	pc.ConfigureConn = func(k pool.Key, cc *pgx.ConnConfig) error {
		cc.Tracer = dp.Queries
		if configure != nil {
			return configure(k, cc)
		}
		return nil
	}
	if dp.Pools, err = pool.New(pc); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(dp.Pools.Close)
	if dp.Router, err = router.New(dp.Cache, dp.Pools, nil); err != nil {
		tb.Fatal(err)
	}
	return dp
}

// Tenant creates a tenant with a fresh slug starting with prefix in the
// catalog, provisions it on model (on cluster, when not ""), and waits until
// the cache knows its placement. It is deprovisioned at cleanup.
func (dp *DataPlane) Tenant(prefix string, model tenant.Model, cluster string) *tenant.Tenant {
	dp.tb.Helper()
	ctx := dp.tb.Context()
	slug := fmt.Sprintf("%s-%s-%d", prefix, dp.prefix, dp.sequence.Add(1))
	_, err := dp.Store.CreateTenant(ctx, Actor, catalog.NewTenant{
		Slug:      slug,
		Placement: tenant.Placement{Model: model, Cluster: cluster},
		Labels:    map[string]string{provision.ModelLabel: string(model)},
	})
	if err != nil {
		dp.tb.Fatalf("tenantrytest: create tenant %s: %v", slug, err)
	}
	dp.mu.Lock()
	dp.tenants = append(dp.tenants, slug)
	dp.mu.Unlock()
	res, err := dp.Provisioner.Provision(ctx, Actor, slug)
	if err != nil {
		dp.tb.Fatalf("tenantrytest: provision %s: %v", slug, err)
	}
	return dp.WaitCached(res.Tenant)
}

// WaitCached waits until the cache holds t at its version (or later) and
// returns the cached tenant.
func (dp *DataPlane) WaitCached(t *tenant.Tenant) *tenant.Tenant {
	dp.tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := dp.Cache.ByID(t.ID); err == nil && c.Version >= t.Version {
			return c
		}
		if time.Now().After(deadline) {
			dp.tb.Fatalf("tenantrytest: tenant %s (version %d) not in the catalog cache after 10s", t.Slug, t.Version)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// AppConnConfig returns the connection configuration of database on
// cluster as the runtime role, the way the pool manager connects, for
// tests that need a raw connection outside the router.
func (dp *DataPlane) AppConnConfig(cluster, database string) *pgx.ConnConfig {
	dp.tb.Helper()
	cl, err := dp.Store.Cluster(dp.tb.Context(), cluster)
	if err != nil {
		dp.tb.Fatal(err)
	}
	cc, err := pgx.ParseConfig(cl.ConnString)
	if err != nil {
		dp.tb.Fatal(err)
	}
	cc.Database, cc.User = database, provision.AppRole
	return cc
}

// cleanup deprovisions every tenant and drops the shared databases.
func (dp *DataPlane) cleanup(suffix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dp.mu.Lock()
	slugs := dp.tenants
	dp.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, s := range slugs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := dp.Provisioner.Deprovision(ctx, Actor, s); err != nil {
				dp.tb.Errorf("tenantrytest: deprovision %s: %v", s, err)
			}
		})
	}
	wg.Wait()
	dp.Provisioner.Close()
	for _, name := range append([]string{dp.Primary}, dp.Shards...) {
		cl, err := dp.Store.Cluster(ctx, name)
		if err != nil {
			continue
		}
		conn, err := pgx.Connect(ctx, cl.ConnString)
		if err != nil {
			dp.tb.Errorf("tenantrytest: cleanup on %s: %v", name, err)
			continue
		}
		for _, db := range []string{provision.DefaultSharedDatabase, provision.DefaultShardDatabase, provision.DefaultSchemasDatabase, provision.DefaultTemplateDatabase} {
			q := sqlident.MustQuote(db + suffix)
			if db == provision.DefaultTemplateDatabase {
				_, _ = conn.Exec(ctx, "ALTER DATABASE "+q+" WITH IS_TEMPLATE false")
			}
			if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+q+" WITH (FORCE)"); err != nil {
				dp.tb.Errorf("tenantrytest: drop %s on %s: %v", db+suffix, name, err)
			}
		}
		conn.Close(ctx)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// QueryCounter is a pgx tracer that counts what connections send to the
// server: queries, batches, prepares, copies and connection attempts. Set it
// as pgx.ConnConfig.Tracer (pool.Config.ConfigureConn) to prove that a code
// path sent nothing.
type QueryCounter struct{ n atomic.Int64 }

// Count returns the number of operations seen so far.
func (c *QueryCounter) Count() int64 { return c.n.Load() }

func (c *QueryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *QueryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *QueryCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *QueryCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *QueryCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}
func (c *QueryCounter) TracePrepareStart(ctx context.Context, _ *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *QueryCounter) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}
func (c *QueryCounter) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *QueryCounter) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}
func (c *QueryCounter) TraceConnectStart(ctx context.Context, _ pgx.TraceConnectStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *QueryCounter) TraceConnectEnd(context.Context, pgx.TraceConnectEndData) {}

var (
	_ pgx.QueryTracer    = (*QueryCounter)(nil)
	_ pgx.BatchTracer    = (*QueryCounter)(nil)
	_ pgx.PrepareTracer  = (*QueryCounter)(nil)
	_ pgx.CopyFromTracer = (*QueryCounter)(nil)
	_ pgx.ConnectTracer  = (*QueryCounter)(nil)
)
