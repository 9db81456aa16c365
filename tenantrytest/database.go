package tenantrytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/internal/sqlident"
)

// cleanupTimeout bounds each drop run at cleanup, when the test's own
// context is already cancelled.
const cleanupTimeout = 30 * time.Second

// uniqueName returns "tt_" and 12 random hex digits: a database or schema
// name that no other test, or test binary on the same server, will pick.
func uniqueName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "tt_" + hex.EncodeToString(b[:])
}

// NewDatabase creates an empty database on the shared server and returns its
// URL. The database is dropped, even with open connections, at cleanup.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	return Shared(tb).NewDatabase(tb)
}

// NewDatabase creates an empty database on s (a copy of template0) and
// returns its URL. The database is dropped, even with open connections, at
// cleanup.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := uniqueName()
	ident := sqlident.MustQuote(name)
	if _, err := s.admin.Exec(tb.Context(), "CREATE DATABASE "+ident+" TEMPLATE template0"); err != nil {
		tb.Fatalf("tenantrytest: creating database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			tb.Errorf("tenantrytest: dropping database %s: %v", name, err)
		}
	})
	return s.URL(name)
}

// NewSchema creates an empty schema in pool's database and returns its name.
// It is dropped with everything in it at cleanup, through pool, which must
// still be open then (a pool from Pool made before this call is).
func NewSchema(tb testing.TB, pool *pgxpool.Pool) string {
	tb.Helper()
	name := uniqueName()
	ident := sqlident.MustQuote(name)
	if _, err := pool.Exec(tb.Context(), "CREATE SCHEMA "+ident); err != nil {
		tb.Fatalf("tenantrytest: creating schema %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+ident+" CASCADE"); err != nil {
			tb.Errorf("tenantrytest: dropping schema %s: %v", name, err)
		}
	})
	return name
}
