package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/problem"
)

// Stable problem codes of the admin API. Clients branch on these, never on
// the title or detail.
const (
	CodeValidation      = "validation_failed"
	CodeMalformedJSON   = "malformed_json"
	CodeUnknownField    = "unknown_field"
	CodeBodyTooLarge    = "body_too_large"
	CodeUnsupportedType = "unsupported_media_type"
	CodeExists          = "already_exists"
	CodeVersionConflict = "version_conflict"
	CodeNotFound        = "not_found"
	CodeMethod          = "method_not_allowed"
	CodeUnauthenticated = "unauthenticated"
	CodeUnavailable     = "catalog_unavailable"
	// Provisioning (Config.Provisioner).
	CodeProvisioningFailed   = "provisioning_failed"
	CodeDeprovisioningFailed = "deprovisioning_failed"
	CodeNoCapacity           = "no_capacity"
	CodeTenantDeleting       = "tenant_deleting"
	CodePlacementMismatch    = "placement_mismatch"
	CodeStorageConflict      = "storage_conflict"
	CodeNotImplemented       = "not_implemented"
	CodeInternal             = problem.CodeInternal
)

// Error is the body of every admin API failure: an RFC 9457 problem
// (application/problem+json) with a stable Code and, when the request's
// input is at fault, the Field that is. Client returns it for an error
// response.
type Error struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail,omitempty"`
	// Field names the input field at fault as it appears in the request's
	// JSON (or query), e.g. "slug", "domains", "placement.model".
	Field string `json:"field,omitempty"`

	cause error
}

func newError(status int, code, field, detail string) *Error {
	return &Error{Type: problem.TypeBase + code, Title: http.StatusText(status), Status: status, Code: code, Field: field, Detail: detail}
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%d %s", e.Status, e.Code)
	if e.Field != "" {
		s += " (" + e.Field + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the cause an error was mapped from, for logs.
func (e *Error) Unwrap() error { return e.cause }

// toError maps any error a handler returns to the one response it gets. It
// is the only place that decides statuses and codes; nothing of an
// unexpected error's text reaches the client.
func toError(err error) *Error {
	var (
		e   *Error
		ve  *catalog.ValidationError
		xe  *catalog.ExistsError
		mbe *http.MaxBytesError
		out *Error
	)
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &ve):
		out = newError(http.StatusUnprocessableEntity, CodeValidation, ve.Field, ve.Reason)
	case errors.As(err, &xe):
		out = newError(http.StatusConflict, CodeExists, xe.Field, fmt.Sprintf("this %s is already taken", xe.Field))
	case errors.Is(err, catalog.ErrExists):
		out = newError(http.StatusConflict, CodeExists, "", "already exists")
	case errors.Is(err, catalog.ErrVersionConflict):
		out = newError(http.StatusConflict, CodeVersionConflict, "version",
			"the record changed since it was read: read it again and retry with its new version")
	case errors.Is(err, catalog.ErrNotFound):
		out = newError(http.StatusNotFound, CodeNotFound, "", "no such record")
	case errors.Is(err, catalog.ErrUnavailable):
		out = newError(http.StatusServiceUnavailable, CodeUnavailable, "", "the catalog is unavailable; retry shortly")
	case errors.As(err, &mbe):
		out = newError(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "",
			fmt.Sprintf("the request body is larger than %d bytes", mbe.Limit))
	default:
		out = newError(http.StatusInternalServerError, CodeInternal, "", "")
	}
	out.cause = err
	return out
}

// writeError writes err as a problem response and logs what the client is
// not told.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := toError(err)
	if e.cause != nil {
		err = e.cause
	}
	switch {
	case e.Status >= 500:
		h.logger.ErrorContext(r.Context(), "admin request failed", "method", r.Method, "path", r.URL.Path, "status", e.Status, "error", err)
	case e.Status == http.StatusUnauthorized:
		h.logger.WarnContext(r.Context(), "admin request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "error", err)
	default:
		h.logger.DebugContext(r.Context(), "admin request rejected", "method", r.Method, "path", r.URL.Path, "status", e.Status, "code", e.Code, "field", e.Field)
	}
	body, mErr := json.Marshal(e)
	if mErr != nil { // strings and ints only: cannot happen
		problem.WriteError(w, mErr)
		return
	}
	hdr := w.Header()
	if e.Status == http.StatusUnauthorized {
		hdr.Set("WWW-Authenticate", `Bearer realm="tenantry-admin"`)
	}
	hdr.Set("Content-Type", problem.ContentType)
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}
