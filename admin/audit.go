package admin

import (
	"net/http"

	"github.com/tenantry/tenantry/catalog"
)

// listAudit answers the audit log, newest first, optionally of one tenant
// given by ID (?tenant_id=) or by slug (?tenant=, for a tenant that still
// exists).
func (h *Handler) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := queryLimit(q)
	if err != nil {
		return err
	}
	id, slug := q.Get("tenant_id"), q.Get("tenant")
	if id != "" && slug != "" {
		return &catalog.ValidationError{Field: "tenant", Reason: "give tenant or tenant_id, not both"}
	}
	if slug != "" {
		t, err := h.store.Tenant(r.Context(), slug)
		if err != nil {
			return err
		}
		id = t.ID
	}
	entries, err := h.store.Audit(r.Context(), catalog.AuditFilter{TenantID: id, Limit: limit})
	if err != nil {
		return err
	}
	if entries == nil {
		entries = []catalog.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, AuditList{Entries: entries})
	return nil
}
