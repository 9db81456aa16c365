package admin_test

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tenantry/tenantry/admin"
	"github.com/tenantry/tenantry/certs"
)

// TestMTLSAdminIdentity serves the admin API over TLS that verifies client
// certificates, and checks that an admin certificate is accepted and
// recorded as the actor, while tenant and service certificates and foreign
// trust domains are refused, and that a bearer token still works through
// AnyOf.
func TestMTLSAdminIdentity(t *testing.T) {
	t.Parallel()
	b := setup(t)

	ca, err := certs.NewCA("tenantry.test", 0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := certs.NewCA("evil.test", 0)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(ca *certs.CA, kind certs.Kind, name string, ips ...net.IP) tls.Certificate {
		leaf, err := certs.Issue(ca, certs.Request{Kind: kind, Name: name, IPs: ips})
		if err != nil {
			t.Fatal(err)
		}
		return leaf.TLSCertificate()
	}
	token, err := admin.BearerToken("test", testToken)
	if err != nil {
		t.Fatal(err)
	}
	api, err := admin.New(b.store, &admin.Config{
		Authenticator: admin.AnyOf(admin.ClientCertificate(ca.TrustDomain), token),
	})
	if err != nil {
		t.Fatal(err)
	}
	pool := ca.Pool()
	pool.AddCert(other.Cert)
	srv := httptest.NewUnstartedServer(api)
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{issue(ca, certs.Service, "tenantry", net.IPv4(127, 0, 0, 1))},
		ClientCAs:    pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS13,
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	clientFor := func(cert *tls.Certificate) *http.Client {
		cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	alice := issue(ca, certs.Admin, "alice")
	c, err := admin.NewClient(srv.URL, "", clientFor(&alice))
	if err != nil {
		t.Fatal(err)
	}
	c.Reason = "onboarding"
	if _, err := c.CreateTenant(t.Context(), admin.CreateTenantRequest{Slug: "acme"}); err != nil {
		t.Fatalf("admin certificate refused: %v", err)
	}
	entries, err := c.Audit(t.Context(), admin.AuditOptions{Tenant: "acme"})
	if err != nil || len(entries) != 1 {
		t.Fatalf("audit: %v %+v", err, entries)
	}
	if e := entries[0]; e.Actor != "spiffe://tenantry.test/admin/alice" || e.Reason != "onboarding" {
		t.Fatalf("audit entry = %+v, want the admin's SPIFFE ID and the reason", e)
	}

	for name, cert := range map[string]tls.Certificate{
		"tenant certificate":   issue(ca, certs.Tenant, "acme"),
		"service certificate":  issue(ca, certs.Service, "billing"),
		"foreign trust domain": issue(other, certs.Admin, "mallory"),
	} {
		c, err := admin.NewClient(srv.URL, "", clientFor(&cert))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Tenants(t.Context(), admin.ListOptions{})
		var e *admin.Error
		if !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
			t.Errorf("%s: err = %v, want 401", name, err)
		}
	}

	// No certificate: the bearer token is the fallback.
	c, err = admin.NewClient(srv.URL, testToken, clientFor(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Tenants(t.Context(), admin.ListOptions{}); err != nil {
		t.Fatalf("token over TLS without a certificate: %v", err)
	}
	// A wrong token is not rescued by trying other authenticators.
	c, err = admin.NewClient(srv.URL, "wrong-token-0123456789", clientFor(nil))
	if err != nil {
		t.Fatal(err)
	}
	var e *admin.Error
	if _, err := c.Tenants(t.Context(), admin.ListOptions{}); !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
		t.Fatalf("wrong token: %v, want 401", err)
	}
}
