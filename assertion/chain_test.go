package assertion_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantry/tenantry/assertion"
	"github.com/tenantry/tenantry/certs"
	"github.com/tenantry/tenantry/tenant"
)

// chain is gateway -> orders -> billing on loopback with real mTLS. Orders
// calls billing for the tenant of its own request; both servers check
// assertions against the real catalog cache.
type chain struct {
	w                        *world
	gateway, orders, billing *service

	mu       sync.Mutex
	received []string // assertions orders received, for replay attacks
}

func newChain(t *testing.T, w *world) *chain {
	t.Helper()
	c := &chain{w: w, gateway: w.newService(t, "gateway"), orders: w.newService(t, "orders"), billing: w.newService(t, "billing")}
	toBilling := client(t, c.orders, c.billing)
	w.serve(t, c.billing, echo, c.gateway, c.orders)
	w.serve(t, c.orders, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.received = append(c.received, r.Header.Get(assertion.Header))
		c.mu.Unlock()
		// The downstream call carries the request's context: the tenant
		// and the verified claims (for the subject) flow on.
		resp := do(t, toBilling, newRequest(t, r.Context(), http.MethodGet, c.billing.url))
		if resp.status != http.StatusOK {
			http.Error(rw, "billing refused", http.StatusBadGateway)
			return
		}
		v := viewOf(r)
		v.Upstream = &resp.view
		writeJSON(rw, v)
	}), c.gateway)
	return c
}

// edgeContext is the gateway's context for a request it resolved to tn at
// the edge, on behalf of user.
func edgeContext(tn *tenant.Tenant, user string) context.Context {
	return assertion.WithSubject(tenant.NewContext(context.Background(), tn, "host"), user)
}

