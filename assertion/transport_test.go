package assertion_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/assertion"
	"github.com/tenantry/tenantry/tenant"
)

// captureTransport records what would have gone on the wire.
type captureTransport struct{ req *http.Request }

func (c *captureTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.req = r
	return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: r}, nil
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestTransport(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	signer := newSigner(t, "orders", key, nil)
	v := newVerifier(t, "billing", assertion.StaticKeys{"orders": {&key.PublicKey}})

	t.Run("signs for the tenant in the context", func(t *testing.T) {
		t.Parallel()
		capt := &captureTransport{}
		tr := &assertion.Transport{Base: capt, Signer: signer, Audience: "billing"}
		req, _ := http.NewRequestWithContext(assertion.WithSubject(tenant.NewContext(context.Background(), acme, "host"), "user-7"), "GET", "https://billing.internal/x", nil)
		req.Header.Set(assertion.Header, "stale-or-forged")
		req.Header.Set("Baggage", "tenant.id=someone-else, userId=alice;prop=1")
		if _, err := tr.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		if req.Header.Get(assertion.Header) != "stale-or-forged" {
			t.Fatal("the caller's request was modified")
		}
		out := capt.req
		if vals := out.Header.Values(assertion.Header); len(vals) != 1 {
			t.Fatalf("%d assertion headers", len(vals))
		}
		c, err := v.Verify(context.Background(), out.Header.Get(assertion.Header), "orders")
		if err != nil {
			t.Fatal(err)
		}
		if c.TenantID != acme.ID || c.TenantSlug != "acme" || c.Audience != "billing" || c.Subject != "user-7" {
			t.Fatalf("claims %+v", c)
		}
		if got := out.Header.Get("Baggage"); got != "userId=alice;prop=1,tenant.id="+acme.ID {
			t.Fatalf("baggage %q", got)
		}
	})

	t.Run("no tenant fails closed", func(t *testing.T) {
		t.Parallel()
		capt := &captureTransport{}
		tr := &assertion.Transport{Base: capt, Signer: signer, Audience: "billing"}
		for _, ctx := range []context.Context{context.Background(), tenant.WithoutTenant(tenant.NewContext(context.Background(), acme, "host"))} {
			body := &closeRecorder{Reader: strings.NewReader("x")}
			req, _ := http.NewRequestWithContext(ctx, "POST", "https://billing.internal/x", body)
			if _, err := tr.RoundTrip(req); !errors.Is(err, assertion.ErrNoTenant) {
				t.Fatalf("err = %v", err)
			}
			if !body.closed || capt.req != nil {
				t.Fatal("body not closed, or the request went out")
			}
		}
	})
}

func TestBaggageTenant(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                               "",
		"tenant.id=acme":                 "acme",
		"a=1, tenant.id = acme%2Fx ;p=1": "acme/x",
		"tenant.idx=acme":                "",
		"tenant.id":                      "",
		"other=1,tenant.id=first,tenant.id=second": "first",
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		if in != "" {
			r.Header.Set("Baggage", in)
		}
		if got := assertion.BaggageTenant(r); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

// TestBaggageGrantsNothing: the middleware ignores baggage, whatever it says.
func TestBaggageGrantsNothing(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	orders, billing := w.newService(t, "orders"), w.newService(t, "billing")
	w.serve(t, billing, echo, orders)

	// Baggage alone (and a tenant header): no entry.
	req := newRequest(t, context.Background(), http.MethodGet, billing.url)
	req.Header.Set("Baggage", "tenant.id="+w.acme.ID)
	expectRefusal(t, billing, do(t, rawClient(t, orders, billing), req), http.StatusUnauthorized, assertion.CodeMissing)

	// An assertion for acme with baggage naming globex: the tenant is acme;
	// the baggage is visible to tracing as the unverified string it is.
	tok, _ := orders.signer.Sign("billing", w.acme, "u")
	req = newRequest(t, context.Background(), http.MethodGet, billing.url)
	req.Header.Set(assertion.Header, tok)
	req.Header.Set("Baggage", "tenant.id="+w.globex.ID)
	got := do(t, rawClient(t, orders, billing), req)
	if got.status != http.StatusOK || got.view.Tenant != "acme" || got.view.Baggage != w.globex.ID {
		t.Fatalf("%d %s %+v", got.status, got.code, got.view)
	}
}

// TestEarlierTenantMustAgree: when an earlier middleware (package resolve)
// already put a tenant in the context, the assertion must name the same one.
func TestEarlierTenantMustAgree(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	orders, billing := w.newService(t, "orders"), w.newService(t, "billing")
	// An "earlier resolver" that says globex for every request.
	resolved := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(rw, r.WithContext(tenant.NewContext(r.Context(), w.globex, "host")))
		})
	}
	v := newVerifier(t, "billing", keysOf(orders))
	mw := assertion.Middleware(&assertion.MiddlewareConfig{Verifier: v, Peer: assertion.MTLSPeer(td), Lookup: w.cache, Logger: jsonLogger(billing.logs)})
	cfg, _ := mtlsServer(t, billing)
	billing.url = listenTLS(t, cfg, resolved(mw(echo)))

	for _, tc := range []struct {
		tn     *tenant.Tenant
		status int
		code   string
	}{{w.globex, http.StatusOK, ""}, {w.acme, http.StatusForbidden, assertion.CodeTenantMismatch}} {
		billing.logs.reset()
		got := do(t, client(t, orders, billing), newRequest(t, edgeContext(tc.tn, "u"), http.MethodGet, billing.url))
		if tc.status == http.StatusOK {
			if got.status != http.StatusOK || got.view.Tenant != "globex" {
				t.Fatalf("%s: %d %s", tc.tn.Slug, got.status, got.code)
			}
			continue
		}
		expectRefusal(t, billing, got, tc.status, tc.code)
	}
}
