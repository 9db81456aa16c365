package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantry/tenantry/bench"
	"github.com/tenantry/tenantry/internal/pgcluster"
	"github.com/tenantry/tenantry/tenant"
)

// benchOptions are the flags of tenantry bench.
type benchOptions struct {
	primaryURL   string
	shardURLs    []string
	models       []string
	tenants      int
	notes        int
	budget       int
	clients      int
	warmup       time.Duration
	round        time.Duration
	rounds       int
	drop         bool
	verbose      bool
	shards       int
	tenantDBConn int
}

func (a *app) benchCommand() *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the notes API per storage model against a single-tenant baseline",
		Long: `Measure what Tenantry's data plane costs: GET /api/v1/notes/{id} through
tenant resolution, the router and the pool manager, per storage model,
against a hand-written single-tenant net/http + pgx service running the same
SQL, side by side (package bench). Prints a Markdown table: throughput ratio,
p50 and p99 of both, pool figures.

With no --primary-url, bench starts throwaway PostgreSQL servers of its own
(fsync off, in a temporary directory, removed at the end): a primary and
--shards shard servers. It never uses the embedded PostgreSQL of tenantry
serve. Given servers must be superuser URLs of servers of their own: bench
creates roles and up to thousands of databases on them, under fixed names,
kept for the next run unless --drop.`,
		Example: `  tenantry bench                                   # all models, 1,000 tenants each (minutes)
  tenantry bench --tenants 100 --rounds 3 --round 2s
  tenantry bench --model database --tenants 1000
  tenantry bench --primary-url postgres://postgres@db1/postgres --shard-url postgres://postgres@db2/postgres`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.bench(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.primaryURL, "primary-url", "", "superuser URL of the primary server (default: a throwaway server)")
	f.StringArrayVar(&o.shardURLs, "shard-url", nil, "superuser URL of a shard server (repeatable; default: throwaway servers, see --shards)")
	f.IntVar(&o.shards, "shards", 1, "throwaway shard servers to start when no --primary-url is given (0: the shard database on the primary)")
	f.StringSliceVar(&o.models, "model", nil, "models to measure: shared, sharded, schema, database (repeatable; default all)")
	f.IntVar(&o.tenants, "tenants", bench.DefaultTenants, "tenants per model")
	f.IntVar(&o.notes, "notes", bench.DefaultNotesPerTenant, "notes per tenant")
	f.IntVar(&o.budget, "budget", bench.DefaultBudget, "connection budget of each cluster")
	f.IntVar(&o.tenantDBConn, "tenant-db-conns", bench.DefaultTenantDBConns, "connections one tenant database's pool may hold")
	f.IntVar(&o.clients, "clients", bench.DefaultClients, "concurrent HTTP clients of each side")
	f.DurationVar(&o.warmup, "warmup", bench.DefaultWarmup, "warm-up per model")
	f.DurationVar(&o.round, "round", bench.DefaultRound, "length of one measured round")
	f.IntVar(&o.rounds, "rounds", bench.DefaultRounds, "measured rounds per model (the ratio is their median)")
	f.BoolVar(&o.drop, "drop", false, "drop everything the benchmark made on given servers at the end")
	f.BoolVar(&o.verbose, "verbose", false, "log progress to stderr")
	return cmd
}

func (a *app) bench(ctx context.Context, o *benchOptions) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.DiscardHandler)
	if o.verbose {
		logger = slog.New(slog.NewTextHandler(a.io.err, nil))
	}
	var models []tenant.Model
	for _, m := range o.models {
		for _, part := range strings.Split(m, ",") {
			model := tenant.Model(strings.TrimSpace(part))
			if !model.Valid() {
				return fmt.Errorf("--model %q: must be shared, sharded, schema or database", part)
			}
			models = append(models, model)
		}
	}
	if o.tenants < 1 || o.rounds < 1 || o.shards < 0 {
		return errors.New("--tenants and --rounds must be at least 1, --shards at least 0")
	}
	cfg := &bench.Config{
		PrimaryURL: o.primaryURL, ShardURLs: o.shardURLs, Models: models,
		NotesPerTenant: o.notes, Budget: o.budget, TenantDBConns: o.tenantDBConn, Clients: o.clients,
		Warmup: o.warmup, Round: o.round, Rounds: o.rounds, Drop: o.drop, Logger: logger,
	}
	cfg.Tenants = map[tenant.Model]int{}
	for _, m := range []tenant.Model{tenant.ModelShared, tenant.ModelSharded, tenant.ModelSchema, tenant.ModelDatabase} {
		cfg.Tenants[m] = o.tenants
	}
	if cfg.PrimaryURL == "" {
		if len(cfg.ShardURLs) > 0 {
			return errors.New("--shard-url needs --primary-url")
		}
		servers, err := startBenchServers(ctx, 1+o.shards, logger)
		if err != nil {
			return err
		}
		defer servers.stop()
		cfg.PrimaryURL = servers.urls[0]
		cfg.ShardURLs = servers.urls[1:]
		fmt.Fprintf(a.io.err, "bench: started %d throwaway PostgreSQL server(s) under %s\n", len(servers.urls), servers.dir)
	}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	return rep.WriteMarkdown(a.io.out)
}

// benchServers are throwaway PostgreSQL servers for one bench run.
type benchServers struct {
	dir      string
	clusters []*pgcluster.Cluster
	urls     []string
}

// startBenchServers starts n servers (fsync off) under a new temporary
// directory.
func startBenchServers(ctx context.Context, n int, logger *slog.Logger) (*benchServers, error) {
	dir, err := os.MkdirTemp("", "tenantry-bench-")
	if err != nil {
		return nil, err
	}
	// When running as root, PostgreSQL runs as the postgres OS user, which
	// must traverse the directory.
	if err := os.Chmod(dir, 0o755); err != nil { //nolint:gosec // traversable on purpose, see above
		return nil, err
	}
	s := &benchServers{dir: dir}
	for i := range n {
		c, err := pgcluster.Start(ctx, &pgcluster.Config{Dir: filepath.Join(dir, fmt.Sprintf("pg%d", i)), Logger: logger})
		if err != nil {
			s.stop()
			if errors.Is(err, pgcluster.ErrBinariesNotFound) {
				return nil, fmt.Errorf("%w\n(or give --primary-url)", err)
			}
			return nil, err
		}
		s.clusters = append(s.clusters, c)
		s.urls = append(s.urls, c.ConnString("postgres"))
	}
	return s, nil
}

func (s *benchServers) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range s.clusters {
		_ = c.Stop(ctx)
	}
	_ = os.RemoveAll(s.dir)
}
