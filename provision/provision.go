package provision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/tenant"
)

var (
	// ErrDeleting is returned (wrapped) by Provision for a tenant in state
	// deleting.
	ErrDeleting = errors.New("tenant is being deleted")
	// ErrPlacementMismatch is returned (wrapped) when a tenant's recorded
	// placement names storage other than the provisioner would create for
	// it (edited by hand, or made with another Config). Nothing is created
	// or dropped.
	ErrPlacementMismatch = errors.New("recorded placement does not match this provisioner")
	// ErrForeignStorage is returned (wrapped) when the schema or database a
	// tenant's placement names exists but was not made by Tenantry (it
	// carries no provisioning marker): Provision refuses to take it over and
	// Deprovision refuses to drop it. Nothing of it is changed.
	ErrForeignStorage = errors.New("storage exists but was not made by tenantry")
)

// Provisioner creates and drops the storage of tenants in every model, on
// the clusters registered in the catalog. Its methods are safe for
// concurrent use, also by several processes: work on one cluster object is
// serialised by advisory locks on the cluster.
//
// A Provisioner sets up each cluster's roles and shared databases once and
// then trusts them; after dropping them by hand, use a new Provisioner.
// Everything per tenant is checked on every call.
type Provisioner struct {
	store   *catalog.Store
	config  *Config
	logger  *slog.Logger
	version string // of config.DDL

	placeMu sync.Mutex // serialises place within the process

	mu    sync.Mutex
	pools map[poolKey]*pgxpool.Pool
	ready map[string]bool // "cluster\x00what" done once by this process
}

type poolKey struct{ cluster, database string }

