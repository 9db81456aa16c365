package resolve

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"slices"

	"github.com/tenantry/tenantry/internal/peer"
)

// DefaultHeader is the header Header reads when given no name.
const DefaultHeader = "X-Tenant-ID"

// Header returns the strategy that reads the tenant from a request header
// (DefaultHeader if name is ""): a tenant slug, or a tenant ID in canonical
// lower-case UUID form. A value of UUID form is always taken as an ID.
//
// # Trust
//
// Any client can send any header, so the header is honoured only when the
// request's direct peer, Request.RemoteAddr, is inside one of the trusted
// prefixes: the gateways or services that set the header themselves and
// strip or overwrite the one their own clients sent. X-Forwarded-For and
// similar headers are never consulted to find the peer; if a middleware
// earlier in the chain rewrites RemoteAddr from such a header (chi's
// RealIP, for one), the trust decision is only as good as that rewrite, so
// do not combine them. IPv4-mapped IPv6 peers are compared as IPv4. A
// RemoteAddr that is not ip:port (a Unix socket listener) is never trusted.
//
// The header's presence decides, not its value:
//
//   - absent: no identifier, whoever the peer is;
//   - present, from a peer outside the prefixes: tenant_forbidden (403),
//     never silently ignored, so a misrouted or forged request is visible;
//   - present more than once, from a trusted peer: tenant_ambiguous (400);
//   - present once with a value that is neither a valid slug nor a
//     lower-case UUID: tenant_invalid (400). Values are not trimmed, folded
//     or decoded: "ACME", "acme " (inner), "acme,globex", quotes, SQL, NUL,
//     CR/LF, invalid UTF-8 and Unicode look-alikes are all malformed.
//
// New fails if the name is not a valid header name, if no prefix is given
// (to trust every peer, say so: 0.0.0.0/0 and ::/0), or if a prefix is
// invalid or IPv4-mapped IPv6 (write it as IPv4).
func Header(name string, trusted []netip.Prefix) Strategy {
	return &headerStrategy{base: base{name: StrategyHeader}, header: name, trusted: slices.Clone(trusted)}
}

type headerStrategy struct {
	base
	header  string // canonical form after prepare
	trusted []netip.Prefix
}

func (s *headerStrategy) prepare() error {
	if s.header == "" {
		s.header = DefaultHeader
	}
	if !validHeaderName(s.header) {
		return fmt.Errorf("%q is not a valid header name", s.header)
	}
	s.setSource("header " + s.header)
	s.header = textproto.CanonicalMIMEHeaderKey(s.header)
	var err error
	s.trusted, err = checkPrefixes(s.trusted)
	return err
}

func (s *headerStrategy) find(r *http.Request) (key, *Problem) {
	vals := r.Header[s.header]
	if len(vals) == 0 {
		return key{}, nil
	}
	if !peer.Trusted(r.RemoteAddr, s.trusted) {
		return key{}, s.p.forbidden
	}
	if len(vals) > 1 {
		return key{}, s.p.ambiguous
	}
	k, ok := slugOrID(vals[0])
	if !ok {
		return key{}, s.p.invalid
	}
	return k, nil
}

// checkPrefixes validates and masks a trusted-peer list.
func checkPrefixes(prefixes []netip.Prefix) ([]netip.Prefix, error) {
	if len(prefixes) == 0 {
		return nil, errors.New("no trusted prefix; list the peers trusted to set the header")
	}
	out := make([]netip.Prefix, len(prefixes))
	for i, p := range prefixes {
		if !p.IsValid() {
			return nil, fmt.Errorf("trusted prefix %d is invalid", i)
		}
		if p.Addr().Is4In6() {
			return nil, fmt.Errorf("trusted prefix %s is IPv4-mapped IPv6; write it as IPv4", p)
		}
		out[i] = p.Masked()
	}
	return out, nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c < 0x80 && c > 0x20 && c != 0x7f && !isSeparator(c):
		default:
			return false
		}
	}
	return true
}

func isSeparator(c byte) bool {
	switch c {
	case '(', ')', '<', '>', '@', ',', ';', ':', '\\', '"', '/', '[', ']', '?', '=', '{', '}':
		return true
	}
	return false
}
