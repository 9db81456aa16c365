package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/sqlident"
	"github.com/tenantry/tenantry/pool"
	"github.com/tenantry/tenantry/tenant"
)

// Router runs transactions scoped to the tenant of a context, whatever the
// tenant's storage model.
type Router struct {
	cache  *catalog.Cache
	pools  *pool.Manager
	cfg    *Config
	logger *slog.Logger
}

// New returns a Router that finds tenants' placements in cache and their
// connections in pools.
func New(cache *catalog.Cache, pools *pool.Manager, cfg *Config) (*Router, error) {
	if cache == nil {
		return nil, errors.New("router: catalog cache is nil")
	}
	if pools == nil {
		return nil, errors.New("router: pool manager is nil")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := sqlident.Validate(cfg.RuntimeRole); err != nil {
		return nil, fmt.Errorf("router config: RuntimeRole: %w", err)
	}
	return &Router{cache: cache, pools: pools, cfg: cfg, logger: cfg.Logger}, nil
}

// TxOptions are the options of a transaction.
type TxOptions struct {
	// IsoLevel is the isolation level; "" is the server's default.
	IsoLevel pgx.TxIsoLevel
	// ReadOnly starts a READ ONLY transaction.
	ReadOnly bool
	// Deferrable makes a SERIALIZABLE READ ONLY transaction DEFERRABLE.
	Deferrable bool
}

func (o TxOptions) begin() string {
	switch o {
	case TxOptions{}:
		return "begin"
	case TxOptions{ReadOnly: true}:
		return "begin read only"
	}
	s := "begin"
	switch o.IsoLevel {
	case pgx.Serializable, pgx.RepeatableRead, pgx.ReadCommitted, pgx.ReadUncommitted:
		s += " isolation level " + string(o.IsoLevel)
	}
	if o.ReadOnly {
		s += " read only"
	}
	if o.Deferrable {
		s += " deferrable"
	}
	return s
}

// Tx runs fn in a read-write transaction scoped to the tenant of ctx (see
// TxWith).
func (r *Router) Tx(ctx context.Context, fn func(context.Context, Tx) error) error {
	return r.TxWith(ctx, TxOptions{}, fn)
}

// ReadTx runs fn in a read-only transaction scoped to the tenant of ctx. It
// also serves read-only tenants.
func (r *Router) ReadTx(ctx context.Context, fn func(context.Context, Tx) error) error {
	return r.TxWith(ctx, TxOptions{ReadOnly: true}, fn)
}

// TxWith runs fn in a transaction scoped to the tenant of ctx, taken from
// tenant.FromContext only: with no tenant it returns ErrNoTenant before any
// SQL. The tenant's state and placement are read from the catalog cache now,
// so a suspension or a move applies from the next transaction on.
//
// The transaction starts lazily: the first statement fn sends goes in one
// round trip with BEGIN and the scope (tenantry.tenant_id, search_path and
// role, set with set_config(..., true): transaction-local), whose values
// the server's answer must confirm. fn's error, a panic (re-raised after
// the rollback) or a context cancelled by the end roll the transaction back;
// otherwise it commits. A connection whose state is uncertain afterwards is
// closed, not returned to its pool.
func (r *Router) TxWith(ctx context.Context, opts TxOptions, fn func(context.Context, Tx) error) (err error) {
	s, err := r.scope(ctx, opts)
	if err != nil {
		return err
	}
	conn, err := r.pools.Acquire(ctx, s.key)
	if err != nil {
		return fmt.Errorf("router: tenant %s: %w", s.t.Slug, err)
	}
	conn.UseSchema(s.schema)
	t := &txn{r: r, conn: conn, pg: conn.Conn(), s: s}
	defer func() {
		if p := recover(); p != nil {
			attrs := []any{"tenant", s.t.Slug}
			if err := t.end(ctx, false); err != nil {
				attrs = append(attrs, "err", err)
			}
			r.logger.Error("panic in tenant transaction; rolled back", attrs...)
			panic(p)
		}
	}()
	ferr := fn(ctx, t)
	switch {
	case ferr != nil:
		return t.abort(ctx, ferr)
	case ctx.Err() != nil:
		return t.abort(ctx, ctx.Err())
	}
	return t.end(ctx, true)
}

// scope is what one transaction needs to know about its tenant.
type scope struct {
	t      *tenant.Tenant
	key    pool.Key
	begin  string
	schema string
	args   [3]any // tenant ID, quoted search_path, role ("none": the login role)
}

// scope reads the tenant of ctx from the catalog and works out where and as
// whom its transaction runs.
func (r *Router) scope(ctx context.Context, opts TxOptions) (*scope, error) {
	ct, ok := tenant.FromContext(ctx)
	if !ok {
		return nil, ErrNoTenant
	}
	t, err := r.cache.ByID(ct.ID)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", ErrUnknownTenant, err)
	}
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	switch t.State {
	case tenant.StateActive:
	case tenant.StateReadOnly:
		if !opts.ReadOnly {
			return nil, ErrReadOnly
		}
	case tenant.StateSuspended:
		return nil, ErrSuspended
	case tenant.StateDeleting:
		return nil, ErrDeleting
	default:
		return nil, fmt.Errorf("router: tenant %s in unknown state %q", t.Slug, t.State)
	}
	p := t.Placement
	if p.Cluster == "" || p.Database == "" || p.Schema == "" {
		return nil, fmt.Errorf("%w: tenant %s", ErrPlacement, t.Slug)
	}
	path, err := sqlident.Quote(p.Schema)
	if err != nil {
		return nil, fmt.Errorf("%w: tenant %s: schema: %w", ErrPlacement, t.Slug, err)
	}
	role := "none"
	switch p.Model {
	case tenant.ModelShared, tenant.ModelSharded:
	case tenant.ModelSchema, tenant.ModelDatabase:
		role = r.cfg.TenantRole(t)
		if err := sqlident.Validate(role); err != nil || role == "none" {
			return nil, fmt.Errorf("%w: tenant %s: role %q", ErrPlacement, t.Slug, role)
		}
	default:
		return nil, fmt.Errorf("%w: tenant %s: model %q", ErrPlacement, t.Slug, p.Model)
	}
	return &scope{
		t:      t,
		key:    pool.Key{Cluster: p.Cluster, Database: p.Database, Role: r.cfg.RuntimeRole},
		begin:  opts.begin(),
		schema: p.Schema,
		args:   [3]any{t.ID, path, role},
	}, nil
}
