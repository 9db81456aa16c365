package resolve_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/resolve"
	"github.com/tenantry/tenantry/tenant"
)

// tenants is a stand-in for catalog.Cache.
type tenants map[string]*tenant.Tenant

func (m tenants) BySlug(s string) (*tenant.Tenant, error) {
	if t, ok := m[s]; ok {
		return t, nil
	}
	return nil, catalog.ErrNotFound
}
func (m tenants) ByDomain(string) (*tenant.Tenant, error) { return nil, catalog.ErrNotFound }
func (m tenants) ByID(string) (*tenant.Tenant, error)     { return nil, catalog.ErrNotFound }

func Example() {
	lookup := tenants{"acme": {ID: "0b9f5c1e-7a1d-4c2e-9f00-000000000001", Slug: "acme", State: tenant.StateActive}}

	res, err := resolve.New(lookup, &resolve.Config{
		Strategies: []resolve.Strategy{
			// acme.localhost is tenant acme.
			resolve.Subdomain("localhost"),
			// X-Tenant-ID is honoured from the gateway on loopback only.
			resolve.Header("", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}),
		},
	})
	if err != nil {
		panic(err)
	}
	h := res.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, _ := tenant.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s (via %s)", t.Slug, tenant.ResolvedVia(r.Context()))
	}))

	for _, req := range []*http.Request{
		httptest.NewRequest("GET", "http://acme.localhost/", nil),
		httptest.NewRequest("GET", "http://ACME.localhost:8080/", nil),
		httptest.NewRequest("GET", "http://nosuch.localhost/", nil),
		func() *http.Request {
			r := httptest.NewRequest("GET", "http://api.example.com/", nil)
			r.Header.Set("X-Tenant-ID", "acme") // from 192.0.2.1, not the gateway
			return r
		}(),
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Body.String())
	}
	// Output:
	// 200 hello acme (via subdomain)
	// 200 hello acme (via subdomain)
	// 404 {"type":"urn:tenantry:problem:tenant_unknown","title":"Not Found","status":404,"code":"tenant_unknown","detail":"subdomain: no such tenant"}
	// 403 {"type":"urn:tenantry:problem:tenant_forbidden","title":"Forbidden","status":403,"code":"tenant_forbidden","detail":"header X-Tenant-ID: not accepted from this source"}
}
