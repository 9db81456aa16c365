package bench

import (
	"errors"
	"log/slog"
	"time"

	"github.com/tenantry/tenantry/tenant"
)

// Config configures Run.
type Config struct {
	// PrimaryURL is a superuser URL of the primary cluster's maintenance
	// database. It holds the catalog, the baseline, and the shared, schema
	// and database tenants. Required. Use a server of its own: the
	// benchmark creates roles and up to thousands of databases on it.
	PrimaryURL string
	// ShardURLs are superuser URLs of the shard clusters. Default: the
	// primary, once (the shard database has its own name).
	ShardURLs []string

	// Tenants is the number of tenants of each model. Default: shared
	// 1000, sharded 1000, schema 1000, database 1000.
	Tenants map[tenant.Model]int
	// Models are the models to measure, in order. Default all four.
	Models []tenant.Model
	// NotesPerTenant is how many notes each tenant (and the baseline) has.
	// Default 10.
	NotesPerTenant int

	// Budget is the connection budget of each cluster (catalog MaxConns),
	// shared by all pools on it. Default 50.
	Budget int
	// TenantDBConns is the most connections one tenant database's pool may
	// hold. Default 4 (the clients of one side).
	TenantDBConns int
	// Zipf is the exponent s of the skewed tenant choice of the database
	// model (rank r chosen with probability ~ 1/r^s); the other models pick
	// tenants uniformly. Default 1.1.
	Zipf float64

	// Clients is the number of concurrent HTTP clients of each side (the
	// router and the baseline run at the same time). Default 4.
	Clients int
	// Warmup is run per model before measuring. Default 3s.
	Warmup time.Duration
	// Round is the length of one measured round. Default 4s.
	Round time.Duration
	// Rounds is the number of rounds per model; the ratio is the median of
	// the rounds' ratios. Default 5.
	Rounds int

	// Drop removes everything the benchmark made when it ends. Default
	// false: the tenants are kept, so that a second run skips provisioning.
	Drop bool
	// Logger receives progress records. Default: discard.
	Logger *slog.Logger
}

// Defaults of the Config fields.
const (
	DefaultTenants        = 1000
	DefaultNotesPerTenant = 10
	DefaultBudget         = 50
	DefaultTenantDBConns  = 4
	DefaultZipf           = 1.1
	DefaultClients        = 4
	DefaultWarmup         = 3 * time.Second
	DefaultRound          = 4 * time.Second
	DefaultRounds         = 5
)

// WithDefaults returns a copy of c with defaults filled in. c may be nil.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if len(out.ShardURLs) == 0 {
		out.ShardURLs = []string{out.PrimaryURL}
	}
	tenants := map[tenant.Model]int{}
	for _, m := range tenant.Models {
		tenants[m] = DefaultTenants
		if n, ok := out.Tenants[m]; ok {
			tenants[m] = n
		}
	}
	out.Tenants = tenants
	if len(out.Models) == 0 {
		out.Models = tenant.Models
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&out.NotesPerTenant, DefaultNotesPerTenant)
	def(&out.Budget, DefaultBudget)
	def(&out.TenantDBConns, DefaultTenantDBConns)
	def(&out.Clients, DefaultClients)
	def(&out.Rounds, DefaultRounds)
	if out.Zipf == 0 {
		out.Zipf = DefaultZipf
	}
	if out.Warmup == 0 {
		out.Warmup = DefaultWarmup
	}
	if out.Round == 0 {
		out.Round = DefaultRound
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return &out
}

func (c *Config) validate() error {
	if c.PrimaryURL == "" {
		return errors.New("bench: Config.PrimaryURL is required")
	}
	for _, m := range c.Models {
		if !m.Valid() {
			return errors.New("bench: Config.Models: unknown model " + string(m))
		}
		if c.Tenants[m] < 1 {
			return errors.New("bench: Config.Tenants: every measured model needs a tenant")
		}
	}
	if c.Zipf <= 1 {
		return errors.New("bench: Config.Zipf must be greater than 1")
	}
	if c.Budget < 1 || c.TenantDBConns < 1 || c.Clients < 1 || c.Rounds < 1 || c.NotesPerTenant < 1 {
		return errors.New("bench: Config counts must be positive")
	}
	if c.Warmup < 0 || c.Round <= 0 {
		return errors.New("bench: Config.Round must be positive and Warmup not negative")
	}
	return nil
}
