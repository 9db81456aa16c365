package mtls_test

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"

	"github.com/tenantry/tenantry/certs"
	"github.com/tenantry/tenantry/mtls"
)

// TestSPIFFESourceFromFiles runs the go-spiffe adapter over SVIDs and a
// bundle loaded from files with go-spiffe's own loaders.
func TestSPIFFESourceFromFiles(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "example.org")
	dir := t.TempDir()
	load := func(leaf *certs.Leaf) *mtls.SPIFFESource {
		t.Helper()
		certPath, keyPath, err := leaf.WriteFiles(dir)
		if err != nil {
			t.Fatal(err)
		}
		svid, err := x509svid.Load(certPath, keyPath)
		if err != nil {
			t.Fatal(err)
		}
		caPath := filepath.Join(dir, "ca.pem")
		writeBundle(t, caPath, ca)
		b, err := x509bundle.Load(td, caPath)
		if err != nil {
			t.Fatal(err)
		}
		src, err := mtls.NewSPIFFESource(td, svid, b)
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	server := load(issue(t, ca, certs.Request{Kind: certs.Service, Name: "billing"}))
	client := load(issue(t, ca, certs.Request{Kind: certs.Service, Name: "orders"}))

	sc, err := mtls.ServerTLS(server, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, sc, http.HandlerFunc(whoami))
	r := mustGet(t, clientFor(t, client, nil), srv.URL)
	if r.status != http.StatusOK || r.body != "spiffe://example.org/service/orders resumed=false" {
		t.Fatalf("%d %q", r.status, r.body)
	}

	// An SVID of another trust domain is refused up front.
	evil := newCA(t, "evil.org")
	leaf := issue(t, evil, certs.Request{Kind: certs.Service, Name: "x"})
	svid, _ := x509svid.Parse(leaf.CertPEM, leaf.KeyPEM)
	if _, err := mtls.NewSPIFFESource(td, svid, x509bundle.FromX509Authorities(td, []*x509.Certificate{ca.Cert})); err == nil {
		t.Fatal("SVID of evil.org accepted for example.org")
	}
}

// workloadAPI is a minimal SPIFFE Workload API server (the X.509 part of
// the protocol a SPIRE agent speaks) on a unix socket, so that
// NewWorkloadSource is exercised through go-spiffe's real client.
type workloadAPI struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	mu      sync.Mutex
	resp    *workload.X509SVIDResponse
	updated chan struct{}
}

func (w *workloadAPI) set(leaf *certs.Leaf, ca *certs.CA) {
	key, err := x509.MarshalPKCS8PrivateKey(leaf.Key)
	if err != nil {
		panic(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.resp = &workload.X509SVIDResponse{Svids: []*workload.X509SVID{{
		SpiffeId: leaf.Identity.String(), X509Svid: leaf.Cert.Raw, X509SvidKey: key, Bundle: ca.Cert.Raw,
	}}}
	if w.updated != nil {
		close(w.updated)
	}
	w.updated = make(chan struct{})
}

func (w *workloadAPI) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	for {
		w.mu.Lock()
		resp, updated := w.resp, w.updated
		w.mu.Unlock()
		if err := stream.Send(resp); err != nil {
			return err
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-updated:
		}
	}
}

func TestWorkloadSource(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "example.org")
	api := &workloadAPI{}
	api.set(issue(t, ca, certs.Request{Kind: certs.Service, Name: "billing"}), ca)

	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	workload.RegisterSpiffeWorkloadAPIServer(gs, api)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := mtls.NewWorkloadSource(ctx, &mtls.WorkloadConfig{TrustDomain: "example.org", Addr: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })

	sc, _ := mtls.ServerTLS(src, nil)
	srv := serve(t, sc, http.HandlerFunc(whoami))
	client := issue(t, ca, certs.Request{Kind: certs.Service, Name: "orders"})
	first := mustGet(t, clientFor(t, static(client.TLSCertificate(), ca), nil), srv.URL)

	// The agent pushes a rotated SVID; new connections get it, no Reload.
	rotated := issue(t, ca, certs.Request{Kind: certs.Service, Name: "billing"})
	api.set(rotated, ca)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := mustGet(t, clientFor(t, static(client.TLSCertificate(), ca), nil), srv.URL)
		if r.serial.Cmp(rotated.Cert.SerialNumber) == 0 {
			break
		}
		if r.serial.Cmp(first.serial) != 0 || time.Now().After(deadline) {
			t.Fatalf("serial %x, want %x", r.serial, rotated.Cert.SerialNumber)
		}
		time.Sleep(10 * time.Millisecond)
	}

	if _, err := mtls.NewWorkloadSource(ctx, &mtls.WorkloadConfig{TrustDomain: "spiffe://example.org"}); err == nil {
		t.Fatal("accepted a SPIFFE ID as trust domain name")
	}
}
