package resolve

import (
	"net/http"
	"testing"

	"github.com/tenantry/tenantry/tenant"
)

// hotCase is a request shape of the hot path, with its resolver.
type hotCase struct {
	name       string
	strategies func() []Strategy
	req        request
}

func hotCases(t testing.TB) []hotCase {
	return []hotCase{
		{"host", func() []Strategy { return []Strategy{Host()} }, request{host: "acme.example.org"}},
		{"subdomain", func() []Strategy { return []Strategy{Subdomain("localhost")} }, request{host: "acme.localhost:8080"}},
		{"header", func() []Strategy { return []Strategy{Header("", gateways)} }, request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", "acme")}},
		{"header-uuid", func() []Strategy { return []Strategy{Header("", gateways)} }, request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", acmeID)}},
		{"path", func() []Strategy { return []Strategy{PathPrefix("")} }, request{target: "/t/acme/api/v1/notes"}},
		{"jwt", func() []Strategy { return []Strategy{JWT(jwtConfig())} }, request{header: hdr("Authorization", "Bearer "+tenantToken(t, "acme"))}},
		{"client-cert", func() []Strategy { return []Strategy{ClientCert(trustDomain)} }, request{tls: verifiedTLS(t, "spiffe://example.org/tenant/acme")}},
		{"mesh-xfcc", func() []Strategy { return []Strategy{MeshXFCC(loopback, trustDomain)} }, request{remoteAddr: sidecarIP, header: hdr("X-Forwarded-Client-Cert",
			`By=spiffe://example.org/ns/prod/sa/api;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;URI=spiffe://example.org/tenant/acme`)}},
		{"first-match-3", func() []Strategy {
			return []Strategy{Header("", gateways), Subdomain("localhost"), Host()}
		}, request{host: "acme.localhost"}},
		{"agreement-2", func() []Strategy { return []Strategy{Subdomain("localhost"), Header("", gateways)} },
			request{remoteAddr: trustedIP, host: "acme.localhost", header: hdr("X-Tenant-Id", "acme")}},
	}
}

func (c hotCase) resolver(t testing.TB) *Resolver {
	mode := FirstMatch
	if c.name == "agreement-2" {
		mode = RequireAgreement
	}
	r, err := New(newLookup(), &Config{Strategies: c.strategies(), Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// nopWriter is a ResponseWriter that allocates nothing.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

var sink *tenant.Tenant

func nextHandler(w http.ResponseWriter, r *http.Request) {
	sink, _ = tenant.FromContext(r.Context())
}

// TestAllocs pins the allocation budget of the hot path: parsing and lookup
// allocate nothing for host, subdomain and header; the middleware adds the
// request copy and the tenant context. It is the one test that is not
// parallel: testing.AllocsPerRun refuses to run in a parallel test.
func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	budget := map[string]float64{"host": 0, "subdomain": 0, "header": 0, "header-uuid": 0, "first-match-3": 0, "agreement-2": 0}
	for _, c := range hotCases(t) {
		want, ok := budget[c.name]
		if !ok {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			res := c.resolver(t)
			req := c.req.build(t)
			if n := testing.AllocsPerRun(100, func() { _, _, _ = res.Resolve(req) }); n != want {
				t.Errorf("Resolve: %v allocs, want %v", n, want)
			}
			h := res.Middleware(http.HandlerFunc(nextHandler))
			w := &nopWriter{h: http.Header{}}
			if n := testing.AllocsPerRun(100, func() { h.ServeHTTP(w, req) }); n > want+2 {
				t.Errorf("Middleware: %v allocs, want <= %v", n, want+2)
			}
			if sink == nil || sink.Slug != "acme" {
				t.Errorf("resolved %v", sink)
			}
		})
	}
}

// BenchmarkLookupMap is the floor: the map-backed Lookup alone.
func BenchmarkLookupMap(b *testing.B) {
	l := newLookup()
	b.ReportAllocs()
	for b.Loop() {
		sink, _ = l.BySlug("acme")
	}
}

// BenchmarkResolve measures each strategy's parsing and lookup, without the
// request copy and context of the middleware.
func BenchmarkResolve(b *testing.B) {
	for _, c := range hotCases(b) {
		b.Run(c.name, func(b *testing.B) {
			res := c.resolver(b)
			req := c.req.build(b)
			if _, _, err := res.Resolve(req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				sink, _, _ = res.Resolve(req)
			}
		})
	}
}

// BenchmarkMiddleware measures the full middleware on a successful request,
// through to a handler that reads the tenant.
func BenchmarkMiddleware(b *testing.B) {
	for _, c := range hotCases(b) {
		b.Run(c.name, func(b *testing.B) {
			h := c.resolver(b).Middleware(http.HandlerFunc(nextHandler))
			req := c.req.build(b)
			w := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, req)
			}
			if sink == nil || sink.Slug != "acme" {
				b.Fatalf("resolved %v", sink)
			}
		})
	}
}

// BenchmarkRefused measures the cost of refusing a request (hostile traffic
// is paid for too): the problem is serialised on every refusal.
func BenchmarkRefused(b *testing.B) {
	res := MustNew(newLookup(), &Config{Strategies: []Strategy{Header("", gateways)}})
	h := res.Middleware(http.HandlerFunc(nextHandler))
	req := request{remoteAddr: untrusted, header: hdr("X-Tenant-Id", "acme")}.build(b)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(&nopWriter{h: http.Header{}}, req)
	}
}
