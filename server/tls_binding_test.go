package server_test

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/certs"
	"github.com/tenantry/tenantry/mtls"
	"github.com/tenantry/tenantry/resolve"
	"github.com/tenantry/tenantry/tenant"
)

// bindingTenants is a fixed catalog for the binding tests.
type bindingTenants map[string]*tenant.Tenant // by slug

func (m bindingTenants) BySlug(slug string) (*tenant.Tenant, error) {
	if t, ok := m[slug]; ok {
		return t, nil
	}
	return nil, catalog.ErrNotFound
}

func (m bindingTenants) ByDomain(host string) (*tenant.Tenant, error) {
	for _, t := range m {
		for _, d := range t.Domains {
			if d == host {
				return t, nil
			}
		}
	}
	return nil, catalog.ErrNotFound
}

func (m bindingTenants) ByID(id string) (*tenant.Tenant, error) {
	for _, t := range m {
		if t.ID == id {
			return t, nil
		}
	}
	return nil, catalog.ErrNotFound
}

// bindingBundle is a public listener with mutual TLS that takes the tenant
// from both the client certificate and the host, and requires them to agree.
type bindingBundle struct {
	addr string
	pki  string
	ca   *certs.CA
}

func setupBinding(t *testing.T) *bindingBundle {
	t.Helper()
	pki := t.TempDir()
	ca, err := certs.NewCA("example.org", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pki, certs.CAFile), ca.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &bindingBundle{pki: pki, ca: ca}
	src := b.source(t, certs.Request{Kind: certs.Service, Name: "public"})
	serverTLS, err := mtls.ServerTLS(src, &mtls.ServerConfig{ClientAuth: mtls.RequireClientCert})
	if err != nil {
		t.Fatal(err)
	}
	tenants := bindingTenants{
		"acme":   {ID: "4b1c5d3e-0000-4000-8000-000000000001", Slug: "acme", State: tenant.StateActive, Domains: []string{"acme.example.com"}},
		"globex": {ID: "4b1c5d3e-0000-4000-8000-000000000002", Slug: "globex", State: tenant.StateActive, Domains: []string{"globex.example.com"}},
	}
	res, err := resolve.New(tenants, &resolve.Config{
		Strategies: []resolve.Strategy{resolve.ClientCert("example.org"), resolve.Host()},
		Mode:       resolve.RequireAgreement,
	})
	if err != nil {
		t.Fatal(err)
	}
	handler := res.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tn, _ := tenant.FromContext(r.Context())
		io.WriteString(w, tn.Slug)
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, TLSConfig: serverTLS}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	b.addr = ln.Addr().String()
	return b
}

