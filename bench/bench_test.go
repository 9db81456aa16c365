package bench_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/bench"
	"github.com/tenantry/tenantry/tenant"
	"github.com/tenantry/tenantry/tenantrytest"
)

func TestMain(m *testing.M) { tenantrytest.Main(m) }

// TestRunSmall runs the whole benchmark on a few tenants, briefly: it checks
// the machinery (provisioning, seeding, both services, the report), not the
// figures.
func TestRunSmall(t *testing.T) {
	t.Parallel()
	rep, err := bench.Run(t.Context(), &bench.Config{
		PrimaryURL: tenantrytest.Cluster(t, "bench-small").AdminURL(),
		ShardURLs:  []string{tenantrytest.Cluster(t, "bench-small-shard").AdminURL()},
		Tenants:    map[tenant.Model]int{tenant.ModelShared: 3, tenant.ModelSharded: 3, tenant.ModelSchema: 3, tenant.ModelDatabase: 3},
		Clients:    2, Warmup: 100 * time.Millisecond, Round: 200 * time.Millisecond, Rounds: 2,
		NotesPerTenant: 3,
		Drop:           true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 4 {
		t.Fatalf("%d results", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Routed.Requests == 0 || r.Baseline.Requests == 0 || r.Routed.Errors+r.Baseline.Errors > 0 {
			t.Errorf("%s: routed %d requests (%d errors), baseline %d (%d errors)", r.Model, r.Routed.Requests, r.Routed.Errors, r.Baseline.Requests, r.Baseline.Errors)
		}
	}
	if err := rep.WriteMarkdown(os.Stdout); err != nil {
		t.Fatal(err)
	}
}

// EnvBench enables BenchmarkDataPlane, which provisions thousands of tenants
// and runs for minutes:
//
//	TENANTRY_BENCH=1 go test -run '^$' -bench DataPlane -benchtime 1x -timeout 60m ./bench/
//
// Optional overrides: TENANTRY_BENCH_TENANTS (tenants per model, default
// 1000), TENANTRY_BENCH_MODELS (comma-separated, default all),
// TENANTRY_BENCH_ZIPF (default 1.1), TENANTRY_BENCH_DB_CONNS (connections per
// tenant database, default 4), TENANTRY_BENCH_ROUNDS (default 5), and
// TENANTRY_BENCH_PRIMARY_URL with TENANTRY_BENCH_SHARD_URLS (comma-separated)
// to use servers of your own instead of throwaway ones, which also keeps the
// provisioned tenants for the next run.
const EnvBench = "TENANTRY_BENCH"

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	return n
}

func BenchmarkDataPlane(b *testing.B) {
	if os.Getenv(EnvBench) == "" {
		b.Skip("set " + EnvBench + "=1 to run the data-plane benchmark (minutes, thousands of databases)")
	}
	n := envInt(b, "TENANTRY_BENCH_TENANTS", bench.DefaultTenants)
	var models []tenant.Model
	if v := os.Getenv("TENANTRY_BENCH_MODELS"); v != "" {
		for _, m := range strings.Split(v, ",") {
			models = append(models, tenant.Model(m))
		}
	}
	zipf := bench.DefaultZipf
	if v := os.Getenv("TENANTRY_BENCH_ZIPF"); v != "" {
		var err error
		if zipf, err = strconv.ParseFloat(v, 64); err != nil {
			b.Fatal(err)
		}
	}
	primary, shards := os.Getenv("TENANTRY_BENCH_PRIMARY_URL"), strings.Split(os.Getenv("TENANTRY_BENCH_SHARD_URLS"), ",")
	if primary == "" {
		primary = tenantrytest.Cluster(b, "bench").AdminURL()
		shards = []string{tenantrytest.Cluster(b, "bench-shard-1").AdminURL(), tenantrytest.Cluster(b, "bench-shard-2").AdminURL()}
	}
	for b.Loop() {
		rep, err := bench.Run(b.Context(), &bench.Config{
			PrimaryURL:    primary,
			ShardURLs:     shards,
			Tenants:       map[tenant.Model]int{tenant.ModelShared: n, tenant.ModelSharded: n, tenant.ModelSchema: n, tenant.ModelDatabase: n},
			Models:        models,
			Zipf:          zipf,
			TenantDBConns: envInt(b, "TENANTRY_BENCH_DB_CONNS", bench.DefaultTenantDBConns),
			Rounds:        envInt(b, "TENANTRY_BENCH_ROUNDS", bench.DefaultRounds),
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := rep.WriteMarkdown(os.Stdout); err != nil {
			b.Fatal(err)
		}
		for _, r := range rep.Results {
			b.ReportMetric(r.Ratio, string(r.Model)+"-ratio")
		}
	}
}
