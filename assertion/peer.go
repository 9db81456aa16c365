package assertion

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tenantry/tenantry/certs"
	"github.com/tenantry/tenantry/internal/peer"
	"github.com/tenantry/tenantry/internal/xfcc"
	"github.com/tenantry/tenantry/mtls"
)

// Errors of Peer.Service.
var (
	// ErrNoPeer: the request carries no authenticated transport identity
	// (no verified client certificate; no mesh header from the sidecar).
	ErrNoPeer = errors.New("no authenticated transport peer")
	// ErrUnknownPeer: the transport identity is not a known service (a
	// tenant or admin certificate, an unmapped mesh identity, a malformed
	// or repeated mesh header from the sidecar).
	ErrUnknownPeer = errors.New("transport peer is not a known service")
	// ErrForgedMeshHeader: a mesh identity header arrived from a direct
	// peer that is not a trusted sidecar.
	ErrForgedMeshHeader = errors.New("mesh identity header from an untrusted peer")
)

// Peer tells which service sent a request, from what the transport
// authenticated, never from anything the caller merely asserts.
type Peer interface {
	// Service returns the name of the service that sent r.
	Service(r *http.Request) (string, error)
}

// MTLSPeer returns the Peer of a server that terminates mTLS itself (see
// package mtls): the client certificate's identity, which must be
// spiffe://<td>/service/<name>; the name is the service. It checks the
// certificate on every request, resumed TLS sessions included.
func MTLSPeer(td spiffeid.TrustDomain) Peer {
	if td.IsZero() {
		panic("assertion: MTLSPeer needs a trust domain")
	}
	return mtlsPeer{td: td}
}

type mtlsPeer struct{ td spiffeid.TrustDomain }

func (p mtlsPeer) Service(r *http.Request) (string, error) {
	id, err := mtls.PeerIdentity(r, p.td)
	if errors.Is(err, mtls.ErrNoPeerCertificate) {
		return "", ErrNoPeer
	}
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrUnknownPeer, err)
	}
	if id.Kind != certs.Service {
		return "", fmt.Errorf("%w: %s is not a service", ErrUnknownPeer, id)
	}
	return id.Name, nil
}

// EnvoyConfig configures EnvoyPeer.
type EnvoyConfig struct {
	// TrustedProxies are the direct peers (Request.RemoteAddr) trusted to
	// set x-forwarded-client-cert: the local sidecar. Istio's sidecar
	// connects to the application from 127.0.0.6 (::6 over IPv6) in the
	// default REDIRECT interception mode; TPROXY mode preserves the remote
	// client's address and cannot be used with this rule. Required.
	TrustedProxies []netip.Prefix
	// Identities maps the client SPIFFE IDs the sidecar reports (the URI of
	// the last XFCC element) to service names, e.g.
	// "spiffe://cluster.local/ns/orders/sa/orders": "orders".
	Identities map[string]string
	// TrustDomain, if set, also accepts Tenantry's own scheme
	// spiffe://<TrustDomain>/service/<name> (SPIRE-issued mesh certificates)
	// without listing each service in Identities.
	TrustDomain string
	// By, if set, is this workload's own SPIFFE ID: the last element's By
	// must equal it, proving that the element was written by this pod's
	// sidecar and not forwarded from elsewhere.
	By string
}

// EnvoyPeer returns the Peer of a server behind an Envoy sidecar (Istio)
// that terminates mTLS and reports the client in x-forwarded-client-cert.
//
// Trust rules: the header is honoured only when the direct peer is in
// TrustedProxies; from any other peer its presence is ErrForgedMeshHeader.
// The sidecar must own the header (forward_client_cert_details
// SANITIZE_SET, or APPEND_FORWARD, Istio's default for sidecars, after which
// the last element is the sidecar's own): only the last element is read,
// it must carry exactly one URI SAN, and that URI must map to a service.
// The header may appear once. The application port must not be reachable
// except through the sidecar.
//
// It panics on a configuration error, when the middleware is built, never
// per request.
func EnvoyPeer(cfg *EnvoyConfig) Peer {
	p := &envoyPeer{trusted: mustPrefixes("EnvoyPeer", cfg.TrustedProxies), ids: cfg.Identities, by: cfg.By}
	if cfg.TrustDomain != "" {
		td, err := spiffeid.TrustDomainFromString(cfg.TrustDomain)
		if err != nil || td.Name() != cfg.TrustDomain {
			panic(fmt.Sprintf("assertion: EnvoyPeer: TrustDomain %q is not a trust domain name", cfg.TrustDomain))
		}
		p.td = td
	}
	if len(p.ids) == 0 && p.td.IsZero() {
		panic("assertion: EnvoyPeer: set Identities or TrustDomain")
	}
	for id, name := range p.ids {
		if _, err := spiffeid.FromString(id); err != nil || name == "" {
			panic(fmt.Sprintf("assertion: EnvoyPeer: Identities[%q] = %q: want a SPIFFE ID and a service name", id, name))
		}
	}
	return p
}

type envoyPeer struct {
	trusted []netip.Prefix
	ids     map[string]string
	td      spiffeid.TrustDomain
	by      string
}

