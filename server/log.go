package server

import (
	"context"
	"log/slog"

	"github.com/tenantry/tenantry/tenant"
)

// TenantKey is the attribute key under which records carry the tenant.
const TenantKey = "tenant"

// NewLogHandler wraps h so that a record logged with a context carrying a
// tenant (tenant.NewContext, set by resolution) gets the attribute
// tenant=<slug>, unless the record or the logger already has one. Build
// every logger of a process on it and log with the request's context
// (logger.InfoContext(r.Context(), ...)) to have every record of tenant work
// name its tenant.
//
// The attribute is added at the record's top level, or inside the groups
// opened with WithGroup, like any other attribute of the record.
func NewLogHandler(h slog.Handler) slog.Handler {
	return &tenantHandler{next: h}
}

type tenantHandler struct {
	next slog.Handler
	// hasTenant is set when WithAttrs already gave the logger a tenant.
	hasTenant bool
}

func (h *tenantHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *tenantHandler) Handle(ctx context.Context, r slog.Record) error {
	if !h.hasTenant {
		if t, ok := tenant.FromContext(ctx); ok && !recordHasTenant(r) {
			r = r.Clone()
			r.AddAttrs(slog.String(TenantKey, t.Slug))
		}
	}
	return h.next.Handle(ctx, r)
}

func (h *tenantHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	has := h.hasTenant
	for _, a := range attrs {
		if a.Key == TenantKey {
			has = true
		}
	}
	return &tenantHandler{next: h.next.WithAttrs(attrs), hasTenant: has}
}

func (h *tenantHandler) WithGroup(name string) slog.Handler {
	return &tenantHandler{next: h.next.WithGroup(name), hasTenant: h.hasTenant}
}

func recordHasTenant(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == TenantKey
		return !found
	})
	return found
}
