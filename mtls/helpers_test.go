package mtls_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tenantry/tenantry/certs"
	"github.com/tenantry/tenantry/mtls"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

func newCA(t *testing.T, trustDomain string) *certs.CA {
	t.Helper()
	ca, err := certs.NewCA(trustDomain, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, ca *certs.CA, req certs.Request) *certs.Leaf {
	t.Helper()
	leaf, err := certs.Issue(ca, req)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// forge signs a certificate with ca's key whatever its URIs say, for
// identities the certs package refuses to issue.
func forge(t *testing.T, ca *certs.CA, eku []x509.ExtKeyUsage, uris ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "forged"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  eku,
	}
	for _, u := range uris {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, p)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c}
}

// staticSource is a Source with fixed answers, for clients presenting
// certificates that a FileSource would refuse to load.
type staticSource struct {
	cert  *tls.Certificate
	roots *x509.CertPool
	td    spiffeid.TrustDomain
}

func (s staticSource) Certificate() (*tls.Certificate, error) { return s.cert, nil }
func (s staticSource) Roots() (*x509.CertPool, error)         { return s.roots, nil }
func (s staticSource) TrustDomain() spiffeid.TrustDomain      { return s.td }
func (s staticSource) Reload() error                          { return nil }

func static(cert tls.Certificate, roots ...*certs.CA) staticSource {
	pool := x509.NewCertPool()
	for _, ca := range roots {
		pool.AddCert(ca.Cert)
	}
	return staticSource{cert: &cert, roots: pool, td: td}
}

// files writes leaf and the CA bundle into dir and returns a FileConfig.
func files(t *testing.T, dir string, leaf *certs.Leaf, cas ...*certs.CA) *mtls.FileConfig {
	t.Helper()
	certPath, keyPath, err := leaf.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	caPath := filepath.Join(dir, "bundle.pem")
	writeBundle(t, caPath, cas...)
	return &mtls.FileConfig{CertFile: certPath, KeyFile: keyPath, CAFile: caPath, TrustDomain: td.Name()}
}

func writeBundle(t *testing.T, path string, cas ...*certs.CA) {
	t.Helper()
	var b []byte
	for _, ca := range cas {
		b = append(b, ca.PEM()...)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func fileSource(t *testing.T, cfg *mtls.FileConfig) *mtls.FileSource {
	t.Helper()
	src, err := mtls.NewFileSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// syncBuffer collects the server's error log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls the log until it contains want (bounded: the server logs a
// failed handshake right after the client sees it fail).
func (s *syncBuffer) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("server log lacks %q; log:\n%s", want, s.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type testServer struct {
	URL string
	Log *syncBuffer
}

// serve runs an HTTPS server with cfg on a loopback port.
func serve(t *testing.T, cfg *tls.Config, h http.Handler) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(logs, "", 0),
	}
	go srv.Serve(tls.NewListener(ln, cfg))
	t.Cleanup(func() { srv.Close() })
	return &testServer{URL: "https://" + ln.Addr().String(), Log: logs}
}

// whoami answers with the client's identity, the server's view of the
// session, or 401 with the PeerIdentity error.
func whoami(w http.ResponseWriter, r *http.Request) {
	id, err := mtls.PeerIdentity(r, td)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	fmt.Fprintf(w, "%s resumed=%v", id, r.TLS.DidResume)
}

func httpClient(t *testing.T, cfg *tls.Config) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func clientFor(t *testing.T, src mtls.Source, cfg *mtls.ClientConfig) *http.Client {
	t.Helper()
	tc, err := mtls.ClientTLS(src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return httpClient(t, tc)
}

type result struct {
	status int
	body   string
	serial *big.Int
	resp   *http.Response
}

func get(c *http.Client, url string) (result, error) {
	resp, err := c.Get(url)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, err
	}
	r := result{status: resp.StatusCode, body: string(b), resp: resp}
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		r.serial = resp.TLS.PeerCertificates[0].SerialNumber
	}
	return r, nil
}

func mustGet(t *testing.T, c *http.Client, url string) result {
	t.Helper()
	r, err := get(c, url)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newSessionCache() tls.ClientSessionCache { return tls.NewLRUClientSessionCache(8) }
