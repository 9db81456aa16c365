package kms

import (
	"context"
	"errors"
	"fmt"
)

// KMS wraps data keys with per-tenant key-encryption keys. Implementations
// must be safe for concurrent use.
type KMS interface {
	// Wrap encrypts dek under tenantID's KEK, creating the KEK on first use.
	// It fails with ErrKeyDestroyed once the tenant's KEK was destroyed.
	Wrap(ctx context.Context, tenantID string, dek []byte) ([]byte, error)
	// Unwrap decrypts a key wrapped for tenantID. It fails with
	// ErrKeyDestroyed once the tenant's KEK was destroyed, and with
	// ErrUnwrap for a key wrapped for another tenant or altered.
	Unwrap(ctx context.Context, tenantID string, wrapped []byte) ([]byte, error)
	// Destroy deletes tenantID's KEK irrevocably. It is idempotent.
	Destroy(ctx context.Context, tenantID string) error
}

var (
	// ErrKeyDestroyed is returned for a tenant whose KEK was destroyed: its
	// data is gone for good.
	ErrKeyDestroyed = errors.New("tenant key destroyed")
	// ErrKeyNotFound is returned by Unwrap for a tenant that has no KEK.
	ErrKeyNotFound = errors.New("tenant key not found")
	// ErrUnwrap is returned for a wrapped key that does not authenticate
	// under the tenant's KEK: wrapped for another tenant, or altered.
	ErrUnwrap = errors.New("wrapped key does not authenticate")
	// ErrInvalidTenantID is returned for a tenant ID outside
	// [A-Za-z0-9_-]{1,64}.
	ErrInvalidTenantID = errors.New("invalid tenant ID")
)

// ValidateTenantID accepts 1 to 64 characters from [A-Za-z0-9_-]: UUIDs and
// slugs, and nothing that could name another path.
func ValidateTenantID(id string) error {
	if len(id) == 0 || len(id) > 64 {
		return fmt.Errorf("%w: must be 1 to 64 characters", ErrInvalidTenantID)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: only letters, digits, '-' and '_' are allowed", ErrInvalidTenantID)
		}
	}
	return nil
}
