package certs_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/tenantry/tenantry/certs"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

func newCA(t *testing.T) *certs.CA {
	t.Helper()
	ca, err := certs.NewCA("example.org", 0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestInitCA(t *testing.T) {
	t.Parallel()

	t.Run("WritesLoadsAndRefusesOverwrite", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "pki")
		ca, err := certs.InitCA(dir, "example.org")
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(filepath.Join(dir, certs.CAKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("key mode = %v, want 0600", st.Mode().Perm())
		}
		if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
			t.Errorf("dir mode = %v, want 0700", st.Mode().Perm())
		}
		if _, err := certs.InitCA(dir, "example.org"); !errors.Is(err, certs.ErrExists) {
			t.Fatalf("second InitCA: err = %v, want ErrExists", err)
		}
		loaded, err := certs.LoadCA(dir)
		if err != nil {
			t.Fatal(err)
		}
		if loaded.TrustDomain != ca.TrustDomain || !loaded.Cert.Equal(ca.Cert) || !loaded.Key.Equal(ca.Key) {
			t.Fatal("loaded CA differs from the one written")
		}
		if _, ok := loaded.Key.Public().(*ecdsa.PublicKey); !ok || loaded.Key.Curve != elliptic.P256() {
			t.Fatal("CA key is not P-256")
		}
		if !ca.Cert.IsCA || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
			t.Fatal("CA certificate cannot sign certificates")
		}
	})

	t.Run("LoadRejectsMismatchedKey", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if _, err := certs.InitCA(dir, "example.org"); err != nil {
			t.Fatal(err)
		}
		other := t.TempDir()
		if _, err := certs.InitCA(other, "example.org"); err != nil {
			t.Fatal(err)
		}
		key, _ := os.ReadFile(filepath.Join(other, certs.CAKeyFile))
		if err := os.WriteFile(filepath.Join(dir, certs.CAKeyFile), key, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := certs.LoadCA(dir); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("err = %v, want key mismatch", err)
		}
	})

	t.Run("BadTrustDomains", func(t *testing.T) {
		t.Parallel()
		for _, bad := range []string{"", "Example.org", "spiffe://example.org", "spiffe://example.org/service/x", "exa mple.org", "example.org/x"} {
			if _, err := certs.NewCA(bad, 0); err == nil {
				t.Errorf("NewCA(%q) succeeded", bad)
			}
		}
	})
}

