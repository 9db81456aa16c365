package migrate_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/sqlident"
	"github.com/tenantry/tenantry/migrate"
	"github.com/tenantry/tenantry/tenant"
	"github.com/tenantry/tenantry/tenantrytest"
)

// The test application schema: notes, and step_effect, a table each step
// with side effects appends to, so that a test can count how often a step
// ran on a target.
const (
	sqlNotes = `-- migrate:mode tx
CREATE TABLE notes (
    tenant_id  uuid NOT NULL,
    id         bigint NOT NULL,
    body       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE step_effect (
    tenant_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    id        bigint GENERATED ALWAYS AS IDENTITY,
    version   integer NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
`
	// 0002: add a column with a constant default (no rewrite), and a
	// nullable one for the backfill.
	sqlStatus = `-- migrate:mode tx
ALTER TABLE notes ADD COLUMN status text NOT NULL DEFAULT 'draft', ADD COLUMN words integer, ADD COLUMN touched integer NOT NULL DEFAULT 0;
INSERT INTO step_effect (version) VALUES (2);
`
	// 0003: build an index without blocking writes.
	sqlIndex = `-- migrate:mode no-tx
CREATE INDEX CONCURRENTLY IF NOT EXISTS notes_status_idx ON notes (tenant_id, status);
INSERT INTO step_effect (version) VALUES (3);
`
	// 0004: batched backfill; touched counts how often a row was filled.
	sqlWords = `-- migrate:mode batch
UPDATE notes SET words = array_length(regexp_split_to_array(body, '\s+'), 1), touched = touched + 1
WHERE ctid IN (SELECT ctid FROM notes WHERE words IS NULL LIMIT 7);
`
)

