package catalog

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/tenantry/tenantry/tenant"
)

var (
	tierRe       = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	regionRe     = regexp.MustCompile(`^([a-z][a-z0-9-]{0,31})?$`)
	clusterRe    = regexp.MustCompile(`^[a-z][a-z0-9-]{0,47}$`)
	labelKeyRe   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$`)
	maxLabels    = 64
	maxLabelVal  = 256
	maxNameBytes = 200
)

func isUUID(s string) bool { return tenant.IsID(s) }

// NormalizeDomain returns the canonical form of a custom domain: lower case,
// without one trailing dot. It refuses anything that is not a DNS host name
// of at least two labels (IP addresses, ports, non-ASCII: give IDNs in their
// punycode "xn--" form), so that a stored domain can be matched against a
// normalised Host header byte for byte.
func NormalizeDomain(d string) (string, error) {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	bad := func(reason string) (string, error) {
		return "", &ValidationError{Field: "domain", Reason: reason}
	}
	if d == "" {
		return bad("empty")
	}
	if len(d) > 253 {
		return bad("longer than 253 characters")
	}
	if _, err := netip.ParseAddr(d); err == nil {
		return bad("an IP address cannot be a tenant domain")
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return bad("must have at least two labels, like acme.example.com")
	}
	for _, l := range labels {
		if l == "" {
			return bad("empty label")
		}
		if len(l) > 63 {
			return bad("label longer than 63 characters")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return bad("label starts or ends with a hyphen")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				if c >= 0x80 {
					return bad("non-ASCII; give an internationalised domain in its punycode (xn--) form")
				}
				return bad(fmt.Sprintf("character %q not allowed", c))
			}
		}
	}
	return d, nil
}

func validateSlugField(slug string) error {
	if err := tenant.ValidateSlug(slug); err != nil {
		return &ValidationError{Field: "slug", Reason: strings.TrimPrefix(err.Error(), tenant.ErrInvalidSlug.Error()+": ")}
	}
	return nil
}

func validateDisplayName(s string) error {
	if len(s) > maxNameBytes {
		return &ValidationError{Field: "display_name", Reason: fmt.Sprintf("longer than %d bytes", maxNameBytes)}
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return &ValidationError{Field: "display_name", Reason: "contains control characters or invalid UTF-8"}
		}
	}
	return nil
}

func validateTier(s string) error {
	if !tierRe.MatchString(s) {
		return &ValidationError{Field: "tier", Reason: "must be 1-32 lower-case letters, digits or hyphens, starting with a letter"}
	}
	return nil
}

func validateRegion(s string) error {
	if !regionRe.MatchString(s) {
		return &ValidationError{Field: "region", Reason: "must be up to 32 lower-case letters, digits or hyphens, starting with a letter"}
	}
	return nil
}

func validateLabels(field string, labels map[string]string) error {
	if len(labels) > maxLabels {
		return &ValidationError{Field: field, Reason: fmt.Sprintf("more than %d labels", maxLabels)}
	}
	for k, v := range labels {
		if !labelKeyRe.MatchString(k) {
			return &ValidationError{Field: field, Reason: fmt.Sprintf("key %q must be 1-63 characters of letters, digits, '.', '_', '/', '-'", truncate(k, 70))}
		}
		if len(v) > maxLabelVal {
			return &ValidationError{Field: field, Reason: fmt.Sprintf("value of %q longer than %d bytes", k, maxLabelVal)}
		}
		for _, r := range v {
			if r < 0x20 || r == 0x7f || r == utf8.RuneError {
				return &ValidationError{Field: field, Reason: fmt.Sprintf("value of %q contains control characters or invalid UTF-8", k)}
			}
		}
	}
	return nil
}

func validatePlacement(p tenant.Placement) error {
	if p == (tenant.Placement{}) {
		return nil // unplaced
	}
	if !p.Model.Valid() {
		return &ValidationError{Field: "placement.model", Reason: "must be one of shared, schema, database, sharded"}
	}
	if p.Cluster != "" && !clusterRe.MatchString(p.Cluster) {
		return &ValidationError{Field: "placement.cluster", Reason: "not a valid cluster name"}
	}
	for field, v := range map[string]string{"placement.database": p.Database, "placement.schema": p.Schema} {
		if len(v) > 63 {
			return &ValidationError{Field: field, Reason: "longer than 63 bytes"}
		}
		for i := 0; i < len(v); i++ {
			c := v[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				return &ValidationError{Field: field, Reason: "only lower-case letters, digits and underscores are allowed"}
			}
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
