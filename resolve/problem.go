package resolve

import (
	"net/http"

	"github.com/tenantry/tenantry/internal/problem"
)

// Problem is an RFC 9457 problem detail with a stable Code; every failure of
// Resolve is one. It is the same type the server and admin API write, so a
// caller may write it with WriteProblem or inspect it with errors.As.
type Problem = problem.Problem

// WriteProblem writes p as an application/problem+json response.
func WriteProblem(w http.ResponseWriter, p *Problem) { problem.Write(w, p) }

// Codes of the problems the middleware answers with. They are stable: clients
// may branch on them.
const (
	CodeMissing            = "tenant_missing"      // 400: no strategy found a tenant identifier
	CodeInvalid            = "tenant_invalid"      // 400: an identifier was found but is malformed
	CodeAmbiguous          = "tenant_ambiguous"    // 400: several identifiers where one is allowed (repeated header, two tenant SANs)
	CodeUnknown            = "tenant_unknown"      // 404: the identifier names no tenant
	CodeConflict           = "tenant_conflict"     // 403: strategies name different tenants (RequireAgreement)
	CodeForbidden          = "tenant_forbidden"    // 403: the identifier came from a source that is not trusted to give it
	CodeSuspended          = "tenant_suspended"    // 423: the tenant is suspended
	CodeReadOnly           = "tenant_read_only"    // 423: an unsafe method on a read-only tenant
	CodeDeleting           = "tenant_deleting"     // 410: the tenant is being deleted
	CodeCatalogUnavailable = "catalog_unavailable" // 503: the catalog cache cannot answer
)

// The problems Resolve returns, one per code, with a generic detail. A
// returned problem usually carries a more specific detail naming the source
// that failed; errors.Is matches it against these by code:
//
//	if errors.Is(err, resolve.ErrUnknown) { ... }
//
// Do not modify them.
var (
	ErrMissing            = problem.New(http.StatusBadRequest, CodeMissing, "the request does not identify a tenant")
	ErrInvalid            = problem.New(http.StatusBadRequest, CodeInvalid, "the tenant identifier is malformed")
	ErrAmbiguous          = problem.New(http.StatusBadRequest, CodeAmbiguous, "the request carries more than one tenant identifier where one is allowed")
	ErrUnknown            = problem.New(http.StatusNotFound, CodeUnknown, "no such tenant")
	ErrConflict           = problem.New(http.StatusForbidden, CodeConflict, "the request identifies more than one tenant")
	ErrForbidden          = problem.New(http.StatusForbidden, CodeForbidden, "the tenant identifier comes from an untrusted source")
	ErrSuspended          = problem.New(http.StatusLocked, CodeSuspended, "the tenant is suspended")
	ErrReadOnly           = problem.New(http.StatusLocked, CodeReadOnly, "the tenant is read-only")
	ErrDeleting           = problem.New(http.StatusGone, CodeDeleting, "the tenant is being deleted")
	ErrCatalogUnavailable = problem.New(http.StatusServiceUnavailable, CodeCatalogUnavailable, "the tenant catalog is unavailable, retry later")
)

// sourceProblems are a strategy's failures, built once when the strategy is
// prepared so that a failing request allocates nothing to describe them.
// Each detail names the source ("header X-Tenant-ID: ...") but never
// repeats the request's value.
type sourceProblems struct {
	invalid, ambiguous, forbidden, unknown *Problem
}

func newSourceProblems(source string) sourceProblems {
	return sourceProblems{
		invalid:   ErrInvalid.WithDetail(source + ": the tenant identifier is malformed"),
		ambiguous: ErrAmbiguous.WithDetail(source + ": more than one tenant identifier"),
		forbidden: ErrForbidden.WithDetail(source + ": not accepted from this source"),
		unknown:   ErrUnknown.WithDetail(source + ": no such tenant"),
	}
}