// appFS returns the test migrations; extra files are added or replace
// others.
func appFS(extra map[string]string) fs.FS {
	m := fstest.MapFS{
		"0001_notes.sql":  {Data: []byte(sqlNotes)},
		"0002_status.sql": {Data: []byte(sqlStatus)},
		"0003_index.sql":  {Data: []byte(sqlIndex)},
		"0004_words.sql":  {Data: []byte(sqlWords)},
		"README.md":       {Data: []byte("not a migration")},
	}
	for name, body := range extra {
		if body == "" {
			delete(m, name)
			continue
		}
		m[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return m
}

func loadSource(t testing.TB, extra map[string]string) *migrate.Source {
	t.Helper()
	src, err := migrate.Load(appFS(extra))
	if err != nil {
		t.Fatal(err)
	}
	return src
}

var actor = catalog.Actor{Name: "migrate-test"}

// fleet is a catalog with clusters and tenants of every model, created by
// hand following the data-plane contract (owner role, tenant tables with
// tenant_id leading the primary key, forced row-level security in shared
// databases, a sealed template database cloned for tenant databases). Its
// database names carry a random prefix so fleets of parallel tests share
// the servers.
type fleet struct {
	t           testing.TB
	prefix      string
	store       *catalog.Store
	catalogPool *pgxpool.Pool
	catalogURL  string
	src         *migrate.Source
	main        *tenantrytest.Server
	shard       *tenantrytest.Server
	admin       map[string]*pgxpool.Pool // cluster -> maintenance pool

	mu        sync.Mutex
	databases map[string][]string // cluster -> databases to drop
	tenants   []*tenant.Tenant
	made      map[string]*sync.Once // databases created (or being created)
}

const ownerRole = "tenantry_owner"

func newFleet(t testing.TB, withShard bool) *fleet {
	t.Helper()
	ctx := context.Background()
	var b [4]byte
	_, _ = rand.Read(b[:])
	f := &fleet{
		t: t, prefix: "m" + hex.EncodeToString(b[:]), main: tenantrytest.Shared(t),
		admin: map[string]*pgxpool.Pool{}, databases: map[string][]string{}, made: map[string]*sync.Once{},
	}
	f.catalogURL = tenantrytest.NewDatabase(t)
	f.catalogPool = tenantrytest.Pool(t, f.catalogURL)
	var err error
	if f.store, err = catalog.NewStore(f.catalogPool, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f.addCluster("main", f.main, catalog.RolePrimary)
	if withShard {
		f.shard = tenantrytest.Cluster(t, "shard1")
		f.addCluster("shard1", f.shard, catalog.RoleShard)
	}
	t.Cleanup(f.cleanup)
	return f
}

func (f *fleet) addCluster(name string, s *tenantrytest.Server, role string) {
	f.t.Helper()
	ctx := context.Background()
	if _, err := f.store.CreateCluster(ctx, actor, catalog.Cluster{Name: name, ConnString: s.AdminURL(), Role: role}); err != nil {
		f.t.Fatal(err)
	}
	pool := tenantrytest.Pool(f.t, s.AdminURL())
	f.admin[name] = pool
	_, err := pool.Exec(ctx, `DO $$ BEGIN CREATE ROLE tenantry_owner NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`)
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fleet) url(cluster, database string) string {
	if cluster == "shard1" {
		return f.shard.URL(database)
	}
	return f.main.URL(database)
}

func (f *fleet) name(suffix string) string { return f.prefix + "_" + suffix }

// once runs create for cluster/database once; concurrent callers wait for
// it. It reports whether this call ran it.
func (f *fleet) once(cluster, database string, create func()) bool {
	f.mu.Lock()
	o := f.made[cluster+"/"+database]
	if o == nil {
		o = &sync.Once{}
		f.made[cluster+"/"+database] = o
	}
	f.mu.Unlock()
	ran := false
	o.Do(func() { ran = true; create() })
	return ran
}

// createDatabase creates database on cluster (owned by the owner role) once.
func (f *fleet) createDatabase(cluster, database, template string) {
	f.t.Helper()
	f.once(cluster, database, func() {
		f.mu.Lock()
		f.databases[cluster] = append(f.databases[cluster], database)
		f.mu.Unlock()
		f.createDatabaseNow(cluster, database, template)
	})
}

func (f *fleet) createDatabaseNow(cluster, database, template string) {
	f.t.Helper()
	sql := "CREATE DATABASE " + sqlident.MustQuote(database) + " OWNER " + ownerRole
	if template != "" {
		sql += " TEMPLATE " + sqlident.MustQuote(template)
	}
	for attempt := 0; ; attempt++ {
		_, err := f.admin[cluster].Exec(context.Background(), sql)
		// Concurrent clones of one template can collide on the template's
		// lock ("source database is being accessed"); retry.
		if err != nil && attempt < 50 && strings.Contains(err.Error(), "being accessed by other users") {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err != nil {
			f.t.Fatalf("create database %s: %v", database, err)
		}
		return
	}
}

// buildSchema creates schema in database at version v of the source, as
// the owner, with forced row-level security when secure is set.
func (f *fleet) buildSchema(cluster, database, schema string, v int, secure bool) {
	f.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, f.url(cluster, database))
	if err != nil {
		f.t.Fatal(err)
	}
	defer conn.Close(ctx)
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+sqlident.MustQuote(schema)+" AUTHORIZATION "+ownerRole+"; SET LOCAL ROLE "+ownerRole); err != nil {
			return err
		}
		if _, err := migrate.Build(ctx, tx, schema, f.src.Until(v)); err != nil {
			return err
		}
		if !secure {
			return nil
		}
		for _, table := range []string{"notes", "step_effect"} {
			q := sqlident.MustQuote(schema) + "." + table
			if _, err := tx.Exec(ctx, `ALTER TABLE `+q+` ENABLE ROW LEVEL SECURITY; ALTER TABLE `+q+` FORCE ROW LEVEL SECURITY;
CREATE POLICY tenantry_tenant ON `+q+` USING (tenant_id = NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid)`); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		f.t.Fatalf("build %s/%s/%s: %v", cluster, database, schema, err)
	}
}

// template creates the sealed template database at version v.
func (f *fleet) template(v int) string {
	f.t.Helper()
	name := f.name("tpl")
	f.once("main", name, func() {
		f.mu.Lock()
		f.databases["main"] = append(f.databases["main"], name)
		f.mu.Unlock()
		f.createDatabaseNow("main", name, "")
		f.buildSchema("main", name, "app", v, false)
		if _, err := f.admin["main"].Exec(context.Background(), "ALTER DATABASE "+name+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
			f.t.Fatal(err)
		}
	})
	return name
}

// templates is the engine's template configuration for this fleet.
func (f *fleet) templates() []migrate.TemplateRef {
	return []migrate.TemplateRef{{Database: f.name("tpl"), Schema: "app", IsDatabase: true}}
}

// addTenant creates a tenant of model at version v with rows notes.
func (f *fleet) addTenant(slug string, model tenant.Model, v, rows int) *tenant.Tenant {
	f.t.Helper()
	p := tenant.Placement{Model: model, Cluster: "main"}
	switch model {
	case tenant.ModelShared:
		p.Database, p.Schema = f.name("shared"), "app"
		f.shared("main", p.Database, v)
	case tenant.ModelSharded:
		p.Cluster, p.Database, p.Schema = "shard1", f.name("shard"), "app"
		f.shared("shard1", p.Database, v)
	case tenant.ModelSchema:
		p.Database, p.Schema = f.name("schemas"), "t_"+strings.ReplaceAll(slug, "-", "_")
		f.createDatabase("main", p.Database, "")
		f.buildSchema("main", p.Database, p.Schema, v, false)
	case tenant.ModelDatabase:
		p.Database, p.Schema = f.name("t_"+strings.ReplaceAll(slug, "-", "_")), "app"
		f.createDatabase("main", p.Database, f.template(v))
	}
	tn, err := f.store.CreateTenant(context.Background(), actor, catalog.NewTenant{Slug: slug, Placement: p})
	if err != nil {
		f.t.Fatal(err)
	}
	f.seed(tn, rows)
	f.mu.Lock()
	f.tenants = append(f.tenants, tn)
	f.mu.Unlock()
	return tn
}

// shared creates a shared (or shard) database with its schema once.
func (f *fleet) shared(cluster, database string, v int) {
	f.once(cluster, database, func() {
		f.mu.Lock()
		f.databases[cluster] = append(f.databases[cluster], database)
		f.mu.Unlock()
		f.createDatabaseNow(cluster, database, "")
		f.buildSchema(cluster, database, "app", v, true)
	})
}

func (f *fleet) seed(tn *tenant.Tenant, rows int) {
	f.t.Helper()
	if rows == 0 {
		return
	}
	err := f.withTarget(tn.Placement.Cluster, tn.Placement.Database, tn.Placement.Schema, func(conn *pgx.Conn) error {
		_, err := conn.Exec(context.Background(), `INSERT INTO notes (tenant_id, id, body)
SELECT $1, g, 'note number ' || g || ' of the tenant' FROM generate_series(1, $2) g`, tn.ID, rows)
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// withTarget runs fn on a superuser connection to the target with its
// schema as search_path.
func (f *fleet) withTarget(cluster, database, schema string, fn func(*pgx.Conn) error) error {
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(f.url(cluster, database))
	if err != nil {
		return err
	}
	cfg.RuntimeParams["search_path"] = sqlident.MustQuote(schema)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return fn(conn)
}

// engine returns an engine over the fleet's catalog, with short timeouts
// unless cfg says otherwise.
func (f *fleet) engine(cfg *migrate.Config) *migrate.Engine {
	f.t.Helper()
	c := migrate.Config{}
	if cfg != nil {
		c = *cfg
	}
	if c.Source == nil {
		c.Source = f.src
	}
	if c.Templates == nil {
		c.Templates = f.templates()
	}
	if c.LockTimeout == 0 {
		c.LockTimeout = 200 * time.Millisecond
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 20 * time.Millisecond
	}
	if c.TargetLockWait == 0 {
		c.TargetLockWait = 20 * time.Second
	}
	e, err := migrate.New(f.store, &c)
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

// targetState is what a target's own tables say.
type targetState struct {
	version   int
	effects   map[int]int // step_effect rows by version
	maxTouch  int         // most times a note was backfilled
	unfilled  int         // notes without words
	notes     int
	indexOK   bool // notes_status_idx exists and is valid
	indexSeen bool
}

func (f *fleet) inspect(cluster, database, schema string) targetState {
	f.t.Helper()
	var st targetState
	st.effects = map[int]int{}
	err := f.withTarget(cluster, database, schema, func(conn *pgx.Conn) error {
		ctx := context.Background()
		var err error
		if st.version, err = migrate.ReadVersion(ctx, conn); err != nil {
			return err
		}
		rows, err := conn.Query(ctx, `SELECT version, count(*) FROM step_effect GROUP BY 1`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var v, n int
			if err := rows.Scan(&v, &n); err != nil {
				return err
			}
			st.effects[v] = n
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if st.version >= 2 {
			if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE words IS NULL), COALESCE(max(touched), 0) FROM notes`).Scan(&st.notes, &st.unfilled, &st.maxTouch); err != nil {
				return err
			}
		}
		err = conn.QueryRow(ctx, `SELECT true, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = 'notes_status_idx'`, schema).Scan(&st.indexSeen, &st.indexOK)
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil
		}
		return err
	})
	if err != nil {
		f.t.Fatalf("inspect %s/%s/%s: %v", cluster, database, schema, err)
	}
	return st
}

// assertAtHead checks every tenant's target: at head, each side effect
// exactly once, every note backfilled exactly once, the index valid.
func (f *fleet) assertAtHead(t testing.TB) {
	t.Helper()
	head := f.src.Head()
	seen := map[string]bool{}
	for _, tn := range f.tenants {
		p := tn.Placement
		key := p.Cluster + "/" + p.Database + "/" + p.Schema
		if seen[key] {
			continue
		}
		seen[key] = true
		st := f.inspect(p.Cluster, p.Database, p.Schema)
		if st.version != head {
			t.Errorf("%s: version %d, want %d", key, st.version, head)
		}
		for _, v := range []int{2, 3} {
			if st.effects[v] != 1 {
				t.Errorf("%s: step %d ran %d times", key, v, st.effects[v])
			}
		}
		if st.unfilled != 0 || st.notes > 0 && st.maxTouch != 1 {
			t.Errorf("%s: %d of %d notes unfilled, a note was backfilled %d times", key, st.unfilled, st.notes, st.maxTouch)
		}
		if !st.indexSeen || !st.indexOK {
			t.Errorf("%s: index notes_status_idx seen=%v valid=%v", key, st.indexSeen, st.indexOK)
		}
		v, err := migrate.TenantVersion(context.Background(), f.catalogPool, tn.ID)
		if err != nil || v != head {
			t.Errorf("%s: TenantVersion = %d, %v; want %d", tn.Slug, v, err, head)
		}
	}
}

func (f *fleet) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for cluster, dbs := range f.databases {
		pool := f.admin[cluster]
		for i := len(dbs) - 1; i >= 0; i-- {
			q := sqlident.MustQuote(dbs[i])
			_, _ = pool.Exec(ctx, "ALTER DATABASE "+q+" WITH IS_TEMPLATE false ALLOW_CONNECTIONS true")
			if _, err := pool.Exec(ctx, "DROP DATABASE IF EXISTS "+q+" WITH (FORCE)"); err != nil {
				f.t.Errorf("drop %s: %v", dbs[i], err)
			}
		}
	}
}

// standardFleet is a fleet with tenants of all four models at version 1:
// two shared, two sharded, schemas and databases.
func standardFleet(t testing.TB, schemas, databases int) *fleet {
	t.Helper()
	f := newFleet(t, true)
	f.src = loadSource(t, nil)
	f.addTenant("sh-a", tenant.ModelShared, 1, 20)
	f.addTenant("sh-b", tenant.ModelShared, 1, 20)
	f.addTenant("sd-a", tenant.ModelSharded, 1, 20)
	f.addTenant("sd-b", tenant.ModelSharded, 1, 20)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range schemas {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			f.addTenant(fmt.Sprintf("sc-%d", i), tenant.ModelSchema, 1, 20)
		})
	}
	f.template(1)
	for i := range databases {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			f.addTenant(fmt.Sprintf("db-%d", i), tenant.ModelDatabase, 1, 20)
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return f
}
