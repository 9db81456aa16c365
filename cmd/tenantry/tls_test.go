package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tenantry/tenantry/admin"
	"github.com/tenantry/tenantry/certs"
	"github.com/tenantry/tenantry/tenantrytest"
)

// testPKI is a development CA in a temporary directory with a service
// certificate for 127.0.0.1 and localhost.
type testPKI struct {
	dir    string
	ca     *certs.CA
	caFile string
	server string // service-public.pem; key beside it
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.InitCA(dir, defaultTrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{dir: dir, ca: ca, caFile: filepath.Join(dir, certs.CAFile)}
	p.server = p.issue(t, certs.Service, "public").certFile
	return p
}

type issued struct {
	leaf              *certs.Leaf
	certFile, keyFile string
}

func (p *testPKI) issue(t *testing.T, kind certs.Kind, name string) issued {
	t.Helper()
	req := certs.Request{Kind: kind, Name: name}
	if kind == certs.Service {
		req.DNSNames, req.IPs = []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}
	}
	leaf, err := certs.Issue(p.ca, req)
	if err != nil {
		t.Fatal(err)
	}
	c, k, err := leaf.WriteFiles(p.dir)
	if err != nil {
		t.Fatal(err)
	}
	return issued{leaf, c, k}
}

func (p *testPKI) serverKey() string { return strings.TrimSuffix(p.server, ".pem") + "-key.pem" }

// client returns an HTTPS client trusting the CA, presenting cert if any.
func (p *testPKI) client(t *testing.T, cert *issued) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.Cert)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.leaf.TLSCertificate()}
	}
	// A new transport per client: no connection (and no session) shared
	// between identities.
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

func tlsGet(t *testing.T, c *http.Client, method, url, host string, headers map[string]string, body []byte) (int, []byte, error) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// TestServeMutualTLS serves both listeners over mutual TLS with client
// certificates optional: a tenant certificate resolves its tenant and
// binds its requests to it, the admin listener takes an admin certificate
// instead of the token and refuses a tenant's, and SIGHUP puts a new
// server certificate in service.
func TestServeMutualTLS(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	s := serveInProcess(t, nil, "--database-url", tenantrytest.NewDatabase(t),
		"--tls-cert", p.server, "--tls-key", p.serverKey(), "--tls-client-ca", p.caFile)
	if !strings.Contains(s.out.String(), "public: https://localhost:") || !strings.Contains(s.out.String(), "client certificates optional (trust domain tenantry.local)") {
		t.Fatalf("banner:\n%s", s.out.String())
	}
	adminURL, publicURL := "https://"+s.admin, "https://"+s.public

	// The admin API: the token over TLS, or an admin certificate alone.
	tokenClient, err := admin.NewClient(adminURL, cliToken, p.client(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	alice := p.issue(t, certs.Admin, "alice")
	certClient, err := admin.NewClient(adminURL, "", p.client(t, &alice))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := tokenClient.CreateCluster(ctx, admin.CreateClusterRequest{Name: "main", ConnString: tenantrytest.Shared(t).AdminURL()}); err != nil {
		t.Fatal(err)
	}
	sfx := randomSuffix(t)
	acme, globex := "tls-acme-"+sfx, "tls-globex-"+sfx
	for _, slug := range []string{acme, globex} {
		if _, err := certClient.CreateTenant(ctx, admin.CreateTenantRequest{Slug: slug}); err != nil {
			t.Fatalf("create %s with an admin certificate: %v", slug, err)
		}
		t.Cleanup(func() { _ = certClient.DeleteTenant(ctx, slug) })
	}
	entries, err := tokenClient.Audit(ctx, admin.AuditOptions{Tenant: acme})
	if err != nil || len(entries) == 0 || entries[len(entries)-1].Actor != "spiffe://tenantry.local/admin/alice" {
		t.Fatalf("audit of %s: %v %+v", acme, err, entries)
	}
	// A tenant certificate does not even complete a handshake with the
	// admin listener; the same CLI flags work for the CLI.
	acmeCert := p.issue(t, certs.Tenant, acme)
	if _, _, err := tlsGet(t, p.client(t, &acmeCert), http.MethodGet, adminURL+"/admin/v1/tenants", "", nil, nil); err == nil {
		t.Fatal("the admin listener accepted a tenant certificate")
	}
	b := &cliBundle{adminURL: adminURL, env: map[string]string{}}
	if out := b.mustCLI(t, "--admin-ca", p.caFile, "--admin-cert", alice.certFile, "--admin-key", alice.keyFile, "tenant", "list"); !strings.Contains(out, acme) {
		t.Fatalf("tenant list over mutual TLS:\n%s", out)
	}

	// The public listener: acme's certificate names acme.
	acmeClient := p.client(t, &acmeCert)
	waitFor(t, "acme by its certificate", func() bool {
		status, body, err := tlsGet(t, acmeClient, http.MethodGet, publicURL+"/api/v1/tenant", "localhost", nil, nil)
		return err == nil && status == http.StatusOK && bytes.Contains(body, []byte(`"resolved_by":"client-cert"`)) && bytes.Contains(body, []byte(acme))
	})
	waitFor(t, "globex to be served", func() bool {
		status, _, err := tlsGet(t, p.client(t, nil), http.MethodGet, publicURL+"/api/v1/notes", globex+".localhost", nil, nil)
		return err == nil && status == http.StatusOK
	})
	status, body, err := tlsGet(t, acmeClient, http.MethodPost, publicURL+"/api/v1/notes", acme+".localhost", map[string]string{"Content-Type": "application/json"}, []byte(`{"title":"over mTLS"}`))
	if err != nil || status != http.StatusCreated {
		t.Fatalf("acme's note over mTLS: %d %s %v", status, body, err)
	}
	// acme's certificate with globex's host: the sources disagree.
	status, body, err = tlsGet(t, acmeClient, http.MethodGet, publicURL+"/api/v1/notes", globex+".localhost", nil, nil)
	var problem struct{ Code string }
	if err != nil || status != http.StatusForbidden || json.Unmarshal(body, &problem) != nil || problem.Code != "tenant_conflict" {
		t.Fatalf("acme's certificate on globex's host: %d %s %v", status, body, err)
	}
	// Without a certificate (optional), globex by its host sees no acme note.
	status, body, err = tlsGet(t, p.client(t, nil), http.MethodGet, publicURL+"/api/v1/notes", globex+".localhost", nil, nil)
	if err != nil || status != http.StatusOK || bytes.Contains(body, []byte("over mTLS")) {
		t.Fatalf("globex without a certificate: %d %s %v", status, body, err)
	}

	// SIGHUP: a reissued server certificate serves new connections.
	old := serverSerial(t, s.public, p)
	reissued := p.issue(t, certs.Service, "public")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reloaded certificate", func() bool {
		return serverSerial(t, s.public, p) == reissued.leaf.Cert.SerialNumber.String()
	})
	if old == reissued.leaf.Cert.SerialNumber.String() {
		t.Fatal("the reissued certificate has the old serial")
	}
}

