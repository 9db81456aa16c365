package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/pgcluster"
	"github.com/tenantry/tenantry/internal/sqlident"
)

// Names the embedded default uses.
const (
	embeddedDirName   = "pg"       // <data-dir>/pg: the cluster's directory
	embeddedDatabase  = "tenantry" // the catalog database on it
	localClusterName  = "local"    // the cluster registered for it
	embeddedStartWait = 2 * time.Minute
)

// embeddedPostgres is the PostgreSQL cluster `tenantry serve` manages itself
// when no database URL is given.
type embeddedPostgres struct {
	cluster    *pgcluster.Cluster
	catalogURL string
}

// ensureDataDir creates the data directory. It must be traversable by
// others (0711, not listable): when Tenantry runs as root, PostgreSQL runs
// as the postgres OS user and must reach <data-dir>/pg.
func ensureDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil { //nolint:gosec // traversable on purpose, see above
		return fmt.Errorf("creating the data directory: %w", err)
	}
	return nil
}

// startEmbedded starts (creating on first run) the durable cluster under
// <dataDir>/pg and makes sure the catalog database exists on it.
func startEmbedded(ctx context.Context, dataDir string, logger *slog.Logger) (*embeddedPostgres, error) {
	if err := ensureDataDir(dataDir); err != nil {
		return nil, err
	}
	dir := filepath.Join(dataDir, embeddedDirName)
	first := false
	if _, err := os.Stat(filepath.Join(dir, "pgdata", "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		first = true
		logger.InfoContext(ctx, "creating the embedded PostgreSQL cluster (first run)", "dir", dir)
	}
	c, err := pgcluster.Start(ctx, &pgcluster.Config{
		Dir:          dir,
		Durable:      true,
		StartTimeout: embeddedStartWait,
		Logger:       logger,
	})
	if err != nil {
		if errors.Is(err, pgcluster.ErrBinariesNotFound) {
			return nil, fmt.Errorf("%w\n(or give --database-url / $%s to use an existing server)", err, envDatabaseURL)
		}
		return nil, fmt.Errorf("starting the embedded PostgreSQL: %w", err)
	}
	e := &embeddedPostgres{cluster: c, catalogURL: c.ConnString(embeddedDatabase)}
	if err := createDatabase(ctx, c.ConnString("postgres"), embeddedDatabase); err != nil {
		_ = c.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	logger.InfoContext(ctx, "embedded PostgreSQL running", "dir", dir, "port", c.Port(), "first_run", first)
	return e, nil
}

// createDatabase creates database name unless it exists.
func createDatabase(ctx context.Context, maintenanceURL, name string) error {
	ident, err := sqlident.Quote(name)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, maintenanceURL)
	if err != nil {
		return fmt.Errorf("connecting to the embedded PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("looking for the catalog database: %w", err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+ident); err != nil {
		return fmt.Errorf("creating the catalog database: %w", err)
	}
	return nil
}

// register records the embedded cluster in the catalog as "local" (the
// placement target of tenants created on the embedded default) unless a
// cluster of that name exists.
func (e *embeddedPostgres) register(ctx context.Context, store *catalog.Store, logger *slog.Logger) error {
	want := e.cluster.ConnString("postgres")
	existing, err := store.Cluster(ctx, localClusterName)
	switch {
	case err == nil:
		if existing.ConnString != want {
			// The cluster came up on another port than last time (the old
			// one was taken); the catalog cannot update a cluster yet.
			logger.WarnContext(ctx, "the embedded PostgreSQL moved to another port; the catalog's cluster \"local\" still names the old one",
				"registered", catalog.RedactConnString(existing.ConnString), "now", want)
		}
		return nil
	case !errors.Is(err, catalog.ErrNotFound):
		return err
	}
	_, err = store.CreateCluster(ctx, catalog.Actor{Name: "tenantry serve", Reason: "embedded PostgreSQL"}, catalog.Cluster{
		Name:       localClusterName,
		ConnString: want,
		Role:       catalog.RolePrimary,
	})
	if errors.Is(err, catalog.ErrExists) { // another process registered it first
		return nil
	}
	return err
}

func (e *embeddedPostgres) stop(ctx context.Context) error {
	if err := e.cluster.Stop(ctx); err != nil {
		return fmt.Errorf("stopping the embedded PostgreSQL: %w", err)
	}
	return nil
}

// writeNewToken generates an admin token and writes it to path (0600),
// failing if the file appeared meanwhile.
func writeNewToken(path string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	token := base64.RawURLEncoding.EncodeToString(b[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // the operator's own data directory
	if err != nil {
		return "", fmt.Errorf("saving the admin token: %w", err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		_ = f.Close()
		return "", fmt.Errorf("saving the admin token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("saving the admin token: %w", err)
	}
	return token, nil
}
