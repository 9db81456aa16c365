package blob

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound is returned when the object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrNoTenant is returned when ctx carries no tenant, or one whose ID is
	// not a canonical UUID. It is a server bug (the store was reached
	// outside the tenant-resolution middleware), never a client error.
	ErrNoTenant = errors.New("no tenant in context")
	// ErrReadOnly is returned for a write by a tenant that is not writable
	// (tenant.Tenant.Writable).
	ErrReadOnly = errors.New("tenant is read-only")
	// ErrInvalidKey is matched (errors.Is) by every *KeyError.
	ErrInvalidKey = errors.New("invalid object key")
	// ErrSizeMismatch is returned when a Put's reader yields a different
	// number of bytes than PutOptions.Size declared.
	ErrSizeMismatch = errors.New("body length does not match the declared size")
	// ErrBusy is returned when a tenant has too many requests in flight or
	// the shared capacity cannot take more waiters; retry later.
	ErrBusy = errors.New("too many requests in flight")
	// ErrConflict is returned when the backend cannot store the object
	// beside an existing one, such as "a/b" beside "a" on a POSIX-backed S3
	// gateway.
	ErrConflict = errors.New("key conflicts with an existing object")
	// ErrNotSupported is returned for an operation the store cannot do (for
	// example presigning on the local filesystem).
	ErrNotSupported = errors.New("not supported by this store")
)

// KeyError reports a key or prefix that ValidateKey or ValidatePrefix
// refused. Its message names the rule, never the key, so it is safe to show
// to a client; Key keeps the input for logs.
type KeyError struct {
	// Key is the refused input, possibly hostile: quote it when logging.
	Key string
	// Reason names the rule that failed.
	Reason string
}

func (e *KeyError) Error() string { return "invalid object key: " + e.Reason }

// Is makes errors.Is(err, ErrInvalidKey) true.
func (e *KeyError) Is(target error) bool { return target == ErrInvalidKey }

// LimitError reports that a write would exceed one of the tenant's limits.
// Its message names the limit and the figures, and is safe to show to the
// tenant.
type LimitError struct {
	// Limit names the limit: LimitBytes, LimitObjects or LimitObjectSize.
	Limit string
	// Max is the limit's value.
	Max int64
	// Used is the usage already counted against it (stored plus reserved).
	Used int64
	// Requested is what the write asked for (bytes or objects).
	Requested int64
}

// Names of limits in LimitError.Limit.
const (
	LimitBytes      = "bytes"       // total stored bytes per tenant
	LimitObjects    = "objects"     // number of objects per tenant
	LimitObjectSize = "object_size" // bytes in one object
)

func (e *LimitError) Error() string {
	switch e.Limit {
	case LimitObjectSize:
		return fmt.Sprintf("object of %d bytes exceeds the per-object limit of %d bytes", e.Requested, e.Max)
	case LimitObjects:
		return fmt.Sprintf("object quota exceeded: %d of %d objects used, %d more requested", e.Used, e.Max, e.Requested)
	default:
		return fmt.Sprintf("storage quota exceeded: %d of %d bytes used, %d more requested", e.Used, e.Max, e.Requested)
	}
}

// RequestTooLarge reports whether the request alone breaks the limit, however
// empty the tenant's storage (HTTP 413), rather than the tenant's remaining
// space (HTTP 507).
func (e *LimitError) RequestTooLarge() bool {
	return e.Limit == LimitObjectSize || e.Requested > e.Max
}