func (p *envoyPeer) Service(r *http.Request) (string, error) {
	vals := r.Header.Values(xfcc.Header)
	if !peer.Trusted(r.RemoteAddr, p.trusted) {
		if len(vals) > 0 {
			return "", fmt.Errorf("%w: %s from %s", ErrForgedMeshHeader, xfcc.Header, r.RemoteAddr)
		}
		return "", ErrNoPeer
	}
	switch len(vals) {
	case 0:
		return "", ErrNoPeer
	case 1:
	default:
		return "", fmt.Errorf("%w: %s repeated", ErrUnknownPeer, xfcc.Header)
	}
	e, err := xfcc.Last(vals[0])
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrUnknownPeer, err)
	}
	if p.by != "" && e.By != p.by {
		return "", fmt.Errorf("%w: last element By %q, want %q", ErrUnknownPeer, truncate(e.By), p.by)
	}
	if len(e.URI) != 1 {
		return "", fmt.Errorf("%w: last element has %d URI SANs, want 1", ErrUnknownPeer, len(e.URI))
	}
	uri := e.URI[0]
	if name, ok := p.ids[uri]; ok {
		return name, nil
	}
	if !p.td.IsZero() {
		id, err := certs.ParseIDString(uri, p.td)
		if err == nil && id.Kind == certs.Service {
			return id.Name, nil
		}
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownPeer, truncate(uri))
}

// LinkerdHeader is the request header in which Linkerd's inbound proxy
// names the meshed client it authenticated.
const LinkerdHeader = "L5d-Client-Id"

// LinkerdConfig configures LinkerdPeer.
type LinkerdConfig struct {
	// TrustedProxies are the direct peers trusted to set l5d-client-id: the
	// local linkerd-proxy. Since Linkerd 2.11 the inbound proxy connects to
	// the application's original destination, so the application sees the
	// pod's own IP (list <pod IP>/32, from the downward API); before 2.11
	// it connected over loopback (127.0.0.1/32). Required.
	TrustedProxies []netip.Prefix
	// Identities maps Linkerd identities to service names, e.g.
	// "orders.shop.serviceaccount.identity.linkerd.cluster.local": "orders"
	// (see LinkerdIdentity). Required.
	Identities map[string]string
}

// LinkerdPeer returns the Peer of a server behind a Linkerd proxy, which
// terminates mTLS and names the client in l5d-client-id, of the form
// <serviceaccount>.<namespace>.serviceaccount.identity.<control-plane-namespace>.<trust-domain>.
//
// The proxy strips any l5d-client-id a client sends and sets it only for
// mTLS-authenticated meshed clients, so the header is honoured only when the
// direct peer is in TrustedProxies; from any other peer its presence is
// ErrForgedMeshHeader. It must appear once and be listed in Identities.
// The application port must not be reachable except through the proxy.
//
// It panics on a configuration error.
func LinkerdPeer(cfg *LinkerdConfig) Peer {
	p := &linkerdPeer{trusted: mustPrefixes("LinkerdPeer", cfg.TrustedProxies), ids: cfg.Identities}
	if len(p.ids) == 0 {
		panic("assertion: LinkerdPeer: Identities is required")
	}
	for id, name := range p.ids {
		if !isLinkerdIdentity(id) || name == "" {
			panic(fmt.Sprintf("assertion: LinkerdPeer: Identities[%q] = %q: want <sa>.<ns>.serviceaccount.identity.<ns>.<trust-domain> and a service name", id, name))
		}
	}
	return p
}

// LinkerdIdentity returns the Linkerd identity of a service account:
// <sa>.<ns>.serviceaccount.identity.<controlPlaneNS>.<trustDomain>, e.g.
// LinkerdIdentity("orders", "shop", "linkerd", "cluster.local").
func LinkerdIdentity(serviceAccount, namespace, controlPlaneNS, trustDomain string) string {
	return serviceAccount + "." + namespace + ".serviceaccount.identity." + controlPlaneNS + "." + trustDomain
}

type linkerdPeer struct {
	trusted []netip.Prefix
	ids     map[string]string
}

func (p *linkerdPeer) Service(r *http.Request) (string, error) {
	vals := r.Header.Values(LinkerdHeader)
	if !peer.Trusted(r.RemoteAddr, p.trusted) {
		if len(vals) > 0 {
			return "", fmt.Errorf("%w: %s from %s", ErrForgedMeshHeader, LinkerdHeader, r.RemoteAddr)
		}
		return "", ErrNoPeer
	}
	switch len(vals) {
	case 0:
		return "", ErrNoPeer
	case 1:
	default:
		return "", fmt.Errorf("%w: %s repeated", ErrUnknownPeer, LinkerdHeader)
	}
	if name, ok := p.ids[vals[0]]; ok {
		return name, nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownPeer, truncate(vals[0]))
}

// isLinkerdIdentity checks the shape
// <sa>.<ns>.serviceaccount.identity.<ns>.<trust-domain>: lower-case DNS
// labels, at least two on either side of ".serviceaccount.identity.".
func isLinkerdIdentity(s string) bool {
	const mid = ".serviceaccount.identity."
	i := strings.Index(s, mid)
	if i < 0 || len(s) > 253 {
		return false
	}
	before, after := strings.Split(s[:i], "."), strings.Split(s[i+len(mid):], ".")
	if len(before) < 2 || len(after) < 2 {
		return false
	}
	for _, l := range append(before, after...) {
		if l == "" || len(l) > 63 {
			return false
		}
		for j := 0; j < len(l); j++ {
			c := l[j]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func mustPrefixes(who string, in []netip.Prefix) []netip.Prefix {
	if len(in) == 0 {
		panic("assertion: " + who + ": TrustedProxies is required")
	}
	out := make([]netip.Prefix, len(in))
	for i, p := range in {
		if !p.IsValid() || p.Addr().Is4In6() {
			panic(fmt.Sprintf("assertion: %s: trusted prefix %d (%s) is invalid; write IPv4 as IPv4", who, i, p))
		}
		out[i] = p.Masked()
	}
	return slices.Clip(out)
}
