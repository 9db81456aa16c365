package migrate_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math"
	mrand "math/rand"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/sqlident"
	"github.com/tenantry/tenantry/migrate"
	"github.com/tenantry/tenantry/notes"
	"github.com/tenantry/tenantry/pool"
	"github.com/tenantry/tenantry/provision"
	"github.com/tenantry/tenantry/resolve"
	"github.com/tenantry/tenantry/router"
	"github.com/tenantry/tenantry/tenant"
	"github.com/tenantry/tenantry/tenantrytest"
)

// The rollout benchmark (issue 4, item 7). It runs only when
// TENANTRY_MIGRATE_BENCH=1:
//
//	TENANTRY_MIGRATE_BENCH=1 go test -run '^$' -bench FleetRollout -benchtime 1x -timeout 60m ./migrate/
//
// Sizes and load come from the environment (defaults in brackets):
// TENANTRY_MIGRATE_BENCH_DATABASES [500], _SCHEMAS [500], _NOTES per tenant
// [200], _RATE requests/s of live traffic [200], _CONCURRENCY of the engine,
// a list [4,8] (the first is also that of the kill -9 phase), _MEASURE
// seconds of the before and after measurements [20].
const (
	benchEnv      = "TENANTRY_MIGRATE_BENCH"
	benchChildEnv = "TENANTRY_MIGRATE_BENCH_CHILD"
)

type benchConfig struct {
	databases, schemas, notes int
	rate                      int
	concurrencies             []int
	measure                   time.Duration
}

func benchConfigFromEnv() benchConfig {
	num := func(name string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(benchEnv + "_" + name)); err == nil && v > 0 {
			return v
		}
		return def
	}
	cfg := benchConfig{
		databases: num("DATABASES", 500), schemas: num("SCHEMAS", 500), notes: num("NOTES", 200),
		rate: num("RATE", 200), measure: time.Duration(num("MEASURE", 20)) * time.Second,
	}
	for _, c := range strings.Split(os.Getenv(benchEnv+"_CONCURRENCY"), ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(c)); err == nil && n > 0 {
			cfg.concurrencies = append(cfg.concurrencies, n)
		}
	}
	if len(cfg.concurrencies) == 0 {
		cfg.concurrencies = []int{4, 8}
	}
	return cfg
}

// benchFS is the reference app's schema as migration 1, then the 3-step
// change: a column with a constant default (plus the backfill's column and
// a counter of how often a row was backfilled), an index built
// concurrently, and a batched backfill.
func benchFS() fs.FS {
	ddl, err := fs.ReadFile(notes.Schema(), "0001_notes.sql")
	if err != nil {
		panic(err)
	}
	return fstest.MapFS{
		"0001_notes.sql":  {Data: append([]byte("-- migrate:mode tx\n"), ddl...)},
		"0002_pinned.sql": {Data: []byte("-- migrate:mode tx\nALTER TABLE notes ADD COLUMN pinned boolean NOT NULL DEFAULT false, ADD COLUMN words integer, ADD COLUMN backfilled smallint NOT NULL DEFAULT 0;\n")},
		"0003_index.sql":  {Data: []byte("-- migrate:mode no-tx\nCREATE INDEX CONCURRENTLY IF NOT EXISTS notes_updated_idx ON notes (tenant_id, updated_at);\n")},
		"0004_words.sql": {Data: []byte(`-- migrate:mode batch
UPDATE notes SET words = array_length(regexp_split_to_array(title || ' ' || body, '\s+'), 1), backfilled = backfilled + 1
WHERE ctid IN (SELECT ctid FROM notes WHERE words IS NULL LIMIT 100);
`)},
	}
}

