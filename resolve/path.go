package resolve

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/tenantry/tenantry/tenant"
)

// DefaultPathPrefix is the prefix PathPrefix uses when given "".
const DefaultPathPrefix = "/t/"

// PathPrefix returns the strategy that takes the tenant slug from the path
// segment after prefix (DefaultPathPrefix if ""): "/t/acme/api/v1/notes" is
// tenant "acme". The middleware then serves the request with the prefix and
// slug removed from URL.Path and URL.RawPath ("/api/v1/notes"; "/t/acme" and
// "/t/acme/" become "/"), as http.StripPrefix does; RequestURI is left as
// received. Resolve does not rewrite anything.
//
// A path that does not start with prefix is no identifier. One that does
// must continue with a valid slug, spelled literally, followed by "/" or
// the end of the path; otherwise the request fails with tenant_invalid
// (400). That covers an empty slug ("/t/", "/t//x"), upper case, a
// percent-encoded slug or slash ("/t/%61cme", "/t/acme%2Fx": the decoded and
// the raw path must agree on where the slug ends) and traversal ("/t/../x",
// "/t/%2e%2e/x"). The rest of the path must have no "." or ".." segment,
// decoded or not, so that the rewritten path cannot climb out of the
// tenant's tree once a router cleans it.
//
// The prefix must start and end with "/" and hold only unreserved URL
// characters, without dot segments; New fails otherwise.
//
// With FirstMatch, a request matched by an earlier strategy is not
// rewritten; put PathPrefix first, or use RequireAgreement, if both can
// match.
func PathPrefix(prefix string) Strategy {
	return &pathStrategy{base: base{name: StrategyPathPrefix}, prefix: prefix}
}

type pathStrategy struct {
	base
	prefix  string
	encoded *Problem
	dots    *Problem
}

func (s *pathStrategy) prepare() error {
	if s.prefix == "" {
		s.prefix = DefaultPathPrefix
	}
	s.setSource("path")
	s.encoded = ErrInvalid.WithDetail("path: the tenant segment must not be percent-encoded")
	s.dots = ErrInvalid.WithDetail("path: dot segments are not allowed")
	p := s.prefix
	if len(p) < 2 || p[0] != '/' || p[len(p)-1] != '/' {
		return fmt.Errorf("prefix %q must start and end with /", p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~/", c) >= 0) {
			return fmt.Errorf("prefix %q has a character other than letters, digits and -._~/", p)
		}
	}
	if hasDotSegment(p) || strings.Contains(p, "//") {
		return fmt.Errorf("prefix %q has an empty or dot segment", p)
	}
	return nil
}

func (s *pathStrategy) find(r *http.Request) (key, *Problem) {
	if r.URL == nil {
		return key{}, nil
	}
	p := r.URL.Path
	if !strings.HasPrefix(p, s.prefix) {
		return key{}, nil
	}
	slug := p[len(s.prefix):]
	if i := strings.IndexByte(slug, '/'); i >= 0 {
		slug = slug[:i]
	}
	if !tenant.IsValidSlug(slug) {
		return key{}, s.p.invalid
	}
	cut := len(s.prefix) + len(slug)
	if raw := r.URL.RawPath; raw != "" {
		if len(raw) < cut || raw[:cut] != p[:cut] || len(raw) > cut && raw[cut] != '/' {
			return key{}, s.encoded
		}
	}
	if hasDotSegment(p[cut:]) {
		return key{}, s.dots
	}
	return key{kind: keySlug, value: slug, cut: cut}, nil
}

// hasDotSegment reports whether the slash-separated path has a "." or ".."
// segment.
func hasDotSegment(p string) bool {
	for p != "" {
		i := strings.IndexByte(p, '/')
		seg := p
		if i >= 0 {
			seg, p = p[:i], p[i+1:]
		} else {
			p = ""
		}
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// stripPath returns the path with the first cut bytes removed, "/" if
// nothing is left.
func stripPath(p string, cut int) string {
	if len(p) <= cut {
		return "/"
	}
	return p[cut:]
}
