package resolve

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/tenant"
)

// FuzzNormalizeHost checks that whatever a client sends as Host, a host
// name handed to Lookup.ByDomain is in normal form.
func FuzzNormalizeHost(f *testing.F) {
	for _, s := range []string{"acme.example.org", "ACME.localhost:80", "[::1]:1", "a..b", "\u0430cme.x", "x.", "1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, class := normalizeHost(in)
		if class != hostName {
			if h != "" {
				t.Fatalf("class %d with host %q", class, h)
			}
			return
		}
		if h == "" || len(h) > maxHostLen || strings.HasSuffix(h, ".") || strings.Contains(h, "..") {
			t.Fatalf("normalizeHost(%q) = %q", in, h)
		}
		for i := 0; i < len(h); i++ {
			if c := h[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
				t.Fatalf("normalizeHost(%q) = %q has %q", in, h, c)
			}
		}
		if h2, c2 := normalizeHost(h); h2 != h || c2 != hostName {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, h, h2)
		}
	})
}

// FuzzMiddleware sends arbitrary host, header and path values through a
// resolver with every header-reading strategy and checks that a request is
// either served with a valid tenant or refused with a problem that does not
// repeat the input.
func FuzzMiddleware(f *testing.F) {
	f.Add("acme.localhost", "acme", "/t/acme/x", "URI=spiffe://example.org/tenant/acme")
	f.Add("x", "ACME", "/t/../x", `Subject="a`)
	f.Fuzz(func(t *testing.T, host, header, path, xfccValue string) {
		res := MustNew(newLookup(), &Config{Strategies: []Strategy{
			PathPrefix(""), Header("", loopback), MeshXFCC(loopback, trustDomain), Subdomain("localhost"), Host(),
		}})
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = "127.0.0.1:1"
		req.Host = host
		req.URL.Path = path
		req.Header["X-Tenant-Id"] = []string{header}
		req.Header["X-Forwarded-Client-Cert"] = []string{xfccValue}
		tn, _, err := res.Resolve(req)
		if err == nil {
			if !tenant.IsValidSlug(tn.Slug) {
				t.Fatalf("resolved invalid tenant %q", tn.Slug)
			}
			return
		}
		rec := httptest.NewRecorder()
		res.Middleware(nil2xx{}).ServeHTTP(rec, req)
		if rec.Code < 400 {
			t.Fatalf("Resolve failed (%v) but the middleware answered %d", err, rec.Code)
		}
		body := rec.Body.String()
		for _, in := range []string{host, header, path, xfccValue} {
			if len(in) >= 12 && strings.Contains(body, in) {
				t.Fatalf("body repeats input %q: %s", in, body)
			}
		}
	})
}

type nil2xx struct{}

func (nil2xx) ServeHTTP(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }
