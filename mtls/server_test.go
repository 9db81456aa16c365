package mtls_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantry/tenantry/certs"
	"github.com/tenantry/tenantry/mtls"
)

type bundle struct {
	ca     *certs.CA
	server *mtls.FileSource
}

// setup starts an mTLS server for service "billing" over files in a temp dir.
func setup(t *testing.T, cfg *mtls.ServerConfig) (*bundle, *testServer) {
	t.Helper()
	return setupWith(t, newCA(t, "example.org"), cfg)
}

func setupWith(t *testing.T, ca *certs.CA, cfg *mtls.ServerConfig) (*bundle, *testServer) {
	t.Helper()
	leaf := issue(t, ca, certs.Request{Kind: certs.Service, Name: "billing"})
	src := fileSource(t, files(t, t.TempDir(), leaf, ca))
	sc, err := mtls.ServerTLS(src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{ca: ca, server: src}, serve(t, sc, http.HandlerFunc(whoami))
}

func TestServerAcceptsValidClients(t *testing.T) {
	t.Parallel()
	b, srv := setup(t, nil)
	for _, req := range []certs.Request{
		{Kind: certs.Service, Name: "orders"},
		{Kind: certs.Tenant, Name: "acme"},
		{Kind: certs.Admin, Name: "alice"},
	} {
		leaf := issue(t, b.ca, req)
		c := clientFor(t, static(leaf.TLSCertificate(), b.ca), nil)
		r := mustGet(t, c, srv.URL)
		if r.status != http.StatusOK || !strings.HasPrefix(r.body, leaf.Identity.String()+" ") {
			t.Errorf("%s: %d %q", leaf.Identity, r.status, r.body)
		}
		if r.resp.TLS.Version != tls.VersionTLS13 {
			t.Errorf("TLS version %x", r.resp.TLS.Version)
		}
	}
}

func TestServerRefusesHostileClients(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "example.org")
	b := &bundle{ca: ca}
	otherCA := newCA(t, "example.org")
	evilCA := newCA(t, "evil.org")
	now := time.Now()
	clientEKU := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}

	for _, tc := range []struct {
		name string
		cert tls.Certificate
		// roots of the client, to verify the server
		log string // in the server's error log
	}{
		{"expired", issue(t, b.ca, certs.Request{Kind: certs.Service, Name: "orders", NotBefore: now.Add(-2 * time.Hour), TTL: time.Hour}).TLSCertificate(), "expired"},
		{"not yet valid", issue(t, b.ca, certs.Request{Kind: certs.Service, Name: "orders", NotBefore: now.Add(time.Hour), TTL: time.Hour}).TLSCertificate(), "not yet valid"},
		{"wrong CA", issue(t, otherCA, certs.Request{Kind: certs.Service, Name: "orders"}).TLSCertificate(), "unknown authority"},
		{"wrong trust domain, trusted CA", forge(t, b.ca, clientEKU, "spiffe://evil.org/service/orders"), "not in the trust domain"},
		{"wrong trust domain, own CA", issue(t, evilCA, certs.Request{Kind: certs.Service, Name: "orders"}).TLSCertificate(), "unknown authority"},
		{"no URI SAN", forge(t, b.ca, clientEKU), "no SPIFFE ID"},
		{"two URI SANs", forge(t, b.ca, clientEKU, "spiffe://example.org/service/a", "spiffe://example.org/service/b"), "no SPIFFE ID"},
		{"unknown kind", forge(t, b.ca, clientEKU, "spiffe://example.org/robot/r2"), "invalid Tenantry identity"},
		{"server-only usage", forge(t, b.ca, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, "spiffe://example.org/service/orders"), "incompatible key usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, srv := setupWith(t, ca, nil)
			c := clientFor(t, static(tc.cert, b.ca), nil)
			r, err := get(c, srv.URL)
			if err == nil {
				t.Fatalf("accepted: %d %q", r.status, r.body)
			}
			srv.Log.waitFor(t, tc.log)
		})
	}

	t.Run("no client certificate", func(t *testing.T) {
		t.Parallel()
		_, srv := setupWith(t, ca, nil)
		c := httpClient(t, &tls.Config{RootCAs: b.ca.Pool(), InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		if r, err := get(c, srv.URL); err == nil {
			t.Fatalf("accepted: %d %q", r.status, r.body)
		}
		srv.Log.waitFor(t, "didn't provide a certificate")
	})

	t.Run("TLS 1.2", func(t *testing.T) {
		t.Parallel()
		_, srv := setupWith(t, ca, nil)
		leaf := issue(t, b.ca, certs.Request{Kind: certs.Service, Name: "orders"})
		c := httpClient(t, &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}, InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
		if _, err := get(c, srv.URL); err == nil {
			t.Fatal("TLS 1.2 accepted")
		}
		srv.Log.waitFor(t, "unsupported versions")
	})
}

func TestServerAuthorize(t *testing.T) {
	t.Parallel()
	b, srv := setup(t, &mtls.ServerConfig{Authorize: mtls.AuthorizeKind(certs.Admin)})

	admin := issue(t, b.ca, certs.Request{Kind: certs.Admin, Name: "alice"})
	if r := mustGet(t, clientFor(t, static(admin.TLSCertificate(), b.ca), nil), srv.URL); r.status != http.StatusOK {
		t.Fatalf("admin: %d %q", r.status, r.body)
	}
	tenantCert := issue(t, b.ca, certs.Request{Kind: certs.Tenant, Name: "acme"})
	if _, err := get(clientFor(t, static(tenantCert.TLSCertificate(), b.ca), nil), srv.URL); err == nil {
		t.Fatal("tenant certificate accepted on an admin-only listener")
	}
	srv.Log.waitFor(t, "kind tenant not allowed")
}

func TestServerOptionalClientCert(t *testing.T) {
	t.Parallel()
	b, srv := setup(t, &mtls.ServerConfig{ClientAuth: mtls.OptionalClientCert})

	anon := httpClient(t, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	r := mustGet(t, anon, srv.URL)
	if r.status != http.StatusUnauthorized || !strings.Contains(r.body, mtls.ErrNoPeerCertificate.Error()) {
		t.Fatalf("anonymous: %d %q", r.status, r.body)
	}
	// A certificate that is presented is still verified.
	bad := issue(t, newCA(t, "example.org"), certs.Request{Kind: certs.Service, Name: "orders"})
	if _, err := get(clientFor(t, static(bad.TLSCertificate(), b.ca), nil), srv.URL); err == nil {
		t.Fatal("certificate of another CA accepted")
	}
}

// TestResumedSessions proves the identity checks run on resumed sessions:
// Go skips VerifyPeerCertificate on resumption, but runs VerifyConnection
// and restores the verified chains PeerIdentity reads.
func TestResumedSessions(t *testing.T) {
	t.Parallel()
	var deny atomic.Bool
	b, srv := setup(t, &mtls.ServerConfig{Authorize: func(id certs.Identity) error {
		if deny.Load() {
			return errors.New("revoked")
		}
		return nil
	}})
	leaf := issue(t, b.ca, certs.Request{Kind: certs.Tenant, Name: "acme"})
	tc, err := mtls.ClientTLS(static(leaf.TLSCertificate(), b.ca), &mtls.ClientConfig{SessionCache: tls.NewLRUClientSessionCache(4)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true} // a new connection per request
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	first := mustGet(t, c, srv.URL)
	if first.status != http.StatusOK || first.resp.TLS.DidResume {
		t.Fatalf("first: %d %q resumed=%v", first.status, first.body, first.resp.TLS.DidResume)
	}
	second := mustGet(t, c, srv.URL)
	want := "spiffe://example.org/tenant/acme resumed=true"
	if !second.resp.TLS.DidResume || second.body != want {
		t.Fatalf("second: resumed=%v body %q, want %q", second.resp.TLS.DidResume, second.body, want)
	}
	deny.Store(true)
	if r, err := get(c, srv.URL); err == nil {
		t.Fatalf("resumed session not re-authorized: %d %q", r.status, r.body)
	}
	srv.Log.waitFor(t, "revoked")
}

func TestConnIdentityChecksValidityPerRequest(t *testing.T) {
	t.Parallel()
	b, _ := setup(t, nil)
	leaf := issue(t, b.ca, certs.Request{Kind: certs.Tenant, Name: "acme"})
	var cs *tls.ConnectionState
	sc, _ := mtls.ServerTLS(b.server, nil)
	srv := serve(t, sc, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs = r.TLS
	}))
	mustGet(t, clientFor(t, static(leaf.TLSCertificate(), b.ca), nil), srv.URL)

	if id, err := mtls.ConnIdentity(cs, td, time.Now()); err != nil || id != leaf.Identity {
		t.Fatalf("now: %v %v", id, err)
	}
	// The same connection, later than the certificate's expiry.
	if _, err := mtls.ConnIdentity(cs, td, leaf.Cert.NotAfter.Add(time.Second)); !errors.Is(err, mtls.ErrPeerExpired) {
		t.Fatalf("after expiry: err = %v", err)
	}
	if _, err := mtls.ConnIdentity(cs, td, leaf.Cert.NotBefore.Add(-time.Second)); !errors.Is(err, mtls.ErrPeerExpired) {
		t.Fatalf("before validity: err = %v", err)
	}
	// Chains not verified by crypto/tls do not count.
	unverified := *cs
	unverified.VerifiedChains = nil
	if _, err := mtls.ConnIdentity(&unverified, td, time.Now()); !errors.Is(err, mtls.ErrNoPeerCertificate) {
		t.Fatalf("unverified: err = %v", err)
	}
	if _, err := mtls.PeerIdentity(httptest.NewRequest("GET", "/", nil), td); !errors.Is(err, mtls.ErrNoPeerCertificate) {
		t.Fatalf("plain HTTP: err = %v", err)
	}
}

func TestClientVerifiesServer(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "example.org")
	otherCA := newCA(t, "example.org")
	client := issue(t, ca, certs.Request{Kind: certs.Service, Name: "orders"})
	billing, _ := certs.NewIdentity(td, certs.Service, "billing")

	start := func(t *testing.T, cert tls.Certificate, trusted ...*certs.CA) string {
		sc, err := mtls.ServerTLS(static(cert, trusted...), nil)
		if err != nil {
			t.Fatal(err)
		}
		return serve(t, sc, http.HandlerFunc(whoami)).URL
	}

	for _, tc := range []struct {
		name   string
		server tls.Certificate
		cfg    *mtls.ClientConfig
		ok     bool
	}{
		{"expected server", issue(t, ca, certs.Request{Kind: certs.Service, Name: "billing"}).TLSCertificate(), &mtls.ClientConfig{Authorize: mtls.AuthorizeID(billing)}, true},
		{"any service", issue(t, ca, certs.Request{Kind: certs.Service, Name: "billing"}).TLSCertificate(), nil, true},
		{"other service", issue(t, ca, certs.Request{Kind: certs.Service, Name: "ledger"}).TLSCertificate(), &mtls.ClientConfig{Authorize: mtls.AuthorizeID(billing)}, false},
		{"other CA", issue(t, otherCA, certs.Request{Kind: certs.Service, Name: "billing"}).TLSCertificate(), nil, false},
		{"wrong trust domain", forge(t, ca, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, "spiffe://evil.org/service/billing"), nil, false},
		{"tenant cert as server", issue(t, ca, certs.Request{Kind: certs.Tenant, Name: "acme"}).TLSCertificate(), nil, false},
		{"expired server", issue(t, ca, certs.Request{Kind: certs.Service, Name: "billing", NotBefore: time.Now().Add(-3 * time.Hour), TTL: time.Hour}).TLSCertificate(), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := start(t, tc.server, ca)
			_, err := get(clientFor(t, static(client.TLSCertificate(), ca), tc.cfg), url)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
