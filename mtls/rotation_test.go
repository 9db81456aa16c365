package mtls_test

import (
	"context"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tenantry/tenantry/certs"
	"github.com/tenantry/tenantry/mtls"
)

// getTraced is get that also reports whether the connection was reused.
func getTraced(t *testing.T, c *http.Client, url string) (result, bool) {
	t.Helper()
	var reused bool
	req, _ := http.NewRequest("GET", url, nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	}))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return result{status: resp.StatusCode, serial: resp.TLS.PeerCertificates[0].SerialNumber, resp: resp}, reused
}

func TestRotationOnReload(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "example.org")
	dir := t.TempDir()
	src := fileSource(t, files(t, dir, issue(t, ca, certs.Request{Kind: certs.Service, Name: "billing"}), ca))
	sc, _ := mtls.ServerTLS(src, nil)
	srv := serve(t, sc, http.HandlerFunc(whoami))

	client := issue(t, ca, certs.Request{Kind: certs.Service, Name: "orders"})
	old := clientFor(t, static(client.TLSCertificate(), ca), nil)
	before, _ := getTraced(t, old, srv.URL)

	rotated := issue(t, ca, certs.Request{Kind: certs.Service, Name: "billing"})
	if _, _, err := rotated.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	// Not yet reloaded: new connections still get the old certificate.
	if r := mustGet(t, clientFor(t, static(client.TLSCertificate(), ca), nil), srv.URL); r.serial.Cmp(before.serial) != 0 {
		t.Fatal("certificate changed before Reload")
	}
	if err := src.Reload(); err != nil {
		t.Fatal(err)
	}
	fresh := mustGet(t, clientFor(t, static(client.TLSCertificate(), ca), nil), srv.URL)
	if fresh.serial.Cmp(rotated.Cert.SerialNumber) != 0 {
		t.Fatalf("new connection got serial %x, want %x", fresh.serial, rotated.Cert.SerialNumber)
	}
	// The established connection was not dropped and keeps its certificate.
	again, reused := getTraced(t, old, srv.URL)
	if !reused || again.status != http.StatusOK || again.serial.Cmp(before.serial) != 0 {
		t.Fatalf("existing connection: reused=%v status=%d serial=%x, want reused old serial %x", reused, again.status, again.serial, before.serial)
	}
}

