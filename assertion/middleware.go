package assertion

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/problem"
	"github.com/tenantry/tenantry/tenant"
)

// Lookup finds a tenant by ID. catalog.Cache implements it. It must return
// an error wrapping catalog.ErrNotFound for an unknown tenant and
// catalog.ErrUnavailable when it cannot answer.
type Lookup interface {
	ByID(id string) (*tenant.Tenant, error)
}

// Codes of the problems the middleware answers with. They are stable;
// clients may branch on them. The tenant codes are those of package
// resolve.
const (
	CodeMissing          = "assertion_missing"           // 401: no Tenantry-Assertion header
	CodeInvalid          = "assertion_invalid"           // 401: malformed, unsigned, tampered, unknown issuer, repeated header
	CodeExpired          = "assertion_expired"           // 401: expired or not yet valid
	CodeAudience         = "assertion_wrong_audience"    // 401: addressed to another service
	CodeReplayed         = "assertion_replayed"          // 401: used before
	CodePeerMismatch     = "assertion_peer_mismatch"     // 403: issuer is not the transport peer
	CodePeerUnknown      = "peer_unknown"                // 403: no transport identity, or not a known service
	CodeForgedMeshHeader = "mesh_header_forged"          // 403: XFCC / l5d-client-id from an untrusted peer
	CodeTenantMismatch   = "tenant_conflict"             // 403: the request names another tenant than the assertion
	CodeUnknownTenant    = "tenant_unknown"              // 404: the asserted tenant does not exist
	CodeSuspended        = "tenant_suspended"            // 423
	CodeReadOnly         = "tenant_read_only"            // 423: unsafe method on a read-only tenant
	CodeDeleting         = "tenant_deleting"             // 410
	CodeUnavailable      = "assertion_check_unavailable" // 503: replay cache or catalog cannot answer
)

// The problems, one per code. Details are fixed sentences: a client never
// sees the reason, which goes to the log.
var (
	errMissing        = problem.New(http.StatusUnauthorized, CodeMissing, "the request carries no tenant assertion")
	errInvalid        = problem.New(http.StatusUnauthorized, CodeInvalid, "the tenant assertion is invalid")
	errExpired        = problem.New(http.StatusUnauthorized, CodeExpired, "the tenant assertion has expired or is not yet valid")
	errAudience       = problem.New(http.StatusUnauthorized, CodeAudience, "the tenant assertion is addressed to another service")
	errReplayed       = problem.New(http.StatusUnauthorized, CodeReplayed, "the tenant assertion was already used")
	errPeerMismatch   = problem.New(http.StatusForbidden, CodePeerMismatch, "the tenant assertion was issued by another service than the caller")
	errPeerUnknown    = problem.New(http.StatusForbidden, CodePeerUnknown, "the caller is not an authenticated service")
	errForged         = problem.New(http.StatusForbidden, CodeForgedMeshHeader, "mesh identity headers are accepted only from the local proxy")
	errTenantMismatch = problem.New(http.StatusForbidden, CodeTenantMismatch, "the request identifies another tenant than the assertion")
	errUnknownTenant  = problem.New(http.StatusNotFound, CodeUnknownTenant, "no such tenant")
	errSuspended      = problem.New(http.StatusLocked, CodeSuspended, "the tenant is suspended")
	errReadOnly       = problem.New(http.StatusLocked, CodeReadOnly, "the tenant is read-only")
	errDeleting       = problem.New(http.StatusGone, CodeDeleting, "the tenant is being deleted")
	errUnavailable    = problem.New(http.StatusServiceUnavailable, CodeUnavailable, "the tenant assertion cannot be checked now, retry later")
)

// MiddlewareConfig configures Middleware.
type MiddlewareConfig struct {
	// Verifier checks assertions addressed to this service. Required.
	Verifier *Verifier
	// Peer names the service that sent the request, from the transport.
	// Required: MTLSPeer, EnvoyPeer or LinkerdPeer.
	Peer Peer
	// Lookup finds the asserted tenant (the catalog cache), so that a
	// deleted or suspended tenant is refused. Required.
	Lookup Lookup
	// Logger receives one record per refused request (level Warn), with the
	// code and the reason. Default: discard.
	Logger *slog.Logger
}

