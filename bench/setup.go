package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/sqlident"
	"github.com/tenantry/tenantry/notes"
	"github.com/tenantry/tenantry/pool"
	"github.com/tenantry/tenantry/provision"
	"github.com/tenantry/tenantry/router"
	"github.com/tenantry/tenantry/tenant"
)

// Names of what the benchmark creates. They are fixed, so that a second run
// finds the tenants of the first and skips provisioning.
const (
	catalogDatabase  = "tenantry_bench_catalog"
	baselineDatabase = "tenantry_bench_baseline"
	baselineRole     = "tenantry_bench_baseline"
	primaryCluster   = "main"
)

var provisionNames = provision.Config{
	SharedDatabase:   "tenantry_bench_shared",
	ShardDatabase:    "tenantry_bench_shard",
	SchemasDatabase:  "tenantry_bench_schemas",
	TemplateDatabase: "tenantry_bench_template",
}

var actor = catalog.Actor{Name: "bench"}

// benchTenant is a tenant and the IDs of its notes.
type benchTenant struct {
	t     *tenant.Tenant
	notes []string
}

// stack is the data plane under test and the baseline beside it.
type stack struct {
	cfg     *Config
	admin   *pgxpool.Pool // primary, maintenance database
	store   *catalog.Store
	cache   *catalog.Cache
	prov    *provision.Provisioner
	pools   *pool.Manager
	router  *router.Router
	tenants map[tenant.Model][]*benchTenant
	// baselines are the single-tenant baselines by cluster: each model is
	// compared with the baseline on the server its tenants are on, so that
	// both sides share the server's processes and caches.
	baselines map[string]*baselineDB

	closers []func()
}

func (s *stack) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

func withDatabase(url, database string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("bench: connection string: %w", err)
	}
	cfg.ConnConfig.Database = database
	return cfg, nil
}

