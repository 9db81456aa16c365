package migrate

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/problem"
)

// Handler serves the migration status as JSON, read-only, for the admin API.
// Mount it under a prefix with http.StripPrefix, behind the admin API's
// authentication:
//
//	mux.Handle("/admin/v1/migrations/", http.StripPrefix("/admin/v1/migrations", engine.Handler(logger)))
//
//	GET /                        Status summary: head, newest run and its progress, counts by state and version
//	GET /targets?state=failed&kind=&cluster=&run=&after=&limit=
//	                             ledger rows, in key order; "next" is the cursor of the next page
//	GET /runs?limit=             newest runs first
//	GET /plan                    the dry run of "migrate up" (lint findings, waves)
//	GET /tenants/{tenant}/version  a tenant's schema version (by id or slug)
//
// Failures are RFC 9457 problems with a stable code; no internal error text
// reaches the client.
func (e *Engine) Handler(logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = e.logger
	}
	h := &handler{e: e, logger: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.wrap(h.status))
	mux.HandleFunc("GET /targets", h.wrap(h.targets))
	mux.HandleFunc("GET /runs", h.wrap(h.runs))
	mux.HandleFunc("GET /plan", h.wrap(h.plan))
	mux.HandleFunc("GET /tenants/{tenant}/version", h.wrap(h.version))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.WriteError(w, problem.New(http.StatusNotFound, "not_found", "no such migration resource"))
	})
	return mux
}

type handler struct {
	e      *Engine
	logger *slog.Logger
}

func (h *handler) wrap(fn func(w http.ResponseWriter, r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := fn(w, r)
		if err != nil {
			p := toProblem(err)
			if p.Status >= 500 {
				h.logger.ErrorContext(r.Context(), "migration API request failed", "path", r.URL.Path, "error", err)
			}
			problem.WriteError(w, p)
			return
		}
		body, err := json.Marshal(v)
		if err != nil {
			problem.WriteError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	}
}

func toProblem(err error) *problem.Problem {
	var p *problem.Problem
	var ve *catalog.ValidationError
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &ve):
		return problem.New(http.StatusUnprocessableEntity, "validation_failed", "invalid query parameter "+ve.Field).WithCause(err)
	case errors.Is(err, catalog.ErrNotFound):
		return problem.New(http.StatusNotFound, "not_found", "no such tenant").WithCause(err)
	}
	return problem.New(http.StatusInternalServerError, problem.CodeInternal, "").WithCause(err)
}

func badParam(name string) error {
	return &catalog.ValidationError{Field: name, Reason: "invalid"}
}

func (h *handler) status(_ http.ResponseWriter, r *http.Request) (any, error) {
	return h.e.Status(r.Context(), StatusOptions{})
}

var validStates = map[TargetState]bool{StatePending: true, StateRunning: true, StateDone: true, StateFailed: true, StateBlocked: true}

var validKinds = map[Kind]bool{KindShared: true, KindSharded: true, KindSchema: true, KindDatabase: true, KindTemplate: true}

func (h *handler) targets(_ http.ResponseWriter, r *http.Request) (any, error) {
	q := r.URL.Query()
	opts := StatusOptions{Targets: true, Cluster: q.Get("cluster"), RunID: q.Get("run"), After: q.Get("after")}
	for _, s := range q["state"] {
		for _, one := range strings.Split(s, ",") {
			st := TargetState(one)
			if !validStates[st] {
				return nil, badParam("state")
			}
			opts.States = append(opts.States, st)
		}
	}
	if k := Kind(q.Get("kind")); k != "" {
		if !validKinds[k] {
			return nil, badParam("kind")
		}
		opts.Kind = k
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return nil, badParam("limit")
		}
		opts.Limit = n
	}
	for name, v := range map[string]string{"cluster": opts.Cluster, "run": opts.RunID, "after": opts.After} {
		if len(v) > 300 {
			return nil, badParam(name)
		}
	}
	st, err := h.e.Status(r.Context(), opts)
	if err != nil {
		return nil, err
	}
	return struct {
		Targets []TargetStatus `json:"targets"`
		Next    string         `json:"next,omitempty"`
	}{Targets: nonNil(st.Targets), Next: st.Next}, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (h *handler) runs(_ http.ResponseWriter, r *http.Request) (any, error) {
	limit := 20
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return nil, badParam("limit")
		}
		limit = n
	}
	runs, err := h.e.Runs(r.Context(), limit)
	if err != nil {
		return nil, err
	}
	return struct {
		Runs []*RunStatus `json:"runs"`
	}{nonNil(runs)}, nil
}

func (h *handler) plan(_ http.ResponseWriter, r *http.Request) (any, error) {
	return h.e.Plan(r.Context(), RunOptions{})
}

func (h *handler) version(_ http.ResponseWriter, r *http.Request) (any, error) {
	t := r.PathValue("tenant")
	if len(t) > 64 {
		return nil, problem.New(http.StatusNotFound, "not_found", "no such tenant")
	}
	v, err := TenantVersion(r.Context(), h.e.pool, t)
	if err != nil {
		return nil, err
	}
	return struct {
		Tenant  string `json:"tenant"`
		Version int    `json:"version"`
		Head    int    `json:"head"`
	}{t, v, h.e.src.Head()}, nil
}
