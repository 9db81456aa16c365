package catalog

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Cluster roles.
const (
	// RolePrimary is a general-purpose cluster: shared tables, tenant
	// schemas, tenant databases.
	RolePrimary = "primary"
	// RoleShard is one server of the sharded model.
	RoleShard = "shard"
	// RoleReplica is a read replica; never a placement target.
	RoleReplica = "replica"
)

// Cluster is one PostgreSQL server (or HA group) that holds tenant data.
type Cluster struct {
	// Name is the unique cluster name placements refer to.
	Name string `json:"name"`
	// ConnString is a libpq URL or DSN of a maintenance database on the
	// cluster, for a role allowed to create databases and roles. Keep
	// passwords out of it (use a passfile or environment); ConnString is
	// redacted in API output.
	ConnString string `json:"conn_string"`
	// Region is where the cluster runs, for data residency.
	Region string `json:"region"`
	// Role is primary, shard or replica. Default primary.
	Role string `json:"role"`
	// MaxConns is the connection budget Tenantry may use on the cluster,
	// shared by all tenant databases on it. Default 50.
	MaxConns int `json:"max_conns"`
	// MaxTenants caps placements on the cluster; 0 means no cap.
	MaxTenants int               `json:"max_tenants"`
	Labels     map[string]string `json:"labels"`
	CreatedAt  time.Time         `json:"created_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
	Version    int64             `json:"version"`
}

// Redacted returns a copy of c whose ConnString has any password masked.
func (c Cluster) Redacted() Cluster {
	c.ConnString = RedactConnString(c.ConnString)
	return c
}

// RedactConnString masks the password of a URL or key=value connection
// string.
func RedactConnString(s string) string {
	cfg, err := pgxpool.ParseConfig(s)
	if err != nil {
		return "(unparseable connection string)"
	}
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		return u.String()
	}
	if cfg.ConnConfig.Password != "" {
		return fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=xxxxx", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, cfg.ConnConfig.User)
	}
	return s
}

func (c *Cluster) normalize() error {
	if !clusterRe.MatchString(c.Name) {
		return &ValidationError{Field: "name", Reason: "must be 1-48 lower-case letters, digits or hyphens, starting with a letter"}
	}
	if c.ConnString == "" {
		return &ValidationError{Field: "conn_string", Reason: "required"}
	}
	if _, err := pgxpool.ParseConfig(c.ConnString); err != nil {
		return &ValidationError{Field: "conn_string", Reason: "not a valid PostgreSQL connection string"}
	}
	if err := validateRegion(c.Region); err != nil {
		return err
	}
	if c.Role == "" {
		c.Role = RolePrimary
	}
	switch c.Role {
	case RolePrimary, RoleShard, RoleReplica:
	default:
		return &ValidationError{Field: "role", Reason: "must be one of primary, shard, replica"}
	}
	if c.MaxConns == 0 {
		c.MaxConns = 50
	}
	if c.MaxConns < 0 || c.MaxConns > 10000 {
		return &ValidationError{Field: "max_conns", Reason: "must be between 1 and 10000"}
	}
	if c.MaxTenants < 0 {
		return &ValidationError{Field: "max_tenants", Reason: "must not be negative"}
	}
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	return validateLabels("labels", c.Labels)
}

const clusterColumns = `name, conn_string, region, role, max_conns, max_tenants, labels, created_at, updated_at, version`

func scanCluster(row pgx.Row) (*Cluster, error) {
	var c Cluster
	err := row.Scan(&c.Name, &c.ConnString, &c.Region, &c.Role, &c.MaxConns, &c.MaxTenants, &c.Labels, &c.CreatedAt, &c.UpdatedAt, &c.Version)
	if err != nil {
		return nil, err
	}
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	return &c, nil
}

// CreateCluster registers a PostgreSQL cluster.
func (s *Store) CreateCluster(ctx context.Context, actor Actor, c Cluster) (*Cluster, error) {
	if err := actor.validate(); err != nil {
		return nil, err
	}
	if err := c.normalize(); err != nil {
		return nil, err
	}
	var out *Cluster
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = scanCluster(tx.QueryRow(ctx, `INSERT INTO tenantry.cluster (name, conn_string, region, role, max_conns, max_tenants, labels)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+clusterColumns, c.Name, c.ConnString, c.Region, c.Role, c.MaxConns, c.MaxTenants, c.Labels))
		if _, ok := uniqueViolation(err); ok {
			return &ExistsError{Field: "name", Value: c.Name}
		}
		if err != nil {
			return fmt.Errorf("insert cluster: %w", err)
		}
		return s.audit(ctx, tx, actor, "cluster.create", "", c.Name, nil, out.Redacted())
	})
	if err != nil {
		return nil, err
	}
	s.logger.InfoContext(ctx, "cluster registered", "cluster", c.Name, "role", c.Role, "region", c.Region, "actor", actor.Name)
	return out, nil
}

