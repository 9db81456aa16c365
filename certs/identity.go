package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/tenantry/tenantry/tenant"
)

// Kind is what a workload identity stands for. It is the first segment of the
// SPIFFE ID's path.
type Kind string

const (
	// Service is a Tenantry service or any other workload calling one:
	// spiffe://<trust-domain>/service/<name>.
	Service Kind = "service"
	// Tenant is a client bound to one tenant, for silo deployments where the
	// tenant itself holds a certificate: spiffe://<trust-domain>/tenant/<slug>.
	Tenant Kind = "tenant"
	// Admin is an operator of the admin API: spiffe://<trust-domain>/admin/<name>.
	Admin Kind = "admin"
)

// Valid reports whether k is one of the known kinds.
func (k Kind) Valid() bool {
	switch k {
	case Service, Tenant, Admin:
		return true
	}
	return false
}

// MaxNameLen is the longest service or admin name.
const MaxNameLen = 63

var (
	// ErrNoIdentity is returned for a certificate without exactly one
	// well-formed SPIFFE URI SAN.
	ErrNoIdentity = errors.New("certificate carries no SPIFFE ID")
	// ErrForeignTrustDomain is returned for a SPIFFE ID of another trust
	// domain than the one expected.
	ErrForeignTrustDomain = errors.New("SPIFFE ID is not in the trust domain")
	// ErrInvalidIdentity is returned for a SPIFFE ID in the trust domain whose
	// path is not /service/<name>, /tenant/<slug> or /admin/<name>, or for a
	// name that breaks the naming rules.
	ErrInvalidIdentity = errors.New("invalid Tenantry identity")
)

// Identity is a workload identity in Tenantry's SPIFFE ID scheme.
type Identity struct {
	// Kind is what the identity stands for.
	Kind Kind
	// Name is the service name, the tenant slug or the admin name.
	Name string
	// SPIFFEID is the full SPIFFE ID, e.g. spiffe://example.org/service/billing.
	SPIFFEID spiffeid.ID
}

// String returns the SPIFFE ID.
func (i Identity) String() string { return i.SPIFFEID.String() }

// IsZero reports whether i is the zero Identity.
func (i Identity) IsZero() bool { return i.SPIFFEID.IsZero() }

// NewIdentity returns the identity of kind and name in trust domain td,
// validating the name: a tenant name must pass tenant.ValidateSlug; a service
// or admin name is 1 to MaxNameLen characters from [a-z0-9._-] starting with a
// letter or digit.
func NewIdentity(td spiffeid.TrustDomain, kind Kind, name string) (Identity, error) {
	if td.IsZero() {
		return Identity{}, fmt.Errorf("%w: empty trust domain", ErrInvalidIdentity)
	}
	if err := validateName(kind, name); err != nil {
		return Identity{}, err
	}
	id, err := spiffeid.FromSegments(td, string(kind), name)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidIdentity, err)
	}
	return Identity{Kind: kind, Name: name, SPIFFEID: id}, nil
}

// ParseID maps a SPIFFE ID to an Identity, requiring it to be a member of td
// and to have exactly the path /<kind>/<name>.
func ParseID(id spiffeid.ID, td spiffeid.TrustDomain) (Identity, error) {
	if id.IsZero() {
		return Identity{}, ErrNoIdentity
	}
	if td.IsZero() || !id.MemberOf(td) {
		return Identity{}, fmt.Errorf("%w: %s is not in %s", ErrForeignTrustDomain, id, td)
	}
	kind, name, ok := strings.Cut(strings.TrimPrefix(id.Path(), "/"), "/")
	if !ok || strings.Contains(name, "/") {
		return Identity{}, fmt.Errorf("%w: path %q is not /<kind>/<name>", ErrInvalidIdentity, id.Path())
	}
	if err := validateName(Kind(kind), name); err != nil {
		return Identity{}, err
	}
	return Identity{Kind: Kind(kind), Name: name, SPIFFEID: id}, nil
}

// ParseIDString is ParseID for a SPIFFE ID in text form, as found in an
// x-forwarded-client-cert URI field.
func ParseIDString(s string, td spiffeid.TrustDomain) (Identity, error) {
	id, err := spiffeid.FromString(s)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrNoIdentity, err)
	}
	return ParseID(id, td)
}

// IdentityOf returns the identity in cert's SPIFFE URI SAN. It checks only the
// identity (exactly one URI SAN, a member of td, a known kind and a valid
// name), not the certificate's chain or validity: verify those first, as the
// mtls package does.
func IdentityOf(cert *x509.Certificate, td spiffeid.TrustDomain) (Identity, error) {
	if cert == nil {
		return Identity{}, ErrNoIdentity
	}
	id, err := x509svid.IDFromCert(cert)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrNoIdentity, err)
	}
	return ParseID(id, td)
}

func validateName(kind Kind, name string) error {
	switch kind {
	case Tenant:
		if err := tenant.ValidateSlug(name); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidIdentity, err)
		}
		return nil
	case Service, Admin:
	default:
		return fmt.Errorf("%w: unknown kind %q", ErrInvalidIdentity, truncate(string(kind)))
	}
	if len(name) == 0 || len(name) > MaxNameLen {
		return fmt.Errorf("%w: %s name must be 1 to %d characters", ErrInvalidIdentity, kind, MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '.' || c == '_') && i > 0:
		default:
			return fmt.Errorf("%w: %s name must be lower-case letters, digits, '.', '-', '_' and start with a letter or digit", ErrInvalidIdentity, kind)
		}
	}
	return nil
}

// truncate keeps hostile input short in error messages.
func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