// source issues req and returns a file source over it.
func (b *bindingBundle) source(t *testing.T, req certs.Request) *mtls.FileSource {
	t.Helper()
	leaf, err := certs.Issue(b.ca, req)
	if err != nil {
		t.Fatal(err)
	}
	// A directory of its own: parallel tests issue the same identities.
	certPath, keyPath, err := leaf.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	src, err := mtls.NewFileSource(&mtls.FileConfig{CertFile: certPath, KeyFile: keyPath,
		CAFile: filepath.Join(b.pki, certs.CAFile), TrustDomain: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// client is a mutual-TLS client presenting the certificate of req. Every
// request opens a new connection; with a session cache the connections
// after the first resume the TLS session.
type client struct {
	tls *tls.Config
}

func (b *bindingBundle) client(t *testing.T, req certs.Request, cache tls.ClientSessionCache) *client {
	t.Helper()
	cfg, err := mtls.ClientTLS(b.source(t, req), &mtls.ClientConfig{SessionCache: cache})
	if err != nil {
		t.Fatal(err)
	}
	return &client{tls: cfg}
}

type answer struct {
	status  int
	body    string
	code    string // of a problem
	resumed bool
}

// get sends GET / with host as the Host header over a new connection.
func (c *client) get(t *testing.T, addr, host string) answer {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: c.tls, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	return c.do(t, &http.Client{Transport: tr, Timeout: 10 * time.Second}, addr, host)
}

func (c *client) do(t *testing.T, hc *http.Client, addr, host string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, body: string(body), resumed: resp.TLS != nil && resp.TLS.DidResume}
	if resp.StatusCode != http.StatusOK {
		ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if ct != "application/problem+json" {
			t.Errorf("refusal with Content-Type %q", ct)
		}
		var p struct {
			Code string `json:"code"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("refusal body %q: %v", body, err)
		}
		a.code = p.Code
	}
	return a
}

// TestTenantCertificateBinding: a client certificate bound to tenant acme
// is served on acme's host and refused with 403 on globex's, on new and on
// resumed TLS sessions alike. Go does not run VerifyPeerCertificate on a
// resumed session, so the binding must be checked per request.
func TestTenantCertificateBinding(t *testing.T) {
	t.Parallel()
	b := setupBinding(t)
	acmeCert := certs.Request{Kind: certs.Tenant, Name: "acme"}
	const acmeHost, globexHost = "acme.example.com", "globex.example.com"

	expect := func(t *testing.T, got answer, status int, resumed bool) {
		t.Helper()
		if got.status != status || got.resumed != resumed {
			t.Fatalf("got %d (resumed %v) %q; want %d (resumed %v)", got.status, got.resumed, got.body, status, resumed)
		}
		switch status {
		case http.StatusOK:
			if got.body != "acme" {
				t.Errorf("served tenant %q, want acme", got.body)
			}
		case http.StatusForbidden:
			if got.code != resolve.CodeConflict {
				t.Errorf("problem code %q, want %s", got.code, resolve.CodeConflict)
			}
		}
	}

	t.Run("MatchingHost", func(t *testing.T) {
		t.Parallel()
		c := b.client(t, acmeCert, tls.NewLRUClientSessionCache(8))
		expect(t, c.get(t, b.addr, acmeHost), http.StatusOK, false)
		expect(t, c.get(t, b.addr, acmeHost), http.StatusOK, true)
	})

	t.Run("OtherTenantsHost", func(t *testing.T) {
		t.Parallel()
		c := b.client(t, acmeCert, tls.NewLRUClientSessionCache(8))
		expect(t, c.get(t, b.addr, globexHost), http.StatusForbidden, false)
		expect(t, c.get(t, b.addr, globexHost), http.StatusForbidden, true)
	})

	// A session made for acme's host, resumed for globex's.
	t.Run("ResumedForOtherTenant", func(t *testing.T) {
		t.Parallel()
		c := b.client(t, acmeCert, tls.NewLRUClientSessionCache(8))
		expect(t, c.get(t, b.addr, acmeHost), http.StatusOK, false)
		expect(t, c.get(t, b.addr, globexHost), http.StatusForbidden, true)
		expect(t, c.get(t, b.addr, acmeHost), http.StatusOK, true)
	})

	// One kept-alive connection, one request per host.
	t.Run("SameConnection", func(t *testing.T) {
		t.Parallel()
		c := b.client(t, acmeCert, nil)
		tr := &http.Transport{TLSClientConfig: c.tls, MaxConnsPerHost: 1}
		defer tr.CloseIdleConnections()
		hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		expect(t, c.do(t, hc, b.addr, acmeHost), http.StatusOK, false)
		expect(t, c.do(t, hc, b.addr, globexHost), http.StatusForbidden, false)
		expect(t, c.do(t, hc, b.addr, acmeHost), http.StatusOK, false)
	})

	// A certificate bound to no tenant leaves the choice to the host.
	t.Run("ServiceCertificate", func(t *testing.T) {
		t.Parallel()
		c := b.client(t, certs.Request{Kind: certs.Service, Name: "gateway"}, tls.NewLRUClientSessionCache(8))
		for i, host := range []string{globexHost, globexHost} {
			got := c.get(t, b.addr, host)
			if got.status != http.StatusOK || got.body != "globex" || got.resumed != (i == 1) {
				t.Fatalf("request %d: got %+v, want globex served", i, got)
			}
		}
	})
}
