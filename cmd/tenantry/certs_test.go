package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantry/tenantry/certs"
	"github.com/tenantry/tenantry/mtls"
)

// runCerts runs `tenantry certs args...` as the root command would, with
// --data-dir dataDir, and returns its error and output.
func runCerts(t *testing.T, dataDir string, args ...string) (string, error) {
	t.Helper()
	root := &cobra.Command{Use: "tenantry", SilenceUsage: true, SilenceErrors: true}
	root.PersistentFlags().String("data-dir", dataDir, "")
	root.AddCommand(newCertsCmd())
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"certs"}, args...))
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

func mustRunCerts(t *testing.T, dataDir string, args ...string) string {
	t.Helper()
	out, err := runCerts(t, dataDir, args...)
	if err != nil {
		t.Fatalf("tenantry certs %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(path, strings.TrimSuffix(path, ".pem")+"-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCertsInitAndIssue(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki := filepath.Join(dir, "pki")

	out := mustRunCerts(t, dir, "init", "--trust-domain", "example.org")
	for _, want := range []string{"WROTE", filepath.Join(pki, "ca.pem"), filepath.Join(pki, "ca-key.pem"), "spiffe://example.org"} {
		if !strings.Contains(out, want) {
			t.Errorf("init output lacks %q:\n%s", want, out)
		}
	}
	ca, err := certs.LoadCA(pki)
	if err != nil {
		t.Fatal(err)
	}
	if ca.TrustDomain.Name() != "example.org" {
		t.Fatalf("trust domain %s", ca.TrustDomain)
	}

	tests := []struct {
		args     []string
		file     string
		id       string
		usage    x509.ExtKeyUsage
		validFor time.Duration
		dns      []string
		ips      int
	}{
		{[]string{"--service", "billing", "--dns", "billing.internal", "--dns", "localhost", "--ip", "127.0.0.1", "--ip", "::1"},
			"service-billing.pem", "spiffe://example.org/service/billing", x509.ExtKeyUsageServerAuth, certs.DefaultTTL, []string{"billing.internal", "localhost"}, 2},
		{[]string{"--tenant", "acme", "--ttl", "1h"}, "tenant-acme.pem", "spiffe://example.org/tenant/acme", x509.ExtKeyUsageClientAuth, time.Hour, nil, 0},
		{[]string{"--admin", "alice", "--ttl", "8h"}, "admin-alice.pem", "spiffe://example.org/admin/alice", x509.ExtKeyUsageClientAuth, 8 * time.Hour, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			out := mustRunCerts(t, dir, append([]string{"issue"}, tt.args...)...)
			certPath := filepath.Join(pki, tt.file)
			keyPath := strings.TrimSuffix(certPath, ".pem") + "-key.pem"
			for _, want := range []string{certPath, keyPath, tt.id} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			st, err := os.Stat(keyPath)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("key mode %v, want 0600", st.Mode().Perm())
			}
			c := readCert(t, certPath)
			if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{tt.usage}}); err != nil {
				t.Errorf("does not verify against the CA: %v", err)
			}
			if len(c.URIs) != 1 || c.URIs[0].String() != tt.id {
				t.Errorf("URI SANs %v, want [%s]", c.URIs, tt.id)
			}
			if got := c.NotAfter.Sub(c.NotBefore); got != tt.validFor {
				t.Errorf("valid for %s, want %s", got, tt.validFor)
			}
			if strings.Join(c.DNSNames, ",") != strings.Join(tt.dns, ",") || len(c.IPAddresses) != tt.ips {
				t.Errorf("DNS %v IPs %v, want %v and %d IPs", c.DNSNames, c.IPAddresses, tt.dns, tt.ips)
			}
		})
	}
}

