package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/tenantry/tenantry/catalog"
)

// DefaultMaxBodyBytes is the default cap on a request body.
const DefaultMaxBodyBytes = 1 << 20

// MaxReasonLen is the longest reason an audit entry takes.
const MaxReasonLen = 500

// ReasonHeader carries the reason for a change, recorded in the audit log.
const ReasonHeader = "X-Tenantry-Reason"

// Config configures a Handler.
type Config struct {
	// Authenticator decides who a request comes from. Required: the admin
	// API never serves an anonymous caller.
	Authenticator Authenticator

	// MaxBodyBytes caps a request body; a larger one is answered 413.
	// Default 1 MiB.
	MaxBodyBytes int64

	// Provisioner, when set, gives tenants storage: creating a tenant
	// provisions it (and rolls the creation back if that fails), deleting
	// one deprovisions it first, and POST /admin/v1/tenants/{slug}/provision
	// retries. Default nil: the API changes the catalog only, and the
	// provision endpoint answers 501.
	Provisioner Provisioner

	// Migrations, when set, serves the fleet migration status under
	// /admin/v1/migrations/ (the handler of migrate.Engine.Handler, which
	// sees paths with that prefix stripped), behind this API's
	// authentication. Default nil: 404.
	Migrations http.Handler

	// Logger receives refused and failed requests (the catalog logs the
	// changes themselves). Default: discard.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with every unset field at its default.
// c may be nil.
func (c *Config) WithDefaults() *Config {
	out := &Config{}
	if c != nil {
		*out = *c
	}
	if out.MaxBodyBytes == 0 {
		out.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return out
}

func (c *Config) validate() error {
	if c.Authenticator == nil {
		return errors.New("admin: Config.Authenticator is required")
	}
	if c.MaxBodyBytes < 0 {
		return errors.New("admin: Config.MaxBodyBytes must not be negative")
	}
	return nil
}

// Handler serves the admin API v1 under /admin/v1/.
type Handler struct {
	store  *catalog.Store
	config *Config
	logger *slog.Logger
	mux    *http.ServeMux
}

// New returns the admin API over store.
func New(store *catalog.Store, cfg *Config) (*Handler, error) {
	if store == nil {
		return nil, errors.New("admin: store is nil")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	h := &Handler{store: store, config: cfg, logger: cfg.Logger, mux: http.NewServeMux()}
	h.routes()
	return h, nil
}

// handlerFunc is an admin endpoint: it writes a success itself and returns
// any failure for writeError.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (h *Handler) routes() {
	type route struct {
		method string
		fn     handlerFunc
	}
	table := []struct {
		path   string
		routes []route
	}{
		{"/admin/v1/tenants", []route{{http.MethodPost, h.createTenant}, {http.MethodGet, h.listTenants}}},
		{"/admin/v1/tenants/{slug}", []route{{http.MethodGet, h.getTenant}, {http.MethodPatch, h.updateTenant}, {http.MethodDelete, h.deleteTenant}}},
		{"/admin/v1/tenants/{slug}/suspend", []route{{http.MethodPost, h.suspendTenant}}},
		{"/admin/v1/tenants/{slug}/resume", []route{{http.MethodPost, h.resumeTenant}}},
		{"/admin/v1/tenants/{slug}/provision", []route{{http.MethodPost, h.provisionTenant}}},
		{"/admin/v1/tenants/{slug}/domains", []route{{http.MethodPost, h.addDomain}}},
		{"/admin/v1/tenants/{slug}/domains/{domain}", []route{{http.MethodDelete, h.removeDomain}}},
		{"/admin/v1/clusters", []route{{http.MethodGet, h.listClusters}, {http.MethodPost, h.createCluster}}},
		{"/admin/v1/audit", []route{{http.MethodGet, h.listAudit}}},
	}
	for _, p := range table {
		var allow []string
		for _, rt := range p.routes {
			h.mux.Handle(rt.method+" "+p.path, h.endpoint(rt.fn))
			allow = append(allow, rt.method)
		}
		if contains(allow, http.MethodGet) {
			allow = append(allow, http.MethodHead)
		}
		allowed := strings.Join(allow, ", ")
		// The method-less pattern is less specific than the ones above, so
		// it only sees the methods they do not serve.
		h.mux.Handle(p.path, h.endpoint(func(w http.ResponseWriter, _ *http.Request) error {
			w.Header().Set("Allow", allowed)
			return newError(http.StatusMethodNotAllowed, CodeMethod, "", "allowed: "+allowed)
		}))
	}
	if h.config.Migrations != nil {
		migrations := http.StripPrefix("/admin/v1/migrations", h.config.Migrations)
		h.mux.Handle("/admin/v1/migrations/", migrations)
		h.mux.Handle("/admin/v1/migrations", http.RedirectHandler("/admin/v1/migrations/", http.StatusMovedPermanently))
	}
	h.mux.Handle("/", h.endpoint(func(http.ResponseWriter, *http.Request) error {
		return newError(http.StatusNotFound, CodeNotFound, "", "no such admin endpoint")
	}))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (h *Handler) endpoint(fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			h.writeError(w, r, err)
		}
	})
}

// ServeHTTP authenticates the request, then routes it. Every path,
// including unknown ones, needs credentials.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, err := h.config.Authenticator.Authenticate(r)
	if err == nil && id.Name == "" {
		err = errors.New("authenticator returned an identity without a name")
	}
	if err != nil {
		e := *errUnauthenticated
		e.cause = err
		h.writeError(w, r, &e)
		return
	}
	h.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
}

var errUnauthenticated = newError(http.StatusUnauthorized, CodeUnauthenticated, "",
	"missing or invalid admin credentials: send Authorization: Bearer <admin token>")

// actor is who the audit log records for r: the authenticated identity,
// with the reason from the body (preferred) or the X-Tenantry-Reason
// header.
func actor(r *http.Request, bodyReason string) (catalog.Actor, error) {
	id, ok := IdentityFromContext(r.Context())
	if !ok {
		return catalog.Actor{}, errors.New("admin: request reached a handler unauthenticated")
	}
	reason := bodyReason
	if reason == "" {
		reason = r.Header.Get(ReasonHeader)
	}
	if err := validateReason(reason); err != nil {
		return catalog.Actor{}, err
	}
	return catalog.Actor{Name: id.Name, Reason: reason}, nil
}

func validateReason(s string) error {
	if len(s) > MaxReasonLen {
		return &catalog.ValidationError{Field: "reason", Reason: fmt.Sprintf("longer than %d bytes", MaxReasonLen)}
	}
	if !utf8.ValidString(s) {
		return &catalog.ValidationError{Field: "reason", Reason: "not valid UTF-8"}
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return &catalog.ValidationError{Field: "reason", Reason: "contains control characters"}
		}
	}
	return nil
}