func openPool(ctx context.Context, cfg *pgxpool.Config) (*pgxpool.Pool, error) {
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := p.Ping(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// createDatabase creates database name on the admin pool's server if missing.
func createDatabase(ctx context.Context, admin *pgxpool.Pool, name string) error {
	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err := admin.Exec(ctx, "CREATE DATABASE "+sqlident.MustQuote(name)+" TEMPLATE template0")
	return err
}

// setup builds the stack: catalog, clusters, tenants provisioned and seeded,
// router, and the baseline database.
func setup(ctx context.Context, cfg *Config) (_ *stack, err error) {
	s := &stack{cfg: cfg, tenants: map[tenant.Model][]*benchTenant{}, baselines: map[string]*baselineDB{}}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	log := cfg.Logger
	pc, err := pgxpool.ParseConfig(cfg.PrimaryURL)
	if err != nil {
		return nil, fmt.Errorf("bench: PrimaryURL: %w", err)
	}
	if s.admin, err = openPool(ctx, pc); err != nil {
		return nil, fmt.Errorf("bench: connect to primary: %w", err)
	}
	s.closers = append(s.closers, s.admin.Close)

	// Catalog.
	if err := createDatabase(ctx, s.admin, catalogDatabase); err != nil {
		return nil, fmt.Errorf("bench: catalog database: %w", err)
	}
	cc, err := withDatabase(cfg.PrimaryURL, catalogDatabase)
	if err != nil {
		return nil, err
	}
	cp, err := openPool(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("bench: catalog: %w", err)
	}
	s.closers = append(s.closers, cp.Close)
	if s.store, err = catalog.NewStore(cp, nil); err != nil {
		return nil, err
	}
	if _, err := s.store.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("bench: catalog migrations: %w", err)
	}
	clusters := []catalog.Cluster{{Name: primaryCluster, ConnString: cfg.PrimaryURL, Role: catalog.RolePrimary, MaxConns: cfg.Budget}}
	for i, u := range cfg.ShardURLs {
		clusters = append(clusters, catalog.Cluster{Name: fmt.Sprintf("shard-%d", i+1), ConnString: u, Role: catalog.RoleShard, MaxConns: cfg.Budget})
	}
	for _, c := range clusters {
		if _, err := s.store.CreateCluster(ctx, actor, c); err != nil && !errors.Is(err, catalog.ErrExists) {
			return nil, fmt.Errorf("bench: register cluster %s: %w", c.Name, err)
		}
	}

	// Provisioning.
	pcfg := provisionNames
	pcfg.DDL = notes.DDL()
	if s.prov, err = provision.New(s.store, &pcfg); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.prov.Close)
	began := time.Now()
	var slugs []string
	models := map[string]tenant.Model{}
	for _, m := range cfg.Models {
		for i := range cfg.Tenants[m] {
			slugs = append(slugs, slug(m, i))
			models[slug(m, i)] = m
		}
	}
	if err := parallel(ctx, 4, slugs, func(ctx context.Context, sl string) error {
		m := models[sl]
		_, err := s.store.CreateTenant(ctx, actor, catalog.NewTenant{Slug: sl, Placement: tenant.Placement{Model: m},
			Labels: map[string]string{provision.ModelLabel: string(m)}})
		if err != nil && !errors.Is(err, catalog.ErrExists) {
			return err
		}
		_, err = s.prov.Provision(ctx, actor, sl)
		return err
	}); err != nil {
		return nil, fmt.Errorf("bench: provisioning: %w", err)
	}
	log.Info("tenants provisioned", "tenants", len(slugs), "elapsed", time.Since(began))

	// Data plane.
	if s.cache, err = catalog.NewCache(s.store, nil); err != nil {
		return nil, err
	}
	if err := s.cache.Start(ctx); err != nil {
		return nil, fmt.Errorf("bench: catalog cache: %w", err)
	}
	s.closers = append(s.closers, s.cache.Stop)
	s.pools, err = pool.New(&pool.Config{
		Catalog: s.cache,
		MaxConnsPerPool: func(k pool.Key, budget int) int {
			if k.Database == pcfg.SharedDatabase || k.Database == pcfg.ShardDatabase || k.Database == pcfg.SchemasDatabase {
				return budget // one database serves every tenant of the model
			}
			return cfg.TenantDBConns
		},
	})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.pools.Close)
	if s.router, err = router.New(s.cache, s.pools, nil); err != nil {
		return nil, err
	}

	// Notes of every tenant, seeded through the router.
	began = time.Now()
	var mu sync.Mutex
	if err := parallel(ctx, 8, slugs, func(ctx context.Context, sl string) error {
		t, err := s.cache.BySlug(sl)
		if err != nil {
			return fmt.Errorf("tenant %s not in cache: %w", sl, err)
		}
		ids, err := seed(tenant.NewContext(ctx, t, "bench"), s.router, cfg.NotesPerTenant)
		if err != nil {
			return fmt.Errorf("seed %s: %w", sl, err)
		}
		mu.Lock()
		s.tenants[t.Placement.Model] = append(s.tenants[t.Placement.Model], &benchTenant{t: t, notes: ids})
		mu.Unlock()
		return nil
	}); err != nil {
		return nil, fmt.Errorf("bench: seeding: %w", err)
	}
	log.Info("notes seeded", "elapsed", time.Since(began))

	for _, c := range clusters {
		b, err := s.setupBaseline(ctx, c.ConnString)
		if err != nil {
			return nil, fmt.Errorf("bench: baseline on %s: %w", c.Name, err)
		}
		s.baselines[c.Name] = b
	}
	return s, nil
}