func TestChain(t *testing.T) {
	t.Parallel()
	w := newWorld(t)

	t.Run("tenant flows gateway to orders to billing", func(t *testing.T) {
		t.Parallel()
		c := newChain(t, w)
		gw := client(t, c.gateway, c.orders)
		for _, tn := range []*tenant.Tenant{w.acme, w.globex, w.acme} {
			req := newRequest(t, edgeContext(tn, "user-42"), http.MethodGet, c.orders.url)
			// Upstream baggage that lies about the tenant changes nothing.
			req.Header.Set("Baggage", "tenant.id=forged,other=1")
			got := do(t, gw, req)
			want := view{Tenant: tn.Slug, Via: "assertion", Issuer: "gateway", Subject: "user-42", Baggage: tn.ID,
				Upstream: &view{Tenant: tn.Slug, Via: "assertion", Issuer: "orders", Subject: "user-42", Baggage: tn.ID}}
			if got.status != http.StatusOK || *got.view.Upstream != *want.Upstream || got.view.Tenant != want.Tenant ||
				got.view.Issuer != want.Issuer || got.view.Subject != want.Subject || got.view.Baggage != want.Baggage {
				t.Fatalf("got %d %+v upstream %+v", got.status, got.view, got.view.Upstream)
			}
		}
		if recs := c.orders.logs.records(t); len(recs) != 0 {
			t.Fatalf("orders logged %v", recs)
		}
	})

	t.Run("orders replays the gateway's assertion to billing", func(t *testing.T) {
		t.Parallel()
		c := newChain(t, w)
		do(t, client(t, c.gateway, c.orders), newRequest(t, edgeContext(w.acme, "u"), http.MethodGet, c.orders.url))
		req := newRequest(t, context.Background(), http.MethodGet, c.billing.url)
		req.Header.Set(assertion.Header, c.received[0])
		got := do(t, rawClient(t, c.orders, c.billing), req)
		// Addressed to orders: refused before the issuer is compared.
		expectRefusal(t, c.billing, got, http.StatusUnauthorized, assertion.CodeAudience)
	})

	t.Run("a captured assertion replayed to its audience", func(t *testing.T) {
		t.Parallel()
		c := newChain(t, w)
		do(t, client(t, c.gateway, c.orders), newRequest(t, edgeContext(w.acme, "u"), http.MethodGet, c.orders.url))
		captured := c.received[0]
		c.orders.logs.reset() // only the replay's log line counts
		// By the gateway's own connection: a replay.
		req := newRequest(t, context.Background(), http.MethodGet, c.orders.url)
		req.Header.Set(assertion.Header, captured)
		expectRefusal(t, c.orders, do(t, rawClient(t, c.gateway, c.orders), req), http.StatusUnauthorized, assertion.CodeReplayed)
	})

	t.Run("an assertion whose issuer is not the transport peer", func(t *testing.T) {
		t.Parallel()
		c := newChain(t, w)
		// A valid, fresh assertion by the gateway for billing, sent over
		// orders' connection (orders stole the gateway's signing key, or
		// the gateway's token leaked).
		tok, err := c.gateway.signer.Sign("billing", w.acme, "u")
		if err != nil {
			t.Fatal(err)
		}
		req := newRequest(t, context.Background(), http.MethodGet, c.billing.url)
		req.Header.Set(assertion.Header, tok)
		expectRefusal(t, c.billing, do(t, rawClient(t, c.orders, c.billing), req), http.StatusForbidden, assertion.CodePeerMismatch)
	})

	t.Run("a tampered assertion", func(t *testing.T) {
		t.Parallel()
		c := newChain(t, w)
		tok, _ := c.orders.signer.Sign("billing", w.acme, "u")
		parts := strings.Split(tok, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		forged := strings.NewReplacer(w.acme.ID, w.globex.ID, `"slug":"acme"`, `"slug":"globex"`).Replace(string(payload))
		req := newRequest(t, context.Background(), http.MethodGet, c.billing.url)
		req.Header.Set(assertion.Header, parts[0]+"."+base64.RawURLEncoding.EncodeToString([]byte(forged))+"."+parts[2])
		expectRefusal(t, c.billing, do(t, rawClient(t, c.orders, c.billing), req), http.StatusUnauthorized, assertion.CodeInvalid)
	})

	t.Run("wrong audience", func(t *testing.T) {
		t.Parallel()
		c := newChain(t, w)
		// Orders signs for a third service and sends it to billing.
		misaddressed := &assertion.Transport{Base: mtlsTransport(t, c.orders, c.billing), Signer: c.orders.signer, Audience: "ledger"}
		got := do(t, &http.Client{Transport: misaddressed}, newRequest(t, edgeContext(w.acme, "u"), http.MethodGet, c.billing.url))
		expectRefusal(t, c.billing, got, http.StatusUnauthorized, assertion.CodeAudience)
	})

	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		c := newChain(t, w)
		stale := newSigner(t, "orders", c.orders.key, func() time.Time { return time.Now().Add(-2 * time.Minute) })
		tr := &assertion.Transport{Base: mtlsTransport(t, c.orders, c.billing), Signer: stale, Audience: "billing"}
		got := do(t, &http.Client{Transport: tr}, newRequest(t, edgeContext(w.acme, "u"), http.MethodGet, c.billing.url))
		expectRefusal(t, c.billing, got, http.StatusUnauthorized, assertion.CodeExpired)
	})

	t.Run("no assertion, baggage only", func(t *testing.T) {
		t.Parallel()
		c := newChain(t, w)
		req := newRequest(t, context.Background(), http.MethodGet, c.billing.url)
		req.Header.Set("Baggage", "tenant.id="+w.acme.ID)
		req.Header.Set("X-Tenant-ID", w.acme.ID)
		expectRefusal(t, c.billing, do(t, rawClient(t, c.orders, c.billing), req), http.StatusUnauthorized, assertion.CodeMissing)
	})

	t.Run("a service outside the trust domain", func(t *testing.T) {
		t.Parallel()
		c := newChain(t, w)
		evilCA, err := certs.NewCA("evil.org", 0)
		if err != nil {
			t.Fatal(err)
		}
		// It presents a certificate for "orders" from its own CA and signs
		// with orders' real key (the worst case): the TLS handshake fails
		// before any assertion is read.
		evil := w.newServiceFrom(t, evilCA, certs.Request{Kind: certs.Service, Name: "orders"}, "orders")
		evil.key, evil.signer = c.orders.key, c.orders.signer
		evil.src = staticSource{cert: evil.leaf.TLSCertificate(), ca: w.ca}
		_, err = client(t, evil, c.billing).Do(newRequest(t, edgeContext(w.acme, "u"), http.MethodGet, c.billing.url))
		if err == nil {
			t.Fatal("a certificate of another trust domain was accepted")
		}
	})

	t.Run("a tenant certificate is not a service", func(t *testing.T) {
		t.Parallel()
		c := newChain(t, w)
		// A tenant's client certificate of our CA, with an assertion signed
		// by orders' key: the peer is not a service at all.
		tc := w.newServiceFrom(t, w.ca, certs.Request{Kind: certs.Tenant, Name: "acme"}, "orders")
		tc.key, tc.signer = c.orders.key, c.orders.signer
		got := do(t, client(t, tc, c.billing), newRequest(t, edgeContext(w.acme, "u"), http.MethodGet, c.billing.url))
		expectRefusal(t, c.billing, got, http.StatusForbidden, assertion.CodePeerUnknown)
	})

	t.Run("a known service the receiver does not trust to issue", func(t *testing.T) {
		t.Parallel()
		c := newChain(t, w)
		// reports has a valid certificate, but billing has no key for it.
		reports := w.newService(t, "reports")
		got := do(t, client(t, reports, c.billing), newRequest(t, edgeContext(w.acme, "u"), http.MethodGet, c.billing.url))
		expectRefusal(t, c.billing, got, http.StatusUnauthorized, assertion.CodeInvalid)
	})
}

// TestChainTenantState: the middleware looks the tenant up in the catalog on
// every request, so suspending or deleting a tenant stops its traffic
// between services as soon as the cache sees the change.
func TestChainTenantState(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	c := newChain(t, w)
	gw := client(t, c.gateway, c.orders)
	call := func(method string) response {
		return do(t, gw, newRequest(t, edgeContext(w.acme, "u"), method, c.orders.url))
	}
	if got := call(http.MethodGet); got.status != http.StatusOK {
		t.Fatalf("active: %d %s", got.status, got.code)
	}

	w.setState(t, w.acme, tenant.StateReadOnly)
	if got := call(http.MethodGet); got.status != http.StatusOK {
		t.Fatalf("read-only GET: %d %s", got.status, got.code)
	}
	expectRefusal(t, c.orders, call(http.MethodPost), http.StatusLocked, assertion.CodeReadOnly)

	w.setState(t, w.acme, tenant.StateSuspended)
	c.orders.logs.reset()
	expectRefusal(t, c.orders, call(http.MethodGet), http.StatusLocked, assertion.CodeSuspended)

	if err := w.store.DeleteTenant(context.Background(), operator, w.acme.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := call(http.MethodGet)
		if got.status == http.StatusNotFound && got.code == assertion.CodeUnknownTenant ||
			got.status == http.StatusGone && got.code == assertion.CodeDeleting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deleted tenant: %d %s", got.status, got.code)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// globex is unaffected.
	if got := do(t, gw, newRequest(t, edgeContext(w.globex, "u"), http.MethodGet, c.orders.url)); got.status != http.StatusOK {
		t.Fatalf("globex: %d %s", got.status, got.code)
	}
}
