package assertion_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tenantry/tenantry/assertion"
	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/certs"
	"github.com/tenantry/tenantry/mtls"
	"github.com/tenantry/tenantry/tenant"
	"github.com/tenantry/tenantry/tenantrytest"
)

var discardLog = log.New(io.Discard, "", 0)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// world is what the services of a test share: a CA, and a real catalog in
// PostgreSQL with its cache, holding tenants acme and globex.
type world struct {
	ca     *certs.CA
	store  *catalog.Store
	cache  *catalog.Cache
	acme   *tenant.Tenant
	globex *tenant.Tenant
}

var operator = catalog.Actor{Name: "test"}

func newWorld(t *testing.T) *world {
	t.Helper()
	ca, err := certs.NewCA("example.org", 0)
	if err != nil {
		t.Fatal(err)
	}
	pool := tenantrytest.Pool(t, tenantrytest.NewDatabase(t))
	store, err := catalog.NewStore(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	w := &world{ca: ca, store: store}
	for _, slug := range []string{"acme", "globex"} {
		tn, err := store.CreateTenant(ctx, operator, catalog.NewTenant{Slug: slug})
		if err != nil {
			t.Fatal(err)
		}
		if slug == "acme" {
			w.acme = tn
		} else {
			w.globex = tn
		}
	}
	cache, err := catalog.NewCache(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cache.Start(sctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Stop)
	w.cache = cache
	return w
}

// setState changes a tenant's state in the catalog and waits until the
// cache has it.
func (w *world) setState(t *testing.T, tn *tenant.Tenant, st tenant.State) {
	t.Helper()
	if _, err := w.store.SetState(context.Background(), operator, tn.ID, st); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got, err := w.cache.ByID(tn.ID); err == nil && got.State == st {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache never saw %s %s", tn.Slug, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// service is one workload: its mTLS certificate and its assertion key.
type service struct {
	name   string
	leaf   *certs.Leaf
	key    *ecdsa.PrivateKey
	signer *assertion.Signer
	src    mtls.Source
	url    string // set by serve
	logs   *logBuffer
}

func (w *world) newService(t *testing.T, name string) *service {
	t.Helper()
	return w.newServiceFrom(t, w.ca, certs.Request{Kind: certs.Service, Name: name}, name)
}

// newServiceFrom makes a service whose certificate is issued by ca for req
// and whose assertions are signed as issuer.
func (w *world) newServiceFrom(t *testing.T, ca *certs.CA, req certs.Request, issuer string) *service {
	t.Helper()
	leaf, err := certs.Issue(ca, req)
	if err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	return &service{
		name:   issuer,
		leaf:   leaf,
		key:    key,
		signer: newSigner(t, issuer, key, nil),
		src:    staticSource{cert: leaf.TLSCertificate(), ca: w.ca},
		logs:   &logBuffer{},
	}
}

// staticSource is an mtls.Source with fixed answers.
type staticSource struct {
	cert tls.Certificate
	ca   *certs.CA
}

func (s staticSource) Certificate() (*tls.Certificate, error) { return &s.cert, nil }
func (s staticSource) Roots() (*x509.CertPool, error)         { return s.ca.Pool(), nil }
func (s staticSource) TrustDomain() spiffeid.TrustDomain      { return td }
func (s staticSource) Reload() error                          { return nil }

// keysOf is the KeySet of the given services.
func keysOf(svcs ...*service) assertion.StaticKeys {
	k := assertion.StaticKeys{}
	for _, s := range svcs {
		k[s.name] = append(k[s.name], &s.key.PublicKey)
	}
	return k
}

// serve runs s as an mTLS server on loopback whose handler h sits behind
// assertion.Middleware with the MTLS peer; trusted are the issuers whose
// keys it knows.
func (w *world) serve(t *testing.T, s *service, h http.Handler, trusted ...*service) {
	t.Helper()
	v, err := assertion.NewVerifier(&assertion.VerifierConfig{Audience: s.name, Keys: keysOf(trusted...)})
	if err != nil {
		t.Fatal(err)
	}
	mw := assertion.Middleware(&assertion.MiddlewareConfig{
		Verifier: v, Peer: assertion.MTLSPeer(td), Lookup: w.cache,
		Logger: slog.New(slog.NewJSONHandler(s.logs, nil)),
	})
	cfg, err := mtls.ServerTLS(s.src, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.url = listenTLS(t, cfg, mw(h))
}

func listenTLS(t *testing.T, cfg *tls.Config, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: discardLog}
	go srv.Serve(tls.NewListener(ln, cfg))
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String()
}

// client is from's HTTP client for calls to to: mTLS with from's
// certificate, the server authorized as to, and assertions for to.
func client(t *testing.T, from, to *service) *http.Client {
	t.Helper()
	return &http.Client{
		Transport: &assertion.Transport{Base: mtlsTransport(t, from, to), Signer: from.signer, Audience: to.name},
		Timeout:   10 * time.Second,
	}
}

// rawClient is from's mTLS client without assertions, for forging.
func rawClient(t *testing.T, from, to *service) *http.Client {
	t.Helper()
	return &http.Client{Transport: mtlsTransport(t, from, to), Timeout: 10 * time.Second}
}

func mtlsTransport(t *testing.T, from, to *service) *http.Transport {
	t.Helper()
	cfg, err := mtls.ClientTLS(from.src, &mtls.ClientConfig{Authorize: mtls.AuthorizeID(to.leaf.Identity)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// view is what a test handler reports about the request it admitted.
type view struct {
	Tenant   string `json:"tenant"`
	Via      string `json:"via"`
	Issuer   string `json:"issuer"`
	Subject  string `json:"subject"`
	Baggage  string `json:"baggage"`
	Upstream *view  `json:"upstream,omitempty"`
}

func viewOf(r *http.Request) view {
	v := view{Baggage: assertion.BaggageTenant(r)}
	if tn, ok := tenant.FromContext(r.Context()); ok {
		v.Tenant, v.Via = tn.Slug, tenant.ResolvedVia(r.Context())
	}
	if c, ok := assertion.FromContext(r.Context()); ok {
		v.Issuer, v.Subject = c.Issuer, c.Subject
	}
	return v
}

var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	json.NewEncoder(w).Encode(viewOf(r))
})

type response struct {
	status int
	code   string // problem code
	view   view
}

func do(t *testing.T, c *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode}
	if resp.StatusCode >= 400 {
		var p struct{ Code string }
		if err := json.Unmarshal(body, &p); err != nil || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("status %d, not a problem: %q", resp.StatusCode, body)
		}
		out.code = p.Code
		return out
	}
	if err := json.Unmarshal(body, &out.view); err != nil {
		t.Fatalf("status %d, body %q", resp.StatusCode, body)
	}
	return out
}

func newRequest(t *testing.T, ctx context.Context, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// logBuffer collects a service's JSON log records.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

// records returns the log records so far.
func (l *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// expectRefusal checks a refused response: its status and code, and that
// the server logged exactly one line for it, with that code.
func expectRefusal(t *testing.T, s *service, got response, status int, code string) {
	t.Helper()
	if got.status != status || got.code != code {
		t.Fatalf("got %d %q, want %d %q", got.status, got.code, status, code)
	}
	recs := s.logs.records(t)
	if len(recs) != 1 || recs[0]["code"] != code || recs[0]["level"] != "WARN" || recs[0]["msg"] != "assertion refused" {
		t.Fatalf("log of %s: %v, want one refusal with code %s", s.name, recs, code)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func jsonLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }

func mtlsServer(t *testing.T, s *service) (*tls.Config, error) {
	t.Helper()
	cfg, err := mtls.ServerTLS(s.src, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, nil
}