// serverSerial returns the serial of the certificate the listener at addr
// presents to a new connection.
func serverSerial(t *testing.T, addr string, p *testPKI) string {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.Cert)
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestServeTLSModes: with client certificates required, a client without
// one is refused at the handshake; with --tls-cert alone, any client gets
// TLS and no client certificate is asked for. Bad combinations of flags
// stop the start with a message naming the flag.
func TestServeTLSModes(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	t.Run("require", func(t *testing.T) {
		t.Parallel()
		s := serveInProcess(t, nil, "--database-url", tenantrytest.NewDatabase(t),
			"--tls-cert", p.server, "--tls-key", p.serverKey(), "--tls-client-ca", p.caFile, "--client-certs", "require")
		if _, _, err := tlsGet(t, p.client(t, nil), http.MethodGet, "https://"+s.public+"/healthz", "", nil, nil); err == nil {
			t.Fatal("a client without a certificate got through")
		}
		svc := p.issue(t, certs.Service, "billing")
		if status, _, err := tlsGet(t, p.client(t, &svc), http.MethodGet, "https://"+s.public+"/healthz", "", nil, nil); err != nil || status != http.StatusOK {
			t.Fatalf("a service certificate: %d %v", status, err)
		}
	})
	t.Run("server only", func(t *testing.T) {
		t.Parallel()
		s := serveInProcess(t, nil, "--database-url", tenantrytest.NewDatabase(t), "--tls-cert", p.server, "--tls-key", p.serverKey())
		if status, _, err := tlsGet(t, p.client(t, nil), http.MethodGet, "https://"+s.public+"/healthz", "", nil, nil); err != nil || status != http.StatusOK {
			t.Fatalf("healthz over TLS: %d %v", status, err)
		}
		c, err := admin.NewClient("https://"+s.admin, cliToken, p.client(t, nil))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Clusters(t.Context()); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(s.out.String(), "client certificates optional") {
			t.Fatalf("banner:\n%s", s.out.String())
		}
	})
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"key without cert":      {[]string{"--tls-key", "k.pem"}, "--tls-cert and --tls-key"},
		"client CA without TLS": {[]string{"--tls-client-ca", "ca.pem"}, "--tls-client-ca needs --tls-cert"},
		"require without CA":    {[]string{"--tls-cert", "c.pem", "--tls-key", "k.pem", "--client-certs", "require"}, "needs --tls-client-ca"},
		"unknown mode":          {[]string{"--client-certs", "sometimes"}, "--client-certs must be"},
		"bad trust domain":      {[]string{"--trust-domain", "Not A Domain"}, "--trust-domain"},
		"missing files":         {[]string{"--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent-key.pem"}, "/nonexistent.pem"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var errOut bytes.Buffer
			args := append([]string{"serve", "--database-url", "postgres://nobody@127.0.0.1:1/none", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, tc.args...)
			code := run(t.Context(), args, stdio{in: strings.NewReader(""), out: io.Discard, err: &errOut}, func(k string) string { return map[string]string{envAdminToken: cliToken}[k] })
			if code == 0 || !strings.Contains(errOut.String(), tc.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant it to mention %q", code, errOut.String(), tc.want)
			}
		})
	}
}
