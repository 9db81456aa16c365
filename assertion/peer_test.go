package assertion_test

import (
	"errors"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/tenantry/tenantry/assertion"
	"github.com/tenantry/tenantry/internal/xfcc"
)

var sidecarPrefixes = []netip.Prefix{netip.MustParsePrefix("127.0.0.6/32"), netip.MustParsePrefix("::6/128")}

func TestEnvoyPeer(t *testing.T) {
	t.Parallel()
	p := assertion.EnvoyPeer(&assertion.EnvoyConfig{
		TrustedProxies: sidecarPrefixes,
		Identities:     map[string]string{"spiffe://cluster.local/ns/shop/sa/orders-sa": "orders"},
		TrustDomain:    "example.org",
	})
	pinned := assertion.EnvoyPeer(&assertion.EnvoyConfig{
		TrustedProxies: sidecarPrefixes, TrustDomain: "example.org",
		By: "spiffe://example.org/service/billing",
	})
	const (
		sidecar  = "127.0.0.6:40000"
		outsider = "127.0.0.1:40000"
	)
	for _, tc := range []struct {
		name   string
		peer   assertion.Peer
		remote string
		xfcc   []string
		want   string
		err    error
	}{
		{"istio identity mapped", p, sidecar, []string{`By=spiffe://cluster.local/ns/billing/sa/billing;Hash=ab;Subject="";URI=spiffe://cluster.local/ns/shop/sa/orders-sa`}, "orders", nil},
		{"tenantry scheme", p, sidecar, []string{`URI=spiffe://example.org/service/orders`}, "orders", nil},
		{"IPv6 sidecar", p, "[::6]:40000", []string{`URI=spiffe://example.org/service/orders`}, "orders", nil},
		{"IPv4-mapped sidecar", p, "[::ffff:127.0.0.6]:40000", []string{`URI=spiffe://example.org/service/orders`}, "orders", nil},
		{"last element wins (APPEND_FORWARD)", p, sidecar, []string{`URI=spiffe://example.org/service/orders,By=spiffe://example.org/service/billing;URI=spiffe://example.org/service/intruder`}, "intruder", nil},
		{"last element is the caller", p, sidecar, []string{`URI=spiffe://example.org/service/intruder,By=x;URI=spiffe://example.org/service/orders`}, "orders", nil},
		{"pinned By matches", pinned, sidecar, []string{`By=spiffe://example.org/service/billing;URI=spiffe://example.org/service/orders`}, "orders", nil},
		{"pinned By differs", pinned, sidecar, []string{`By=spiffe://example.org/service/other;URI=spiffe://example.org/service/orders`}, "", assertion.ErrUnknownPeer},
		{"pinned By missing", pinned, sidecar, []string{`URI=spiffe://example.org/service/orders`}, "", assertion.ErrUnknownPeer},
		{"forged from outsider", p, outsider, []string{`URI=spiffe://example.org/service/orders`}, "", assertion.ErrForgedMeshHeader},
		{"forged empty from outsider", p, outsider, []string{``}, "", assertion.ErrForgedMeshHeader},
		{"outsider without header", p, outsider, nil, "", assertion.ErrNoPeer},
		{"unix socket peer", p, "@", []string{`URI=spiffe://example.org/service/orders`}, "", assertion.ErrForgedMeshHeader},
		{"sidecar without header", p, sidecar, nil, "", assertion.ErrNoPeer},
		{"repeated header", p, sidecar, []string{`URI=spiffe://example.org/service/orders`, `URI=spiffe://example.org/service/orders`}, "", assertion.ErrUnknownPeer},
		{"malformed", p, sidecar, []string{`URI="spiffe://example.org/service/orders`}, "", assertion.ErrUnknownPeer},
		{"control byte", p, sidecar, []string{"URI=spiffe://example.org/service/orders\x01"}, "", assertion.ErrUnknownPeer},
		{"two URIs", p, sidecar, []string{`URI=spiffe://example.org/service/orders;URI=spiffe://example.org/service/billing`}, "", assertion.ErrUnknownPeer},
		{"no URI", p, sidecar, []string{`By=spiffe://example.org/service/billing;Hash=ab`}, "", assertion.ErrUnknownPeer},
		{"tenant identity", p, sidecar, []string{`URI=spiffe://example.org/tenant/acme`}, "", assertion.ErrUnknownPeer},
		{"admin identity", p, sidecar, []string{`URI=spiffe://example.org/admin/alice`}, "", assertion.ErrUnknownPeer},
		{"foreign trust domain", p, sidecar, []string{`URI=spiffe://evil.org/service/orders`}, "", assertion.ErrUnknownPeer},
		{"unmapped istio identity", p, sidecar, []string{`URI=spiffe://cluster.local/ns/shop/sa/other`}, "", assertion.ErrUnknownPeer},
		{"case variant of mapped identity", p, sidecar, []string{`URI=spiffe://cluster.local/ns/shop/sa/ORDERS-SA`}, "", assertion.ErrUnknownPeer},
		{"http URI", p, sidecar, []string{`URI=http://example.org/service/orders`}, "", assertion.ErrUnknownPeer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xfcc {
				r.Header.Add(xfcc.Header, v)
			}
			got, err := tc.peer.Service(r)
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Fatalf("got %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestLinkerdPeer(t *testing.T) {
	t.Parallel()
	orders := assertion.LinkerdIdentity("orders", "shop", "linkerd", "cluster.local")
	if orders != "orders.shop.serviceaccount.identity.linkerd.cluster.local" {
		t.Fatalf("LinkerdIdentity = %s", orders)
	}
	p := assertion.LinkerdPeer(&assertion.LinkerdConfig{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Identities:     map[string]string{orders: "orders"},
	})
	for _, tc := range []struct {
		name   string
		remote string
		vals   []string
		want   string
		err    error
	}{
		{"mapped", "127.0.0.1:4143", []string{orders}, "orders", nil},
		{"forged from pod IP", "10.1.2.3:5000", []string{orders}, "", assertion.ErrForgedMeshHeader},
		{"forged from another loopback address", "127.0.0.2:5000", []string{orders}, "", assertion.ErrForgedMeshHeader},
		{"no header from proxy (unmeshed client)", "127.0.0.1:4143", nil, "", assertion.ErrNoPeer},
		{"no header, no proxy", "10.1.2.3:5000", nil, "", assertion.ErrNoPeer},
		{"repeated", "127.0.0.1:4143", []string{orders, orders}, "", assertion.ErrUnknownPeer},
		{"unmapped", "127.0.0.1:4143", []string{"web.shop.serviceaccount.identity.linkerd.cluster.local"}, "", assertion.ErrUnknownPeer},
		{"other trust domain", "127.0.0.1:4143", []string{"orders.shop.serviceaccount.identity.linkerd.evil.org"}, "", assertion.ErrUnknownPeer},
		{"padded", "127.0.0.1:4143", []string{" " + orders}, "", assertion.ErrUnknownPeer},
		{"upper case", "127.0.0.1:4143", []string{"Orders.shop.serviceaccount.identity.linkerd.cluster.local"}, "", assertion.ErrUnknownPeer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.vals {
				r.Header.Add("l5d-client-id", v)
			}
			got, err := p.Service(r)
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Fatalf("got %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestPeerConfigPanics(t *testing.T) {
	t.Parallel()
	lo := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	for name, build := range map[string]func(){
		"envoy without prefixes": func() { assertion.EnvoyPeer(&assertion.EnvoyConfig{TrustDomain: "example.org"}) },
		"envoy 4in6 prefix": func() {
			assertion.EnvoyPeer(&assertion.EnvoyConfig{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("::ffff:127.0.0.6/128")}, TrustDomain: "example.org"})
		},
		"envoy invalid prefix": func() {
			assertion.EnvoyPeer(&assertion.EnvoyConfig{TrustedProxies: []netip.Prefix{{}}, TrustDomain: "example.org"})
		},
		"envoy without identities": func() { assertion.EnvoyPeer(&assertion.EnvoyConfig{TrustedProxies: lo}) },
		"envoy bad trust domain": func() {
			assertion.EnvoyPeer(&assertion.EnvoyConfig{TrustedProxies: lo, TrustDomain: "spiffe://example.org"})
		},
		"envoy non-SPIFFE identity": func() {
			assertion.EnvoyPeer(&assertion.EnvoyConfig{TrustedProxies: lo, Identities: map[string]string{"orders": "orders"}})
		},
		"envoy empty service name": func() {
			assertion.EnvoyPeer(&assertion.EnvoyConfig{TrustedProxies: lo, Identities: map[string]string{"spiffe://a/b": ""}})
		},
		"linkerd without identities": func() { assertion.LinkerdPeer(&assertion.LinkerdConfig{TrustedProxies: lo}) },
		"linkerd malformed identity": func() {
			assertion.LinkerdPeer(&assertion.LinkerdConfig{TrustedProxies: lo, Identities: map[string]string{"orders.shop": "orders"}})
		},
		"linkerd without prefixes": func() {
			assertion.LinkerdPeer(&assertion.LinkerdConfig{Identities: map[string]string{"a.b.serviceaccount.identity.c.d": "a"}})
		},
		"middleware without verifier": func() { assertion.Middleware(&assertion.MiddlewareConfig{}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			build()
		}()
	}
}
