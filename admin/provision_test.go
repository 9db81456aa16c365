package admin_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/admin"
	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/notes"
	"github.com/tenantry/tenantry/provision"
	"github.com/tenantry/tenantry/tenant"
	"github.com/tenantry/tenantry/tenantrytest"
)

// provisionBundle is the admin API over a data plane with a provisioner:
// a primary cluster "main" and a shard "shard-1".
type provisionBundle struct {
	dp     *tenantrytest.DataPlane
	client *admin.Client
	url    string
}

func setupProvisioning(t *testing.T) *provisionBundle {
	t.Helper()
	dp := tenantrytest.NewDataPlane(t, &tenantrytest.DataPlaneConfig{DDL: notes.DDL(), Shards: 1})
	auth, err := admin.BearerToken("test", testToken)
	if err != nil {
		t.Fatal(err)
	}
	h, err := admin.New(dp.Store, &admin.Config{Authenticator: auth, Provisioner: dp.Provisioner})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := admin.NewClient(srv.URL, testToken, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return &provisionBundle{dp: dp, client: c, url: srv.URL}
}

// uniqueSlug returns a slug no other test on the server uses: per-tenant
// roles and databases are cluster-wide.
func uniqueSlug(t *testing.T, prefix string) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return prefix + "-" + hex.EncodeToString(b[:])
}

// storageExists reports whether the schema or database of a provisioned
// placement exists on the shared server.
func storageExists(t *testing.T, p tenant.Placement) bool {
	t.Helper()
	ctx := t.Context()
	srv := tenantrytest.Shared(t)
	conn, err := pgx.Connect(ctx, srv.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, p.Database).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if !exists || p.Model != tenant.ModelSchema {
		return exists
	}
	db, err := pgx.Connect(ctx, srv.URL(p.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, p.Schema).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	return exists
}

func wantAPIError(t *testing.T, err error, status int, code string) *admin.Error {
	t.Helper()
	var e *admin.Error
	if !errors.As(err, &e) || e.Status != status || e.Code != code {
		t.Fatalf("error = %v, want %d %s", err, status, code)
	}
	return e
}

// TestCreateProvisions: creating a tenant places it (by tier, or the model
// asked for) and creates its storage before answering; deleting it drops
// the storage first.
func TestCreateProvisions(t *testing.T) {
	t.Parallel()
	b := setupProvisioning(t)
	for _, tc := range []struct {
		name    string
		tier    string
		model   tenant.Model
		want    tenant.Model
		cluster string
	}{
		{"free tier", "free", "", tenant.ModelShared, "main"},
		{"pro tier", "pro", "", tenant.ModelSchema, "main"},
		{"enterprise tier", "enterprise", "", tenant.ModelDatabase, "main"},
		{"explicit sharded", "free", tenant.ModelSharded, tenant.ModelSharded, "shard-1"},
		{"explicit schema on free", "free", tenant.ModelSchema, tenant.ModelSchema, "main"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			slug := uniqueSlug(t, "prov")
			created, err := b.client.CreateTenant(ctx, admin.CreateTenantRequest{Slug: slug, Tier: tc.tier, Placement: tenant.Placement{Model: tc.model}})
			if err != nil {
				t.Fatal(err)
			}
			p := created.Placement
			if p.Model != tc.want || p.Cluster != tc.cluster || p.Database == "" || p.Schema == "" {
				t.Fatalf("placement = %+v, want model %s on %s", p, tc.want, tc.cluster)
			}
			if p.Cluster == "main" && !storageExists(t, p) {
				t.Fatalf("storage of %+v does not exist after create", p)
			}
			// Provisioning again changes nothing.
			again, err := b.client.Provision(ctx, slug)
			if err != nil || again.Placement != p {
				t.Fatalf("provision again: %v %+v", err, again)
			}
			// The placement is provisioning's: a PATCH cannot move the tenant.
			moved := tenant.Placement{Model: tenant.ModelDatabase}
			_, err = b.client.UpdateTenant(ctx, slug, admin.UpdateTenantRequest{Version: again.Version, Placement: &moved})
			if e := wantAPIError(t, err, http.StatusUnprocessableEntity, admin.CodeValidation); e.Field != "placement" {
				t.Fatalf("field = %q", e.Field)
			}
			if err := b.client.DeleteTenant(ctx, slug); err != nil {
				t.Fatal(err)
			}
			if p.Model == tenant.ModelSchema || p.Model == tenant.ModelDatabase {
				if storageExists(t, p) {
					t.Fatalf("storage of %+v still exists after delete", p)
				}
			}
			_, err = b.client.Tenant(ctx, slug)
			wantAPIError(t, err, http.StatusNotFound, admin.CodeNotFound)
		})
	}
}

