package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/admin"
	"github.com/tenantry/tenantry/blob"
	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/problem"
	"github.com/tenantry/tenantry/migrate"
	"github.com/tenantry/tenantry/notes"
	"github.com/tenantry/tenantry/pool"
	"github.com/tenantry/tenantry/provision"
	"github.com/tenantry/tenantry/router"
	"github.com/tenantry/tenantry/tenant"
)

// envAppPassword is the password of the runtime role (provision.AppRole)
// when the clusters need one. It is not a flag, so that it never shows in
// a process listing.
const envAppPassword = "TENANTRY_APP_PASSWORD" //nolint:gosec // the name of a variable, not a credential

// dataPlane is what serves tenant data in `tenantry serve`: the provisioner
// that creates tenants' storage, the pool manager and router the reference
// application runs on, and the file store.
type dataPlane struct {
	store       *catalog.Store
	provisioner *provision.Provisioner
	pools       *pool.Manager
	router      *router.Router
	notes       http.Handler
	files       *fileStack

	// transferTimeout bounds one file upload or download; it replaces the
	// server's read and write timeouts on the file routes.
	transferTimeout time.Duration
}

// newDataPlane wires catalog cache -> pool manager -> router -> notes API,
// and the file store, for the reference application's schema.
func newDataPlane(store *catalog.Store, cache *catalog.Cache, files *fileStack, src *migrate.Source, appPassword string, transferTimeout time.Duration, logger *slog.Logger) (*dataPlane, error) {
	// New schemas are built by the fleet migrator's builder, so a tenant
	// provisioned after a rollout starts at the head version, with its
	// ledger, like the template new tenant databases are cloned from.
	build := func(ctx context.Context, tx pgx.Tx, schema string) error {
		_, err := migrate.Build(ctx, tx, schema, src)
		return err
	}
	prov, err := provision.New(store, &provision.Config{DDL: notes.DDL(), Build: build, Logger: logger})
	if err != nil {
		return nil, err
	}
	pools, err := pool.New(&pool.Config{Catalog: cache, Password: appPassword, Logger: logger})
	if err != nil {
		prov.Close()
		return nil, err
	}
	r, err := router.New(cache, pools, &router.Config{Logger: logger})
	if err != nil {
		pools.Close()
		prov.Close()
		return nil, err
	}
	api, err := notes.New(r, &notes.Config{Logger: logger})
	if err != nil {
		pools.Close()
		prov.Close()
		return nil, err
	}
	return &dataPlane{store: store, provisioner: prov, pools: pools, router: r, notes: api, files: files, transferTimeout: transferTimeout}, nil
}

// Close closes the pools and the provisioner's connections.
func (d *dataPlane) Close() {
	d.pools.Close()
	d.provisioner.Close()
}

// routes registers the reference application on the public listener's
// tenant mux, behind resolution: the notes API and the files API.
func (d *dataPlane) routes(mux *http.ServeMux) {
	n := requireStorage(d.notes)
	mux.Handle("/api/v1/notes", n)
	mux.Handle("/api/v1/notes/", n)
	f := requireStorage(longTransfer(d.transferTimeout, d.files.handler))
	mux.Handle("/api/v1/files", f)
	mux.Handle("/api/v1/files/", f)
}

var errNotProvisioned = problem.New(http.StatusServiceUnavailable, "tenant_not_provisioned",
	"the tenant's storage is not provisioned (yet): retry shortly, or ask an operator to run POST /admin/v1/tenants/{slug}/provision")

// provisioned reports whether t's storage is in place as far as the
// catalog knows: a complete placement, and no failed provisioning.
func provisioned(t *tenant.Tenant) bool {
	p := t.Placement
	return p.Cluster != "" && p.Database != "" && p.Schema != "" && t.Labels[admin.LabelProvisioning] == ""
}

// requireStorage answers 503 tenant_not_provisioned (with Retry-After) for
// a tenant whose storage is not in place: being provisioned right now, or
// left labelled after a provisioning that failed. Without it, the router
// would answer such a tenant's requests with a bare 500.
func requireStorage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t, ok := tenant.FromContext(r.Context()); ok && !provisioned(t) {
			w.Header().Set("Retry-After", "5")
			problem.Write(w, errNotProvisioned)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// longTransfer gives a file request d to move its body in either direction,
// instead of the server's read and write timeouts (seconds), which would
// cut a large upload or download short. Slow-header protection still
// applies: the headers were read under ReadHeaderTimeout.
func longTransfer(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		deadline := time.Now().Add(d)
		_ = rc.SetReadDeadline(deadline)
		_ = rc.SetWriteDeadline(deadline)
		next.ServeHTTP(w, r)
	})
}

// tenantProvisioner is the provisioner the admin API uses: package
// provision for the tenant's PostgreSQL storage, and, on deprovisioning,
// the tenant's files as well.
type tenantProvisioner struct {
	*provision.Provisioner
	store *catalog.Store
	cache *catalog.Cache
	files blob.Store
}

// cacheWait bounds how long Provision waits for this process's catalog
// cache to see a provisioned tenant.
const cacheWait = 2 * time.Second

// Provision provisions the tenant, then waits (briefly) until this
// process's catalog cache holds its placement, so that the public listener
// serves the tenant as soon as the admin API has answered: a create
// followed at once by a request works. Other processes catch up within
// their own notification round trip.
func (p *tenantProvisioner) Provision(ctx context.Context, actor catalog.Actor, slug string) (*provision.Result, error) {
	res, err := p.Provisioner.Provision(ctx, actor, slug)
	if err != nil {
		return nil, err
	}
	waitCached(ctx, p.cache, res.Tenant, cacheWait)
	return res, nil
}

// waitCached waits until cache holds t at its version or later, at most d.
func waitCached(ctx context.Context, cache *catalog.Cache, t *tenant.Tenant, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := cache.ByID(t.ID); err == nil && c.Version >= t.Version {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Deprovision drops the tenant's PostgreSQL storage, then its files.
func (p *tenantProvisioner) Deprovision(ctx context.Context, actor catalog.Actor, slug string) error {
	t, err := p.store.Tenant(ctx, slug)
	if err != nil {
		return fmt.Errorf("deprovision %s: %w", slug, err)
	}
	if err := p.Provisioner.Deprovision(ctx, actor, slug); err != nil {
		return err
	}
	if err := purgeFiles(ctx, p.files, t); err != nil {
		return fmt.Errorf("deprovision %s: files: %w", slug, err)
	}
	return nil
}

// purgeFiles deletes every object of t from store. The tenant is usually
// in state deleting by now, in which the store refuses writes; the server
// acts on its behalf here, so the context carries a writable copy.
func purgeFiles(ctx context.Context, store blob.Store, t *tenant.Tenant) error {
	owner := *t
	owner.State = tenant.StateActive
	ctx = tenant.NewContext(ctx, &owner, "deprovision")
	for {
		page, err := store.List(ctx, blob.ListOptions{Limit: blob.MaxListLimit})
		if err != nil {
			return err
		}
		for _, o := range page.Objects {
			if err := store.Delete(ctx, o.Key); err != nil && !errors.Is(err, blob.ErrNotFound) {
				return err
			}
		}
		if len(page.Objects) == 0 || page.Next == "" {
			return nil
		}
	}
}
