package resolve

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tenantry/tenantry/internal/peer"
	"github.com/tenantry/tenantry/internal/xfcc"
	"github.com/tenantry/tenantry/tenant"
)

// tenantPath is the SPIFFE ID path under which a workload identity names a
// tenant: spiffe://<trust-domain>/tenant/<slug>.
const tenantPath = "/tenant"

// uriClass is what one URI SAN says about the tenant.
type uriClass uint8

const (
	uriOther     uriClass = iota // not a SPIFFE ID, or not a tenant path
	uriTenant                    // a tenant ID in our trust domain
	uriForeign                   // a tenant ID in another trust domain
	uriMalformed                 // a broken SPIFFE ID or tenant path
)

func classifyURI(u string, td spiffeid.TrustDomain) (string, uriClass) {
	const scheme = "spiffe://"
	if len(u) < len(scheme) || !strings.EqualFold(u[:len(scheme)], scheme) {
		return "", uriOther
	}
	id, err := spiffeid.FromString(u) // also refuses an upper-case scheme
	if err != nil {
		return "", uriMalformed
	}
	p := id.Path()
	if p != tenantPath && !strings.HasPrefix(p, tenantPath+"/") {
		return "", uriOther
	}
	if id.TrustDomain() != td {
		return "", uriForeign
	}
	slug := strings.TrimPrefix(p, tenantPath+"/")
	if p == tenantPath || !tenant.IsValidSlug(slug) {
		return "", uriMalformed
	}
	return slug, uriTenant
}

// tenantFromURIs finds the one tenant among a certificate's URI SANs: ""
// if none names a tenant; tenant_invalid for a malformed SPIFFE ID or tenant
// path; tenant_forbidden for a tenant ID of another trust domain;
// tenant_ambiguous for more than one tenant ID, even the same one twice.
func tenantFromURIs(uris []string, td spiffeid.TrustDomain, p *sourceProblems) (string, *Problem) {
	slug := ""
	n := 0
	for _, u := range uris {
		s, class := classifyURI(u, td)
		switch class {
		case uriMalformed:
			return "", p.invalid
		case uriForeign:
			return "", p.forbidden
		case uriTenant:
			slug = s
			n++
		}
	}
	if n > 1 {
		return "", p.ambiguous
	}
	return slug, nil
}

// ClientCert returns the strategy that takes the tenant from the verified
// mTLS client certificate: exactly one URI SAN of the form
// spiffe://<trustDomain>/tenant/<slug>.
//
// # Trust
//
// The certificate is trusted only as far as the TLS server verified it: the
// leaf (Request.TLS.PeerCertificates[0]) must head a chain in
// Request.TLS.VerifiedChains, which crypto/tls fills only when the server's
// tls.Config has ClientAuth VerifyClientCertIfGiven or
// RequireAndVerifyClientCert and ClientCAs that issue tenant identities
// only. Which tenant an identity may name is the CA's policy; this
// strategy checks the form and the trust domain.
//
//   - no TLS, or no client certificate: no identifier;
//   - a certificate with no spiffe://<trustDomain>/tenant/... URI SAN (a
//     service identity, say): no identifier;
//   - an unverified certificate that carries a tenant URI: tenant_forbidden
//     (403);
//   - a tenant URI in another trust domain: tenant_forbidden (403);
//   - a malformed SPIFFE ID, "/tenant" without a slug, a nested path or an
//     invalid slug: tenant_invalid (400);
//   - two tenant URIs: tenant_ambiguous (400).
//
// Parsing uses go-spiffe's spiffeid, which refuses upper-case trust domains,
// percent-encoding, dot segments, queries and fragments. New fails if
// trustDomain is not a valid SPIFFE trust domain name.
func ClientCert(trustDomain string) Strategy {
	return &clientCertStrategy{base: base{name: StrategyClientCert}, tdName: trustDomain}
}

type clientCertStrategy struct {
	base
	tdName string
	td     spiffeid.TrustDomain
}

func (s *clientCertStrategy) prepare() error {
	s.setSource("client certificate")
	td, err := parseTrustDomain(s.tdName)
	s.td = td
	return err
}

