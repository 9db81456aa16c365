package pool

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/catalog"
)

// Catalog is what the Manager needs from the catalog: the clusters (their
// connection strings and connection budgets) and a feed of changes.
// *catalog.Cache implements it.
type Catalog interface {
	// Cluster returns the named cluster.
	Cluster(name string) (*catalog.Cluster, error)
	// Subscribe registers fn to be called after every change and returns a
	// function that unregisters it; fn must not block.
	Subscribe(fn func(catalog.Change)) (unsubscribe func())
}

// Key names one pool: the connections to one database of one cluster as one
// login role.
type Key struct {
	// Cluster is a cluster name in the catalog.
	Cluster string
	// Database is the database on Cluster.
	Database string
	// Role is the login role.
	Role string
}

func (k Key) String() string { return k.Cluster + "/" + k.Database + "/" + k.Role }

func (k Key) validate() error {
	if k.Cluster == "" || k.Database == "" || k.Role == "" {
		return fmt.Errorf("pool: key %q: cluster, database and role are required", k.String())
	}
	return nil
}

// Defaults of the Config fields.
const (
	DefaultMaxConnLifetime = 30 * time.Minute
	DefaultMaxConnIdleTime = 5 * time.Minute
	DefaultMaxConnSchemas  = 1000
	DefaultPoolIdleTimeout = 5 * time.Minute
	DefaultMaxPools        = 2000
	DefaultReapInterval    = 10 * time.Second
	DefaultCloseTimeout    = 5 * time.Second
)

// Config configures a Manager. The zero value of every field but Catalog
// selects the documented default.
type Config struct {
	// Catalog supplies the clusters and their changes. Required; usually a
	// *catalog.Cache.
	Catalog Catalog

	// Password is the login role's password. Default "": the password of
	// the cluster's connection string, if any, or a passfile.
	Password string

	// ConfigureConn, when set, is called with the connection configuration of
	// every new pool after user and database have been set from its Key; it
	// may set TLS, a password from a secret store, runtime parameters. Default
	// none.
	ConfigureConn func(Key, *pgx.ConnConfig) error

	// MaxConnsPerPool returns how many connections the pool of k may hold
	// at most, given the cluster's budget (catalog.Cluster.MaxConns): the
	// share that keeps one busy tenant database from taking the whole
	// cluster. It is clamped to [1, budget]. Default: half the budget,
	// at least 1.
	MaxConnsPerPool func(k Key, budget int) int

	// MaxConnLifetime is the age after which a connection is replaced, which
	// also bounds the catalog caches a backend accumulates. Default 30m.
	MaxConnLifetime time.Duration

	// MaxConnLifetimeJitter spreads replacements: each connection lives up to
	// MaxConnLifetime plus a random part of this. Default MaxConnLifetime/10.
	MaxConnLifetimeJitter time.Duration

	// MaxConnIdleTime closes a connection idle this long. Default 5m.
	MaxConnIdleTime time.Duration

	// MaxConnSchemas replaces a connection once it has served transactions
	// in more than this many distinct schemas (see Conn.UseSchema). A
	// PostgreSQL backend keeps the catalog entries of every relation it has
	// touched until it exits (about 40 kB per five-table schema), so this
	// bounds a backend's memory under schema-per-tenant. Default 1000;
	// negative disables the limit.
	MaxConnSchemas int

	// MaxConnUses replaces a connection after this many transactions.
	// Default 0: no limit.
	MaxConnUses int

	// PoolIdleTimeout closes a pool that nobody has used for this long.
	// Default 5m.
	PoolIdleTimeout time.Duration

	// MaxPools is how many pools may be open at once; beyond it the least
	// recently used unused pools are closed. Pools in use are never closed,
	// so the count may exceed it briefly. Default 2000.
	MaxPools int

	// ReapInterval is how often idle pools are looked for. Default 10s.
	ReapInterval time.Duration

	// CloseTimeout bounds how long closing a connection waits for the
	// server to end its backend before the connection's slot of the cluster
	// budget is given to another. Default 5s.
	CloseTimeout time.Duration

	// Logger receives the Manager's records. Default: discard.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with defaults filled in. c may be nil.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.MaxConnsPerPool == nil {
		out.MaxConnsPerPool = HalfBudget
	}
	if out.MaxConnLifetime == 0 {
		out.MaxConnLifetime = DefaultMaxConnLifetime
	}
	if out.MaxConnLifetimeJitter == 0 {
		out.MaxConnLifetimeJitter = out.MaxConnLifetime / 10
	}
	if out.MaxConnIdleTime == 0 {
		out.MaxConnIdleTime = DefaultMaxConnIdleTime
	}
	if out.MaxConnSchemas == 0 {
		out.MaxConnSchemas = DefaultMaxConnSchemas
	}
	if out.PoolIdleTimeout == 0 {
		out.PoolIdleTimeout = DefaultPoolIdleTimeout
	}
	if out.MaxPools == 0 {
		out.MaxPools = DefaultMaxPools
	}
	if out.ReapInterval == 0 {
		out.ReapInterval = DefaultReapInterval
	}
	if out.CloseTimeout == 0 {
		out.CloseTimeout = DefaultCloseTimeout
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &out
}

func (c *Config) validate() error {
	if c.Catalog == nil {
		return errors.New("pool config: Catalog is required")
	}
	if c.MaxConnLifetime < 0 || c.MaxConnLifetimeJitter < 0 || c.MaxConnIdleTime < 0 ||
		c.PoolIdleTimeout < 0 || c.ReapInterval < 0 || c.CloseTimeout < 0 {
		return errors.New("pool config: durations must not be negative")
	}
	if c.MaxPools < 0 || c.MaxConnUses < 0 {
		return errors.New("pool config: MaxPools and MaxConnUses must not be negative")
	}
	return nil
}

// HalfBudget is the default MaxConnsPerPool: half the cluster's budget, at
// least one connection.
func HalfBudget(_ Key, budget int) int { return max(1, budget/2) }

// WholeBudget lets every pool use the whole cluster budget: for clusters
// that hold one shared database.
func WholeBudget(_ Key, budget int) int { return budget }