// benchStack is the data plane under test: provisioned tenants of the
// database and schema models, the reference app behind tenant resolution,
// router and pool manager, and live traffic on it.
type benchStack struct {
	cfg        benchConfig
	server     *tenantrytest.Server
	admin      *pgxpool.Pool
	store      *catalog.Store
	catalogURL string
	names      provision.Config
	src        *migrate.Source
	baseURL    string
	targets    []migrate.Target // tenant targets (the template not included)
	schemas    []*benchTenant
	databases  []*benchTenant
}

type benchTenant struct {
	t   *tenant.Tenant
	ids []string
}

// phase collects the traffic of one phase of the benchmark.
type phase struct {
	name     string
	targets  int
	load     [2]float64
	cpu      float64 // machine CPU busy, percent
	mu       sync.Mutex
	lat      []time.Duration
	ok       int
	failed   int
	failures map[string]int
	started  time.Time
	elapsed  time.Duration
}

func newPhase(name string) *phase {
	return &phase{name: name, failures: map[string]int{}, started: time.Now()}
}

func (p *phase) record(d time.Duration, failure string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if failure != "" {
		p.failed++
		if len(p.failures) < 20 {
			p.failures[failure]++
		}
		return
	}
	p.ok++
	p.lat = append(p.lat, d)
}