func (s *clientCertStrategy) find(r *http.Request) (key, *Problem) {
	cs := r.TLS
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return key{}, nil
	}
	leaf := cs.PeerCertificates[0]
	uris := make([]string, len(leaf.URIs))
	for i, u := range leaf.URIs {
		uris[i] = u.String()
	}
	slug, p := tenantFromURIs(uris, s.td, &s.p)
	verified := len(cs.VerifiedChains) > 0 && len(cs.VerifiedChains[0]) > 0 && cs.VerifiedChains[0][0].Equal(leaf)
	switch {
	case !verified && (p != nil || slug != ""):
		return key{}, s.p.forbidden
	case p != nil:
		return key{}, p
	case slug == "":
		return key{}, nil
	}
	return key{kind: keySlug, value: slug}, nil
}

// MeshXFCC returns the strategy that takes the tenant from the
// x-forwarded-client-cert (XFCC) header of a service-mesh sidecar (Envoy,
// Istio) that terminated mTLS in front of this server: the URI fields of the
// header's last element, read like ClientCert reads a certificate's URI
// SANs (spiffe://<trustDomain>/tenant/<slug>, exactly one).
//
// # Trust
//
// The header is a claim by whoever sent the request, so it is honoured only
// when the direct peer, Request.RemoteAddr, is inside one of the trusted
// prefixes: the sidecar, normally 127.0.0.1/32 and ::1/128 (or the pod
// address). Beyond that, the sidecar must own the header: configure Envoy's
// forward_client_cert_details as SANITIZE_SET (the header holds only what
// the sidecar verified) or APPEND_FORWARD (the sidecar appends its element
// last). Only the last element is read, because it is the only one the
// sidecar wrote; earlier elements come from further hops and, from the
// sidecar's point of view, from the client, and are only checked for
// syntax. Never use FORWARD_ONLY or ALWAYS_FORWARD_ONLY with this strategy:
// they pass the client's header through unchanged. The server's listener
// must not be reachable from anything but the sidecar, or the trusted
// prefixes must not cover those other peers.
//
//   - header absent: no identifier, whoever the peer is;
//   - present, from a peer outside the prefixes: tenant_forbidden (403);
//   - present more than once, from a trusted peer: tenant_ambiguous (400);
//   - malformed (see internal/xfcc: quoting, control bytes, invalid UTF-8,
//     empty elements, repeated single-valued keys): tenant_invalid (400);
//   - last element with no tenant URI: no identifier;
//   - otherwise as for ClientCert: foreign trust domain 403, malformed
//     tenant URI 400, two tenant URIs 400.
//
// New fails if there is no trusted prefix or trustDomain is invalid.
func MeshXFCC(trusted []netip.Prefix, trustDomain string) Strategy {
	return &xfccStrategy{base: base{name: StrategyMeshXFCC}, trusted: slices.Clone(trusted), tdName: trustDomain}
}

type xfccStrategy struct {
	base
	trusted []netip.Prefix
	tdName  string
	td      spiffeid.TrustDomain
}

func (s *xfccStrategy) prepare() error {
	s.setSource("header " + xfcc.Header)
	var err error
	if s.trusted, err = checkPrefixes(s.trusted); err != nil {
		return err
	}
	s.td, err = parseTrustDomain(s.tdName)
	return err
}

func (s *xfccStrategy) find(r *http.Request) (key, *Problem) {
	vals := r.Header[xfcc.Header]
	if len(vals) == 0 {
		return key{}, nil
	}
	if !peer.Trusted(r.RemoteAddr, s.trusted) {
		return key{}, s.p.forbidden
	}
	if len(vals) > 1 {
		return key{}, s.p.ambiguous
	}
	e, err := xfcc.Last(vals[0])
	if err != nil {
		return key{}, s.p.invalid.WithCause(err)
	}
	slug, p := tenantFromURIs(e.URI, s.td, &s.p)
	switch {
	case p != nil:
		return key{}, p
	case slug == "":
		return key{}, nil
	}
	return key{kind: keySlug, value: slug}, nil
}

// parseTrustDomain accepts a bare trust domain name ("example.org"), not a
// SPIFFE ID.
func parseTrustDomain(name string) (spiffeid.TrustDomain, error) {
	if name == "" || strings.Contains(name, "/") {
		return spiffeid.TrustDomain{}, fmt.Errorf("trust domain %q must be a bare name such as example.org", name)
	}
	td, err := spiffeid.TrustDomainFromString(name)
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("trust domain %q: %w", name, err)
	}
	return td, nil
}
