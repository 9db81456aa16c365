package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/migrate"
	"github.com/tenantry/tenantry/migrate/cli"
	"github.com/tenantry/tenantry/notes"
	"github.com/tenantry/tenantry/provision"
)

// loadMigrations returns the fleet migrations of the reference
// application: the NNNN_name.sql files of dir, or, when dir is "", the
// schema provisioning builds (package notes) as its migrations.
//
// tenantry serve provisions new schemas with migrate.Build over these
// migrations, so a new tenant starts at their head with its ledger. Targets
// made from notes' DDL without a ledger (before that, or by other tools) are
// adopted at version N, the number of notes' files
// (migrate.Config.Baseline), so a directory given here must start with those
// files, unchanged, and add its own steps after them.
func loadMigrations(dir string) (*migrate.Source, error) {
	if dir != "" {
		src, err := migrate.Load(os.DirFS(dir))
		if err != nil {
			return nil, fmt.Errorf("--migrations %s: %w", dir, err)
		}
		return src, nil
	}
	return migrate.Load(referenceMigrations())
}

// referenceMigrations is notes' schema as migrations: each file a
// transactional step (the files carry no migrate header, being plain DDL).
func referenceMigrations() fs.FS {
	out := fstest.MapFS{}
	schema := notes.Schema()
	names, err := fs.Glob(schema, "*.sql")
	if err != nil {
		panic(err) // the pattern is valid
	}
	for _, name := range names {
		b, err := fs.ReadFile(schema, name)
		if err != nil {
			panic(err) // embedded
		}
		if !bytes.Contains(b, []byte("-- migrate:mode")) {
			b = append([]byte("-- migrate:mode tx\n"), b...)
		}
		out[path.Base(name)] = &fstest.MapFile{Data: b, Mode: 0o444}
	}
	return out
}

// provisionedVersion is the version of the migrations that provisioning
// builds tenants at: one step per file of notes' schema.
func provisionedVersion() int {
	names, _ := fs.Glob(notes.Schema(), "*.sql")
	return len(names)
}

// newMigrationEngine returns the engine over store for src, adopting
// targets without a ledger at the version provisioning builds.
func newMigrationEngine(store *catalog.Store, src *migrate.Source, logger *slog.Logger) (*migrate.Engine, error) {
	baseline := min(provisionedVersion(), src.Head())
	return migrate.New(store, &migrate.Config{Source: src, Baseline: baseline, Logger: logger, AfterStep: secureAfterStep})
}

// secureAfterStep keeps shared and shard locations under row-level security
// after each migration step: a step that adds a table there must not leave it
// open across tenants. Tenant schemas and databases need nothing: default
// privileges give the tenant's role the tables its owner creates.
func secureAfterStep(ctx context.Context, tx pgx.Tx, t migrate.Target) error {
	switch t.Kind {
	case migrate.KindShared, migrate.KindSharded:
		return provision.SecureShared(ctx, tx, t.Schema)
	}
	return nil
}

// migrateCommand is `tenantry migrate`: package migrate/cli's command over
// the catalog of the embedded PostgreSQL (or --database-url).
func (a *app) migrateCommand() *cobra.Command {
	var dir, dbURL string
	logger := slog.New(slog.DiscardHandler)
	cmd := cli.Command(cli.Config{
		Engine: func(ctx context.Context) (*migrate.Engine, error) {
			src, err := loadMigrations(dir)
			if err != nil {
				return nil, err
			}
			store, err := a.openCatalog(ctx, dbURL, logger)
			if err != nil {
				return nil, err
			}
			return newMigrationEngine(store, src, logger)
		},
		Source: func() (*migrate.Source, error) { return loadMigrations(dir) },
		Output: &a.output,
		Reason: &a.reason,
	})
	cmd.Long += `

The migrations are the reference application's: by default the schema
provisioning creates (version 1), or the NNNN_name.sql files of
--migrations, which must start with that schema. The catalog is the
embedded PostgreSQL's under --data-dir (that of a running tenantry serve,
or started for the command), or --database-url / $` + envDatabaseURL + `.`
	f := cmd.PersistentFlags()
	f.StringVar(&dir, "migrations", "", "directory of NNNN_name.sql migrations (default: the reference application's schema)")
	f.StringVar(&dbURL, "database-url", "", "PostgreSQL URL of the catalog database ($"+envDatabaseURL+"); default: the embedded PostgreSQL under <data-dir>/pg")
	return cmd
}