// New returns a Provisioner that reads tenants and clusters from store.
func New(store *catalog.Store, cfg *Config) (*Provisioner, error) {
	if store == nil {
		return nil, errors.New("provision: store is nil")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Provisioner{
		store:   store,
		config:  cfg,
		logger:  cfg.Logger,
		version: ddlVersion(cfg.DDL),
		pools:   map[poolKey]*pgxpool.Pool{},
		ready:   map[string]bool{},
	}, nil
}

// ddlVersion is a short hash of the DDL, recorded on the schemas and the
// template it built.
func ddlVersion(ddl []string) string {
	h := sha256.New()
	for _, s := range ddl {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// SchemaVersion returns the version of Config.DDL that the provisioner
// records on what it builds (a hash of the statements).
func (p *Provisioner) SchemaVersion() string { return p.version }

// Close closes the provisioner's connections.
func (p *Provisioner) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, pool := range p.pools {
		pool.Close()
		delete(p.pools, k)
	}
}

// Result reports what Provision did.
type Result struct {
	// Tenant is the tenant with its recorded placement.
	Tenant *tenant.Tenant
	// Placed is true when this call decided and recorded the placement.
	Placed bool
	// Created is true when this call created the tenant's own storage (a
	// schema, a database); false when it existed already or the model has
	// none (shared, sharded).
	Created bool
	// Elapsed is the time the storage work took (not the placement).
	Elapsed time.Duration
}

// Provision makes sure the tenant with slug has storage: it decides a
// placement with the Policy if the tenant has none yet and records it in the
// catalog (a recorded placement is never recomputed), then creates what the
// model needs if missing. It is idempotent: a second call finds everything
// in place and changes nothing.
func (p *Provisioner) Provision(ctx context.Context, actor catalog.Actor, slug string) (*Result, error) {
	if err := tenant.ValidateSlug(slug); err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	t, err := p.store.Tenant(ctx, slug)
	if err != nil {
		return nil, fmt.Errorf("provision %s: %w", slug, err)
	}
	if t.State == tenant.StateDeleting {
		return nil, fmt.Errorf("provision %s: %w", slug, ErrDeleting)
	}
	res := &Result{}
	if !placed(t) {
		if t, res.Placed, err = p.place(ctx, actor, t); err != nil {
			return nil, fmt.Errorf("provision %s: place: %w", slug, err)
		}
	}
	res.Tenant = t
	if err := p.checkPlacement(t); err != nil {
		return nil, fmt.Errorf("provision %s: %w", slug, err)
	}
	cl, err := p.store.Cluster(ctx, t.Placement.Cluster)
	if err != nil {
		return nil, fmt.Errorf("provision %s: %w", slug, err)
	}
	log := p.logger.With("tenant", t.Slug, "model", t.Placement.Model, "cluster", cl.Name)
	began := time.Now()
	switch t.Placement.Model {
	case tenant.ModelShared, tenant.ModelSharded:
		err = p.provisionShared(ctx, cl, t)
	case tenant.ModelSchema:
		res.Created, err = p.provisionSchema(ctx, cl, t)
	case tenant.ModelDatabase:
		res.Created, err = p.provisionDatabase(ctx, cl, t)
	}
	res.Elapsed = time.Since(began)
	if err != nil {
		log.ErrorContext(ctx, "provisioning failed", "error", err)
		return nil, fmt.Errorf("provision %s: %w", slug, err)
	}
	log.InfoContext(ctx, "tenant provisioned", "database", t.Placement.Database, "schema", t.Placement.Schema,
		"placed", res.Placed, "created", res.Created, "elapsed", res.Elapsed, "actor", actor.Name)
	return res, nil
}

// Deprovision drops the tenant's data: its rows in the shared and sharded
// models, its schema or database (and per-tenant role) in the others, then
// clears the placement in the catalog so that nothing points at dropped
// storage. The tenant stays in the catalog (delete it with
// catalog.Store.DeleteTenant afterwards). It is idempotent; a tenant
// without placement is left alone.
func (p *Provisioner) Deprovision(ctx context.Context, actor catalog.Actor, slug string) error {
	if err := tenant.ValidateSlug(slug); err != nil {
		return fmt.Errorf("deprovision: %w", err)
	}
	t, err := p.store.Tenant(ctx, slug)
	if err != nil {
		return fmt.Errorf("deprovision %s: %w", slug, err)
	}
	if !placed(t) {
		return nil
	}
	if err := p.checkPlacement(t); err != nil {
		return fmt.Errorf("deprovision %s: %w", slug, err)
	}
	cl, err := p.store.Cluster(ctx, t.Placement.Cluster)
	if err != nil {
		return fmt.Errorf("deprovision %s: %w", slug, err)
	}
	began := time.Now()
	switch t.Placement.Model {
	case tenant.ModelShared, tenant.ModelSharded:
		err = p.deprovisionShared(ctx, cl, t)
	case tenant.ModelSchema:
		err = p.deprovisionSchema(ctx, cl, t)
	case tenant.ModelDatabase:
		err = p.deprovisionDatabase(ctx, cl, t)
	}
	if err != nil {
		return fmt.Errorf("deprovision %s: %w", slug, err)
	}
	cleared := tenant.Placement{Model: t.Placement.Model}
	for attempt := 0; ; attempt++ {
		_, err = p.store.UpdateTenant(ctx, actor, t.ID, catalog.TenantPatch{Version: t.Version, Placement: &cleared})
		if !errors.Is(err, catalog.ErrVersionConflict) || attempt == 5 {
			break
		}
		if t, err = p.store.Tenant(ctx, t.ID); err != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("deprovision %s: clear placement: %w", slug, err)
	}
	p.logger.InfoContext(ctx, "tenant deprovisioned", "tenant", t.Slug, "model", t.Placement.Model,
		"cluster", cl.Name, "elapsed", time.Since(began), "actor", actor.Name)
	return nil
}

// placed reports whether t has a complete placement.
func placed(t *tenant.Tenant) bool {
	return t.Placement.Cluster != "" && t.Placement.Database != "" && t.Placement.Schema != ""
}

// checkPlacement refuses a recorded placement whose names differ from the
// ones this provisioner derives, so that a hand-edited catalog can never
// make Deprovision drop someone else's database or schema.
func (p *Provisioner) checkPlacement(t *tenant.Tenant) error {
	want, err := p.config.placement(t.Slug, t.Placement.Model, t.Placement.Cluster)
	if err != nil {
		return err
	}
	if want != t.Placement {
		return fmt.Errorf("%w: recorded %s/%s, expected %s/%s for model %s",
			ErrPlacementMismatch, t.Placement.Database, t.Placement.Schema, want.Database, want.Schema, t.Placement.Model)
	}
	return nil
}

// placementLockKey serialises placement decisions across processes sharing
// a catalog, so that loads are current when the policy sees them.
const placementLockKey = "tenantry:provision:placement"

// place decides and records the placement of t.
func (p *Provisioner) place(ctx context.Context, actor catalog.Actor, t *tenant.Tenant) (*tenant.Tenant, bool, error) {
	// One placement at a time per process, so that waiting for the
	// cross-process lock ties up one catalog connection, not the whole pool
	// (the work under the lock needs connections of its own).
	p.placeMu.Lock()
	defer p.placeMu.Unlock()
	conn, err := p.store.Pool().Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	defer conn.Release()
	unlock, err := p.lock(ctx, conn, placementLockKey, false)
	if err != nil {
		return nil, false, err
	}
	defer unlock()

	for attempt := 0; ; attempt++ {
		// Re-read under the lock: another process may have placed it.
		if t, err = p.store.Tenant(ctx, t.ID); err != nil {
			return nil, false, err
		}
		if placed(t) {
			return t, false, nil
		}
		loads, err := p.loads(ctx)
		if err != nil {
			return nil, false, err
		}
		d, err := p.config.Policy.Place(t, loads)
		if err != nil {
			return nil, false, err
		}
		pl, err := p.config.placement(t.Slug, d.Model, d.Cluster)
		if err != nil {
			return nil, false, err
		}
		out, err := p.store.UpdateTenant(ctx, actor, t.ID, catalog.TenantPatch{Version: t.Version, Placement: &pl})
		if errors.Is(err, catalog.ErrVersionConflict) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("record placement: %w", err)
		}
		p.logger.InfoContext(ctx, "tenant placed", "tenant", t.Slug, "model", pl.Model, "cluster", pl.Cluster, "tier", t.Tier, "region", t.Region)
		return out, true, nil
	}
}

// loads returns every non-replica cluster with its number of placed tenants.
func (p *Provisioner) loads(ctx context.Context) ([]ClusterLoad, error) {
	clusters, err := p.store.Clusters(ctx)
	if err != nil {
		return nil, err
	}
	counts, err := p.store.ClusterTenantCounts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ClusterLoad, 0, len(clusters))
	for _, c := range clusters {
		if c.Role == catalog.RoleReplica {
			continue
		}
		out = append(out, ClusterLoad{Cluster: c, Tenants: counts[c.Name]})
	}
	return out, nil
}