// TestCreateRollsBack: a tenant no cluster can take is not created at all;
// the audit log shows the creation and its rollback.
func TestCreateRollsBack(t *testing.T) {
	t.Parallel()
	b := setupProvisioning(t)
	ctx := t.Context()
	slug := uniqueSlug(t, "nocap")
	_, err := b.client.CreateTenant(ctx, admin.CreateTenantRequest{Slug: slug, Region: "nowhere"})
	e := wantAPIError(t, err, http.StatusUnprocessableEntity, admin.CodeNoCapacity)
	if e.Field != "placement" {
		t.Fatalf("field = %q", e.Field)
	}
	_, err = b.client.Tenant(ctx, slug)
	wantAPIError(t, err, http.StatusNotFound, admin.CodeNotFound)
	entries, err := b.dp.Store.Audit(ctx, catalog.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, en := range entries {
		if en.Target == slug {
			actions = append(actions, en.Action)
		}
	}
	if len(actions) != 2 || actions[0] != "tenant.delete" || actions[1] != "tenant.create" {
		t.Fatalf("audit of %s = %v, want the create and its rollback", slug, actions)
	}
	// The same request works once a cluster can take it.
	if _, err := b.client.CreateTenant(ctx, admin.CreateTenantRequest{Slug: slug}); err != nil {
		t.Fatal(err)
	}
	if err := b.client.DeleteTenant(ctx, slug); err != nil {
		t.Fatal(err)
	}
}

// TestProvisioningFailureKept: when the tenant's cluster cannot be reached,
// neither provisioning nor its rollback can run; the tenant is kept,
// labelled failed, and POST .../provision finishes the job once the
// cluster is back.
func TestProvisioningFailureKept(t *testing.T) {
	t.Parallel()
	b := setupProvisioning(t)
	ctx := t.Context()
	proxy := newPausedProxy(t, tenantrytest.Shared(t).AdminURL())
	if _, err := b.client.CreateCluster(ctx, admin.CreateClusterRequest{Name: "flaky", ConnString: proxy.url}); err != nil {
		t.Fatal(err)
	}
	slug := uniqueSlug(t, "flaky")
	_, err := b.client.CreateTenant(ctx, admin.CreateTenantRequest{Slug: slug, Placement: tenant.Placement{Model: tenant.ModelSchema, Cluster: "flaky"}})
	wantAPIError(t, err, http.StatusServiceUnavailable, admin.CodeProvisioningFailed)
	kept, err := b.client.Tenant(ctx, slug)
	if err != nil {
		t.Fatal(err)
	}
	if kept.Labels[admin.LabelProvisioning] != admin.ProvisioningFailed {
		t.Fatalf("labels of the kept tenant = %v", kept.Labels)
	}
	_, err = b.client.Provision(ctx, slug)
	wantAPIError(t, err, http.StatusServiceUnavailable, admin.CodeProvisioningFailed)

	proxy.open()
	done, err := b.client.Provision(ctx, slug)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := done.Labels[admin.LabelProvisioning]; ok || done.Placement.Cluster != "flaky" || !storageExists(t, done.Placement) {
		t.Fatalf("after retry: %+v", done)
	}

	// Delete while the cluster is down: the tenant stays, deleting.
	proxy.pause()
	err = b.client.DeleteTenant(ctx, slug)
	wantAPIError(t, err, http.StatusServiceUnavailable, admin.CodeDeprovisioningFailed)
	if got, err := b.client.Tenant(ctx, slug); err != nil || got.State != tenant.StateDeleting {
		t.Fatalf("after a failed delete: %v %+v", err, got)
	}
	_, err = b.client.Provision(ctx, slug)
	wantAPIError(t, err, http.StatusConflict, admin.CodeTenantDeleting)
	// Once the cluster is back, DELETE again finishes. The provisioner's
	// pool may still hold a connection the outage cut: it is discarded on
	// first use, so a request can fail once more, as it would against a
	// restarted server.
	proxy.open()
	for attempt := 1; ; attempt++ {
		err := b.client.DeleteTenant(ctx, slug)
		if err == nil {
			break
		}
		if attempt == 5 {
			t.Fatal(err)
		}
	}
	if storageExists(t, done.Placement) {
		t.Fatal("the schema survived the delete")
	}
}

func TestProvisionWithoutProvisioner(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.client.CreateTenant(t.Context(), admin.CreateTenantRequest{Slug: "acme"}); err != nil {
		t.Fatal(err)
	}
	_, err := b.client.Provision(t.Context(), "acme")
	wantAPIError(t, err, http.StatusNotImplemented, admin.CodeNotImplemented)
	r := b.do(t, http.MethodGet, "/admin/v1/migrations/", "")
	wantProblem(t, r, http.StatusNotFound, admin.CodeNotFound, "")
}

func TestMigrationsMounted(t *testing.T) {
	t.Parallel()
	store, err := catalog.NewStore(tenantrytest.Pool(t, tenantrytest.NewDatabase(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := admin.BearerToken("test", testToken)
	if err != nil {
		t.Fatal(err)
	}
	var seen string
	h, err := admin.New(store, &admin.Config{Authenticator: auth, Migrations: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.URL.Path
		_, _ = io.WriteString(w, "{}")
	})})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	b := &testBundle{store: store, server: srv}
	if r := b.do(t, http.MethodGet, "/admin/v1/migrations/targets", ""); r.status != http.StatusOK || seen != "/targets" {
		t.Fatalf("GET migrations/targets = %d, handler saw %q", r.status, seen)
	}
	if r := b.do(t, http.MethodGet, "/admin/v1/migrations/", "", "Authorization", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("migrations without credentials = %d", r.status)
	}
}

// pausedProxy forwards TCP connections to a PostgreSQL server while open
// and refuses them while paused: a cluster that goes away and comes back
// on the same address.
type pausedProxy struct {
	url    string
	target string
	ln     net.Listener
	mu     sync.Mutex
	paused bool
	conns  []net.Conn
}

func newPausedProxy(t *testing.T, serverURL string) *pausedProxy {
	t.Helper()
	cfg, err := pgx.ParseConfig(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pausedProxy{ln: ln, target: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), paused: true}
	port := ln.Addr().(*net.TCPAddr).Port
	p.url = "postgres://" + cfg.User + "@127.0.0.1:" + strconv.Itoa(port) + "/" + cfg.Database + "?sslmode=disable&connect_timeout=5"
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.pause()
	})
	return p
}