// seed makes sure the tenant of ctx has n notes and returns their IDs.
func seed(ctx context.Context, r *router.Router, n int) ([]string, error) {
	var ids []string
	err := r.Tx(ctx, func(ctx context.Context, tx router.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id::text FROM notes ORDER BY id LIMIT $1`, n)
		if err != nil {
			return err
		}
		if ids, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		for len(ids) < n {
			id := uuid.Must(uuid.NewV7()).String()
			if _, err := tx.Exec(ctx, `INSERT INTO notes (id, title, body) VALUES ($1, $2, $3)`, id, "note "+id[:8], noteBody); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	return ids, err
}

const noteBody = "A note of the benchmark, about as long as a short note in a real application."

// baselineDB is the single-tenant baseline on one server: its own database
// with the same table, read by a plain login role.
type baselineDB struct {
	pool *pgxpool.Pool
	ids  []string
}

// setupBaseline creates the baseline on the server of url.
func (s *stack) setupBaseline(ctx context.Context, url string) (*baselineDB, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	admin, err := openPool(ctx, pc)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if err := createDatabase(ctx, admin, baselineDatabase); err != nil {
		return nil, err
	}
	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`, baselineRole).Scan(&exists); err != nil {
		return nil, err
	}
	if !exists {
		if _, err := admin.Exec(ctx, "CREATE ROLE "+sqlident.MustQuote(baselineRole)+" LOGIN NOSUPERUSER NOBYPASSRLS"); err != nil {
			return nil, err
		}
	}
	ac, err := withDatabase(url, baselineDatabase)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, ac.ConnConfig)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var hasTable bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('public.notes') IS NOT NULL`).Scan(&hasTable); err != nil {
		return nil, err
	}
	if !hasTable {
		for _, stmt := range notes.DDL() {
			if _, err := conn.Exec(ctx, stmt); err != nil {
				return nil, err
			}
		}
		if _, err := conn.Exec(ctx, "GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO "+sqlident.MustQuote(baselineRole)); err != nil {
			return nil, err
		}
	}
	// The baseline's one tenant, written explicitly: there is no scope.
	const tenantID = "00000000-0000-4000-8000-000000000001"
	b := &baselineDB{}
	rows, err := conn.Query(ctx, `SELECT id::text FROM notes ORDER BY id LIMIT $1`, s.cfg.NotesPerTenant)
	if err != nil {
		return nil, err
	}
	if b.ids, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return nil, err
	}
	for len(b.ids) < s.cfg.NotesPerTenant {
		id := uuid.Must(uuid.NewV7()).String()
		if _, err := conn.Exec(ctx, `INSERT INTO notes (tenant_id, id, title, body) VALUES ($1, $2, $3, $4)`, tenantID, id, "note "+id[:8], noteBody); err != nil {
			return nil, err
		}
		b.ids = append(b.ids, id)
	}
	bc, err := withDatabase(url, baselineDatabase)
	if err != nil {
		return nil, err
	}
	bc.ConnConfig.User = baselineRole
	bc.MaxConns = int32(2 * s.cfg.Clients)
	if b.pool, err = openPool(ctx, bc); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, b.pool.Close)
	return b, nil
}

// drop removes everything setup made.
func (s *stack) drop(ctx context.Context) error {
	var slugs []string
	for _, ts := range s.tenants {
		for _, t := range ts {
			slugs = append(slugs, t.t.Slug)
		}
	}
	if err := parallel(ctx, 4, slugs, func(ctx context.Context, sl string) error {
		if err := s.prov.Deprovision(ctx, actor, sl); err != nil {
			return err
		}
		return s.store.DeleteTenant(ctx, actor, sl)
	}); err != nil {
		return err
	}
	s.close()
	admin, err := pgxpool.New(ctx, s.cfg.PrimaryURL)
	if err != nil {
		return err
	}
	defer admin.Close()
	_, _ = admin.Exec(ctx, "ALTER DATABASE "+sqlident.MustQuote(provisionNames.TemplateDatabase)+" WITH IS_TEMPLATE false")
	for _, db := range []string{catalogDatabase, provisionNames.SharedDatabase, provisionNames.SchemasDatabase, provisionNames.TemplateDatabase} {
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+sqlident.MustQuote(db)+" WITH (FORCE)"); err != nil {
			return err
		}
	}
	for _, u := range append([]string{s.cfg.PrimaryURL}, s.cfg.ShardURLs...) {
		sp, err := pgxpool.New(ctx, u)
		if err != nil {
			return err
		}
		_, err = sp.Exec(ctx, "DROP DATABASE IF EXISTS "+sqlident.MustQuote(provisionNames.ShardDatabase)+" WITH (FORCE)")
		if err == nil {
			_, err = sp.Exec(ctx, "DROP DATABASE IF EXISTS "+sqlident.MustQuote(baselineDatabase)+" WITH (FORCE)")
		}
		if err == nil {
			_, err = sp.Exec(ctx, "DROP ROLE IF EXISTS "+sqlident.MustQuote(baselineRole))
		}
		sp.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func slug(m tenant.Model, i int) string {
	short := map[tenant.Model]string{tenant.ModelShared: "shared", tenant.ModelSharded: "sharded", tenant.ModelSchema: "schema", tenant.ModelDatabase: "db"}
	return fmt.Sprintf("bench-%s-%04d", short[m], i+1)
}

// parallel runs fn for every item with at most n at once; it stops at the
// first error.
func parallel(ctx context.Context, n int, items []string, fn func(context.Context, string) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan string)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for it := range work {
				if err := fn(ctx, it); err != nil {
					cancel(fmt.Errorf("%s: %w", it, err))
				}
			}
		})
	}
	for _, it := range items {
		select {
		case work <- it:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	return context.Cause(ctx)
}
