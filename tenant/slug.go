package tenant

import (
	"errors"
	"fmt"
)

// MaxSlugLen is the longest slug. It is shorter than a DNS label (63) so that
// names derived from a slug (schemas, databases, roles) fit PostgreSQL's
// 63-byte identifier limit with a prefix.
const MaxSlugLen = 48

// ErrInvalidSlug is returned (wrapped) for any slug that breaks the rules.
var ErrInvalidSlug = errors.New("invalid tenant slug")

// reservedSlugs cannot be taken by a tenant: they are commonly used as
// infrastructure subdomains, and a tenant owning one would capture its traffic.
var reservedSlugs = map[string]bool{
	"www": true, "api": true, "admin": true, "app": true, "mail": true,
	"localhost": true, "tenantry": true, "public": true, "default": true,
	"postgres": true, "template0": true, "template1": true,
}

// ValidateSlug reports whether s is a valid tenant slug: a DNS label of 1 to
// MaxSlugLen characters from [a-z0-9-], starting with a letter, not ending in
// a hyphen, without "--" (which IDNA reserves, as in "xn--"), and not
// reserved. It is the one validation of slugs used everywhere; it never
// normalises, so an upper-case or padded slug is an error, not a match.
//
// The error names the rule that failed and, for long input, not the input
// itself, so it is safe to return to a client.
func ValidateSlug(s string) error {
	if len(s) == 0 {
		return fmt.Errorf("%w: empty", ErrInvalidSlug)
	}
	if len(s) > MaxSlugLen {
		return fmt.Errorf("%w: longer than %d characters", ErrInvalidSlug, MaxSlugLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9':
			if i == 0 {
				return fmt.Errorf("%w: must start with a letter", ErrInvalidSlug)
			}
		case c == '-':
			if i == 0 {
				return fmt.Errorf("%w: must start with a letter", ErrInvalidSlug)
			}
			if i == len(s)-1 {
				return fmt.Errorf("%w: must not end with a hyphen", ErrInvalidSlug)
			}
			if s[i-1] == '-' {
				return fmt.Errorf("%w: must not contain \"--\"", ErrInvalidSlug)
			}
		default:
			return fmt.Errorf("%w: only lower-case letters, digits and hyphens are allowed", ErrInvalidSlug)
		}
	}
	if reservedSlugs[s] {
		return fmt.Errorf("%w: %q is reserved", ErrInvalidSlug, s)
	}
	if IsID(s) {
		return fmt.Errorf("%w: must not look like a UUID (tenant IDs are UUIDs)", ErrInvalidSlug)
	}
	return nil
}

// IsReserved reports whether s is a reserved name (www, api, admin, ...)
// that no tenant can take, so a resolver may treat it as "no tenant here".
func IsReserved(s string) bool { return reservedSlugs[s] }

// IsID reports whether s is a tenant ID in canonical form: a UUID of
// 8-4-4-4-12 lower-case hex digits. Slugs never have that shape, so a value
// can always be told apart as an ID or a slug. It does not allocate.
func IsID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// IsValidSlug is ValidateSlug as a predicate; it does not allocate.
func IsValidSlug(s string) bool {
	if len(s) == 0 || len(s) > MaxSlugLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' || c == '-':
			if i == 0 || (c == '-' && (i == len(s)-1 || s[i-1] == '-')) {
				return false
			}
		default:
			return false
		}
	}
	return !reservedSlugs[s] && !IsID(s)
}
