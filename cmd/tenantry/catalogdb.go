package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/pgcluster"
)

// openCatalog opens the catalog for a command that works on it directly
// (migrate): the database of dbURL, else of $TENANTRY_DATABASE_URL, else the
// embedded PostgreSQL under the data directory — the one a running
// `tenantry serve` manages, or, when none runs, started for the command and
// stopped when it ends. The catalog is migrated to the binary's version.
func (a *app) openCatalog(ctx context.Context, dbURL string, logger *slog.Logger) (*catalog.Store, error) {
	if dbURL == "" {
		dbURL = a.getenv(envDatabaseURL)
	}
	if dbURL == "" {
		var err error
		if dbURL, err = a.embeddedCatalogURL(ctx, logger); err != nil {
			return nil, err
		}
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("catalog database URL: %w", err)
	}
	a.atExit(pool.Close)
	if err := pool.Ping(ctx); err != nil {
		return nil, fmt.Errorf("cannot connect to the catalog database: %w", err)
	}
	store, err := catalog.NewStore(pool, &catalog.Config{Logger: logger})
	if err != nil {
		return nil, err
	}
	if _, err := store.Migrate(ctx); err != nil {
		return nil, err
	}
	return store, nil
}

// embeddedCatalogURL returns the URL of the catalog on the embedded
// PostgreSQL, starting it for this command if no `tenantry serve` runs it.
func (a *app) embeddedCatalogURL(ctx context.Context, logger *slog.Logger) (string, error) {
	dataDir, err := filepath.Abs(a.dataDir)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(dataDir, embeddedDirName)
	if _, err := os.Stat(filepath.Join(dir, "pgdata", "PG_VERSION")); err != nil {
		return "", fmt.Errorf("no embedded PostgreSQL under %s (run `tenantry serve` there once, point --data-dir at its data, or give --database-url / $%s)", dir, envDatabaseURL)
	}
	e, err := startEmbedded(ctx, dataDir, logger)
	switch {
	case err == nil:
		a.atExit(func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			_ = e.stop(stopCtx)
		})
		return e.catalogURL, nil
	case errors.Is(err, pgcluster.ErrAlreadyRunning):
		// `tenantry serve` runs it: find its port.
		b, rerr := os.ReadFile(filepath.Join(dir, "port")) //nolint:gosec // the operator's own data directory
		port, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if rerr != nil || perr != nil {
			return "", fmt.Errorf("the embedded PostgreSQL under %s is running, but its port is unknown: %w", dir, errors.Join(rerr, perr))
		}
		u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Path: "/" + embeddedDatabase, RawQuery: "sslmode=disable"}
		return u.String(), nil
	default:
		return "", err
	}
}

// atExit registers fn to run when the command has finished.
func (a *app) atExit(fn func()) {
	a.closers = append(a.closers, fn)
}
