package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantry/tenantry/admin"
	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/resolve"
	"github.com/tenantry/tenantry/server"
	"github.com/tenantry/tenantry/tenant"
	"github.com/tenantry/tenantry/tenantrytest"
)

func TestMain(m *testing.M) { tenantrytest.Main(m) }

const testToken = "server-test-token-0123456789"

var operator = catalog.Actor{Name: "test", Reason: "server test"}

type testBundle struct {
	store   *catalog.Store
	cache   *catalog.Cache
	resolve func(http.Handler) http.Handler
	srv     *server.Server
	logs    *syncBuffer // the records, unless cfg gave a Logger
}

// syncBuffer is a bytes.Buffer safe for the server's concurrent logging.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the JSON log records written so far.
func (b *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// setup builds the real stack on a fresh catalog database: store, started
// cache, the default resolution chain, the admin API and a Server (not yet
// listening) on loopback ports chosen by the kernel.
func setup(t testing.TB, cfg *server.Config) *testBundle {
	t.Helper()
	pool := tenantrytest.Pool(t, tenantrytest.NewDatabase(t))
	store, err := catalog.NewStore(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(t.Context()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	cache, err := catalog.NewCache(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Stop)

	logs := &syncBuffer{}
	logger := slog.New(server.NewLogHandler(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if cfg != nil && cfg.Logger != nil {
		logger = cfg.Logger
	}
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	resolver, err := resolve.New(cache, &resolve.Config{
		Strategies: []resolve.Strategy{
			resolve.Host(),
			resolve.Subdomain("localhost"),
			resolve.Header("", loopback),
			resolve.PathPrefix(""),
		},
		Mode:   resolve.RequireAgreement,
		Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := admin.BearerToken("test", testToken)
	if err != nil {
		t.Fatal(err)
	}
	api, err := admin.New(store, &admin.Config{Authenticator: auth, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	c := server.Config{}
	if cfg != nil {
		c = *cfg
	}
	c.Listen, c.AdminListen, c.Logger = "127.0.0.1:0", "127.0.0.1:0", logger
	srv, err := server.New(server.Deps{Catalog: cache, Resolve: resolver.Middleware, Admin: api}, &c)
	if err != nil {
		t.Fatal(err)
	}
	return &testBundle{store: store, cache: cache, resolve: resolver.Middleware, srv: srv, logs: logs}
}

// run starts the server's listeners and Run. done is closed when Run
// returns, and then err() is its result. The server is stopped at the end
// of the test.
func (b *testBundle) run(t *testing.T) (cancel context.CancelFunc, done <-chan struct{}, err func() error) {
	t.Helper()
	if err := b.srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	var runErr error
	go func() {
		runErr = b.srv.Run(ctx)
		close(finished)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return cancel, finished, func() error { <-finished; return runErr }
}

func (b *testBundle) publicURL() string { return "http://" + b.srv.PublicAddr().String() }
func (b *testBundle) adminURL() string  { return "http://" + b.srv.AdminAddr().String() }

// createTenant creates a tenant and waits until the cache has it.
func (b *testBundle) createTenant(t testing.TB, in catalog.NewTenant) *tenant.Tenant {
	t.Helper()
	created, err := b.store.CreateTenant(t.Context(), operator, in)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cache to see "+in.Slug, func() bool {
		got, err := b.cache.BySlug(in.Slug)
		return err == nil && got.Version == created.Version
	})
	return created
}

// waitFor polls cond until it holds or 10s pass (the cache applies catalog
// changes asynchronously, through LISTEN/NOTIFY).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) code(t *testing.T) string {
	t.Helper()
	var p struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return p.Code
}

// get sends a GET (or another method) to url with a Host and headers given
// as name, value pairs.
func get(t *testing.T, method, url, host string, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: body}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	public := httptest.NewServer(b.srv.PublicHandler())
	t.Cleanup(public.Close)
	adminSrv := httptest.NewServer(b.srv.AdminHandler())
	t.Cleanup(adminSrv.Close)

	for _, base := range []string{public.URL, adminSrv.URL} {
		for _, path := range []string{"/healthz", "/readyz"} {
			r := get(t, http.MethodGet, base+path, "")
			if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
				t.Errorf("%s%s = %d %s", base, path, r.status, r.body)
			}
		}
	}
	// Health does not depend on resolution: no tenant, an unknown host, a
	// hostile one.
	for _, host := range []string{"nobody.localhost", "x'--.localhost"} {
		if r := get(t, http.MethodGet, public.URL+"/healthz", host); r.status != http.StatusOK {
			t.Errorf("healthz with Host %q = %d", host, r.status)
		}
	}

	// A cache that has not loaded is not ready; the process is still alive.
	unloaded, err := catalog.NewCache(b.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	notReady, err := server.New(server.Deps{Catalog: unloaded, Resolve: func(h http.Handler) http.Handler { return h }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(notReady.AdminHandler())
	t.Cleanup(srv.Close)
	if r := get(t, http.MethodGet, srv.URL+"/readyz", ""); r.status != http.StatusServiceUnavailable || r.code(t) != "catalog_unavailable" {
		t.Errorf("readyz of an unloaded cache = %d %s", r.status, r.body)
	}
	if r := get(t, http.MethodGet, srv.URL+"/healthz", ""); r.status != http.StatusOK {
		t.Errorf("healthz of an unloaded cache = %d", r.status)
	}
	// The admin listener without an admin API answers 404 for /admin/.
	if r := get(t, http.MethodGet, srv.URL+"/admin/v1/tenants", ""); r.status != http.StatusNotFound || r.code(t) != "not_found" {
		t.Errorf("admin path without admin API = %d %s", r.status, r.body)
	}
}

func TestCurrentTenant(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	acme := b.createTenant(t, catalog.NewTenant{
		Slug: "acme", DisplayName: "Acme Corp", Tier: "pro", Region: "eu",
		Placement: tenant.Placement{Model: tenant.ModelSchema, Schema: "tenant_acme"},
		Domains:   []string{"acme.example.com"},
	})
	b.createTenant(t, catalog.NewTenant{Slug: "globex"})
	public := httptest.NewServer(b.srv.PublicHandler())
	t.Cleanup(public.Close)

	for _, tc := range []struct {
		name, path, host string
		headers          []string
		via              string
	}{
		{"custom domain", "/api/v1/tenant", "acme.example.com", nil, resolve.StrategyHost},
		{"custom domain with port and case", "/api/v1/tenant", "ACME.example.com:8080", nil, resolve.StrategyHost},
		{"subdomain", "/api/v1/tenant", "acme.localhost", nil, resolve.StrategySubdomain},
		{"header from loopback", "/api/v1/tenant", "localhost", []string{"X-Tenant-ID", "acme"}, resolve.StrategyHeader},
		{"header with the tenant ID", "/api/v1/tenant", "localhost", []string{"X-Tenant-ID", acme.ID}, resolve.StrategyHeader},
		{"path prefix", "/t/acme/api/v1/tenant", "localhost", nil, resolve.StrategyPathPrefix},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := get(t, http.MethodGet, public.URL+tc.path, tc.host, tc.headers...)
			if r.status != http.StatusOK {
				t.Fatalf("status = %d %s", r.status, r.body)
			}
			var got server.PublicTenant
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatal(err)
			}
			want := server.PublicTenant{ID: acme.ID, Slug: "acme", DisplayName: "Acme Corp", State: tenant.StateActive,
				Tier: "pro", Region: "eu", Model: tenant.ModelSchema, ResolvedBy: tc.via}
			if got != want {
				t.Fatalf("got %+v, want %+v", got, want)
			}
			for _, private := range []string{"tenant_acme", "placement", "cluster", "labels"} {
				if bytes.Contains(r.body, []byte(private)) {
					t.Fatalf("public answer reveals %q: %s", private, r.body)
				}
			}
		})
	}

	for _, tc := range []struct {
		name, path, host string
		headers          []string
		status           int
		code             string
	}{
		{"no tenant", "/api/v1/tenant", "127.0.0.1", nil, 400, resolve.CodeMissing},
		{"bare base domain", "/api/v1/tenant", "localhost", nil, 400, resolve.CodeMissing},
		{"unknown subdomain", "/api/v1/tenant", "nobody.localhost", nil, 404, resolve.CodeUnknown},
		{"unknown domain", "/api/v1/tenant", "shop.nowhere.test", nil, 404, resolve.CodeUnknown},
		{"disagreeing sources", "/t/globex/api/v1/tenant", "acme.localhost", nil, 403, resolve.CodeConflict},
		{"hostile subdomain", "/api/v1/tenant", "acme'--.localhost", nil, 400, resolve.CodeInvalid},
		{"hostile header", "/api/v1/tenant", "localhost", []string{"X-Tenant-ID", "acme' OR '1'='1"}, 400, resolve.CodeInvalid},
		{"unknown route of a tenant", "/api/v1/nope", "acme.localhost", nil, 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := get(t, http.MethodGet, public.URL+tc.path, tc.host, tc.headers...)
			if r.status != tc.status || r.code(t) != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type = %q", ct)
			}
		})
	}
}

// TestAdminEndToEnd drives the admin API over the admin listener and
// watches the public listener follow: a suspension answers 423, a new
// domain resolves, a removed one stops resolving.
func TestAdminEndToEnd(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, _, _ = b.run(t)
	c, err := admin.NewClient(b.adminURL(), testToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	tenantURL := b.publicURL() + "/api/v1/tenant"
	statusOf := func(host string, headers ...string) func() int {
		return func() int { return get(t, http.MethodGet, tenantURL, host, headers...).status }
	}
	eventually := func(what string, f func() int, want int) {
		t.Helper()
		waitFor(t, what, func() bool { return f() == want })
	}

	if _, err := c.CreateTenant(ctx, admin.CreateTenantRequest{Slug: "acme", Placement: tenant.Placement{Model: tenant.ModelSchema}}); err != nil {
		t.Fatal(err)
	}
	eventually("acme to resolve", statusOf("acme.localhost"), http.StatusOK)

	if _, err := c.Suspend(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	eventually("acme to be suspended", statusOf("acme.localhost"), http.StatusLocked)
	r := get(t, http.MethodGet, tenantURL, "localhost", "X-Tenant-ID", "acme")
	if r.status != http.StatusLocked || r.code(t) != resolve.CodeSuspended {
		t.Fatalf("suspended tenant by header = %d %s", r.status, r.body)
	}
	if _, err := c.Resume(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	eventually("acme to be resumed", statusOf("acme.localhost"), http.StatusOK)

	eventually("shop.acme.test to be unknown", statusOf("shop.acme.test"), http.StatusNotFound)
	if _, err := c.AddDomain(ctx, "acme", "shop.acme.test"); err != nil {
		t.Fatal(err)
	}
	eventually("shop.acme.test to resolve", statusOf("shop.acme.test"), http.StatusOK)
	r = get(t, http.MethodGet, tenantURL, "shop.acme.test")
	var pt server.PublicTenant
	if err := json.Unmarshal(r.body, &pt); err != nil || pt.Slug != "acme" || pt.ResolvedBy != resolve.StrategyHost {
		t.Fatalf("by new domain: %v %s", err, r.body)
	}
	if _, err := c.RemoveDomain(ctx, "acme", "shop.acme.test"); err != nil {
		t.Fatal(err)
	}
	eventually("shop.acme.test to stop resolving", statusOf("shop.acme.test"), http.StatusNotFound)

	// Read-only: reads are served, writes refused.
	cur, err := c.Tenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	ro := tenant.StateReadOnly
	if _, err := c.UpdateTenant(ctx, "acme", admin.UpdateTenantRequest{Version: cur.Version, State: &ro}); err != nil {
		t.Fatal(err)
	}
	eventually("acme to be read-only", func() int {
		return get(t, http.MethodPost, tenantURL, "acme.localhost").status
	}, http.StatusLocked)
	if got := statusOf("acme.localhost")(); got != http.StatusOK {
		t.Fatalf("GET on a read-only tenant = %d", got)
	}

	if err := c.DeleteTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	eventually("acme to be gone", statusOf("acme.localhost"), http.StatusNotFound)

	// Each admin change is logged; the public requests of acme carry it.
	var sawTenantRecord bool
	for _, rec := range b.logs.records(t) {
		if rec["msg"] == "request" && rec["listener"] == "public" && rec["tenant"] == "acme" {
			sawTenantRecord = true
		}
	}
	if !sawTenantRecord {
		t.Fatal("no public request record carries tenant=acme")
	}
}

func TestRoutesBehindResolution(t *testing.T) {
	t.Parallel()
	b := setup(t, &server.Config{Routes: func(mux *http.ServeMux) {
		mux.HandleFunc("GET /api/v1/whoami", func(w http.ResponseWriter, r *http.Request) {
			tn, ok := tenant.FromContext(r.Context())
			if !ok {
				http.Error(w, "no tenant", http.StatusInternalServerError)
				return
			}
			_, _ = io.WriteString(w, tn.Slug+" "+r.URL.Path)
		})
		mux.HandleFunc("GET /api/v1/boom", func(http.ResponseWriter, *http.Request) {
			panic("handler bug")
		})
	}})
	b.createTenant(t, catalog.NewTenant{Slug: "acme"})
	public := httptest.NewServer(b.srv.PublicHandler())
	t.Cleanup(public.Close)

	if r := get(t, http.MethodGet, public.URL+"/t/acme/api/v1/whoami", "localhost"); r.status != 200 || string(r.body) != "acme /api/v1/whoami" {
		t.Fatalf("mounted route = %d %q", r.status, r.body)
	}
	if r := get(t, http.MethodGet, public.URL+"/api/v1/whoami", "127.0.0.1"); r.status != 400 || r.code(t) != resolve.CodeMissing {
		t.Fatalf("mounted route without a tenant = %d %s", r.status, r.body)
	}
	// A panicking handler answers a 500 problem that reveals nothing, and
	// the server keeps serving.
	r := get(t, http.MethodGet, public.URL+"/api/v1/boom", "acme.localhost")
	if r.status != 500 || r.code(t) != "internal_error" || bytes.Contains(r.body, []byte("handler bug")) {
		t.Fatalf("panic = %d %s", r.status, r.body)
	}
	if r := get(t, http.MethodGet, public.URL+"/api/v1/whoami", "acme.localhost"); r.status != 200 {
		t.Fatalf("after panic = %d", r.status)
	}
	var logged bool
	for _, rec := range b.logs.records(t) {
		if rec["msg"] == "handler panicked" && rec["tenant"] == "acme" {
			logged = true
		}
	}
	if !logged {
		t.Fatal("the panic was not logged with tenant=acme")
	}
}

// TestGracefulShutdown cancels Run while a request is in flight: the
// request completes, readiness fails during the drain, and Run returns nil
// once it has.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	b := setup(t, &server.Config{Routes: func(mux *http.ServeMux) {
		mux.HandleFunc("GET /api/v1/slow", func(w http.ResponseWriter, _ *http.Request) {
			close(entered)
			<-release
			_, _ = io.WriteString(w, "finished")
		})
	}})
	b.createTenant(t, catalog.NewTenant{Slug: "acme"})
	cancel, done, runErr := b.run(t)

	type result struct {
		status int
		body   string
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, b.publicURL()+"/api/v1/slow", nil)
		req.Host = "acme.localhost"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			inflight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		inflight <- result{status: resp.StatusCode, body: string(body), err: err}
	}()
	<-entered
	cancel()

	// Run waits for the request...
	select {
	case <-done:
		t.Fatalf("Run returned %v with a request in flight", runErr())
	case <-time.After(200 * time.Millisecond):
	}
	// ...while no new connection is accepted.
	waitFor(t, "the listener to close", func() bool {
		conn, err := net.DialTimeout("tcp", b.srv.PublicAddr().String(), time.Second)
		if err == nil {
			_ = conn.Close()
		}
		return err != nil
	})

	close(release)
	res := <-inflight
	if res.err != nil || res.status != http.StatusOK || res.body != "finished" {
		t.Fatalf("in-flight request = %+v, want 200 finished", res)
	}
	select {
	case <-done:
		if err := runErr(); err != nil {
			t.Fatalf("Run = %v, want nil after a clean drain", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the drain")
	}
	var sawShutdown bool
	for _, rec := range b.logs.records(t) {
		if rec["msg"] == "shut down" {
			sawShutdown = true
		}
	}
	if !sawShutdown {
		t.Fatal("no shutdown record")
	}
}

// TestShutdownTimeout: a request that outlives ShutdownTimeout is cut off
// and Run reports it.
func TestShutdownTimeout(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(release) })
	b := setup(t, &server.Config{ShutdownTimeout: 100 * time.Millisecond, Routes: func(mux *http.ServeMux) {
		mux.HandleFunc("GET /api/v1/stuck", func(http.ResponseWriter, *http.Request) {
			close(entered)
			<-release
		})
	}})
	b.createTenant(t, catalog.NewTenant{Slug: "acme"})
	cancel, done, runErr := b.run(t)

	clientErr := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, b.publicURL()+"/api/v1/stuck", nil)
		req.Host = "acme.localhost"
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		clientErr <- err
	}()
	<-entered
	cancel()
	select {
	case <-done:
		if runErr() == nil {
			t.Fatal("Run = nil, want the error of an unclean shutdown")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not give up after ShutdownTimeout")
	}
	if err := <-clientErr; err == nil {
		t.Fatal("the stuck request's connection was not closed")
	}
}