// pool returns the provisioner's pool on database of cluster (the cluster's
// own maintenance database when database is ""), connected as the cluster's
// administrative role.
func (p *Provisioner) pool(ctx context.Context, cl *catalog.Cluster, database string) (*pgxpool.Pool, error) {
	key := poolKey{cl.Name, database}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pool := p.pools[key]; pool != nil {
		return pool, nil
	}
	cfg, err := pgxpool.ParseConfig(cl.ConnString)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: connection string: %w", cl.Name, err)
	}
	if database != "" {
		cfg.ConnConfig.Database = database
	}
	cfg.MaxConns = 8
	cfg.MinConns = 0
	cfg.MaxConnIdleTime = 30 * time.Second
	pool, err := pgxpool.NewWithConfig(context.WithoutCancel(ctx), cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cl.Name, err)
	}
	p.pools[key] = pool
	return pool, nil
}

// dropPool closes and forgets the pool on database, before it is dropped.
func (p *Provisioner) dropPool(cl *catalog.Cluster, database string) {
	p.mu.Lock()
	pool := p.pools[poolKey{cl.Name, database}]
	delete(p.pools, poolKey{cl.Name, database})
	p.mu.Unlock()
	if pool != nil {
		pool.Close()
	}
}

// connect opens a single connection to database on cl.
func connect(ctx context.Context, cl *catalog.Cluster, database string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(cl.ConnString)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: connection string: %w", cl.Name, err)
	}
	cfg.Database = database
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: connect to %s: %w", cl.Name, database, err)
	}
	return conn, nil
}

// once reports whether what was already done on cl by this process, and
// marks it done when done is called.
func (p *Provisioner) once(cl *catalog.Cluster, what string) (bool, func()) {
	key := cl.Name + "\x00" + what
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready[key], func() {
		p.mu.Lock()
		p.ready[key] = true
		p.mu.Unlock()
	}
}

// lock takes the session-level advisory lock named key on conn (shared or
// exclusive), waiting at most Config.LockTimeout, and returns its release.
// Advisory locks are per database: callers take the locks of one cluster on
// its maintenance database.
func (p *Provisioner) lock(ctx context.Context, conn *pgxpool.Conn, key string, shared bool) (func(), error) {
	fn := "pg_advisory_lock"
	unfn := "pg_advisory_unlock"
	if shared {
		fn, unfn = "pg_advisory_lock_shared", "pg_advisory_unlock_shared"
	}
	lctx, cancel := context.WithTimeout(ctx, p.config.LockTimeout)
	defer cancel()
	if _, err := conn.Exec(lctx, "SELECT "+fn+"(hashtextextended($1, 0))", key); err != nil {
		return nil, fmt.Errorf("lock %s: %w", key, err)
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT "+unfn+"(hashtextextended($1, 0))", key); err != nil {
			// Closing the connection releases every session lock it holds.
			_ = conn.Conn().Close(uctx)
		}
	}, nil
}

// marker is the comment recorded on a schema or template built from the DDL.
func (p *Provisioner) marker() string { return "tenantry:ddl:" + p.version }

func markerVersion(comment string) string {
	v, _ := strings.CutPrefix(comment, "tenantry:ddl:")
	return v
}
