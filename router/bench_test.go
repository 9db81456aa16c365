package router_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"text/tabwriter"
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

// Sizes of BenchmarkRouterModels, overridable from the environment.
const (
	EnvBenchSchemas   = "TENANTRY_BENCH_SCHEMAS"   // schema tenants, default 1000
	EnvBenchDatabases = "TENANTRY_BENCH_DATABASES" // database tenants, default 200
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkRouterModels runs the same one-statement read transaction (a
// primary-key lookup) through the router for every model, and through a
// hand-written single-tenant pgx baseline with the same batching ({BEGIN,
// statement} in one round trip, COMMIT in another), and prints a table of
// ratios. Tenants are picked with a Zipf distribution (s=1.1); the cluster
// budget is 50 connections.
//
//	go test -run '^$' -bench RouterModels -benchtime 3s ./router/
func BenchmarkRouterModels(b *testing.B) {
	nSchemas := envInt(EnvBenchSchemas, 1000)
	nDatabases := envInt(EnvBenchDatabases, 200)
	const nShared = 1000
	ctx := context.Background()
	// The shared database's pool may use the whole budget; a tenant
	// database's pool at most 2 connections, so that the budget stays
	// spread over many tenants.
	var appDB atomic.Value
	fx := setupBudget(b, &pool.Config{MaxConnsPerPool: func(k pool.Key, budget int) int {
		if k.Database == appDB.Load() {
			return budget
		}
		return 2
	}}, 50)
	appDB.Store(fx.appDB)

	start := time.Now()
	shared := fx.bulkShared(b, nShared)
	b.Logf("setup: %d shared tenants in %v", nShared, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	schemas := fx.bulkSchemas(b, nSchemas)
	b.Logf("setup: %d schema tenants (schema, table, role each) in %v", nSchemas, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	dbs := fx.bulkDatabases(b, nDatabases)
	b.Logf("setup: %d database tenants (database from a template, role each) in %v", nDatabases, time.Since(start).Round(time.Millisecond))

	// The baseline: one database, one tenant, no router, the same table.
	baseURL := tenantrytest.NewDatabase(b)
	bp := tenantrytest.Pool(b, baseURL, tenantrytest.WithSearchPath("app"), tenantrytest.WithConfig(func(c *pgxpool.Config) { c.MaxConns = 50 }))
	if _, err := bp.Exec(ctx, tableSQL("app", false)+`INSERT INTO app.notes (tenant_id, body) VALUES ('00000000-0000-4000-8000-000000000001', 'note')`); err != nil {
		b.Fatal(err)
	}

	lookup := "SELECT body FROM notes WHERE tenant_id = $1 AND id = $2"
	baseline := func(ctx context.Context) error {
		c, err := bp.Acquire(ctx)
		if err != nil {
			return err
		}
		defer c.Release()
		var batch pgx.Batch
		batch.Queue("begin read only")
		batch.Queue(lookup, "00000000-0000-4000-8000-000000000001", 1)
		br := c.SendBatch(ctx, &batch)
		if _, err := br.Exec(); err != nil {
			return err
		}
		var body string
		if err := br.QueryRow().Scan(&body); err != nil {
			return err
		}
		if err := br.Close(); err != nil {
			return err
		}
		_, err = c.Exec(ctx, "commit")
		return err
	}
	routed := func(tenants []*tenant.Tenant) func(context.Context, *rand.Zipf) error {
		ctxs := make([]context.Context, len(tenants))
		for i, tn := range tenants {
			ctxs[i] = ctxFor(tn)
		}
		return func(_ context.Context, z *rand.Zipf) error {
			i := int(z.Uint64())
			return fx.router.ReadTx(ctxs[i], func(ctx context.Context, tx router.Tx) error {
				var body string
				return tx.QueryRow(ctx, lookup, tenants[i].ID, 1).Scan(&body)
			})
		}
	}

	type variant struct {
		name, model string
		tenants     int
		run         func(context.Context, *rand.Zipf) error
	}
	variants := []variant{
		{"baseline (single tenant, pgx)", "-", 1, func(ctx context.Context, _ *rand.Zipf) error { return baseline(ctx) }},
		{"router shared (RLS)", "shared", len(shared), routed(shared)},
		{"router schema", "schema", len(schemas), routed(schemas)},
		{"router database", "database", len(dbs), routed(dbs)},
	}
	// Rounds of sub-benchmarks, one variant after the other, so that every
	// ratio compares with a baseline measured moments before on the same
	// (shared, noisy) machine; each keeps its last, largest run's figures.
	const rounds = 3
	type result struct {
		n  int
		ns float64
	}
	results := make([][]result, rounds)
	var failed atomic.Int64
	for r := range rounds {
		results[r] = make([]result, len(variants))
		for i, v := range variants {
			b.Run(fmt.Sprintf("round-%d/%s-%s", r+1, strings.Fields(v.name)[0], v.model), func(b *testing.B) {
				defer func() { results[r][i] = result{b.N, float64(b.Elapsed().Nanoseconds()) / float64(b.N)} }()
				b.SetParallelism(4)
				var seed atomic.Uint64
				b.RunParallel(func(pb *testing.PB) {
					z := rand.NewZipf(rand.New(rand.NewPCG(seed.Add(1), uint64(r))), 1.1, 1, uint64(v.tenants-1))
					for pb.Next() {
						if err := v.run(ctx, z); err != nil {
							if failed.Add(1) < 5 {
								fmt.Fprintf(os.Stderr, "%s: %v\n", v.name, err)
							}
						}
					}
				})
			})
		}
	}

	var sb strings.Builder
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "variant\tmodel\ttenants\tµs/tx (median)\ttx/s (median)\tratio per round\tmedian ratio\t")
	for i, v := range variants {
		var ns, ratios []float64
		var per []string
		for r := range rounds {
			ns = append(ns, results[r][i].ns)
			ratios = append(ratios, results[r][0].ns/results[r][i].ns)
			per = append(per, fmt.Sprintf("%.2f", ratios[r]))
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%.1f\t%.0f\t%s\t%.2f\t\n", v.name, v.model, v.tenants, median(ns)/1e3, 1e9/median(ns), strings.Join(per, " "), median(ratios))
	}
	_ = w.Flush()
	st := clusterSummary(fx.pools)
	fmt.Printf("\nrouter transactions, %d goroutines, zipf(1.1) over tenants, cluster budget 50\n%s%s\n", 4*runtimeProcs(), sb.String(), st)
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d transactions failed", n)
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func clusterSummary(m *pool.Manager) string {
	var sb strings.Builder
	for _, c := range m.Stats().Clusters {
		hit := 0.0
		if c.Acquires > 0 {
			hit = 1 - float64(c.AcquireWaits)/float64(c.Acquires)
		}
		fmt.Fprintf(&sb, "pool %s: budget %d, peak conns %d, pools %d (opened %d), acquires %d, hit rate %.3f, dials %d, conn evictions %d, budget waits %d, recycled %d\n",
			c.Cluster, c.Budget, c.PeakConns, c.Pools, c.PoolsOpened, c.Acquires, hit, c.Dials, c.ConnEvictions, c.BudgetWaits, c.Recycled)
	}
	return sb.String()
}

// bulkTenants records tenants in the catalog, eight at a time, and waits
// until the cache has them all.
func (b *testBundle) bulkTenants(t testing.TB, in []catalog.NewTenant) []*tenant.Tenant {
	t.Helper()
	out := make([]*tenant.Tenant, len(in))
	idx := make([]string, len(in))
	for i := range in {
		idx[i] = strconv.Itoa(i)
	}
	err := parallel(8, idx, func(s string) error {
		i, _ := strconv.Atoi(s)
		tn, err := b.store.CreateTenant(context.Background(), actor, in[i])
		out[i] = tn
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range out {
		b.waitCached(t, tn)
	}
	return out
}

func (b *testBundle) bulkShared(t testing.TB, n int) []*tenant.Tenant {
	in := make([]catalog.NewTenant, n)
	for i := range in {
		in[i] = catalog.NewTenant{Slug: fmt.Sprintf("sh-%04d", i), Placement: tenant.Placement{Model: tenant.ModelShared, Cluster: cluster, Database: b.appDB, Schema: "app"}}
	}
	ts := b.bulkTenants(t, in)
	var sb strings.Builder
	sb.WriteString("INSERT INTO app.notes (tenant_id, id, body) OVERRIDING SYSTEM VALUE VALUES ")
	for i, tn := range ts {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "('%s', 1, 'note')", tn.ID)
	}
	if _, err := b.appPool.Exec(context.Background(), sb.String()); err != nil {
		t.Fatal(err)
	}
	return ts
}

func (b *testBundle) bulkSchemas(t testing.TB, n int) []*tenant.Tenant {
	ctx := context.Background()
	in := make([]catalog.NewTenant, n)
	slugs := make([]string, n)
	for i := range in {
		slugs[i] = fmt.Sprintf("sc-%04d", i)
		in[i] = catalog.NewTenant{Slug: slugs[i], Placement: tenant.Placement{Model: tenant.ModelSchema, Cluster: cluster, Database: b.appDB, Schema: "t_" + strings.ReplaceAll(slugs[i], "-", "_")}}
	}
	ts := b.bulkTenants(t, in)
	roles := make([]string, n)
	for i, tn := range ts {
		roles[i] = b.tenantRole(tn)
		b.createRole(t, roles[i], "NOLOGIN")
	}
	t.Cleanup(func() {
		_ = parallel(4, slugs, func(slug string) error {
			_, err := b.appPool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+sqlident.MustQuote("t_"+strings.ReplaceAll(slug, "-", "_"))+" CASCADE")
			return err
		})
	})
	err := parallel(4, slugs, func(slug string) error {
		i, _ := strconv.Atoi(slug[3:])
		tn := ts[i]
		ddl := tableSQL(tn.Placement.Schema, false) + grantSQL(tn.Placement.Schema, roles[i]) +
			"GRANT " + sqlident.MustQuote(roles[i]) + " TO " + sqlident.MustQuote(b.runtime) + ";" +
			"INSERT INTO " + sqlident.MustQuote(tn.Placement.Schema) + ".notes (tenant_id, id, body) OVERRIDING SYSTEM VALUE VALUES ('" + tn.ID + "', 1, 'note')"
		_, err := b.appPool.Exec(ctx, ddl)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func (b *testBundle) bulkDatabases(t testing.TB, n int) []*tenant.Tenant {
	ctx := context.Background()
	tplURL := tenantrytest.NewDatabase(t)
	tpl := dbName(t, tplURL)
	tp := tenantrytest.Pool(t, tplURL)
	// One role owns the tables' privileges in the template; each database
	// then grants them to its tenant's role.
	if _, err := tp.Exec(ctx, tableSQL("app", false)); err != nil {
		t.Fatal(err)
	}
	tp.Close()
	prefix := "tt_" + randHex(4) + "_db_"
	in := make([]catalog.NewTenant, n)
	names := make([]string, n)
	for i := range in {
		names[i] = fmt.Sprintf("%s%04d", prefix, i)
		in[i] = catalog.NewTenant{Slug: fmt.Sprintf("db-%04d", i), Placement: tenant.Placement{Model: tenant.ModelDatabase, Cluster: cluster, Database: names[i], Schema: "app"}}
	}
	ts := b.bulkTenants(t, in)
	roles := make([]string, n)
	for i, tn := range ts {
		roles[i] = b.tenantRole(tn)
		b.createRole(t, roles[i], "NOLOGIN")
		if _, err := b.admin.Exec(ctx, "GRANT "+sqlident.MustQuote(roles[i])+" TO "+sqlident.MustQuote(b.runtime)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = parallel(4, names, func(name string) error {
			_, err := b.admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+sqlident.MustQuote(name)+" WITH (FORCE)")
			return err
		})
	})
	err := parallel(4, names, func(name string) error {
		if _, err := b.admin.Exec(ctx, "CREATE DATABASE "+sqlident.MustQuote(name)+" TEMPLATE "+sqlident.MustQuote(tpl)+" STRATEGY file_copy"); err != nil {
			return err
		}
		i, _ := strconv.Atoi(strings.TrimPrefix(name, prefix))
		cfg, err := pgx.ParseConfig(tenantrytest.Shared(t).URL(name))
		if err != nil {
			return err
		}
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, grantSQL("app", roles[i])+"INSERT INTO app.notes (tenant_id, id, body) OVERRIDING SYSTEM VALUE VALUES ('"+ts[i].ID+"', 1, 'note')")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ts
}
