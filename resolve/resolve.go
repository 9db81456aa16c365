package resolve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/tenant"
)

// Lookup finds tenants. catalog.Cache implements it; calls must not block
// on I/O, since they run on every request.
//
// Errors: catalog.ErrNotFound when no tenant matches, catalog.ErrUnavailable
// when the cache cannot vouch for its contents. Any other error is treated
// as unavailable, and its text is logged, never sent to the client.
type Lookup interface {
	// BySlug finds a tenant by slug.
	BySlug(slug string) (*tenant.Tenant, error)
	// ByDomain finds a tenant by one of its domains. host is already
	// normalised: lower-case, without port and trailing dot.
	ByDomain(host string) (*tenant.Tenant, error)
	// ByID finds a tenant by ID.
	ByID(id string) (*tenant.Tenant, error)
}

// Mode says how the answers of several strategies combine.
type Mode uint8

const (
	// FirstMatch takes the tenant named by the first strategy, in
	// Config.Strategies order, that finds an identifier; later strategies
	// are not consulted. An identifier that names no tenant fails the
	// request (tenant_unknown) rather than falling through, except a host
	// that is no tenant's domain (see Host).
	FirstMatch Mode = iota
	// RequireAgreement consults every strategy; all that find an identifier
	// must name the same tenant (compared by ID after lookup, so a subdomain
	// "acme" and a header holding acme's UUID agree). Two different tenants
	// fail the request with tenant_conflict (403); nothing is picked
	// silently. Use it when identifiers from independent sources must
	// corroborate each other, such as the host a browser asked for and the
	// tenant claim of its token.
	RequireAgreement
)

