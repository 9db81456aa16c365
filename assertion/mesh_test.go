package assertion_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/tenantry/tenantry/assertion"
	"github.com/tenantry/tenantry/certs"
	"github.com/tenantry/tenantry/internal/xfcc"
	"github.com/tenantry/tenantry/mtls"
)

// The tests here put a stand-in sidecar in front of a plain-HTTP
// application, as Istio's Envoy and Linkerd's proxy do: the sidecar
// terminates mTLS, removes any identity header the client sent, adds its
// own, and connects to the application from a fixed loopback address
// (127.0.0.6, Istio's inbound source address). Attackers connect to the
// application port from 127.0.0.1, as a process that bypasses the sidecar
// would.

var sidecarAddr = netip.MustParseAddr("127.0.0.6")

// serveApp runs s's application on plain HTTP behind middleware with peer.
func serveApp(t *testing.T, w *world, s *service, peer assertion.Peer, trusted ...*service) string {
	t.Helper()
	v, err := assertion.NewVerifier(&assertion.VerifierConfig{Audience: s.name, Keys: keysOf(trusted...)})
	if err != nil {
		t.Fatal(err)
	}
	mw := assertion.Middleware(&assertion.MiddlewareConfig{
		Verifier: v, Peer: peer, Lookup: w.cache, Logger: slog.New(slog.NewJSONHandler(s.logs, nil)),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mw(echo), ReadHeaderTimeout: 5 * time.Second, ErrorLog: discardLog}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// sidecar fronts app with mTLS as s, setting the identity header through
// set (nil when the client is not authenticated).
func sidecar(t *testing.T, s *service, app string, set func(h http.Header, id certs.Identity, r *http.Request)) string {
	t.Helper()
	target, _ := url.Parse(app)
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: sidecarAddr.AsSlice()}}
	tr := &http.Transport{DialContext: dialer.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	proxy := &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// SANITIZE_SET / Linkerd: the client's headers never pass.
			pr.Out.Header.Del(xfcc.Header)
			pr.Out.Header.Del(assertion.LinkerdHeader)
			if id, err := mtls.PeerIdentity(pr.In, td); err == nil {
				set(pr.Out.Header, id, pr.In)
			}
		},
		ErrorLog: discardLog,
	}
	cfg, err := mtls.ServerTLS(s.src, nil)
	if err != nil {
		t.Fatal(err)
	}
	return listenTLS(t, cfg, proxy)
}

func envoyXFCC(self *service) func(http.Header, certs.Identity, *http.Request) {
	return func(h http.Header, id certs.Identity, r *http.Request) {
		sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
		h.Set(xfcc.Header, "By="+self.leaf.Identity.String()+";Hash="+hex.EncodeToString(sum[:])+`;Subject="";URI=`+id.String())
	}
}

func linkerdID(h http.Header, id certs.Identity, _ *http.Request) {
	h.Set(assertion.LinkerdHeader, assertion.LinkerdIdentity(id.Name, "shop", "linkerd", "cluster.local"))
}

func TestBehindEnvoy(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	orders, billing := w.newService(t, "orders"), w.newService(t, "billing")
	intruder := w.newService(t, "intruder") // a valid certificate; billing has no key for it
	app := serveApp(t, w, billing, assertion.EnvoyPeer(&assertion.EnvoyConfig{
		TrustedProxies: []netip.Prefix{netip.PrefixFrom(sidecarAddr, 32)},
		TrustDomain:    "example.org",
		By:             billing.leaf.Identity.String(),
	}), orders)
	billing.url = sidecar(t, billing, app, envoyXFCC(billing))
	ctx := edgeContext(w.acme, "user-42")

	// Through the sidecar: admitted.
	got := do(t, client(t, orders, billing), newRequest(t, ctx, http.MethodGet, billing.url))
	if got.status != http.StatusOK || got.view.Tenant != "acme" || got.view.Issuer != "orders" {
		t.Fatalf("through sidecar: %d %s %+v", got.status, got.code, got.view)
	}

	plain := &http.Client{Timeout: 10 * time.Second}
	forged := func(ctx context.Context, target string, xfccValue string) *http.Request {
		tok, err := orders.signer.Sign("billing", w.acme, "user-42") // a valid assertion, stolen
		if err != nil {
			t.Fatal(err)
		}
		req := newRequest(t, ctx, http.MethodGet, target)
		req.Header.Set(assertion.Header, tok)
		if xfccValue != "" {
			req.Header.Set(xfcc.Header, xfccValue)
		}
		return req
	}

	t.Run("forged XFCC straight to the application port", func(t *testing.T) {
		billing.logs.reset()
		got := do(t, plain, forged(context.Background(), app, "By="+billing.leaf.Identity.String()+";URI=spiffe://example.org/service/orders"))
		expectRefusal(t, billing, got, http.StatusForbidden, assertion.CodeForgedMeshHeader)
	})
	t.Run("no XFCC straight to the application port", func(t *testing.T) {
		billing.logs.reset()
		expectRefusal(t, billing, do(t, plain, forged(context.Background(), app, "")), http.StatusForbidden, assertion.CodePeerUnknown)
	})
	t.Run("forged XFCC through the sidecar is replaced", func(t *testing.T) {
		billing.logs.reset()
		// The intruder authenticates as itself and claims to be orders in
		// XFCC; the sidecar overwrites the header, so the app sees
		// intruder, which is not the assertion's issuer.
		got := do(t, rawClient(t, intruder, billing), forged(context.Background(), billing.url, "URI=spiffe://example.org/service/orders"))
		expectRefusal(t, billing, got, http.StatusForbidden, assertion.CodePeerMismatch)
	})
}

func TestBehindLinkerd(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	orders, billing := w.newService(t, "orders"), w.newService(t, "billing")
	intruder := w.newService(t, "intruder")
	app := serveApp(t, w, billing, assertion.LinkerdPeer(&assertion.LinkerdConfig{
		TrustedProxies: []netip.Prefix{netip.PrefixFrom(sidecarAddr, 32)},
		Identities: map[string]string{
			assertion.LinkerdIdentity("orders", "shop", "linkerd", "cluster.local"):   "orders",
			assertion.LinkerdIdentity("intruder", "shop", "linkerd", "cluster.local"): "intruder",
		},
	}), orders)
	billing.url = sidecar(t, billing, app, linkerdID)

	got := do(t, client(t, orders, billing), newRequest(t, edgeContext(w.globex, "u"), http.MethodGet, billing.url))
	if got.status != http.StatusOK || got.view.Tenant != "globex" || got.view.Issuer != "orders" {
		t.Fatalf("through proxy: %d %s %+v", got.status, got.code, got.view)
	}

	stolen := func(target, l5d string) *http.Request {
		tok, _ := orders.signer.Sign("billing", w.globex, "u")
		req := newRequest(t, context.Background(), http.MethodGet, target)
		req.Header.Set(assertion.Header, tok)
		req.Header.Set("l5d-client-id", l5d)
		return req
	}
	billing.logs.reset()
	got = do(t, &http.Client{Timeout: 10 * time.Second}, stolen(app, assertion.LinkerdIdentity("orders", "shop", "linkerd", "cluster.local")))
	expectRefusal(t, billing, got, http.StatusForbidden, assertion.CodeForgedMeshHeader)

	billing.logs.reset()
	got = do(t, rawClient(t, intruder, billing), stolen(billing.url, assertion.LinkerdIdentity("orders", "shop", "linkerd", "cluster.local")))
	expectRefusal(t, billing, got, http.StatusForbidden, assertion.CodePeerMismatch)
}