func TestListenErrors(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	unloaded := readiness(func() error { return nil })
	noop := func(h http.Handler) http.Handler { return h }

	srv, err := server.New(server.Deps{Catalog: unloaded, Resolve: noop}, &server.Config{Listen: taken.Addr().String(), AdminListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err == nil || !strings.Contains(err.Error(), "public listener") {
		t.Fatalf("Listen on a taken port = %v", err)
	}
	if err := srv.Run(t.Context()); err == nil {
		t.Fatal("Run on a taken port returned nil")
	}

	for name, tc := range map[string]struct {
		deps server.Deps
		cfg  server.Config
	}{
		"no catalog":         {server.Deps{Resolve: noop}, server.Config{}},
		"no resolver":        {server.Deps{Catalog: unloaded}, server.Config{}},
		"bad address":        {server.Deps{Catalog: unloaded, Resolve: noop}, server.Config{Listen: "8080"}},
		"same address":       {server.Deps{Catalog: unloaded, Resolve: noop}, server.Config{Listen: "127.0.0.1:9", AdminListen: "127.0.0.1:9"}},
		"negative timeout":   {server.Deps{Catalog: unloaded, Resolve: noop}, server.Config{ReadTimeout: -time.Second}},
		"negative max bytes": {server.Deps{Catalog: unloaded, Resolve: noop}, server.Config{MaxHeaderBytes: -1}},
	} {
		if _, err := server.New(tc.deps, &tc.cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

type readiness func() error

func (f readiness) Ready() error { return f() }

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := (*server.Config)(nil).WithDefaults()
	if c.Listen != ":8080" || c.AdminListen != "127.0.0.1:8081" || c.ReadHeaderTimeout != 10*time.Second ||
		c.ReadTimeout != 30*time.Second || c.WriteTimeout != 60*time.Second || c.IdleTimeout != 120*time.Second ||
		c.ShutdownTimeout != 25*time.Second || c.MaxHeaderBytes != 64<<10 || c.Logger == nil {
		t.Fatalf("defaults = %+v", c)
	}
	custom := (&server.Config{Listen: ":9000", IdleTimeout: time.Second}).WithDefaults()
	if custom.Listen != ":9000" || custom.IdleTimeout != time.Second || custom.AdminListen != server.DefaultAdminListen {
		t.Fatalf("custom = %+v", custom)
	}
}