func (m Mode) String() string {
	switch m {
	case FirstMatch:
		return "first-match"
	case RequireAgreement:
		return "require-agreement"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Config configures a Resolver.
type Config struct {
	// Strategies find tenant identifiers, consulted in order. Required: at
	// least one, no two with the same name.
	Strategies []Strategy
	// Mode combines the strategies. Default FirstMatch.
	Mode Mode
	// Logger receives a record for every request the middleware refuses
	// (Debug for client errors, Warn for tenant_forbidden and
	// tenant_conflict, Error for catalog_unavailable), with the problem
	// code, the strategy and, where known, the tenant. Default: records are
	// discarded.
	Logger *slog.Logger
	// ErrorHandler writes the response for a refused request. Default:
	// WriteProblem, plus "Retry-After: 1" for catalog_unavailable.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, p *Problem)
}

// WithDefaults returns a copy of c with defaults filled in.
func (c *Config) WithDefaults() *Config {
	out := &Config{}
	if c != nil {
		*out = *c
	}
	out.Strategies = slices.Clone(out.Strategies)
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	if out.ErrorHandler == nil {
		out.ErrorHandler = writeError
	}
	return out
}

func (c *Config) validate() error {
	if len(c.Strategies) == 0 {
		return errors.New("resolve: no strategy")
	}
	if c.Mode != FirstMatch && c.Mode != RequireAgreement {
		return fmt.Errorf("resolve: unknown mode %s", c.Mode)
	}
	seen := map[string]bool{}
	for i, s := range c.Strategies {
		if s == nil {
			return fmt.Errorf("resolve: strategy %d is nil", i)
		}
		if seen[s.Name()] {
			return fmt.Errorf("resolve: strategy %q appears twice", s.Name())
		}
		seen[s.Name()] = true
		if !s.common().claimed.CompareAndSwap(false, true) {
			return fmt.Errorf("resolve: strategy %s is already used by another Resolver; construct one per Resolver", s.Name())
		}
		if err := s.prepare(); err != nil {
			return fmt.Errorf("resolve: strategy %s: %w", s.Name(), err)
		}
	}
	return nil
}

func writeError(w http.ResponseWriter, _ *http.Request, p *Problem) {
	if p.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	WriteProblem(w, p)
}

// Resolver finds the tenant of each request. It is safe for concurrent use.
type Resolver struct {
	lookup     Lookup
	strategies []Strategy
	mode       Mode
	logger     *slog.Logger
	onError    func(http.ResponseWriter, *http.Request, *Problem)
	missing    *Problem
}

// New returns a Resolver over lookup. Every misconfiguration (no strategy, a
// strategy with an invalid parameter, an unreadable JWKS file) is reported
// here; a Resolver never fails a request because of its configuration.
//
// New prepares the strategies in place, so a Strategy value serves one
// Resolver only; passing it to a second New is an error.
func New(lookup Lookup, cfg *Config) (*Resolver, error) {
	if lookup == nil {
		return nil, errors.New("resolve: nil Lookup")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	names := make([]string, len(cfg.Strategies))
	var bases []string
	for i, s := range cfg.Strategies {
		names[i] = s.common().source
		if sub, ok := s.(*subdomainStrategy); ok {
			bases = append(bases, sub.bases...)
		}
	}
	for _, s := range cfg.Strategies {
		if h, ok := s.(*hostStrategy); ok {
			h.skip = bases
		}
	}
	return &Resolver{
		lookup:     lookup,
		strategies: cfg.Strategies,
		mode:       cfg.Mode,
		logger:     cfg.Logger,
		onError:    cfg.ErrorHandler,
		missing:    ErrMissing.WithDetail("no tenant identifier found (looked at: " + strings.Join(names, ", ") + ")"),
	}, nil
}

// MustNew is New that panics on error, for configuration fixed in code.
func MustNew(lookup Lookup, cfg *Config) *Resolver {
	r, err := New(lookup, cfg)
	if err != nil {
		panic(err)
	}
	return r
}

// result is a resolution: the tenant, the strategy that found it and, for
// PathPrefix, how much of the path to strip.
type result struct {
	t   *tenant.Tenant
	via string
	cut int
}

// Resolve finds the tenant of req and the name of the strategy that found
// it, without serving anything and without rewriting the path. On failure
// the error is a *Problem (see the Err* values) and the string names the
// strategy that failed, if one did.
func (r *Resolver) Resolve(req *http.Request) (*tenant.Tenant, string, error) {
	res, p := r.resolve(req)
	if p != nil {
		return nil, res.via, p
	}
	return res.t, res.via, nil
}

// Middleware returns next wrapped in tenant resolution: a request whose
// tenant is found and servable continues with the tenant in its context
// (tenant.FromContext, tenant.ResolvedVia) and, for PathPrefix, the prefix
// stripped; any other request is answered by the ErrorHandler and does not
// reach next.
func (r *Resolver) Middleware(next http.Handler) http.Handler {
	if next == nil {
		panic("resolve: Middleware with nil handler")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		res, p := r.resolve(req)
		if p != nil {
			r.refuse(w, req, res, p)
			return
		}
		req = req.WithContext(tenant.NewContext(req.Context(), res.t, res.via))
		if res.cut > 0 {
			u := *req.URL
			u.Path = stripPath(u.Path, res.cut)
			if u.RawPath != "" {
				u.RawPath = stripPath(u.RawPath, res.cut)
			}
			req.URL = &u
		}
		next.ServeHTTP(w, req)
	})
}

func (r *Resolver) refuse(w http.ResponseWriter, req *http.Request, res result, p *Problem) {
	level := slog.LevelDebug
	switch p.Code {
	case CodeForbidden, CodeConflict:
		level = slog.LevelWarn
	case CodeCatalogUnavailable:
		level = slog.LevelError
	}
	if ctx := req.Context(); r.logger.Enabled(ctx, level) {
		attrs := []slog.Attr{
			slog.String("code", p.Code),
			slog.String("strategy", res.via),
			slog.String("detail", p.Detail),
			slog.String("method", req.Method),
		}
		if res.t != nil {
			attrs = append(attrs, slog.String("tenant", res.t.Slug))
		}
		if cause := p.Unwrap(); cause != nil {
			attrs = append(attrs, slog.String("error", cause.Error()))
		}
		r.logger.LogAttrs(ctx, level, "tenant not resolved", attrs...)
	}
	r.onError(w, req, p)
}

// resolve does the work of Resolve. On failure res.via names the failing
// strategy and res.t is the tenant if one was found (for logs only).
func (r *Resolver) resolve(req *http.Request) (result, *Problem) {
	var found result
	var unknownHost *Problem
	for _, s := range r.strategies {
		k, p := s.find(req)
		if p != nil {
			return result{via: s.Name()}, p
		}
		if k.kind == keyNone {
			continue
		}
		t, err := r.lookupKey(k)
		if err != nil || t == nil {
			if err == nil || errors.Is(err, catalog.ErrNotFound) {
				if k.kind == keyDomain {
					// A host that is no tenant's domain is not an
					// identifier; see Host.
					unknownHost = s.common().p.unknown
					continue
				}
				return result{via: s.Name()}, s.common().p.unknown
			}
			return result{via: s.Name()}, ErrCatalogUnavailable.WithCause(err)
		}
		switch {
		case found.t == nil:
			found = result{t: t, via: s.Name(), cut: k.cut}
		case found.t.ID != t.ID:
			return result{via: s.Name(), t: found.t}, ErrConflict.WithDetail(found.via + " and " + s.Name() + " name different tenants")
		case k.cut > 0:
			found.cut = k.cut
		}
		if r.mode == FirstMatch {
			break
		}
	}
	if found.t == nil {
		if unknownHost != nil {
			return result{via: StrategyHost}, unknownHost
		}
		return result{}, r.missing
	}
	switch found.t.State {
	case tenant.StateActive:
	case tenant.StateReadOnly:
		if !safeMethod(req.Method) {
			return found, ErrReadOnly
		}
	case tenant.StateSuspended:
		return found, ErrSuspended
	case tenant.StateDeleting:
		return found, ErrDeleting
	default:
		// An unknown state is not servable; say no more than suspended.
		return found, ErrSuspended.WithCause(fmt.Errorf("tenant has unknown state %q", found.t.State))
	}
	return found, nil
}

func (r *Resolver) lookupKey(k key) (*tenant.Tenant, error) {
	switch k.kind {
	case keySlug:
		return r.lookup.BySlug(k.value)
	case keyID:
		return r.lookup.ByID(k.value)
	default:
		return r.lookup.ByDomain(k.value)
	}
}

// safeMethod reports whether m is safe (RFC 9110 §9.2.1): read-only tenants
// accept only these. Every other method, including unknown ones, is a write.
func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// LogAttr returns the slog attribute "tenant" with the slug of the tenant in
// ctx, or an empty attribute (which slog omits) if there is none. Loggers
// of tenant work add it to every record:
//
//	logger.LogAttrs(ctx, slog.LevelInfo, "note created", resolve.LogAttr(ctx))
func LogAttr(ctx context.Context) slog.Attr {
	if t, ok := tenant.FromContext(ctx); ok {
		return slog.String("tenant", t.Slug)
	}
	return slog.Attr{}
}
