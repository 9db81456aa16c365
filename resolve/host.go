package resolve

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/tenantry/tenantry/tenant"
)

// maxHostLen is the longest host name, in its dotted text form without the
// trailing dot.
const maxHostLen = 253

// maxLabelLen is the longest DNS label.
const maxLabelLen = 63

// hostClass is what a Host header turned out to be.
type hostClass uint8

const (
	hostNone    hostClass = iota // empty
	hostName                     // a well-formed DNS host name
	hostIP                       // an IP literal: never a tenant
	hostInvalid                  // malformed
)

// normalizeHost turns a request's Host into the form Lookup.ByDomain
// expects: lower-case, without port and without one trailing dot. It
// allocates only when the host has upper-case letters.
//
// A host name is 1 to 253 bytes of dot-separated labels, each 1 to 63 bytes
// of ASCII letters, digits and hyphens that neither starts nor ends with a
// hyphen. Anything else is hostInvalid: empty labels ("a..b", ".a"), a
// second trailing dot, underscores, percent signs, spaces, control bytes,
// any non-ASCII byte (Unicode look-alikes such as a Cyrillic "а" included;
// internationalised names arrive as punycode "xn--" labels, which are valid
// host labels), an unbracketed colon or a port that is not a number up to
// 65535. A bracketed IPv6 literal, and a name whose last label is all
// digits (an IPv4 address, or a name no DNS could serve), is hostIP.
func normalizeHost(h string) (string, hostClass) {
	if h == "" {
		return "", hostNone
	}
	if h[0] == '[' {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", hostInvalid
		}
		if rest := h[end+1:]; rest != "" && (rest[0] != ':' || !isPort(rest[1:])) {
			return "", hostInvalid
		}
		if a, err := netip.ParseAddr(h[1:end]); err != nil || !a.Is6() {
			return "", hostInvalid
		}
		return "", hostIP
	}
	name := h
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		if !isPort(h[i+1:]) {
			return "", hostInvalid
		}
		name = h[:i]
	}
	name = strings.TrimSuffix(name, ".") // one trailing dot only
	if name == "" || len(name) > maxHostLen {
		return "", hostInvalid
	}
	upper := false
	labelStart := 0
	digits := true // the current label is all digits so far
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			n := i - labelStart
			if n == 0 || n > maxLabelLen || name[labelStart] == '-' || name[i-1] == '-' {
				return "", hostInvalid
			}
			if i == len(name) {
				break
			}
			labelStart = i + 1
			digits = true
			continue
		}
		switch c := name[i]; {
		case c >= 'a' && c <= 'z', c == '-':
			digits = false
		case c >= 'A' && c <= 'Z':
			digits = false
			upper = true
		case c >= '0' && c <= '9':
		default:
			return "", hostInvalid
		}
	}
	if digits {
		return "", hostIP
	}
	if upper {
		name = strings.ToLower(name)
	}
	return name, hostName
}

// isPort reports whether s is a port number: empty (as RFC 3986 allows) or
// 1 to 5 digits up to 65535.
func isPort(s string) bool {
	if len(s) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n <= 65535
}

// Host returns the strategy that looks the request's host up as a domain
// (Lookup.ByDomain): the platform's own hosts and tenants' custom domains.
//
// It reads Request.Host only: the Host header in HTTP/1.1, :authority in
// HTTP/2 and HTTP/3. It never reads X-Forwarded-Host or Forwarded; behind a
// proxy, have the proxy pass the original Host through. The host is
// normalised as the package documentation describes under Hosts:
// case-insensitive, port and one trailing dot removed. A malformed host
// fails the request with tenant_invalid (400). An IP literal is no
// identifier.
//
// A well-formed host that no tenant has is not a failure of the strategy, so
// that the platform's own host can carry an identifier found by a later
// strategy (a path prefix, a header). If no other strategy finds an
// identifier, the request fails with tenant_unknown (404) rather than
// tenant_missing. For the same reason an unknown host does not count as an
// identifier in RequireAgreement mode.
func Host() Strategy {
	return &hostStrategy{base: base{name: StrategyHost}}
}

type hostStrategy struct {
	base
	// skip holds hosts that are never a tenant's domain: the base domains
	// of the resolver's Subdomain strategies (filled in by New).
	skip []string
}

func (s *hostStrategy) prepare() error {
	s.setSource("host")
	return nil
}

func (s *hostStrategy) find(r *http.Request) (key, *Problem) {
	host, class := normalizeHost(r.Host)
	switch class {
	case hostName:
		// A single-label host ("localhost") can never be a custom domain
		// (the catalog requires two labels), and a base domain of the
		// Subdomain strategy is the service itself: neither names a tenant.
		if strings.IndexByte(host, '.') < 0 {
			return key{}, nil
		}
		for _, b := range s.skip {
			if host == b {
				return key{}, nil
			}
		}
		return key{kind: keyDomain, value: host}, nil
	case hostInvalid:
		return key{}, s.p.invalid
	}
	return key{}, nil
}

// Subdomain returns the strategy that takes the tenant slug from the first
// label of a host directly under one of baseDomains: with base "localhost",
// "acme.localhost" is tenant "acme"; with base "tenants.example.com",
// "acme.tenants.example.com" is tenant "acme".
//
// It reads Request.Host only, normalised as for Host. A host that is not
// under a base domain, or is a base domain itself, is no identifier; the
// longest matching base wins. A host strictly under a base domain belongs to
// this strategy: its part before the base must be exactly one label that is
// a valid tenant slug, or the request fails with tenant_invalid (400). That
// includes nested names ("a.b.localhost"), punycode labels ("xn--..."),
// reserved slugs ("www", "api": keep infrastructure hosts out of the base
// domain), and every malformed host. Lower-case hosts are the norm;
// upper-case ones are lower-cased (hosts are case-insensitive), at the cost
// of an allocation.
//
// Base domains are normalised like hosts; New fails unless there is at
// least one and each is a valid host name without a port.
func Subdomain(baseDomains ...string) Strategy {
	return &subdomainStrategy{base: base{name: StrategySubdomain}, bases: slices.Clone(baseDomains)}
}

type subdomainStrategy struct {
	base
	bases  []string // normalised, longest first
	nested *Problem
}

func (s *subdomainStrategy) prepare() error {
	s.setSource("subdomain")
	s.nested = ErrInvalid.WithDetail("subdomain: the tenant must be a single label under the base domain")
	if len(s.bases) == 0 {
		return errors.New("no base domain")
	}
	for i, b := range s.bases {
		n, class := normalizeHost(b)
		if class != hostName || strings.Contains(b, ":") {
			return fmt.Errorf("base domain %q is not a host name", b)
		}
		s.bases[i] = n
	}
	slices.SortFunc(s.bases, func(a, b string) int { return len(b) - len(a) })
	s.bases = slices.Compact(s.bases)
	return nil
}

func (s *subdomainStrategy) find(r *http.Request) (key, *Problem) {
	host, class := normalizeHost(r.Host)
	switch class {
	case hostInvalid:
		return key{}, s.p.invalid
	case hostName:
	default:
		return key{}, nil
	}
	for _, b := range s.bases {
		n := len(host) - len(b) - 1 // length of the part before ".base"
		if n <= 0 || host[n] != '.' || host[n+1:] != b {
			continue
		}
		label := host[:n]
		if strings.IndexByte(label, '.') >= 0 {
			return key{}, s.nested
		}
		if !tenant.IsValidSlug(label) {
			return key{}, s.p.invalid
		}
		return key{kind: keySlug, value: label}, nil
	}
	return key{}, nil
}