func (p *phase) percentile(q float64) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.lat) == 0 {
		return 0
	}
	s := slices.Clone(p.lat)
	slices.Sort(s)
	i := int(math.Ceil(q/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func BenchmarkFleetRollout(b *testing.B) {
	if os.Getenv(benchEnv) != "1" {
		b.Skip("set " + benchEnv + "=1 to run the fleet rollout benchmark")
	}
	cfg := benchConfigFromEnv()
	ctx := context.Background()
	s := setupBench(b, cfg)

	// Live traffic for the whole benchmark, recorded into the current phase.
	var current atomic.Pointer[phase]
	stopTraffic := s.traffic(ctx, &current)
	defer stopTraffic()
	var phases []*phase
	measure := func(p *phase, run func()) *phase {
		p.load[0] = loadAverage()
		busy0, total0 := cpuTimes()
		current.Store(p)
		p.started = time.Now()
		run()
		p.elapsed = time.Since(p.started)
		current.Store(nil)
		p.load[1] = loadAverage()
		if busy1, total1 := cpuTimes(); total1 > total0 {
			p.cpu = 100 * float64(busy1-busy0) / float64(total1-total0)
		}
		phases = append(phases, p)
		return p
	}
	idle := func(d time.Duration) func() { return func() { time.Sleep(d) } }
	sequential := func(name string) *phase {
		p := measure(newPhase(name), func() {
			if err := s.sequential(ctx); err != nil {
				b.Fatal(err)
			}
		})
		p.targets = len(s.targets)
		s.reset(b)
		return p
	}

	s.adopt(b)
	time.Sleep(10 * time.Second) // warm-up: pools, caches
	before := measure(newPhase("before"), idle(cfg.measure))

	// One target at a time, the golang-migrate / goose way; run again at
	// the end, so that both ends of the benchmark's time weigh in.
	seq1 := sequential("sequential runner (1)")

	// The engine at each concurrency: waves, lock timeouts, leases.
	type engineRun struct {
		phase  *phase
		report *migrate.Report
		conc   int
	}
	var runs []engineRun
	for _, conc := range cfg.concurrencies {
		var rep *migrate.Report
		p := measure(newPhase(fmt.Sprintf("engine, concurrency %d", conc)), func() {
			var err error
			rep, err = s.engine(b, nil).Up(ctx, migrate.RunOptions{Actor: "bench", Canary: 5, Waves: []int{10, 50, 100},
				Concurrency: conc, PerCluster: conc})
			if err != nil {
				b.Fatal(err)
			}
		})
		p.targets = rep.Targets
		s.verify(b)
		runs = append(runs, engineRun{phase: p, report: rep, conc: conc})
		s.reset(b)
	}

	// Kill -9 half-way, resume.
	var killed map[migrate.TargetState]int
	var resumed *migrate.Report
	kill := measure(newPhase(fmt.Sprintf("kill -9 + resume, concurrency %d", cfg.concurrencies[0])), func() {
		killed = s.killHalfWay(b, cfg.concurrencies[0])
		var err error
		resumed, err = s.engine(b, nil).Resume(ctx, migrate.RunOptions{Actor: "bench"})
		if err != nil {
			b.Fatal(err)
		}
	})
	kill.targets = resumed.Targets
	s.verify(b)

	// New tenants come out at head: provision one from the migrated
	// template.
	late := s.provision(b, "late-db", tenant.ModelDatabase)
	lateVersion := s.readVersion(b, late)

	s.reset(b)
	seq2 := sequential("sequential runner (2)")
	measure(newPhase("after"), idle(cfg.measure))
	seqTime := (seq1.elapsed + seq2.elapsed) / 2

	// The table.
	w := os.Stdout
	fmt.Fprintf(w, "\n## Fleet rollout under load\n\n%d tenant databases + %d tenant schemas (%d notes each) on one PostgreSQL %s server (fsync %s); live traffic %d req/s on the notes API (resolution, router, pool manager); GOMAXPROCS %d\n\n",
		cfg.databases, cfg.schemas, cfg.notes, s.serverVersion(b), s.setting(b, "fsync"), cfg.rate, runtime.GOMAXPROCS(0))
	fmt.Fprintln(w, "| phase | wall time | targets | requests | failed | p50 | p99 | p99 / before | CPU busy | load avg (start, end) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, p := range phases {
		targets, ratio := "-", "-"
		if p.targets > 0 {
			targets = strconv.Itoa(p.targets)
		}
		if b99 := before.percentile(99); b99 > 0 && p != before {
			ratio = fmt.Sprintf("%.2f", float64(p.percentile(99))/float64(b99))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %d | %d | %s | %s | %s | %.0f%% | %.1f, %.1f |\n", p.name, p.elapsed.Round(10*time.Millisecond), targets,
			p.ok+p.failed, p.failed, msf(p.percentile(50)), msf(p.percentile(99)), ratio, p.cpu, p.load[0], p.load[1])
	}
	fmt.Fprintf(w, "\n| engine concurrency | wall time | speedup vs sequential (mean %s) | waves (targets: time) | lock retries | p99 / before |\n|---|---|---|---|---|---|\n",
		seqTime.Round(100*time.Millisecond))
	failures := 0
	for _, p := range phases {
		failures += p.failed
	}
	pass := false
	for _, r := range runs {
		speedup := seqTime.Seconds() / r.phase.elapsed.Seconds()
		var waves []string
		for _, wv := range r.report.Waves {
			waves = append(waves, fmt.Sprintf("%d: %s", wv.Targets, wv.Elapsed.Round(10*time.Millisecond)))
		}
		p99 := float64(r.phase.percentile(99)) / float64(before.percentile(99))
		fmt.Fprintf(w, "| %d | %s | %.2fx | %s | %d | %.2f |\n", r.conc, r.phase.elapsed.Round(10*time.Millisecond), speedup,
			strings.Join(waves, ", "), r.report.LockRetries, p99)
		b.ReportMetric(speedup, fmt.Sprintf("speedup-c%d", r.conc))
		b.ReportMetric(p99, fmt.Sprintf("p99-ratio-c%d", r.conc))
		if speedup >= 2.5 && p99 < 3 && r.phase.failed == 0 {
			pass = true
		}
	}
	fmt.Fprintf(w, "\nkill -9 with the ledger at %v; resume applied %d steps in %s; afterwards every target at version %d in its own ledger, index valid, no row backfilled twice\n",
		killed, resumed.StepsApplied, resumed.Elapsed.Round(10*time.Millisecond), s.src.Head())
	fmt.Fprintf(w, "tenant database provisioned after the rollout, cloned from the migrated template: version %d\n", lateVersion)
	for _, p := range phases {
		for f, n := range p.failures {
			fmt.Fprintf(w, "failures in %s: %d x %s\n", p.name, n, f)
		}
	}
	b.ReportMetric(float64(failures), "failed-requests")
	if failures != 0 || !pass || lateVersion != s.src.Head() {
		b.Errorf("targets missed: %d failed requests, no engine run with speedup >= 2.5 and p99 < 3x before, late tenant at %d", failures, lateVersion)
	}
}

// cpuTimes returns the machine's busy and total CPU time (jiffies, all
// CPUs) from /proc/stat.
func cpuTimes() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseUint(f, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// loadAverage is the machine's 1-minute load average, to show what else ran.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return f
}

func (s *benchStack) setting(b *testing.B, name string) string {
	var v string
	if err := s.admin.QueryRow(context.Background(), `SELECT current_setting($1)`, name).Scan(&v); err != nil {
		b.Fatal(err)
	}
	return v
}

func (s *benchStack) serverVersion(b *testing.B) string {
	var v string
	if err := s.admin.QueryRow(context.Background(), `SHOW server_version`).Scan(&v); err != nil {
		b.Fatal(err)
	}
	return strings.Fields(v)[0]
}

func msf(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func setupBench(b *testing.B, cfg benchConfig) *benchStack {
	b.Helper()
	ctx := context.Background()
	began := time.Now()
	s := &benchStack{cfg: cfg, server: tenantrytest.Shared(b)}
	var err error
	if s.src, err = migrate.Load(benchFS()); err != nil {
		b.Fatal(err)
	}
	s.admin = tenantrytest.Pool(b, s.server.AdminURL())
	s.catalogURL = tenantrytest.NewDatabase(b)
	if s.store, err = catalog.NewStore(tenantrytest.Pool(b, s.catalogURL), nil); err != nil {
		b.Fatal(err)
	}
	if _, err := s.store.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := s.store.CreateCluster(ctx, actor, catalog.Cluster{Name: "main", ConnString: s.server.AdminURL(), MaxConns: 50}); err != nil {
		b.Fatal(err)
	}
	var r [3]byte
	_, _ = rand.Read(r[:])
	sfx := "_" + hex.EncodeToString(r[:])
	s.names = provision.Config{
		DDL:              notes.DDL(),
		SharedDatabase:   provision.DefaultSharedDatabase + sfx,
		ShardDatabase:    provision.DefaultShardDatabase + sfx,
		SchemasDatabase:  provision.DefaultSchemasDatabase + sfx,
		TemplateDatabase: provision.DefaultTemplateDatabase + sfx,
	}

	// Tenants, provisioned by the provisioner from the reference app's DDL
	// (version 1 of the migrations, without a ledger: the engine adopts
	// them with Baseline 1).
	var slugs []string
	for i := range cfg.databases {
		slugs = append(slugs, fmt.Sprintf("db%04d", i))
	}
	for i := range cfg.schemas {
		slugs = append(slugs, fmt.Sprintf("sc%04d", i))
	}
	prov, err := provision.New(s.store, &s.names)
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	err = parallel(ctx, 4, slugs, func(ctx context.Context, slug string) error {
		model := tenant.ModelSchema
		if strings.HasPrefix(slug, "db") {
			model = tenant.ModelDatabase
		}
		bt, err := s.provisionWith(ctx, prov, slug, model)
		if err != nil {
			return err
		}
		mu.Lock()
		if model == tenant.ModelDatabase {
			s.databases = append(s.databases, bt)
		} else {
			s.schemas = append(s.schemas, bt)
		}
		mu.Unlock()
		return nil
	})
	prov.Close()
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "bench: %d tenants provisioned and seeded in %s\n", len(slugs), time.Since(began).Round(time.Second))
	s.durable(b)
	for _, bt := range append(slices.Clone(s.databases), s.schemas...) {
		p := bt.t.Placement
		s.targets = append(s.targets, migrate.Target{Cluster: p.Cluster, Database: p.Database, Schema: p.Schema, Kind: migrate.KindSchema})
	}

	// The data plane serving the reference app.
	cache, err := catalog.NewCache(s.store, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := cache.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cache.Stop)
	pools, err := pool.New(&pool.Config{Catalog: cache, MaxConnsPerPool: func(k pool.Key, budget int) int {
		if k.Database == s.names.SchemasDatabase {
			return budget
		}
		return 2
	}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pools.Close)
	rt, err := router.New(cache, pools, nil)
	if err != nil {
		b.Fatal(err)
	}
	res, err := resolve.New(cache, &resolve.Config{Strategies: []resolve.Strategy{
		resolve.Header("", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}),
	}})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: res.Middleware(notes.Handler(rt)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	s.baseURL = "http://" + ln.Addr().String()
	return s
}

// durable turns crash safety back on for the measurements: the test
// harness starts its throwaway server with fsync, full_page_writes and
// synchronous_commit off, which would leave commits and CREATE INDEX waiting
// for no disk at all, unlike production. A server given by
// TENANTRY_TEST_DATABASE_URL is left as it is.
func (s *benchStack) durable(b *testing.B) {
	b.Helper()
	if os.Getenv(tenantrytest.EnvDatabaseURL) != "" {
		return
	}
	ctx := context.Background()
	for _, sql := range []string{`ALTER SYSTEM SET fsync = on`, `ALTER SYSTEM SET full_page_writes = on`,
		`ALTER SYSTEM SET synchronous_commit = on`, `SELECT pg_reload_conf()`, `CHECKPOINT`} {
		if _, err := s.admin.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(time.Second) // the reload reaches every backend at its next command
}

// provisionWith creates, provisions and seeds one tenant.
func (s *benchStack) provisionWith(ctx context.Context, prov *provision.Provisioner, slug string, model tenant.Model) (*benchTenant, error) {
	if _, err := s.store.CreateTenant(ctx, actor, catalog.NewTenant{Slug: slug, Placement: tenant.Placement{Model: model},
		Labels: map[string]string{provision.ModelLabel: string(model)}}); err != nil {
		return nil, err
	}
	res, err := prov.Provision(ctx, actor, slug)
	if err != nil {
		return nil, err
	}
	bt := &benchTenant{t: res.Tenant}
	p := res.Tenant.Placement
	err = s.withConn(ctx, p.Database, p.Schema, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, `INSERT INTO notes (tenant_id, title, body)
SELECT $1, 'note ' || g, 'a note of the benchmark, about as long as a short note in a real application ' || g
FROM generate_series(1, $2) g RETURNING id::text`, res.Tenant.ID, s.cfg.notes)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		bt.ids = ids[:min(len(ids), 20)]
		return err
	})
	return bt, err
}

func (s *benchStack) provision(b *testing.B, slug string, model tenant.Model) *benchTenant {
	b.Helper()
	prov, err := provision.New(s.store, &s.names)
	if err != nil {
		b.Fatal(err)
	}
	defer prov.Close()
	bt, err := s.provisionWith(context.Background(), prov, slug, model)
	if err != nil {
		b.Fatal(err)
	}
	return bt
}

func (s *benchStack) withConn(ctx context.Context, database, schema string, fn func(*pgx.Conn) error) error {
	cfg, err := pgx.ParseConfig(s.server.URL(database))
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

func (s *benchStack) readVersion(b *testing.B, bt *benchTenant) int {
	b.Helper()
	var v int
	err := s.withConn(context.Background(), bt.t.Placement.Database, bt.t.Placement.Schema, func(conn *pgx.Conn) error {
		var err error
		v, err = migrate.ReadVersion(context.Background(), conn)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return v
}

func (s *benchStack) engine(b testing.TB, cfg *migrate.Config) *migrate.Engine {
	b.Helper()
	c := migrate.Config{Source: s.src, Baseline: 1, Templates: []migrate.TemplateRef{{Database: s.names.TemplateDatabase, Schema: "app", IsDatabase: true}}}
	if cfg != nil {
		c = *cfg
	}
	e, err := migrate.New(s.store, &c)
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// traffic sends live traffic to the reference app at cfg.rate requests per
// second (open loop: a request's latency counts from when it was due, so a
// stall shows), half to schema tenants (uniform), half to database tenants
// (zipf s=1.1): 70% reads of a note, 15% creates, 10% updates, 5% lists.
func (s *benchStack) traffic(ctx context.Context, current *atomic.Pointer[phase]) func() {
	ctx, cancel := context.WithCancel(ctx)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, DisableCompression: true}}
	var wg sync.WaitGroup
	var inflight atomic.Int64
	const maxInflight = 2000
	wg.Go(func() {
		r := mrand.New(mrand.NewSource(1))
		zipf := mrand.NewZipf(r, 1.1, 1, uint64(len(s.databases)-1))
		interval := time.Second / time.Duration(s.cfg.rate)
		due := time.Now()
		for ctx.Err() == nil {
			due = due.Add(interval)
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			var bt *benchTenant
			if r.Intn(2) == 0 {
				bt = s.schemas[r.Intn(len(s.schemas))]
			} else {
				bt = s.databases[zipf.Uint64()]
			}
			op, id, scheduled := r.Float64(), bt.ids[r.Intn(len(bt.ids))], due
			if inflight.Load() >= maxInflight {
				if p := current.Load(); p != nil {
					p.record(0, "load generator: 2000 requests in flight")
				}
				continue
			}
			inflight.Add(1)
			wg.Go(func() {
				defer inflight.Add(-1)
				p := current.Load()
				failure := s.request(ctx, client, bt, op, id)
				if p != nil && ctx.Err() == nil {
					p.record(time.Since(scheduled), failure)
				}
			})
		}
	})
	return func() {
		cancel()
		wg.Wait()
		client.CloseIdleConnections()
	}
}

// request sends one request and returns "" or what went wrong.
func (s *benchStack) request(ctx context.Context, client *http.Client, bt *benchTenant, op float64, id string) string {
	method, path, body, want := http.MethodGet, "/api/v1/notes/"+id, "", http.StatusOK
	switch {
	case op < 0.70:
	case op < 0.85:
		method, path, body, want = http.MethodPost, "/api/v1/notes", `{"title":"live","body":"written during the benchmark"}`, http.StatusCreated
	case op < 0.95:
		method, body = http.MethodPut, `{"title":"updated","body":"updated during the benchmark"}`
	default:
		path = "/api/v1/notes?limit=20"
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.baseURL+path, rd)
	if err != nil {
		return err.Error()
	}
	req.Header.Set(resolve.DefaultHeader, bt.t.Slug)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ""
		}
		return "transport: " + err.Error()
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(res.Body, 300))
	if res.StatusCode != want {
		return fmt.Sprintf("%s %d %s", method, res.StatusCode, msg)
	}
	return ""
}

// sequential is the one-target-at-a-time runner, the way golang-migrate
// and goose migrate each database: connect, read its version table, apply
// the pending files in order (a transaction per file unless it says
// otherwise), record each, disconnect; then the next target.
func (s *benchStack) sequential(ctx context.Context) error {
	for _, t := range s.targets {
		err := s.withConn(ctx, t.Database, t.Schema, func(conn *pgx.Conn) error {
			if _, err := conn.Exec(ctx, `SET ROLE tenantry_owner; CREATE TABLE IF NOT EXISTS bench_seq_version (version integer PRIMARY KEY)`); err != nil {
				return err
			}
			var current int
			if err := conn.QueryRow(ctx, `SELECT COALESCE(max(version), 1) FROM bench_seq_version`).Scan(&current); err != nil {
				return err
			}
			for _, st := range s.src.Steps() {
				if st.Version <= current {
					continue
				}
				switch st.Mode {
				case migrate.ModeTx:
					err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
						if _, err := tx.Exec(ctx, st.SQL); err != nil {
							return err
						}
						_, err := tx.Exec(ctx, `INSERT INTO bench_seq_version VALUES ($1)`, st.Version)
						return err
					})
					if err != nil {
						return err
					}
				default:
					for _, x := range st.Statements {
						for {
							tag, err := conn.Exec(ctx, x.SQL)
							if err != nil {
								return err
							}
							if st.Mode != migrate.ModeBatch || tag.RowsAffected() == 0 {
								break
							}
						}
					}
					if _, err := conn.Exec(ctx, `INSERT INTO bench_seq_version VALUES ($1)`, st.Version); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("sequential runner on %s: %w", t.Key(), err)
		}
	}
	return nil
}

// adopt gives every target both runners' version tables, unmeasured, as
// a fleet in production has them: the engine's ledger (an engine run over
// the source up to version 1 with Baseline 1 creates it and records version
// 1, as provisioning with migrate.Build would have) and the sequential
// runner's version table.
func (s *benchStack) adopt(b *testing.B) {
	b.Helper()
	ctx := context.Background()
	began := time.Now()
	e, err := migrate.New(s.store, &migrate.Config{Source: s.src.Until(1), Baseline: 1,
		Templates: []migrate.TemplateRef{{Database: s.names.TemplateDatabase, Schema: "app", IsDatabase: true}}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.Up(ctx, migrate.RunOptions{Actor: "bench", Canary: -1, Waves: []int{100}, Concurrency: 4, PerCluster: 4}); err != nil {
		b.Fatal(err)
	}
	keys := make([]string, len(s.targets))
	byKey := map[string]migrate.Target{}
	for i, t := range s.targets {
		keys[i] = t.Key()
		byKey[t.Key()] = t
	}
	err = parallel(ctx, 4, keys, func(ctx context.Context, key string) error {
		t := byKey[key]
		return s.withConn(ctx, t.Database, t.Schema, func(conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, `SET ROLE tenantry_owner; CREATE TABLE bench_seq_version (version integer PRIMARY KEY)`)
			return err
		})
	})
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "bench: %d targets given version tables in %s\n", len(keys), time.Since(began).Round(time.Second))
}

// reset puts every tenant target back at version 1 (the template stays at
// head), outside any measured phase.
func (s *benchStack) reset(b *testing.B) {
	b.Helper()
	ctx := context.Background()
	began := time.Now()
	keys := make([]string, len(s.targets))
	byKey := map[string]migrate.Target{}
	for i, t := range s.targets {
		keys[i] = t.Key()
		byKey[t.Key()] = t
	}
	err := parallel(ctx, 8, keys, func(ctx context.Context, key string) error {
		t := byKey[key]
		return s.withConn(ctx, t.Database, t.Schema, func(conn *pgx.Conn) error {
			if _, err := conn.Exec(ctx, `SET ROLE tenantry_owner`); err != nil {
				return err
			}
			if _, err := conn.Exec(ctx, `DROP INDEX CONCURRENTLY IF EXISTS notes_updated_idx`); err != nil {
				return err
			}
			_, err := conn.Exec(ctx, `SET lock_timeout = '5s';
ALTER TABLE notes DROP COLUMN IF EXISTS pinned, DROP COLUMN IF EXISTS words, DROP COLUMN IF EXISTS backfilled;
DELETE FROM bench_seq_version;
DO $$ BEGIN IF to_regclass('tenantry_migration') IS NOT NULL THEN DELETE FROM tenantry_migration WHERE version > 1; END IF; END $$;
RESET ROLE`)
			if err != nil {
				return err
			}
			_, err = conn.Exec(ctx, `VACUUM notes`)
			return err
		})
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.store.Pool().Exec(ctx, `UPDATE tenantry.migration_target SET version = 1 WHERE kind <> 'template'`); err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "bench: %d targets reset to version 1 in %s\n", len(keys), time.Since(began).Round(time.Second))
}

// verify checks every tenant target: at head in its own ledger, the index
// valid, no row backfilled twice, every row that existed at the backfill
// filled.
func (s *benchStack) verify(b *testing.B) {
	b.Helper()
	ctx := context.Background()
	keys := make([]string, len(s.targets))
	byKey := map[string]migrate.Target{}
	for i, t := range s.targets {
		keys[i] = t.Key()
		byKey[t.Key()] = t
	}
	err := parallel(ctx, 8, keys, func(ctx context.Context, key string) error {
		t := byKey[key]
		return s.withConn(ctx, t.Database, t.Schema, func(conn *pgx.Conn) error {
			var versions []int32
			var maxBackfill, unfilled int
			var valid bool
			err := conn.QueryRow(ctx, `SELECT (SELECT array_agg(version ORDER BY version) FROM tenantry_migration WHERE state = 'done'),
    (SELECT COALESCE(max(backfilled), 0) FROM notes), (SELECT count(*) FROM notes WHERE words IS NULL AND title <> 'live'),
    (SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = current_schema() AND c.relname = 'notes_updated_idx')`).Scan(&versions, &maxBackfill, &unfilled, &valid)
			if err != nil {
				return err
			}
			if !slices.Equal(versions, []int32{1, 2, 3, 4}) || maxBackfill != 1 || !valid || unfilled != 0 {
				return fmt.Errorf("%s: versions %v, a row backfilled %d times, %d old rows unfilled, index valid %v", key, versions, maxBackfill, unfilled, valid)
			}
			return nil
		})
	})
	if err != nil {
		b.Fatal(err)
	}
}

// killHalfWay runs the engine in a child process (this test binary) and
// kills it with SIGKILL once half the targets are done; it returns the
// ledger's counts at the kill.
func (s *benchStack) killHalfWay(b *testing.B, concurrency int) map[migrate.TargetState]int {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchChildEnv+"=1", crashCatalogEnv+"="+s.catalogURL, crashTemplateEnv+"="+s.names.TemplateDatabase,
		benchEnv+"_CONCURRENCY="+strconv.Itoa(concurrency))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	done := 0
	for done < len(s.targets)/2 && lines.Scan() {
		if strings.HasPrefix(lines.Text(), "done ") {
			done++
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if done < len(s.targets)/2 {
		b.Fatalf("the child stopped after %d targets", done)
	}
	st, err := s.engine(b, nil).Status(context.Background(), migrate.StatusOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return st.Counts
}

// benchChild is the engine of the kill -9 phase, in a process of its own.
func benchChild() int {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv(crashCatalogEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	store, _ := catalog.NewStore(pool, nil)
	src, err := migrate.Load(benchFS())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	e, err := migrate.New(store, &migrate.Config{Source: src, Baseline: 1,
		Templates: []migrate.TemplateRef{{Database: os.Getenv(crashTemplateEnv), Schema: "app", IsDatabase: true}}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	conc := benchConfigFromEnv().concurrencies[0]
	out := bufio.NewWriter(os.Stdout)
	_, err = e.Up(ctx, migrate.RunOptions{Actor: "bench-child", Canary: 5, Waves: []int{10, 50, 100}, Concurrency: conc, PerCluster: conc,
		OnEvent: func(ev migrate.Event) {
			if ev.Kind == migrate.EventTargetDone {
				fmt.Fprintln(out, "done", ev.Target.Key())
				out.Flush()
			}
		}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return 0
}

// parallel runs fn for every item, n at a time, and returns the first error.
func parallel(ctx context.Context, n int, items []string, fn func(context.Context, string) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, it); err != nil {
				cancel(fmt.Errorf("%s: %w", it, err))
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}
