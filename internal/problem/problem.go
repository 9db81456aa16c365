// Package problem writes HTTP failures as RFC 9457 problem details
// (application/problem+json) with a stable machine-readable code, the one
// shape in which every Tenantry HTTP surface (tenant resolution, the public
// server, the admin API) answers an error.
//
// A Problem is also an error, so handlers can return it and one place can
// write it (the caddy style):
//
//	func (h *handler) get(w http.ResponseWriter, r *http.Request) error {
//		return problem.New(http.StatusNotFound, "tenant_unknown", "no such tenant")
//	}
//	...
//	if err := h.get(w, r); err != nil {
//		problem.WriteError(w, err)
//	}
//
// A client never sees an internal error text: WriteError answers any error
// that is not a *Problem as a bare 500 internal_error, and the detail of a
// Problem is written as given, so it must be a fixed sentence chosen by the
// code, never a string taken from the request or from a lower layer. The
// cause a Problem may carry (WithCause) is for logs and is never written.
package problem

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// ContentType is the media type of a problem response.
const ContentType = "application/problem+json"

// TypeBase prefixes a problem's code to form its "type" URI. The URI
// identifies the problem type; it is not meant to be dereferenced.
const TypeBase = "urn:tenantry:problem:"

// CodeInternal is the code of the response written for an error that is not
// a *Problem.
const CodeInternal = "internal_error"

// Problem is an RFC 9457 problem detail with Tenantry's "code" extension
// member. Problems handed out as package-level values are shared: treat them
// as read-only and derive a new one with WithDetail or WithCause.
type Problem struct {
	// Type is a URI naming the problem type, TypeBase followed by Code.
	Type string `json:"type"`
	// Title is a short summary of the problem type; it does not change from
	// occurrence to occurrence.
	Title string `json:"title"`
	// Status is the HTTP status code, 400 to 599.
	Status int `json:"status"`
	// Code is the stable, machine-readable name of the problem type, in
	// snake_case. Clients branch on Code, never on Title or Detail.
	Code string `json:"code"`
	// Detail explains this occurrence to a human. It must not contain
	// request input or internal error text.
	Detail string `json:"detail,omitempty"`

	cause error
}

// New returns a problem with the given status and code, the title derived
// from the status text, and detail.
func New(status int, code, detail string) *Problem {
	return &Problem{
		Type:   TypeBase + code,
		Title:  http.StatusText(status),
		Status: status,
		Code:   code,
		Detail: detail,
	}
}

// Error returns the code and detail; it is for logs, not for clients.
func (p *Problem) Error() string {
	if p.Detail == "" {
		return p.Code
	}
	return p.Code + ": " + p.Detail
}

// Unwrap returns the cause set by WithCause, if any.
func (p *Problem) Unwrap() error { return p.cause }

// Is reports whether target is a *Problem with the same Code, so that a
// problem with an occurrence-specific detail still matches the package-level
// value it was derived from: errors.Is(err, resolve.ErrUnknown).
func (p *Problem) Is(target error) bool {
	t, ok := target.(*Problem)
	return ok && t != nil && t.Code != "" && t.Code == p.Code
}

// WithDetail returns a copy of p with another detail.
func (p *Problem) WithDetail(detail string) *Problem {
	c := *p
	c.Detail = detail
	return &c
}

// WithCause returns a copy of p that wraps cause. The cause is reachable
// through errors.Is/As and Unwrap, for logging; it is never written to the
// client.
func (p *Problem) WithCause(cause error) *Problem {
	c := *p
	c.cause = cause
	return &c
}

// internal is written for errors that are not problems.
var internal = New(http.StatusInternalServerError, CodeInternal, "")

// Write writes p as the response: status, Content-Type
// application/problem+json, Cache-Control no-store, X-Content-Type-Options
// nosniff and the JSON body. Strings are JSON-escaped (including <, > and
// &, and invalid UTF-8 is replaced), so the body is safe to show. A nil p
// or one whose status is not 4xx/5xx is written as a 500.
func Write(w http.ResponseWriter, p *Problem) {
	if p == nil || p.Status < 400 || p.Status > 599 {
		p = internal
	}
	body, err := json.Marshal(p)
	if err != nil { // cannot happen for strings and ints; stay correct anyway
		p = internal
		body = []byte(`{"type":"` + TypeBase + CodeInternal + `","title":"Internal Server Error","status":500,"code":"` + CodeInternal + `"}`)
	}
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

// WriteError writes err: a *Problem anywhere in its chain is written as is;
// any other error as a 500 internal_error that reveals nothing of err.
func WriteError(w http.ResponseWriter, err error) {
	var p *Problem
	if errors.As(err, &p) {
		Write(w, p)
		return
	}
	Write(w, internal)
}
