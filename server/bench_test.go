package server_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/server"
	"github.com/tenantry/tenantry/tenant"
)

// BenchmarkPublicHandler measures a whole GET /api/v1/tenant through the
// public handler as `tenantry serve` builds it: request logging, the
// default resolution chain in RequireAgreement mode (host, subdomain,
// header, path prefix) over the catalog cache, the tenant mux and the JSON
// answer. No network: the handler is called directly. "logged" writes the
// request record as JSON to io.Discard; the others log nothing (level
// above info), which is the cost of the log call when it is filtered out.
func BenchmarkPublicHandler(b *testing.B) {
	bundle := setup(b, &server.Config{Logger: slog.New(slog.DiscardHandler)})
	bundle.createTenant(b, catalog.NewTenant{Slug: "acme", Domains: []string{"acme.example.com"}, Placement: tenant.Placement{Model: tenant.ModelSchema}})
	quiet := bundle.srv.PublicHandler()

	loggedSrv, err := server.New(server.Deps{Catalog: bundle.cache, Resolve: bundle.resolve}, &server.Config{
		Logger: slog.New(server.NewLogHandler(slog.NewJSONHandler(io.Discard, nil))),
	})
	if err != nil {
		b.Fatal(err)
	}
	logged := loggedSrv.PublicHandler()

	for _, c := range []struct {
		name    string
		h       http.Handler
		target  string
		host    string
		headers []string
	}{
		{"host", quiet, "/api/v1/tenant", "acme.example.com", nil},
		{"subdomain", quiet, "/api/v1/tenant", "acme.localhost", nil},
		{"header", quiet, "/api/v1/tenant", "localhost", []string{"X-Tenant-ID", "acme"}},
		{"path", quiet, "/t/acme/api/v1/tenant", "localhost", nil},
		{"subdomain-logged", logged, "/api/v1/tenant", "acme.localhost", nil},
		{"healthz", quiet, "/healthz", "localhost", nil},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, c.target, nil)
			req.Host = c.host
			req.RemoteAddr = "127.0.0.1:40000"
			for i := 0; i+1 < len(c.headers); i += 2 {
				req.Header.Set(c.headers[i], c.headers[i+1])
			}
			w := &discardWriter{header: http.Header{}}
			c.h.ServeHTTP(w, req)
			if w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.header)
				c.h.ServeHTTP(w, req)
			}
		})
	}
}

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
