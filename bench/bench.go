package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/netip"
	"runtime"
	"strings"
	"time"

	"github.com/tenantry/tenantry/notes"
	"github.com/tenantry/tenantry/pool"
	"github.com/tenantry/tenantry/resolve"
	"github.com/tenantry/tenantry/tenant"
)

// Targets are the least ratio of routed to baseline throughput each model
// should reach on a 2-vCPU machine (see docs/benchmarks.md).
var Targets = map[tenant.Model]float64{
	tenant.ModelShared:   0.9,
	tenant.ModelSharded:  0.9,
	tenant.ModelSchema:   0.6,
	tenant.ModelDatabase: 0.5,
}

// Side is what one side of a comparison measured, over all rounds.
type Side struct {
	// Throughput is the median of the rounds' requests per second.
	Throughput float64
	// P50 and P99 are latency percentiles over all rounds' requests.
	P50, P99 time.Duration
	// Requests and Errors count the measured requests.
	Requests, Errors int
}

// Result is the comparison of one model with the baseline.
type Result struct {
	Model   tenant.Model
	Tenants int
	// Access is how tenants are picked: "uniform" or "zipf s=1.1".
	Access           string
	Baseline, Routed Side
	// Ratio is the median of the rounds' routed/baseline throughput ratios;
	// Ratios has every round's.
	Ratio  float64
	Ratios []float64
	Target float64
	// Pool figures of the model's cluster during the measured rounds.
	Budget, PeakConns int
	Pools             int
	// HitRate is the share of acquires that found an idle connection.
	HitRate float64
	// Dials counts the connections made during the measured rounds.
	Dials int64
}

// Pass reports whether the ratio meets the target.
func (r Result) Pass() bool { return r.Ratio >= r.Target }

// Report is the outcome of Run.
type Report struct {
	Results   []Result
	Config    *Config
	GOMAXPROC int
	Server    string
	Started   time.Time
	Took      time.Duration
}

// Run provisions the benchmark's tenants (or finds them from a previous
// run), then measures, model by model, the notes API (GET
// /api/v1/notes/{id}) through resolution, router and pool manager against
// the hand-written single-tenant baseline, both served over loopback HTTP
// and driven at the same time.
func Run(ctx context.Context, cfg *Config) (*Report, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rep := &Report{Config: cfg, GOMAXPROC: runtime.GOMAXPROCS(0), Started: time.Now()}
	s, err := setup(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cfg.Drop {
			if derr := s.drop(context.WithoutCancel(ctx)); derr != nil {
				cfg.Logger.Error("dropping the benchmark's databases failed", "error", derr)
			}
		} else {
			s.close()
		}
	}()
	if err := s.admin.QueryRow(ctx, `SELECT current_setting('server_version')`).Scan(&rep.Server); err != nil {
		return nil, err
	}

	res, err := resolve.New(s.cache, &resolve.Config{Strategies: []resolve.Strategy{
		resolve.Header("", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}),
	}})
	if err != nil {
		return nil, err
	}
	routedURL, stopRouted, err := serve(ctx, res.Middleware(notes.Handler(s.router)))
	if err != nil {
		return nil, err
	}
	defer stopRouted()
	baseURLs := map[string]string{}
	for name, b := range s.baselines {
		u, stop, err := serve(ctx, baselineHandler(b.pool))
		if err != nil {
			return nil, err
		}
		defer stop()
		baseURLs[name] = u
	}
	client := newClient(4 * cfg.Clients)
	defer client.CloseIdleConnections()

	for _, m := range cfg.Models {
		ts := s.tenants[m]
		cluster := ts[0].t.Placement.Cluster
		b := s.baselines[cluster]
		baseline := target{base: baseURLs[cluster], picker: func(r *rand.Rand) func() (string, string) {
			return func() (string, string) { return "", b.ids[r.Intn(len(b.ids))] }
		}}
		access := "uniform"
		rank := func(r *rand.Rand) func() int { return func() int { return r.Intn(len(ts)) } }
		if m == tenant.ModelDatabase && len(ts) > 1 {
			access = fmt.Sprintf("zipf s=%.2g", cfg.Zipf)
			rank = func(r *rand.Rand) func() int {
				z := rand.NewZipf(r, cfg.Zipf, 1, uint64(len(ts)-1))
				return func() int { return int(z.Uint64()) }
			}
		}
		routed := target{base: routedURL, picker: func(r *rand.Rand) func() (string, string) {
			next := rank(r)
			return func() (string, string) {
				t := ts[next()]
				return t.t.Slug, t.notes[r.Intn(len(t.notes))]
			}
		}}
		cfg.Logger.Info("measuring", "model", m, "tenants", len(ts), "access", access)
		pair(ctx, client, []target{baseline, routed}, cfg.Clients, cfg.Warmup, 1)
		before := clusterStats(s.pools, cluster)
		r := Result{Model: m, Tenants: len(ts), Access: access, Target: Targets[m]}
		var bt, rt []float64
		var bl, rl []time.Duration
		for round := range cfg.Rounds {
			out := pair(ctx, client, []target{baseline, routed}, cfg.Clients, cfg.Round, int64(round+2)*7919)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			b, x := out[0], out[1]
			bt, rt = append(bt, b.throughput()), append(rt, x.throughput())
			if b.throughput() > 0 {
				r.Ratios = append(r.Ratios, x.throughput()/b.throughput())
			}
			bl, rl = append(bl, b.latencies...), append(rl, x.latencies...)
			r.Baseline.Requests += b.ok
			r.Baseline.Errors += b.errors
			r.Routed.Requests += x.ok
			r.Routed.Errors += x.errors
		}
		after := clusterStats(s.pools, cluster)
		r.Baseline.Throughput, r.Routed.Throughput = median(bt), median(rt)
		r.Baseline.P50, r.Baseline.P99 = percentile(bl, 50), percentile(bl, 99)
		r.Routed.P50, r.Routed.P99 = percentile(rl, 50), percentile(rl, 99)
		r.Ratio = median(r.Ratios)
		r.Budget, r.PeakConns, r.Pools = after.Budget, after.PeakConns, after.Pools
		if acq := after.Acquires - before.Acquires; acq > 0 {
			r.HitRate = 1 - float64(after.AcquireWaits-before.AcquireWaits)/float64(acq)
		}
		r.Dials = after.Dials - before.Dials
		rep.Results = append(rep.Results, r)
		cfg.Logger.Info("measured", "model", m, "ratio", fmt.Sprintf("%.2f", r.Ratio), "routed_rps", int(r.Routed.Throughput), "baseline_rps", int(r.Baseline.Throughput))
	}
	rep.Took = time.Since(rep.Started)
	return rep, nil
}

func clusterStats(m *pool.Manager, cluster string) pool.ClusterStats {
	for _, c := range m.Stats().Clusters {
		if c.Cluster == cluster {
			return c
		}
	}
	return pool.ClusterStats{Cluster: cluster}
}

// WriteMarkdown writes the report as a Markdown table.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "| model | tenants | access | baseline req/s | routed req/s | ratio (rounds) | target | p50 base / routed | p99 base / routed | pool: budget, peak conns, hit rate, dials |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|\n")
	for _, x := range r.Results {
		rounds := make([]string, len(x.Ratios))
		for i, v := range x.Ratios {
			rounds[i] = fmt.Sprintf("%.2f", v)
		}
		verdict := "ok"
		if !x.Pass() {
			verdict = "BELOW"
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %.0f | %.0f | **%.2f** (%s) | %.1f %s | %s / %s | %s / %s | %d, %d, %.1f%%, %d |\n",
			x.Model, x.Tenants, x.Access, x.Baseline.Throughput, x.Routed.Throughput, x.Ratio, strings.Join(rounds, ", "),
			x.Target, verdict, ms(x.Baseline.P50), ms(x.Routed.P50), ms(x.Baseline.P99), ms(x.Routed.P99),
			x.Budget, x.PeakConns, 100*x.HitRate, x.Dials)
	}
	errs := 0
	for _, x := range r.Results {
		errs += x.Baseline.Errors + x.Routed.Errors
	}
	c := r.Config
	fmt.Fprintf(&b, "\nPostgreSQL %s, GOMAXPROCS %d, %d clients per side at once, warm-up %v, %d rounds of %v per model, %d notes per tenant, %d failed requests; took %v.\n",
		r.Server, r.GOMAXPROC, c.Clients, c.Warmup, c.Rounds, c.Round, c.NotesPerTenant, errs, r.Took.Round(time.Second))
	_, err := io.WriteString(w, b.String())
	return err
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