// Cluster returns one cluster by name.
func (s *Store) Cluster(ctx context.Context, name string) (*Cluster, error) {
	c, err := scanCluster(s.pool.QueryRow(ctx, `SELECT `+clusterColumns+` FROM tenantry.cluster WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("cluster %q: %w", truncate(name, 64), ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read cluster: %w", err)
	}
	return c, nil
}

// Clusters lists every cluster ordered by name.
func (s *Store) Clusters(ctx context.Context) ([]*Cluster, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+clusterColumns+` FROM tenantry.cluster ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Cluster, error) { return scanCluster(row) })
	if err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	return out, nil
}

// ClusterPatch is a partial update of a cluster; nil fields are left alone.
type ClusterPatch struct {
	// Version must equal the stored version (optimistic concurrency).
	Version    int64
	ConnString *string
	Region     *string
	MaxConns   *int
	MaxTenants *int
	// Labels, when non-nil, replaces all labels.
	Labels map[string]string
}

// UpdateCluster applies p to the named cluster if its version still matches.
// The role of a cluster cannot change: tenants placed on it depend on it.
func (s *Store) UpdateCluster(ctx context.Context, actor Actor, name string, p ClusterPatch) (*Cluster, error) {
	if err := actor.validate(); err != nil {
		return nil, err
	}
	if p.Version <= 0 {
		return nil, &ValidationError{Field: "version", Reason: "required: send the version you read"}
	}
	var out *Cluster
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := scanCluster(tx.QueryRow(ctx, `SELECT `+clusterColumns+` FROM tenantry.cluster WHERE name = $1 FOR UPDATE`, name))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("cluster %q: %w", truncate(name, 64), ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read cluster: %w", err)
		}
		if before.Version != p.Version {
			return fmt.Errorf("cluster %q is at version %d, not %d: %w", name, before.Version, p.Version, ErrVersionConflict)
		}
		after := *before
		if p.ConnString != nil {
			after.ConnString = *p.ConnString
		}
		if p.Region != nil {
			after.Region = *p.Region
		}
		if p.MaxConns != nil {
			after.MaxConns = *p.MaxConns
			if after.MaxConns == 0 {
				return &ValidationError{Field: "max_conns", Reason: "must be between 1 and 10000"}
			}
		}
		if p.MaxTenants != nil {
			after.MaxTenants = *p.MaxTenants
		}
		if p.Labels != nil {
			after.Labels = p.Labels
		}
		if err := after.normalize(); err != nil {
			return err
		}
		out, err = scanCluster(tx.QueryRow(ctx, `UPDATE tenantry.cluster SET conn_string = $2, region = $3, max_conns = $4,
    max_tenants = $5, labels = $6, updated_at = now(), version = version + 1
WHERE name = $1 RETURNING `+clusterColumns, name, after.ConnString, after.Region, after.MaxConns, after.MaxTenants, after.Labels))
		if err != nil {
			return fmt.Errorf("update cluster: %w", err)
		}
		return s.audit(ctx, tx, actor, "cluster.update", "", name, before.Redacted(), out.Redacted())
	})
	if err != nil {
		return nil, err
	}
	s.logger.InfoContext(ctx, "cluster changed", "cluster", name, "version", out.Version, "actor", actor.Name)
	return out, nil
}

// ClusterTenantCounts returns how many tenants are placed on each cluster
// (clusters without tenants are absent), for placement policies.
func (s *Store) ClusterTenantCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT placement_cluster, count(*) FROM tenantry.tenant
WHERE placement_cluster IS NOT NULL GROUP BY placement_cluster`)
	if err != nil {
		return nil, fmt.Errorf("count tenants per cluster: %w", err)
	}
	out := map[string]int{}
	var name string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error {
		out[name] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count tenants per cluster: %w", err)
	}
	return out, nil
}
