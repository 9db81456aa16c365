package migrate

import (
	"context"
	"fmt"
	"hash/fnv"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/tenant"
)

// Kind is what a target holds.
type Kind string

const (
	// KindShared is the shared database of a primary cluster: the tables of
	// every shared-model tenant on it.
	KindShared Kind = "shared"
	// KindSharded is the shard database of a shard cluster.
	KindSharded Kind = "sharded"
	// KindSchema is one tenant's schema (schema model).
	KindSchema Kind = "schema"
	// KindDatabase is one tenant's database (database model).
	KindDatabase Kind = "database"
	// KindTemplate is a provisioning template new tenants are cloned from.
	KindTemplate Kind = "template"
)

// kindOf maps a placement model to the kind of its target.
func kindOf(m tenant.Model) Kind {
	switch m {
	case tenant.ModelShared:
		return KindShared
	case tenant.ModelSharded:
		return KindSharded
	case tenant.ModelSchema:
		return KindSchema
	case tenant.ModelDatabase:
		return KindDatabase
	}
	return ""
}

// Target is one place that holds tenant tables: a distinct (cluster,
// database, schema) among all tenants' placements, or a template.
type Target struct {
	Cluster  string `json:"cluster"`
	Database string `json:"database"`
	Schema   string `json:"schema"`
	Kind     Kind   `json:"kind"`
	// Tenants is the number of tenants placed on the target when it was
	// discovered (0 for a template).
	Tenants int `json:"tenants"`
}

// Key identifies the target: "cluster/database/schema".
func (t Target) Key() string { return t.Cluster + "/" + t.Database + "/" + t.Schema }

func (t Target) String() string { return t.Key() }

// LockKey returns the advisory lock key that serialises work on the schema
// of database: every migrator of the target takes it, session-level, in the
// target's database (advisory locks are per database, so the key includes
// the schema and schemas of one database do not serialise each other).
func LockKey(database, schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("tenantry/migrate/target/"))
	h.Write([]byte(database))
	h.Write([]byte{0})
	h.Write([]byte(schema))
	return int64(h.Sum64())
}

// TemplateLockKey is the text whose hashtextextended(key, 0) is the
// advisory lock of a template database, taken in the cluster's maintenance
// database (a connection to the template itself would stop it from being
// cloned). Provisioning clones under it in shared mode; the engine migrates
// the template under it in exclusive mode.
func TemplateLockKey(database string) string {
	return "tenantry:provision:template:" + database
}

// TemplateRef names a provisioning template: a database (cloned with CREATE
// DATABASE ... TEMPLATE) or a schema in a database. Templates that do not
// exist on a primary cluster are skipped.
type TemplateRef struct {
	Database string `json:"database"`
	Schema   string `json:"schema"`
	// Database is true for a template database (migrated under
	// TemplateLockKey, its connections re-allowed for the duration), false
	// for a template schema in a shared database (migrated like a tenant
	// schema).
	IsDatabase bool `json:"is_database"`
}

// discover returns every target: one per distinct placement of the
// catalog's tenants, plus the templates that exist on primary clusters.
// Targets are sorted by key.
func (e *Engine) discover(ctx context.Context) ([]Target, map[string]*catalog.Cluster, error) {
	clusters, err := e.store.Clusters(ctx)
	if err != nil {
		return nil, nil, err
	}
	byName := map[string]*catalog.Cluster{}
	for _, c := range clusters {
		byName[c.Name] = c
	}
	rows, err := e.pool.Query(ctx, `SELECT placement_cluster, placement_database, placement_schema, placement_model, count(*)
FROM tenantry.tenant
WHERE placement_cluster IS NOT NULL AND placement_database <> '' AND placement_schema <> ''
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4`)
	if err != nil {
		return nil, nil, fmt.Errorf("discover targets: %w", err)
	}
	var targets []Target
	seen := map[string]bool{}
	for rows.Next() {
		var t Target
		var model string
		if err := rows.Scan(&t.Cluster, &t.Database, &t.Schema, &model, &t.Tenants); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("discover targets: %w", err)
		}
		t.Kind = kindOf(tenant.Model(model))
		if seen[t.Key()] || t.Kind == "" {
			// Two models on one (cluster, database, schema) is a catalog
			// error; the first model wins and the target is migrated once.
			e.logger.WarnContext(ctx, "placement shared by tenants of different models", "target", t.Key(), "model", model)
			continue
		}
		seen[t.Key()] = true
		targets = append(targets, t)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("discover targets: %w", err)
	}
	for _, c := range clusters {
		if c.Role != catalog.RolePrimary || len(e.config.Templates) == 0 {
			continue
		}
		found, err := e.probeTemplates(ctx, c)
		if err != nil {
			return nil, nil, err
		}
		for _, t := range found {
			if !seen[t.Key()] {
				seen[t.Key()] = true
				targets = append(targets, t)
			}
		}
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].Key() < targets[j].Key() })
	return targets, byName, nil
}

// probeTemplates returns the configured templates that exist on c.
func (e *Engine) probeTemplates(ctx context.Context, c *catalog.Cluster) ([]Target, error) {
	ctx, cancel := context.WithTimeout(ctx, e.config.ConnectTimeout+5*time.Second)
	defer cancel()
	conn, err := e.connect(ctx, c, "")
	if err != nil {
		return nil, fmt.Errorf("probe templates on cluster %s: %w", c.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var out []Target
	for _, ref := range e.config.Templates {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, ref.Database).Scan(&exists); err != nil {
			return nil, fmt.Errorf("probe templates on cluster %s: %w", c.Name, err)
		}
		if !exists {
			continue
		}
		if !ref.IsDatabase {
			sc, err := e.connect(ctx, c, ref.Database)
			if err != nil {
				return nil, fmt.Errorf("probe template schema on cluster %s: %w", c.Name, err)
			}
			err = sc.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, ref.Schema).Scan(&exists)
			_ = sc.Close(context.WithoutCancel(ctx))
			if err != nil {
				return nil, fmt.Errorf("probe template schema on cluster %s: %w", c.Name, err)
			}
			if !exists {
				continue
			}
		}
		out = append(out, Target{Cluster: c.Name, Database: ref.Database, Schema: ref.Schema, Kind: KindTemplate})
	}
	return out, nil
}

// connect opens one connection to database on c ("" for the cluster's
// maintenance database) as the cluster's administrative role.
func (e *Engine) connect(ctx context.Context, c *catalog.Cluster, database string) (*pgx.Conn, error) {
	cfg, err := e.connConfig(c, database)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: connect to %s: %w", c.Name, cfg.Database, err)
	}
	return conn, nil
}

func (e *Engine) connConfig(c *catalog.Cluster, database string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(c.ConnString)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: connection string: %w", c.Name, err)
	}
	if database != "" {
		cfg.Database = database
	}
	cfg.ConnectTimeout = e.config.ConnectTimeout
	cfg.RuntimeParams["application_name"] = e.config.ApplicationName
	// The server notices a client that died (kill -9) within a second, even
	// while a long statement runs, so that the session and the target lock
	// it holds do not outlive a crashed engine (PostgreSQL 14 and later).
	cfg.RuntimeParams["client_connection_check_interval"] = "1000"
	// Connections to targets are short-lived: one round trip per query,
	// nothing prepared or cached.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	return cfg, nil
}