func TestRotationByPolling(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "example.org")
	dir := t.TempDir()
	cfg := files(t, dir, issue(t, ca, certs.Request{Kind: certs.Service, Name: "billing"}), ca)
	cfg.PollInterval = 10 * time.Millisecond
	src := fileSource(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { src.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	sc, _ := mtls.ServerTLS(src, nil)
	srv := serve(t, sc, http.HandlerFunc(whoami))
	client := issue(t, ca, certs.Request{Kind: certs.Service, Name: "orders"})

	rotated := issue(t, ca, certs.Request{Kind: certs.Service, Name: "billing"})
	if _, _, err := rotated.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := mustGet(t, clientFor(t, static(client.TLSCertificate(), ca), nil), srv.URL)
		if r.serial.Cmp(rotated.Cert.SerialNumber) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the poller never served the rewritten certificate")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFailedReloadKeepsCertificate(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "example.org")
	dir := t.TempDir()
	leaf := issue(t, ca, certs.Request{Kind: certs.Service, Name: "billing"})
	cfg := files(t, dir, leaf, ca)
	src := fileSource(t, cfg)
	sc, _ := mtls.ServerTLS(src, nil)
	srv := serve(t, sc, http.HandlerFunc(whoami))
	client := clientFor(t, static(issue(t, ca, certs.Request{Kind: certs.Service, Name: "orders"}).TLSCertificate(), ca), nil)

	other := issue(t, ca, certs.Request{Kind: certs.Service, Name: "billing"})
	foreign := issue(t, newCA(t, "example.org"), certs.Request{Kind: certs.Service, Name: "billing"})
	for name, write := range map[string]func(){
		"garbage certificate": func() { os.WriteFile(cfg.CertFile, []byte("not PEM"), 0o644) },
		"key of another certificate": func() {
			os.WriteFile(cfg.CertFile, leaf.CertPEM, 0o644)
			os.WriteFile(cfg.KeyFile, other.KeyPEM, 0o600)
		},
		"certificate of another CA": func() {
			os.WriteFile(cfg.CertFile, foreign.CertPEM, 0o644)
			os.WriteFile(cfg.KeyFile, foreign.KeyPEM, 0o600)
		},
		"empty bundle": func() {
			os.WriteFile(cfg.CertFile, leaf.CertPEM, 0o644)
			os.WriteFile(cfg.KeyFile, leaf.KeyPEM, 0o600)
			os.WriteFile(cfg.CAFile, nil, 0o644)
		},
		"leaf as bundle": func() { os.WriteFile(cfg.CAFile, leaf.CertPEM, 0o644) },
		"missing key":    func() { os.Remove(cfg.KeyFile) },
	} {
		write()
		if err := src.Reload(); err == nil {
			t.Errorf("%s: Reload succeeded", name)
		}
		if r := mustGet(t, client, srv.URL); r.serial.Cmp(leaf.Cert.SerialNumber) != 0 {
			t.Errorf("%s: serving serial %x, want the previous %x", name, r.serial, leaf.Cert.SerialNumber)
		}
	}
	if _, err := mtls.NewFileSource(&mtls.FileConfig{CertFile: cfg.CertFile, KeyFile: filepath.Join(dir, "nope"), CAFile: cfg.CAFile, TrustDomain: "example.org"}); err == nil {
		t.Error("NewFileSource succeeded without a key")
	}
}

// TestCARotation rolls the trust bundle from CA1 to CA2 in two steps, as an
// operator would: first trust both, then only the new one. A client whose
// certificate chains to the retired CA is refused, also when it tries to
// resume a session made while that CA was trusted.
func TestCARotation(t *testing.T) {
	t.Parallel()
	ca1, ca2 := newCA(t, "example.org"), newCA(t, "example.org")
	dir := t.TempDir()
	cfg := files(t, dir, issue(t, ca1, certs.Request{Kind: certs.Service, Name: "billing"}), ca1)
	src := fileSource(t, cfg)
	sc, _ := mtls.ServerTLS(src, nil)
	srv := serve(t, sc, http.HandlerFunc(whoami))

	oldClient := issue(t, ca1, certs.Request{Kind: certs.Service, Name: "orders"})
	newClient := issue(t, ca2, certs.Request{Kind: certs.Service, Name: "orders"})
	// Clients trust both CAs throughout, so only the server's view matters.
	resuming, _ := mtls.ClientTLS(static(oldClient.TLSCertificate(), ca1, ca2), &mtls.ClientConfig{SessionCache: newSessionCache()})
	tr := &http.Transport{TLSClientConfig: resuming, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	oldC := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	newC := clientFor(t, static(newClient.TLSCertificate(), ca1, ca2), nil)

	mustGet(t, oldC, srv.URL) // a session to resume later
	if _, err := get(newC, srv.URL); err == nil {
		t.Fatal("CA2 client accepted before CA2 is trusted")
	}

	writeBundle(t, cfg.CAFile, ca1, ca2)
	if err := src.Reload(); err != nil {
		t.Fatal(err)
	}
	if r := mustGet(t, newC, srv.URL); r.status != http.StatusOK {
		t.Fatalf("CA2 client during overlap: %d", r.status)
	}
	if r := mustGet(t, oldC, srv.URL); r.status != http.StatusOK || !r.resp.TLS.DidResume {
		t.Fatalf("CA1 client during overlap: %d resumed=%v", r.status, r.resp.TLS.DidResume)
	}

	if _, _, err := issue(t, ca2, certs.Request{Kind: certs.Service, Name: "billing"}).WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	writeBundle(t, cfg.CAFile, ca2)
	if err := src.Reload(); err != nil {
		t.Fatal(err)
	}
	if r := mustGet(t, newC, srv.URL); r.status != http.StatusOK {
		t.Fatalf("CA2 client after rotation: %d", r.status)
	}
	if r, err := get(oldC, srv.URL); err == nil {
		t.Fatalf("CA1 client accepted after CA1 was retired: %d resumed=%v", r.status, r.resp.TLS.DidResume)
	}
}