// TestCertsMutualTLS serves and calls over mutual TLS with files written by
// the command: the server sees the tenant identity of the client.
func TestCertsMutualTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki := filepath.Join(dir, "pki")
	mustRunCerts(t, dir, "init", "--trust-domain", "example.org")
	mustRunCerts(t, dir, "issue", "--service", "public", "--ip", "127.0.0.1")
	clientDir := filepath.Join(dir, "client")
	mustRunCerts(t, dir, "issue", "--tenant", "acme", "--out", clientDir)

	src := func(certPath, keyPath string) *mtls.FileSource {
		s, err := mtls.NewFileSource(&mtls.FileConfig{CertFile: certPath, KeyFile: keyPath,
			CAFile: filepath.Join(pki, certs.CAFile), TrustDomain: "example.org"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	serverSrc := src(certs.LeafFiles(pki, certs.Service, "public"))
	serverTLS, err := mtls.ServerTLS(serverSrc, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, err := mtls.PeerIdentity(r, serverSrc.TrustDomain())
			if err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			io.WriteString(w, id.String())
		}),
	}
	go srv.Serve(tls.NewListener(ln, serverTLS))
	t.Cleanup(func() { srv.Close() })

	clientTLS, err := mtls.ClientTLS(src(certs.LeafFiles(clientDir, certs.Tenant, "acme")), nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}, Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+ln.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "spiffe://example.org/tenant/acme" {
		t.Fatalf("%d %q, want 200 with the tenant identity", resp.StatusCode, body)
	}
}

func TestCertsDefaultDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustRunCerts(t, dir, "init")
	ca, err := certs.LoadCA(filepath.Join(dir, pkiDirName))
	if err != nil {
		t.Fatal(err)
	}
	if ca.TrustDomain.Name() != defaultTrustDomain {
		t.Errorf("trust domain %s, want %s", ca.TrustDomain, defaultTrustDomain)
	}
	// --dir overrides the data directory.
	other := filepath.Join(dir, "elsewhere")
	mustRunCerts(t, dir, "init", "--dir", other)
	mustRunCerts(t, dir, "issue", "--dir", other, "--admin", "root")
	if _, err := os.Stat(filepath.Join(other, "admin-root.pem")); err != nil {
		t.Error(err)
	}
}

func TestCertsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustRunCerts(t, dir, "init", "--trust-domain", "example.org")
	empty := t.TempDir()
	// After the subtests: nothing was written by the refused issues.
	t.Cleanup(func() {
		entries, err := os.ReadDir(filepath.Join(dir, pkiDirName))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != certs.CAFile && e.Name() != certs.CAKeyFile {
				t.Errorf("refused command left %s", e.Name())
			}
		}
	})

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"second init", []string{"init"}, "already exists; issue certificates"},
		{"trust domain as SPIFFE ID", []string{"init", "--dir", filepath.Join(empty, "a"), "--trust-domain", "spiffe://example.org/x"}, "trust domain"},
		{"upper-case trust domain", []string{"init", "--dir", filepath.Join(empty, "b"), "--trust-domain", "Example.ORG"}, "trust domain"},
		{"no kind", []string{"issue"}, "service"},
		{"two kinds", []string{"issue", "--service", "a", "--tenant", "b"}, "none of the others"},
		{"invalid slug", []string{"issue", "--tenant", "ACME"}, "tenant"},
		{"traversal slug", []string{"issue", "--tenant", "../acme"}, "tenant"},
		{"traversal service", []string{"issue", "--service", "../../etc"}, "service"},
		{"space in admin", []string{"issue", "--admin", "alice bob"}, "admin"},
		{"empty name", []string{"issue", "--admin", ""}, "admin"},
		{"dns on tenant", []string{"issue", "--tenant", "acme", "--dns", "acme.example.org"}, "--service certificates only"},
		{"ip on admin", []string{"issue", "--admin", "alice", "--ip", "127.0.0.1"}, "--service certificates only"},
		{"bad ip", []string{"issue", "--service", "a", "--ip", "999.0.0.1"}, "not an IP address"},
		{"negative ttl", []string{"issue", "--service", "a", "--ttl", "-1h"}, "must be positive"},
		{"ttl beyond the CA", []string{"issue", "--service", "a", "--ttl", "100000h"}, "outlive the CA"},
		{"no CA", []string{"issue", "--dir", empty, "--service", "a"}, "tenantry certs init"},
		{"argument", []string{"issue", "acme"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := runCerts(t, dir, tt.args...)
			if err == nil {
				t.Fatalf("accepted; output:\n%s", out)
			}
			t.Logf("refused: %v", err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}