// Middleware returns server middleware that admits a request only with a
// valid assertion from the service the transport authenticated, and puts
// the asserted tenant in the request's context (tenant.NewContext, via
// "assertion") and the claims in it too (FromContext).
//
// In order: exactly one Tenantry-Assertion header (else 401); the peer
// service from the transport (403 if none, not a service, or a mesh header
// from an untrusted peer); the assertion verified (401 if invalid,
// tampered, expired, for another audience); issuer equal to the peer (403);
// not replayed (401); the tenant looked up by ID, with the asserted slug,
// servable, writable for unsafe methods (404, 403, 423, 410); and, if an
// earlier middleware already resolved a tenant, the same one (403).
//
// W3C baggage is never read: it is unauthenticated and may say anything.
//
// It panics if cfg is incomplete.
func Middleware(cfg *MiddlewareConfig) func(http.Handler) http.Handler {
	if cfg == nil || cfg.Verifier == nil || cfg.Peer == nil || cfg.Lookup == nil {
		panic("assertion: Middleware needs a Verifier, a Peer and a Lookup")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &middleware{v: cfg.Verifier, peer: cfg.Peer, lookup: cfg.Lookup, logger: logger}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, p := m.check(r)
			if p != nil {
				problem.Write(w, p)
				return
			}
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

type middleware struct {
	v      *Verifier
	peer   Peer
	lookup Lookup
	logger *slog.Logger
}

// refusal is what the log line of a refused request says.
type refusal struct {
	p      *problem.Problem
	cause  error
	peer   string
	claims *Claims
}

func (m *middleware) check(r *http.Request) (context.Context, *problem.Problem) {
	ctx := r.Context()
	f := refusal{}
	defer func() {
		if f.p != nil {
			m.log(r, &f)
		}
	}()
	vals := r.Header.Values(Header)
	switch len(vals) {
	case 0:
		f.p = errMissing
		return nil, f.p
	case 1:
	default:
		f.p, f.cause = errInvalid, errors.New("header repeated")
		return nil, f.p
	}
	peer, err := m.peer.Service(r)
	if err != nil {
		f.p, f.cause = errPeerUnknown, err
		if errors.Is(err, ErrForgedMeshHeader) {
			f.p = errForged
		}
		return nil, f.p
	}
	f.peer = peer
	claims, err := m.v.Verify(ctx, vals[0], peer)
	f.claims = claims
	if err != nil {
		f.cause = err
		switch {
		case errors.Is(err, ErrPeerMismatch):
			f.p = errPeerMismatch
		case errors.Is(err, ErrReplayed):
			f.p = errReplayed
		case errors.Is(err, ErrExpired):
			f.p = errExpired
		case errors.Is(err, ErrAudience):
			f.p = errAudience
		case errors.Is(err, ErrInvalid):
			f.p = errInvalid
		default: // the replay cache failed
			f.p = errUnavailable
		}
		return nil, f.p
	}
	t, err := m.lookup.ByID(claims.TenantID)
	if err != nil {
		f.cause = err
		f.p = errUnavailable
		if errors.Is(err, catalog.ErrNotFound) {
			f.p = errUnknownTenant
		}
		return nil, f.p
	}
	switch {
	case t.Slug != claims.TenantSlug:
		f.p, f.cause = errTenantMismatch, errors.New("asserted slug differs from the catalog's")
	case t.State == tenant.StateSuspended:
		f.p = errSuspended
	case t.State == tenant.StateDeleting:
		f.p = errDeleting
	case !t.Servable():
		f.p = errSuspended
	case !t.Writable() && !safeMethod(r.Method):
		f.p = errReadOnly
	}
	if f.p != nil {
		return nil, f.p
	}
	if prev, ok := tenant.FromContext(ctx); ok && prev.ID != t.ID {
		f.p, f.cause = errTenantMismatch, errors.New("an earlier resolver found another tenant")
		return nil, f.p
	}
	ctx = tenant.NewContext(ctx, t, "assertion")
	return withClaims(ctx, claims), nil
}

func (m *middleware) log(r *http.Request, f *refusal) {
	attrs := []slog.Attr{
		slog.String("code", f.p.Code),
		slog.Int("status", f.p.Status),
		slog.String("remote", r.RemoteAddr),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
	}
	if f.peer != "" {
		attrs = append(attrs, slog.String("peer", f.peer))
	}
	if f.claims != nil {
		attrs = append(attrs, slog.String("issuer", truncate(f.claims.Issuer)), slog.String("tenant", truncate(f.claims.TenantID)))
	}
	if f.cause != nil {
		attrs = append(attrs, slog.String("reason", f.cause.Error()))
	}
	m.logger.LogAttrs(r.Context(), slog.LevelWarn, "assertion refused", attrs...)
}

func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}
