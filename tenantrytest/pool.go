package tenantrytest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/internal/sqlident"
)

// PoolOption changes the configuration of a pool made by Pool.
type PoolOption func(tb testing.TB, cfg *pgxpool.Config)

// WithSearchPath sets the search_path of every connection to schemas. With
// no schemas the search_path is empty, so any query that names a table
// without its schema fails loudly instead of finding one by accident: the
// property a schema-per-tenant router must keep (river's test pools do the
// same).
func WithSearchPath(schemas ...string) PoolOption {
	return func(tb testing.TB, cfg *pgxpool.Config) {
		tb.Helper()
		quoted := make([]string, len(schemas))
		for i, s := range schemas {
			q, err := sqlident.Quote(s)
			if err != nil {
				tb.Fatalf("tenantrytest: WithSearchPath(%q): %v", s, err)
			}
			quoted[i] = q
		}
		// An empty value at startup leaves the server's default in place, so
		// "" is spelled out as the empty identifier: a schema that cannot exist.
		path := `""`
		if len(quoted) > 0 {
			path = strings.Join(quoted, ", ")
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = path
	}
}

// WithConfig lets the caller change anything else in the pool's config.
func WithConfig(f func(*pgxpool.Config)) PoolOption {
	return func(_ testing.TB, cfg *pgxpool.Config) { f(cfg) }
}

// Pool opens a pool on url, checks that it connects, and closes it at
// cleanup.
func Pool(tb testing.TB, url string, opts ...PoolOption) *pgxpool.Pool {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		tb.Fatalf("tenantrytest: parsing pool URL: %v", err)
	}
	for _, opt := range opts {
		opt(tb, cfg)
	}
	pool, err := pgxpool.NewWithConfig(tb.Context(), cfg)
	if err != nil {
		tb.Fatalf("tenantrytest: opening pool: %v", err)
	}
	tb.Cleanup(pool.Close)
	if err := pool.Ping(tb.Context()); err != nil {
		tb.Fatalf("tenantrytest: connecting pool to %s: %v", redact(url), err)
	}
	return pool
}

// TestTx begins a transaction on pool that is rolled back at cleanup: the
// test's writes are never seen by anyone else. Tests that need commits or
// LISTEN/NOTIFY use NewSchema or NewDatabase instead.
func TestTx(tb testing.TB, pool *pgxpool.Pool) pgx.Tx {
	tb.Helper()
	tx, err := pool.Begin(tb.Context())
	if err != nil {
		tb.Fatalf("tenantrytest: beginning test transaction: %v", err)
	}
	tb.Cleanup(func() {
		err := tx.Rollback(context.Background())
		if err != nil && !errors.Is(err, pgx.ErrTxClosed) {
			tb.Errorf("tenantrytest: rolling back test transaction: %v", err)
		}
	})
	return tx
}