func TestIssue(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	bundle := x509bundle.FromX509Authorities(td, []*x509.Certificate{ca.Cert})

	for _, tc := range []struct {
		kind      certs.Kind
		name      string
		serverEKU bool
	}{
		{certs.Service, "billing", true},
		{certs.Tenant, "acme", false},
		{certs.Admin, "alice", false},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			t.Parallel()
			req := certs.Request{Kind: tc.kind, Name: tc.name}
			if tc.kind == certs.Service {
				req.DNSNames = []string{"billing.internal"}
				req.IPs = []net.IP{net.IPv4(127, 0, 0, 1)}
			}
			leaf, err := certs.Issue(ca, req)
			if err != nil {
				t.Fatal(err)
			}
			want := "spiffe://example.org/" + string(tc.kind) + "/" + tc.name
			if got := leaf.Identity.String(); got != want {
				t.Errorf("identity = %s, want %s", got, want)
			}
			if len(leaf.Cert.URIs) != 1 || leaf.Cert.URIs[0].String() != want {
				t.Errorf("URI SANs = %v", leaf.Cert.URIs)
			}
			if leaf.Cert.IsCA || leaf.Cert.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("IsCA=%v KeyUsage=%v", leaf.Cert.IsCA, leaf.Cert.KeyUsage)
			}
			if life := leaf.Cert.NotAfter.Sub(leaf.Cert.NotBefore); life != certs.DefaultTTL {
				t.Errorf("validity = %s, want %s", life, certs.DefaultTTL)
			}
			// SPIFFE conformance as go-spiffe checks it.
			id, _, err := x509svid.Verify([]*x509.Certificate{leaf.Cert}, bundle)
			if err != nil || id != leaf.Identity.SPIFFEID {
				t.Fatalf("x509svid.Verify: id=%s err=%v", id, err)
			}
			if _, err := x509svid.Parse(leaf.CertPEM, leaf.KeyPEM); err != nil {
				t.Fatalf("x509svid.Parse: %v", err)
			}
			verify := func(eku x509.ExtKeyUsage) error {
				_, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{eku}})
				return err
			}
			if err := verify(x509.ExtKeyUsageClientAuth); err != nil {
				t.Errorf("client auth: %v", err)
			}
			if err := verify(x509.ExtKeyUsageServerAuth); (err == nil) != tc.serverEKU {
				t.Errorf("server auth: err=%v, want usable=%v", err, tc.serverEKU)
			}
			got, err := certs.IdentityOf(leaf.Cert, td)
			if err != nil || got != leaf.Identity {
				t.Errorf("IdentityOf = %+v, %v", got, err)
			}
		})
	}

	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		for name, req := range map[string]certs.Request{
			"unknown kind":         {Kind: "robot", Name: "x"},
			"empty name":           {Kind: certs.Service},
			"slash":                {Kind: certs.Service, Name: "a/b"},
			"dotdot":               {Kind: certs.Service, Name: ".."},
			"leading hyphen":       {Kind: certs.Service, Name: "-x"},
			"upper case":           {Kind: certs.Admin, Name: "Alice"},
			"email":                {Kind: certs.Admin, Name: "alice@example.org"},
			"too long":             {Kind: certs.Service, Name: strings.Repeat("a", certs.MaxNameLen+1)},
			"tenant upper":         {Kind: certs.Tenant, Name: "Acme"},
			"tenant reserved":      {Kind: certs.Tenant, Name: "admin"},
			"tenant dot":           {Kind: certs.Tenant, Name: "ac.me"},
			"tenant with DNS name": {Kind: certs.Tenant, Name: "acme", DNSNames: []string{"acme.example.org"}},
			"admin with IP":        {Kind: certs.Admin, Name: "alice", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}},
			"negative TTL":         {Kind: certs.Service, Name: "x", TTL: -time.Hour},
			"outlives CA":          {Kind: certs.Service, Name: "x", TTL: 2 * certs.DefaultCAValidity},
		} {
			if leaf, err := certs.Issue(ca, req); err == nil {
				t.Errorf("%s: issued %s", name, leaf.Identity)
			}
		}
	})

	t.Run("NotBeforeAndTTL", func(t *testing.T) {
		t.Parallel()
		nb := time.Now().Add(time.Hour).Truncate(time.Second)
		leaf, err := certs.Issue(ca, certs.Request{Kind: certs.Service, Name: "later", NotBefore: nb, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if !leaf.Cert.NotBefore.Equal(nb) || !leaf.Cert.NotAfter.Equal(nb.Add(time.Hour)) {
			t.Fatalf("validity %s..%s", leaf.Cert.NotBefore, leaf.Cert.NotAfter)
		}
		if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
			t.Fatal("a not-yet-valid certificate verified")
		}
	})

	t.Run("SerialsDiffer", func(t *testing.T) {
		t.Parallel()
		a, _ := certs.Issue(ca, certs.Request{Kind: certs.Service, Name: "x"})
		b, _ := certs.Issue(ca, certs.Request{Kind: certs.Service, Name: "x"})
		if a.Cert.SerialNumber.Cmp(b.Cert.SerialNumber) == 0 {
			t.Fatal("two certificates share a serial")
		}
	})
}

func TestWriteFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := certs.InitCA(dir, "example.org"); err != nil {
		t.Fatal(err)
	}
	leaf, err := certs.IssueFiles(dir, filepath.Join(dir, "out"), certs.Request{Kind: certs.Service, Name: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := certs.LeafFiles(filepath.Join(dir, "out"), certs.Service, "orders")
	if filepath.Base(certPath) != "service-orders.pem" || filepath.Base(keyPath) != "service-orders-key.pem" {
		t.Fatalf("paths %s %s", certPath, keyPath)
	}
	if st, err := os.Stat(keyPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !pair.Leaf.Equal(leaf.Cert) {
		t.Fatal("file holds another certificate")
	}
	// Rewriting replaces both files atomically; no temporary file is left.
	leaf2, err := certs.IssueFiles(dir, filepath.Join(dir, "out"), certs.Request{Kind: certs.Service, Name: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	pair, _ = tls.LoadX509KeyPair(certPath, keyPath)
	if !pair.Leaf.Equal(leaf2.Cert) {
		t.Fatal("rewrite did not replace the certificate")
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "out"))
	if len(entries) != 2 {
		t.Fatalf("out dir holds %d entries, want 2", len(entries))
	}
}

func TestIdentityOfHostile(t *testing.T) {
	t.Parallel()
	mk := func(uris ...string) *x509.Certificate {
		c := &x509.Certificate{}
		for _, u := range uris {
			p, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			c.URIs = append(c.URIs, p)
		}
		return c
	}
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		want error
	}{
		{"nil", nil, certs.ErrNoIdentity},
		{"no URI", mk(), certs.ErrNoIdentity},
		{"two URIs", mk("spiffe://example.org/service/a", "spiffe://example.org/service/b"), certs.ErrNoIdentity},
		{"https", mk("https://example.org/service/a"), certs.ErrNoIdentity},
		{"upper-case trust domain", mk("spiffe://EXAMPLE.org/service/a"), certs.ErrNoIdentity},
		{"query", mk("spiffe://example.org/service/a?x=1"), certs.ErrNoIdentity},
		{"foreign trust domain", mk("spiffe://evil.org/service/a"), certs.ErrForeignTrustDomain},
		{"sub trust domain", mk("spiffe://sub.example.org/service/a"), certs.ErrForeignTrustDomain},
		{"trust domain only", mk("spiffe://example.org"), certs.ErrInvalidIdentity},
		{"kind only", mk("spiffe://example.org/service"), certs.ErrInvalidIdentity},
		{"extra segment", mk("spiffe://example.org/service/a/b"), certs.ErrInvalidIdentity},
		{"tenant svc", mk("spiffe://example.org/tenant/acme/svc/x"), certs.ErrInvalidIdentity},
		{"unknown kind", mk("spiffe://example.org/robot/a"), certs.ErrInvalidIdentity},
		{"upper-case kind", mk("spiffe://example.org/Service/a"), certs.ErrInvalidIdentity},
		{"bad slug", mk("spiffe://example.org/tenant/Acme"), certs.ErrInvalidIdentity},
		{"reserved slug", mk("spiffe://example.org/tenant/admin"), certs.ErrInvalidIdentity},
		{"istio form", mk("spiffe://cluster.local/ns/default/sa/web"), certs.ErrForeignTrustDomain},
	} {
		if _, err := certs.IdentityOf(tc.cert, td); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestLoadCAHostile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := certs.LoadCA(dir); err == nil {
		t.Fatal("loaded a CA from an empty directory")
	}
	// A leaf in place of the CA certificate.
	ca := newCA(t)
	leaf, _ := certs.Issue(ca, certs.Request{Kind: certs.Service, Name: "x"})
	os.WriteFile(filepath.Join(dir, certs.CAFile), leaf.CertPEM, 0o644)
	os.WriteFile(filepath.Join(dir, certs.CAKeyFile), leaf.KeyPEM, 0o600)
	if _, err := certs.LoadCA(dir); err == nil {
		t.Fatal("loaded a leaf as CA")
	}
}
