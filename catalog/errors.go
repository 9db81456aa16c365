package catalog

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound is returned when a tenant, domain or cluster does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned when a create would duplicate a unique name
	// (a tenant slug, a domain, a cluster name).
	ErrExists = errors.New("already exists")
	// ErrVersionConflict is returned when an update carries a version other
	// than the stored one: someone else changed the record first. Re-read and
	// retry.
	ErrVersionConflict = errors.New("version conflict: the record changed since it was read")
	// ErrUnavailable is returned by the cache when it cannot vouch for its
	// contents: not loaded yet, or cut off from the catalog for longer than
	// its staleness bound.
	ErrUnavailable = errors.New("catalog unavailable")
)

// ValidationError is returned for input that breaks a rule; Field names the
// offending input field as it appears in the admin API's JSON.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason)
}
