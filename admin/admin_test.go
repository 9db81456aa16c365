package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/admin"
	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/tenant"
	"github.com/tenantry/tenantry/tenantrytest"
)

func TestMain(m *testing.M) { tenantrytest.Main(m) }

const testToken = "test-admin-token-0123456789"

type testBundle struct {
	store  *catalog.Store
	server *httptest.Server
	client *admin.Client
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := tenantrytest.Pool(t, tenantrytest.NewDatabase(t))
	store, err := catalog.NewStore(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(t.Context()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	auth, err := admin.BearerToken("test", testToken)
	if err != nil {
		t.Fatal(err)
	}
	h, err := admin.New(store, &admin.Config{Authenticator: auth, MaxBodyBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := admin.NewClient(srv.URL, testToken, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return &testBundle{store: store, server: srv, client: c}
}

// response is a raw answer of the admin API.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) problem(t *testing.T) admin.Error {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json (body %s)", ct, r.body)
	}
	var e admin.Error
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("problem body %q: %v", r.body, err)
	}
	if e.Status != r.status {
		t.Fatalf("problem status %d, response status %d", e.Status, r.status)
	}
	return e
}

// do sends a raw request with the test token (unless headers set
// Authorization, to "" for none).
func (b *testBundle) do(t *testing.T, method, path, body string, headers ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, b.server.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

func wantProblem(t *testing.T, r response, status int, code, field string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d (body %s)", r.status, status, r.body)
	}
	e := r.problem(t)
	if e.Code != code || e.Field != field {
		t.Fatalf("problem = code %q field %q, want code %q field %q (body %s)", e.Code, e.Field, code, field, r.body)
	}
}

func TestTenantLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()

	created, err := b.client.CreateTenant(ctx, admin.CreateTenantRequest{
		Slug:      "acme",
		Tier:      "pro",
		Placement: tenant.Placement{Model: tenant.ModelSchema},
		Domains:   []string{"Acme.Example.COM."},
		Labels:    map[string]string{"plan": "2026"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if created.Slug != "acme" || created.Tier != "pro" || created.Placement.Model != tenant.ModelSchema ||
		created.State != tenant.StateActive || created.Version != 1 || created.DisplayName != "acme" {
		t.Fatalf("created = %+v", created)
	}
	if len(created.Domains) != 1 || created.Domains[0] != "acme.example.com" {
		t.Fatalf("domains = %v, want the normalised acme.example.com", created.Domains)
	}

	got := b.do(t, http.MethodGet, "/admin/v1/tenants/acme", "")
	if got.status != http.StatusOK || got.header.Get("ETag") != `"1"` {
		t.Fatalf("GET = %d ETag %q", got.status, got.header.Get("ETag"))
	}
	byID, err := b.client.Tenant(ctx, created.ID)
	if err != nil || byID.Slug != "acme" {
		t.Fatalf("by ID: %v %+v", err, byID)
	}

	name := "Acme Corp"
	updated, err := b.client.UpdateTenant(ctx, "acme", admin.UpdateTenantRequest{Version: 1, DisplayName: &name})
	if err != nil {
		t.Fatal(err)
	}
	if updated.DisplayName != name || updated.Version != 2 || updated.Tier != "pro" {
		t.Fatalf("updated = %+v", updated)
	}

	suspended, err := b.client.Suspend(ctx, "acme")
	if err != nil || suspended.State != tenant.StateSuspended {
		t.Fatalf("suspend: %v %+v", err, suspended)
	}
	resumed, err := b.client.Resume(ctx, "acme")
	if err != nil || resumed.State != tenant.StateActive {
		t.Fatalf("resume: %v %+v", err, resumed)
	}

	withDomain, err := b.client.AddDomain(ctx, "acme", "shop.acme.test")
	if err != nil || len(withDomain.Domains) != 2 {
		t.Fatalf("add domain: %v %+v", err, withDomain)
	}
	without, err := b.client.RemoveDomain(ctx, "acme", "acme.example.com")
	if err != nil || len(without.Domains) != 1 || without.Domains[0] != "shop.acme.test" {
		t.Fatalf("remove domain: %v %+v", err, without)
	}

	if err := b.client.DeleteTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	_, err = b.client.Tenant(ctx, "acme")
	var e *admin.Error
	if !errors.As(err, &e) || e.Status != http.StatusNotFound || e.Code != admin.CodeNotFound {
		t.Fatalf("after delete: %v, want 404 not_found", err)
	}
}

func TestListTenants(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	for _, slug := range []string{"delta", "alpha", "charlie", "bravo"} {
		if _, err := b.client.CreateTenant(ctx, admin.CreateTenantRequest{Slug: slug}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.client.Suspend(ctx, "charlie"); err != nil {
		t.Fatal(err)
	}

	page, err := b.client.Tenants(ctx, admin.ListOptions{Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := slugs(page.Tenants); got != "alpha,bravo,charlie" || page.Next != "charlie" {
		t.Fatalf("first page = %s next %q", got, page.Next)
	}
	page, err = b.client.Tenants(ctx, admin.ListOptions{Limit: 3, After: page.Next})
	if err != nil {
		t.Fatal(err)
	}
	if got := slugs(page.Tenants); got != "delta" || page.Next != "" {
		t.Fatalf("second page = %s next %q", got, page.Next)
	}
	all, err := b.client.AllTenants(ctx, "")
	if err != nil || slugs(all) != "alpha,bravo,charlie,delta" {
		t.Fatalf("all = %v %s", err, slugs(all))
	}
	suspended, err := b.client.AllTenants(ctx, tenant.StateSuspended)
	if err != nil || slugs(suspended) != "charlie" {
		t.Fatalf("suspended = %v %s", err, slugs(suspended))
	}

	empty := b.do(t, http.MethodGet, "/admin/v1/tenants?state=deleting", "")
	if empty.status != http.StatusOK || !strings.Contains(string(empty.body), `"tenants":[]`) {
		t.Fatalf("empty list = %d %s, want an empty array", empty.status, empty.body)
	}
	for _, q := range []struct{ query, field string }{
		{"limit=0", "limit"}, {"limit=1001", "limit"}, {"limit=ten", "limit"}, {"limit=-1", "limit"},
		{"state=paused", "state"}, {"after=%00", "after"}, {"after=%27%20OR%201%3D1", "after"},
		{"after=" + strings.Repeat("a", 49), "after"}, {"after=%C3%A9", "after"},
	} {
		wantProblem(t, b.do(t, http.MethodGet, "/admin/v1/tenants?"+q.query, ""), http.StatusUnprocessableEntity, admin.CodeValidation, q.field)
	}
}

func slugs(ts []*tenant.Tenant) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.Slug
	}
	return strings.Join(s, ",")
}

func TestCreateConflicts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	if _, err := b.client.CreateTenant(ctx, admin.CreateTenantRequest{Slug: "acme", Domains: []string{"acme.example.com"}}); err != nil {
		t.Fatal(err)
	}

	wantProblem(t, b.do(t, http.MethodPost, "/admin/v1/tenants", `{"slug":"acme"}`), http.StatusConflict, admin.CodeExists, "slug")

	// A create that fails on its second domain leaves nothing behind: no
	// tenant, no first domain.
	r := b.do(t, http.MethodPost, "/admin/v1/tenants", `{"slug":"globex","domains":["globex.example.com","acme.example.com"]}`)
	wantProblem(t, r, http.StatusConflict, admin.CodeExists, "domains")
	if _, err := b.store.Tenant(ctx, "globex"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("globex after failed create: %v, want not found", err)
	}
	// globex.example.com was not kept: another tenant can take it.
	if _, err := b.client.CreateTenant(ctx, admin.CreateTenantRequest{Slug: "initech", Domains: []string{"globex.example.com"}}); err != nil {
		t.Fatalf("globex.example.com still taken after the failed create: %v", err)
	}
	// The failed create left no audit entry either.
	entries, err := b.client.Audit(ctx, admin.AuditOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Target == "globex" {
			t.Fatalf("audit entry of the failed create: %+v", e)
		}
	}

	// Adding a domain another tenant owns.
	wantProblem(t, b.do(t, http.MethodPost, "/admin/v1/tenants/initech/domains", `{"domain":"acme.example.com"}`),
		http.StatusConflict, admin.CodeExists, "domain")

	// Cluster names are unique too.
	const cluster = `{"name":"eu-1","conn_string":"postgres://tenantry@db.internal:5432/postgres"}`
	if r := b.do(t, http.MethodPost, "/admin/v1/clusters", cluster); r.status != http.StatusCreated {
		t.Fatalf("create cluster = %d %s", r.status, r.body)
	}
	wantProblem(t, b.do(t, http.MethodPost, "/admin/v1/clusters", cluster), http.StatusConflict, admin.CodeExists, "name")
}

func TestVersionConflict(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.client.CreateTenant(t.Context(), admin.CreateTenantRequest{Slug: "acme"}); err != nil {
		t.Fatal(err)
	}
	// Two writers read version 1; the second to write loses.
	if r := b.do(t, http.MethodPatch, "/admin/v1/tenants/acme", `{"version":1,"tier":"pro"}`); r.status != http.StatusOK {
		t.Fatalf("first PATCH = %d %s", r.status, r.body)
	}
	wantProblem(t, b.do(t, http.MethodPatch, "/admin/v1/tenants/acme", `{"version":1,"tier":"enterprise"}`),
		http.StatusConflict, admin.CodeVersionConflict, "version")

	// The version may come as If-Match, the ETag of GET.
	etag := b.do(t, http.MethodGet, "/admin/v1/tenants/acme", "").header.Get("ETag")
	if etag != `"2"` {
		t.Fatalf("ETag = %q", etag)
	}
	if r := b.do(t, http.MethodPatch, "/admin/v1/tenants/acme", `{"tier":"enterprise"}`, "If-Match", etag); r.status != http.StatusOK {
		t.Fatalf("PATCH with If-Match = %d %s", r.status, r.body)
	}
	wantProblem(t, b.do(t, http.MethodPatch, "/admin/v1/tenants/acme", `{"tier":"free"}`, "If-Match", etag),
		http.StatusConflict, admin.CodeVersionConflict, "version")
	wantProblem(t, b.do(t, http.MethodPatch, "/admin/v1/tenants/acme", `{"tier":"free"}`),
		http.StatusUnprocessableEntity, admin.CodeValidation, "version")
	wantProblem(t, b.do(t, http.MethodPatch, "/admin/v1/tenants/acme", `{"tier":"free"}`, "If-Match", "*"),
		http.StatusUnprocessableEntity, admin.CodeValidation, "version")
	wantProblem(t, b.do(t, http.MethodPatch, "/admin/v1/tenants/acme", `{"version":2,"tier":"free"}`, "If-Match", `"3"`),
		http.StatusUnprocessableEntity, admin.CodeValidation, "version")

	got, err := b.client.Tenant(t.Context(), "acme")
	if err != nil || got.Tier != "enterprise" || got.Version != 3 {
		t.Fatalf("final = %v %+v", err, got)
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		name, authorization string
	}{
		{"missing", ""},
		{"wrong token", "Bearer wrong-token-0123456789"},
		{"token prefix", "Bearer " + testToken[:len(testToken)-1]},
		{"token with suffix", "Bearer " + testToken + "x"},
		{"basic scheme", "Basic " + testToken},
		{"no scheme", testToken},
		{"empty bearer", "Bearer "},
		{"tab separator", "Bearer\t" + testToken},
		{"token twice", "Bearer " + testToken + " " + testToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, path := range []string{"/admin/v1/tenants", "/admin/v1/clusters", "/admin/v1/audit", "/admin/v1/nope"} {
				r := b.do(t, http.MethodGet, path, "", "Authorization", tc.authorization)
				wantProblem(t, r, http.StatusUnauthorized, admin.CodeUnauthenticated, "")
				if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Fatalf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
				}
			}
			r := b.do(t, http.MethodPost, "/admin/v1/tenants", `{"slug":"sneaky"}`, "Authorization", tc.authorization)
			wantProblem(t, r, http.StatusUnauthorized, admin.CodeUnauthenticated, "")
		})
	}
	t.Run("scheme is case-insensitive", func(t *testing.T) {
		t.Parallel()
		if r := b.do(t, http.MethodGet, "/admin/v1/tenants", "", "Authorization", "bearer "+testToken); r.status != http.StatusOK {
			t.Fatalf("status = %d", r.status)
		}
	})
	if _, err := b.store.Tenant(t.Context(), "sneaky"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("an unauthenticated create wrote a tenant: %v", err)
	}
	if _, err := admin.BearerToken("test", "short"); err == nil {
		t.Fatal("BearerToken accepted a 5-character token")
	}
}

func TestAuditRecordsActorAndReason(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	created, err := b.client.CreateTenant(ctx, admin.CreateTenantRequest{Slug: "acme", Reason: "signed the contract"})
	if err != nil {
		t.Fatal(err)
	}
	if r := b.do(t, http.MethodPost, "/admin/v1/tenants/acme/suspend", "", "X-Tenantry-Reason", "unpaid invoice"); r.status != http.StatusOK {
		t.Fatalf("suspend = %d %s", r.status, r.body)
	}
	if r := b.do(t, http.MethodPost, "/admin/v1/tenants/acme/resume", `{"reason":"paid"}`); r.status != http.StatusOK {
		t.Fatalf("resume = %d %s", r.status, r.body)
	}
	entries, err := b.client.Audit(ctx, admin.AuditOptions{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	byID, err := b.client.Audit(ctx, admin.AuditOptions{Tenant: created.ID})
	if err != nil || len(byID) != len(entries) {
		t.Fatalf("audit by ID: %v, %d entries vs %d by slug", err, len(byID), len(entries))
	}
	want := []struct{ action, reason string }{
		{"tenant.resume", "paid"}, {"tenant.suspend", "unpaid invoice"}, {"tenant.create", "signed the contract"},
	}
	if len(entries) != len(want) {
		t.Fatalf("audit = %+v", entries)
	}
	for i, w := range want {
		e := entries[i]
		if e.Action != w.action || e.Reason != w.reason || e.Actor != "token:test" || e.TenantID != created.ID {
			t.Errorf("entry %d = %+v, want action %s reason %q actor token:test", i, e, w.action, w.reason)
		}
	}

	for _, reason := range []string{strings.Repeat("x", admin.MaxReasonLen+1), "line\nbreak", "nul\x00"} {
		body, _ := json.Marshal(map[string]string{"reason": reason})
		wantProblem(t, b.do(t, http.MethodPost, "/admin/v1/tenants/acme/suspend", string(body)),
			http.StatusUnprocessableEntity, admin.CodeValidation, "reason")
	}
	wantProblem(t, b.do(t, http.MethodGet, "/admin/v1/audit?tenant_id=not-a-uuid", ""), http.StatusUnprocessableEntity, admin.CodeValidation, "tenant_id")
	wantProblem(t, b.do(t, http.MethodGet, "/admin/v1/audit?tenant=nobody", ""), http.StatusNotFound, admin.CodeNotFound, "")
	wantProblem(t, b.do(t, http.MethodGet, "/admin/v1/audit?tenant=acme&tenant_id="+created.ID, ""), http.StatusUnprocessableEntity, admin.CodeValidation, "tenant")
}

// TestHostileInput sends malformed and hostile requests; each must get its
// 4xx problem with the field named, and none may write anything or answer
// 500.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.client.CreateTenant(t.Context(), admin.CreateTenantRequest{Slug: "acme"}); err != nil {
		t.Fatal(err)
	}
	type call struct {
		name, method, path, body string
		headers                  []string
		status                   int
		code, field              string
	}
	const post, patch, get, del = http.MethodPost, http.MethodPatch, http.MethodGet, http.MethodDelete
	const tenants = "/admin/v1/tenants"
	for _, c := range []call{
		// Slugs.
		{"empty slug", post, tenants, `{"slug":""}`, nil, 422, admin.CodeValidation, "slug"},
		{"upper-case slug", post, tenants, `{"slug":"Acme"}`, nil, 422, admin.CodeValidation, "slug"},
		{"underscore slug", post, tenants, `{"slug":"bad_slug"}`, nil, 422, admin.CodeValidation, "slug"},
		{"SQL in slug", post, tenants, `{"slug":"x'; DROP TABLE tenantry.tenant; --"}`, nil, 422, admin.CodeValidation, "slug"},
		{"quote in slug", post, tenants, `{"slug":"acme\""}`, nil, 422, admin.CodeValidation, "slug"},
		{"NUL in slug", post, tenants, `{"slug":"acme\u0000"}`, nil, 422, admin.CodeValidation, "slug"},
		{"newline in slug", post, tenants, `{"slug":"acme\ninjected"}`, nil, 422, admin.CodeValidation, "slug"},
		{"unicode look-alike slug", post, tenants, `{"slug":"аcme"}`, nil, 422, admin.CodeValidation, "slug"},
		{"punycode slug", post, tenants, `{"slug":"xn--acme"}`, nil, 422, admin.CodeValidation, "slug"},
		{"overlong slug", post, tenants, `{"slug":"` + strings.Repeat("a", 49) + `"}`, nil, 422, admin.CodeValidation, "slug"},
		{"reserved slug", post, tenants, `{"slug":"admin"}`, nil, 422, admin.CodeValidation, "slug"},
		{"path traversal slug", post, tenants, `{"slug":"../etc"}`, nil, 422, admin.CodeValidation, "slug"},
		// Domains.
		{"SQL in domain", post, tenants, `{"slug":"d1","domains":["a.com'; DROP TABLE x; --"]}`, nil, 422, admin.CodeValidation, "domains"},
		{"IP as domain", post, tenants, `{"slug":"d2","domains":["127.0.0.1"]}`, nil, 422, admin.CodeValidation, "domains"},
		{"domain with port", post, tenants, `{"slug":"d3","domains":["acme.test:8080"]}`, nil, 422, admin.CodeValidation, "domains"},
		{"unicode domain", post, tenants, `{"slug":"d4","domains":["аcme.example.com"]}`, nil, 422, admin.CodeValidation, "domains"},
		{"single-label domain", post, tenants, `{"slug":"d5","domains":["localhost"]}`, nil, 422, admin.CodeValidation, "domains"},
		{"duplicate domains", post, tenants, `{"slug":"d6","domains":["a.test","A.test."]}`, nil, 422, admin.CodeValidation, "domains"},
		{"overlong domain", post, tenants, `{"slug":"d7","domains":["` + strings.Repeat("a.", 130) + `com"]}`, nil, 422, admin.CodeValidation, "domains"},
		{"NUL domain", post, tenants + "/acme/domains", `{"domain":"acme\u0000.test"}`, nil, 422, admin.CodeValidation, "domain"},
		{"empty domain", post, tenants + "/acme/domains", `{"domain":""}`, nil, 422, admin.CodeValidation, "domain"},
		{"remove SQL domain", del, tenants + "/acme/domains/a.com';--", "", nil, 422, admin.CodeValidation, "domain"},
		{"remove unknown domain", del, tenants + "/acme/domains/nope.test", "", nil, 404, admin.CodeNotFound, ""},
		// Other fields.
		{"bad model", post, tenants, `{"slug":"m1","placement":{"model":"mongodb"}}`, nil, 422, admin.CodeValidation, "placement.model"},
		{"unknown cluster", post, tenants, `{"slug":"m2","placement":{"model":"schema","cluster":"nowhere"}}`, nil, 422, admin.CodeValidation, "placement.cluster"},
		{"SQL in schema", post, tenants, `{"slug":"m3","placement":{"model":"schema","schema":"x\"; DROP"}}`, nil, 422, admin.CodeValidation, "placement.schema"},
		{"bad state", post, tenants, `{"slug":"m4","state":"paused"}`, nil, 422, admin.CodeValidation, "state"},
		{"bad tier", post, tenants, `{"slug":"m5","tier":"Gold!"}`, nil, 422, admin.CodeValidation, "tier"},
		{"control chars in name", post, tenants, `{"slug":"m6","display_name":"a\u0007b"}`, nil, 422, admin.CodeValidation, "display_name"},
		{"bad label key", post, tenants, `{"slug":"m7","labels":{"bad key!":"v"}}`, nil, 422, admin.CodeValidation, "labels"},
		// JSON shape.
		{"unknown field", post, tenants, `{"slug":"j1","is_admin":true}`, nil, 400, admin.CodeUnknownField, "is_admin"},
		{"unknown nested field", post, tenants, `{"slug":"j2","placement":{"model":"schema","owner":"x"}}`, nil, 400, admin.CodeUnknownField, "owner"},
		{"malformed JSON", post, tenants, `{"slug":`, nil, 400, admin.CodeMalformedJSON, ""},
		{"syntax error", post, tenants, `{slug:"x"}`, nil, 400, admin.CodeMalformedJSON, ""},
		{"wrong type", post, tenants, `{"slug":42}`, nil, 400, admin.CodeMalformedJSON, "slug"},
		{"array body", post, tenants, `[{"slug":"j3"}]`, nil, 400, admin.CodeMalformedJSON, ""},
		{"two objects", post, tenants, `{"slug":"j4"}{"slug":"j5"}`, nil, 400, admin.CodeMalformedJSON, ""},
		{"empty body", post, tenants, ``, nil, 400, admin.CodeMalformedJSON, ""},
		{"oversized body", post, tenants, `{"slug":"j6","display_name":"` + strings.Repeat("x", 5000) + `"}`, nil, 413, admin.CodeBodyTooLarge, ""},
		{"not JSON content type", post, tenants, `{"slug":"j7"}`, []string{"Content-Type", "text/plain"}, 415, admin.CodeUnsupportedType, ""},
		{"PATCH unknown field", patch, tenants + "/acme", `{"version":1,"slug":"renamed"}`, nil, 400, admin.CodeUnknownField, "slug"},
		{"PATCH bad version type", patch, tenants + "/acme", `{"version":"1"}`, nil, 400, admin.CodeMalformedJSON, "version"},
		// Paths and methods.
		{"unknown tenant", get, tenants + "/nobody", "", nil, 404, admin.CodeNotFound, ""},
		{"SQL in path slug", get, tenants + "/x'%20OR%20'1'='1", "", nil, 404, admin.CodeNotFound, ""},
		{"encoded slash in slug", get, tenants + "/acme%2F..%2Fadmin", "", nil, 404, admin.CodeNotFound, ""},
		{"upper-case UUID", get, tenants + "/00000000-0000-0000-0000-00000000000A", "", nil, 404, admin.CodeNotFound, ""},
		{"suspend unknown", post, tenants + "/nobody/suspend", "", nil, 404, admin.CodeNotFound, ""},
		{"delete unknown", del, tenants + "/nobody", "", nil, 404, admin.CodeNotFound, ""},
		{"unknown endpoint", get, "/admin/v1/secrets", "", nil, 404, admin.CodeNotFound, ""},
		{"wrong method", http.MethodPut, tenants + "/acme", `{}`, nil, 405, admin.CodeMethod, ""},
		{"wrong method on collection", del, tenants, "", nil, 405, admin.CodeMethod, ""},
		// Clusters.
		{"cluster without conn string", post, "/admin/v1/clusters", `{"name":"c1"}`, nil, 422, admin.CodeValidation, "conn_string"},
		{"cluster bad name", post, "/admin/v1/clusters", `{"name":"C 1","conn_string":"postgres://x@h/db"}`, nil, 422, admin.CodeValidation, "name"},
		{"cluster bad conn string", post, "/admin/v1/clusters", `{"name":"c2","conn_string":"postgres://x@h:notaport/db"}`, nil, 422, admin.CodeValidation, "conn_string"},
		{"cluster bad role", post, "/admin/v1/clusters", `{"name":"c3","conn_string":"postgres://x@h/db","role":"leader"}`, nil, 422, admin.CodeValidation, "role"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := b.do(t, c.method, c.path, c.body, c.headers...)
			wantProblem(t, r, c.status, c.code, c.field)
			e := r.problem(t)
			for _, leak := range []string{"DROP", "pgx", "SQLSTATE", "tenantry.", "goroutine", "json:"} {
				if strings.Contains(e.Detail, leak) || strings.Contains(e.Title, leak) {
					t.Errorf("problem leaks %q: %s", leak, r.body)
				}
			}
		})
	}
	t.Cleanup(func() {
		// Only acme exists: no hostile create wrote a tenant.
		all, err := b.store.Tenants(context.Background(), catalog.ListOptions{})
		if err != nil {
			t.Error(err)
			return
		}
		if len(all) != 1 || all[0].Slug != "acme" || all[0].Version != 1 {
			t.Errorf("tenants after hostile input = %s (acme version %d), want only acme, unchanged", slugs(all), all[0].Version)
		}
	})
}

func TestClusters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	created, err := b.client.CreateCluster(ctx, admin.CreateClusterRequest{
		Name:       "eu-1",
		ConnString: "postgres://tenantry:s3cret-password@db-eu-1.internal:5432/postgres",
		Region:     "eu",
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(created.ConnString, "s3cret") || created.Role != catalog.RolePrimary || created.MaxConns != 50 {
		t.Fatalf("created = %+v", created)
	}
	if _, err := b.client.CreateCluster(ctx, admin.CreateClusterRequest{
		Name: "us-1", ConnString: "host=db-us-1 user=tenantry password=other-secret dbname=postgres", Role: catalog.RoleShard,
	}); err != nil {
		t.Fatal(err)
	}
	r := b.do(t, http.MethodGet, "/admin/v1/clusters", "")
	if r.status != http.StatusOK {
		t.Fatalf("list = %d %s", r.status, r.body)
	}
	for _, secret := range []string{"s3cret-password", "other-secret"} {
		if strings.Contains(string(r.body), secret) {
			t.Fatalf("cluster list leaks a password: %s", r.body)
		}
	}
	list, err := b.client.Clusters(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "eu-1" || list[1].Role != catalog.RoleShard {
		t.Fatalf("clusters = %v %+v", err, list)
	}

	// Tenants can be placed on a registered cluster.
	placed, err := b.client.CreateTenant(ctx, admin.CreateTenantRequest{Slug: "acme", Placement: tenant.Placement{Model: tenant.ModelDatabase, Cluster: "eu-1"}})
	if err != nil || placed.Placement.Cluster != "eu-1" {
		t.Fatalf("placed = %v %+v", err, placed)
	}
}

func TestClientUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	c, err := admin.NewClient(url, testToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Tenants(t.Context(), admin.ListOptions{})
	var ue *admin.UnreachableError
	if !errors.As(err, &ue) || ue.URL != url {
		t.Fatalf("err = %v, want an UnreachableError for %s", err, url)
	}
	for _, bad := range []string{"", "127.0.0.1:8081", "ftp://x", "http://"} {
		if _, err := admin.NewClient(bad, testToken, nil); err == nil {
			t.Errorf("NewClient(%q) accepted", bad)
		}
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := admin.New(nil, &admin.Config{Authenticator: admin.AnyOf()}); err == nil {
		t.Error("New accepted a nil store")
	}
	if _, err := admin.New(b.store, nil); err == nil {
		t.Error("New accepted a config without an Authenticator")
	}
}
