package server

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/tenantry/tenantry/internal/problem"
	"github.com/tenantry/tenantry/tenant"
)

// Problems the server itself answers.
var (
	errNotFound = problem.New(http.StatusNotFound, "not_found", "no such route")
	errNotReady = problem.New(http.StatusServiceUnavailable, "catalog_unavailable",
		"the tenant catalog is not loaded or has lost its connection")
	errDraining = problem.New(http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")
	errInternal = problem.New(http.StatusInternalServerError, problem.CodeInternal, "")
)

// publicHandler routes the public listener: health outside resolution,
// everything else through Deps.Resolve to the tenant mux.
func (s *Server) publicHandler() http.Handler {
	tenants := http.NewServeMux()
	tenants.HandleFunc("GET /api/v1/tenant", s.currentTenant)
	if s.config.Routes != nil {
		s.config.Routes(tenants)
	}
	tenants.HandleFunc("/", notFound)

	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", s.healthz)
	root.HandleFunc("GET /readyz", s.readyz)
	root.Handle("/", s.deps.Resolve(markResolved(tenants)))
	return s.observe("public", root)
}

// adminHandler routes the admin listener.
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.deps.Admin != nil {
		mux.Handle("/admin/", s.deps.Admin)
	}
	mux.HandleFunc("/", notFound)
	return s.observe("admin", mux)
}

// status is the body of a successful health or readiness check.
type status struct {
	Status string `json:"status"`
}

var statusOK, statusReady = status{"ok"}, status{"ready"}

// healthz answers 200 while the process serves at all.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, statusOK)
}

// readyz answers 200 while the catalog cache can vouch for its contents and
// the server is not shutting down, 503 otherwise.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.draining.Load() {
		problem.Write(w, errDraining)
		return
	}
	if err := s.deps.Catalog.Ready(); err != nil {
		problem.Write(w, errNotReady)
		return
	}
	writeJSON(w, http.StatusOK, statusReady)
}

// PublicTenant is the body of GET /api/v1/tenant: the resolved tenant's
// public fields, without where its data lives.
type PublicTenant struct {
	ID          string       `json:"id"`
	Slug        string       `json:"slug"`
	DisplayName string       `json:"display_name"`
	State       tenant.State `json:"state"`
	Tier        string       `json:"tier"`
	Region      string       `json:"region"`
	Model       tenant.Model `json:"model"`
	// ResolvedBy names the resolution strategy that found the tenant
	// ("host", "subdomain", "header", "path", ...).
	ResolvedBy string `json:"resolved_by"`
}

// currentTenant answers GET /api/v1/tenant: a user's first check that
// resolution works.
func (s *Server) currentTenant(w http.ResponseWriter, r *http.Request) {
	t, ok := tenant.FromContext(r.Context())
	if !ok {
		// Deps.Resolve called its next handler without a tenant: a bug in
		// the wiring, not the client's fault.
		s.logger.ErrorContext(r.Context(), "tenant route reached without a resolved tenant; check Deps.Resolve")
		problem.Write(w, errInternal)
		return
	}
	writeJSON(w, http.StatusOK, PublicTenant{
		ID:          t.ID,
		Slug:        t.Slug,
		DisplayName: t.DisplayName,
		State:       t.State,
		Tier:        t.Tier,
		Region:      t.Region,
		Model:       t.Placement.Model,
		ResolvedBy:  tenant.ResolvedVia(r.Context()),
	})
}

func notFound(w http.ResponseWriter, _ *http.Request) {
	problem.Write(w, errNotFound)
}

// Header values of every JSON answer, shared so that writing them does not
// allocate. Header.Set replaces and Header.Add appends to a full slice, so
// neither can change these.
var (
	jsonType = []string{"application/json"}
	noStore  = []string{"no-store"}
	nosniff  = []string{"nosniff"}
)

// writeJSON writes v as a JSON response that no cache keeps.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		problem.Write(w, errInternal)
		return
	}
	body = append(body, '\n')
	h := w.Header()
	h["Content-Type"] = jsonType
	h["Cache-Control"] = noStore
	h["X-Content-Type-Options"] = nosniff
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