func (p *pausedProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		paused := p.paused
		if !paused {
			p.conns = append(p.conns, c)
		}
		p.mu.Unlock()
		if paused {
			_ = c.Close()
			continue
		}
		go p.forward(c)
	}
}

func (p *pausedProxy) forward(c net.Conn) {
	var d net.Dialer
	up, err := d.DialContext(context.Background(), "tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, up)
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
	_, _ = io.Copy(c, up)
	_ = c.Close()
}

func (p *pausedProxy) open() {
	p.mu.Lock()
	p.paused = false
	p.mu.Unlock()
}

// pause refuses new connections and cuts the open ones.
func (p *pausedProxy) pause() {
	p.mu.Lock()
	p.paused = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// TestCreateForeignStorage: a new tenant whose database name is taken by a
// database Tenantry did not make is not created, and that database is left
// exactly as it was (the rollback must not drop it).
func TestCreateForeignStorage(t *testing.T) {
	t.Parallel()
	b := setupProvisioning(t)
	ctx := t.Context()
	slug := uniqueSlug(t, "foreign")
	database, err := provision.TenantDatabase(slug)
	if err != nil {
		t.Fatal(err)
	}
	maint, err := pgx.Connect(ctx, tenantrytest.Shared(t).AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = maint.Exec(context.Background(), "DROP DATABASE IF EXISTS "+database+" WITH (FORCE)")
		if role, err := provision.TenantRole(slug); err == nil {
			_, _ = maint.Exec(context.Background(), "DROP ROLE IF EXISTS "+role)
		}
		_ = maint.Close(context.Background())
	})
	if _, err := maint.Exec(ctx, "CREATE DATABASE "+database); err != nil {
		t.Fatal(err)
	}
	_, err = b.client.CreateTenant(ctx, admin.CreateTenantRequest{Slug: slug, Tier: "enterprise"})
	if e := wantAPIError(t, err, http.StatusConflict, admin.CodeStorageConflict); e.Field != "slug" {
		t.Fatalf("field = %q", e.Field)
	}
	_, err = b.client.Tenant(ctx, slug)
	wantAPIError(t, err, http.StatusNotFound, admin.CodeNotFound)
	var intact bool
	if err := maint.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1 AND datacl IS NULL)`, database).Scan(&intact); err != nil || !intact {
		t.Fatalf("the foreign database after the failed create: intact=%v %v", intact, err)
	}
}
