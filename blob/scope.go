package blob

import (
	"context"

	"github.com/tenantry/tenantry/tenant"
)

// TenantsDir is the first segment of every object name: a tenant's objects
// live under "tenants/<tenant-id>/".
const TenantsDir = "tenants"

// Scope returns the tenant in ctx and its object-name prefix
// "tenants/<tenant-id>/". The prefix comes from the tenant the server
// resolved, never from client input. It fails with ErrNoTenant when ctx has
// no tenant or the tenant's ID is not a canonical (lower-case, hyphenated)
// UUID, so that an ID can never carry path syntax.
func Scope(ctx context.Context) (*tenant.Tenant, string, error) {
	t, ok := tenant.FromContext(ctx)
	if !ok || !IsCanonicalUUID(t.ID) {
		return nil, "", ErrNoTenant
	}
	return t, TenantsDir + "/" + t.ID + "/", nil
}

// ScopeWrite is Scope for writes: it also refuses a tenant that is not
// writable with ErrReadOnly.
func ScopeWrite(ctx context.Context) (*tenant.Tenant, string, error) {
	t, p, err := Scope(ctx)
	if err != nil {
		return nil, "", err
	}
	if !t.Writable() {
		return nil, "", ErrReadOnly
	}
	return t, p, nil
}

// IsCanonicalUUID reports whether s is a UUID in canonical text form:
// 36 characters, lower-case hex, hyphens at 8, 13, 18 and 23 (a tenant ID).
func IsCanonicalUUID(s string) bool { return tenant.IsID(s) }
