package provision

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/internal/sqlident"
)

// Config configures a Provisioner.
type Config struct {
	// DDL is the application's schema: SQL statements with unqualified
	// names, applied in order as OwnerRole with search_path set to the
	// tenant's schema. Every table must have the tenant_id column of the
	// shared contract (see the package documentation) and a primary key
	// that starts with it. Each element may hold several statements.
	// Required. ReadDDL loads it from an fs.FS.
	DDL []string

	// Build, when set, builds the application schema in place of running
	// DDL: it is called in the provisioning transaction, as OwnerRole, for
	// every schema provisioning creates (the shared and shard schemas, a
	// tenant schema, the template database's schema). Set it to the fleet
	// migrator's builder (migrate.Build over the current migrations) so
	// that new tenants start at the head version with their ledger, rather
	// than at the DDL's version. DDL is still required: its hash marks what
	// a template was built from. Default nil (run DDL).
	Build func(ctx context.Context, tx pgx.Tx, schema string) error

	// Policy decides where a tenant without a placement goes. Default:
	// TierPolicy{} (free -> shared, pro -> schema, enterprise -> database).
	Policy Policy

	// Logger receives provisioning records, each with "tenant". Default:
	// discard.
	Logger *slog.Logger

	// SharedDatabase is the database of the shared model on a primary
	// cluster. Default "tenantry_shared".
	SharedDatabase string
	// ShardDatabase is the database of the sharded model on each shard.
	// Default "tenantry_shard".
	ShardDatabase string
	// SchemasDatabase holds the tenant schemas of the schema model.
	// Default "tenantry_schemas".
	SchemasDatabase string
	// TemplateDatabase is the template tenant databases are cloned from;
	// it is rebuilt whenever DDL changes. Default "tenantry_template".
	TemplateDatabase string
	// AppSchema is the schema holding the tables of the shared, sharded and
	// database models. Default "app".
	AppSchema string

	// CloneStrategy is the STRATEGY of CREATE DATABASE ... TEMPLATE
	// (PostgreSQL 15 and later): "WAL_LOG" (the server's default: copies
	// block by block through the WAL, no checkpoint) or "FILE_COPY" (copies
	// files, two checkpoints per database: faster on a server without
	// fsync, slower on a busy durable one). Default "": the server's
	// default, and no STRATEGY clause, so older servers work too.
	CloneStrategy string

	// LockTimeout bounds the wait for another provisioner working on the
	// same cluster object (advisory locks). Default 1 minute.
	LockTimeout time.Duration
}

// Defaults of the Config fields.
const (
	DefaultSharedDatabase   = "tenantry_shared"
	DefaultShardDatabase    = "tenantry_shard"
	DefaultSchemasDatabase  = "tenantry_schemas"
	DefaultTemplateDatabase = "tenantry_template"
	DefaultAppSchema        = "app"
	DefaultLockTimeout      = time.Minute
)

// WithDefaults returns a copy of c with defaults filled in. c may be nil.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	out.DDL = slices.Clone(out.DDL)
	if out.Policy == nil {
		out.Policy = TierPolicy{}
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&out.SharedDatabase, DefaultSharedDatabase)
	def(&out.ShardDatabase, DefaultShardDatabase)
	def(&out.SchemasDatabase, DefaultSchemasDatabase)
	def(&out.TemplateDatabase, DefaultTemplateDatabase)
	def(&out.AppSchema, DefaultAppSchema)
	if out.LockTimeout == 0 {
		out.LockTimeout = DefaultLockTimeout
	}
	return &out
}

func (c *Config) validate() error {
	if len(c.DDL) == 0 {
		return errors.New("provision: Config.DDL is required")
	}
	names := map[string]string{
		"SharedDatabase": c.SharedDatabase, "ShardDatabase": c.ShardDatabase,
		"SchemasDatabase": c.SchemasDatabase, "TemplateDatabase": c.TemplateDatabase,
		"AppSchema": c.AppSchema,
	}
	seen := map[string]string{}
	for field, name := range names {
		if err := sqlident.Validate(name); err != nil {
			return fmt.Errorf("provision: Config.%s: %w", field, err)
		}
		// Names must not collide with tenant names ("t_...") nor with each
		// other, or deprovisioning a tenant could drop shared storage.
		if strings.HasPrefix(name, TenantPrefix) {
			return fmt.Errorf("provision: Config.%s %q must not start with %q (reserved for tenants)", field, name, TenantPrefix)
		}
		if field != "AppSchema" {
			if other, dup := seen[name]; dup {
				return fmt.Errorf("provision: Config.%s and Config.%s are both %q", field, other, name)
			}
			seen[name] = field
		}
	}
	switch c.CloneStrategy {
	case "", "WAL_LOG", "FILE_COPY":
	default:
		return fmt.Errorf("provision: Config.CloneStrategy %q: use WAL_LOG or FILE_COPY", c.CloneStrategy)
	}
	if c.LockTimeout < 0 {
		return errors.New("provision: Config.LockTimeout must not be negative")
	}
	return nil
}

// ReadDDL returns the contents of the *.sql files at the top of fsys in
// lexical order (name them 0001_notes.sql, 0002_...), for Config.DDL.
func ReadDDL(fsys fs.FS) ([]string, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("provision: read DDL: %w", err)
	}
	if len(names) == 0 {
		return nil, errors.New("provision: read DDL: no *.sql files")
	}
	slices.Sort(names)
	out := make([]string, 0, len(names))
	for _, name := range names {
		b, err := fs.ReadFile(fsys, path.Clean(name))
		if err != nil {
			return nil, fmt.Errorf("provision: read DDL %s: %w", name, err)
		}
		out = append(out, string(b))
	}
	return out, nil
}
