package admin

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/tenant"
)

// writeTenant answers a tenant with its version as ETag, for If-Match.
func writeTenant(w http.ResponseWriter, status int, t *tenant.Tenant) {
	w.Header().Set("ETag", etag(t.Version))
	writeJSON(w, status, t)
}

func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

func (h *Handler) createTenant(w http.ResponseWriter, r *http.Request) error {
	var req CreateTenantRequest
	if err := h.decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	a, err := actor(r, req.Reason)
	if err != nil {
		return err
	}
	t, err := h.store.CreateTenant(r.Context(), a, catalog.NewTenant{
		Slug:        req.Slug,
		DisplayName: req.DisplayName,
		State:       req.State,
		Tier:        req.Tier,
		Region:      req.Region,
		Placement:   req.Placement,
		Domains:     req.Domains,
		Labels:      req.Labels,
	})
	var exists *catalog.ExistsError
	if errors.As(err, &exists) && exists.Field == "domain" {
		// The request names its domains "domains"; say so.
		return newError(http.StatusConflict, CodeExists, "domains", "a domain is already taken by another tenant")
	}
	if err != nil {
		return err
	}
	if h.config.Provisioner != nil {
		if t, err = h.provisionNew(r.Context(), a, t); err != nil {
			return err
		}
	}
	w.Header().Set("Location", "/admin/v1/tenants/"+url.PathEscape(t.Slug))
	writeTenant(w, http.StatusCreated, t)
	return nil
}

// maxPageSize is the largest ?limit= a list takes.
const maxPageSize = 1000

// queryLimit reads ?limit=: 1 to maxPageSize, default 0 (the store's).
func queryLimit(q url.Values) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxPageSize {
		return 0, &catalog.ValidationError{Field: "limit", Reason: "must be a whole number from 1 to " + strconv.Itoa(maxPageSize)}
	}
	return n, nil
}

func (h *Handler) listTenants(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := queryLimit(q)
	if err != nil {
		return err
	}
	after := q.Get("after")
	if len(after) > tenant.MaxSlugLen || strings.Trim(after, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return &catalog.ValidationError{Field: "after", Reason: "must be a tenant slug (the next cursor of the previous page)"}
	}
	opts := catalog.ListOptions{State: tenant.State(q.Get("state")), After: after, Limit: limit}
	tenants, err := h.store.Tenants(r.Context(), opts)
	if err != nil {
		return err
	}
	page := limit
	if page == 0 {
		page = 100 // the store's default
	}
	out := TenantList{Tenants: tenants}
	if out.Tenants == nil {
		out.Tenants = []*tenant.Tenant{}
	}
	if len(tenants) == page {
		out.Next = tenants[len(tenants)-1].Slug
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handler) getTenant(w http.ResponseWriter, r *http.Request) error {
	t, err := h.store.Tenant(r.Context(), r.PathValue("slug"))
	if err != nil {
		return err
	}
	writeTenant(w, http.StatusOK, t)
	return nil
}

// ifMatchVersion reads a version from If-Match: "3", W/"3" or 3.
func ifMatchVersion(r *http.Request) (int64, bool, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" {
		return 0, false, nil
	}
	v = strings.Trim(strings.TrimPrefix(v, "W/"), `"`)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, false, &catalog.ValidationError{Field: "version", Reason: "If-Match must be the ETag of the tenant, like \"3\""}
	}
	return n, true, nil
}

func (h *Handler) updateTenant(w http.ResponseWriter, r *http.Request) error {
	var req UpdateTenantRequest
	if err := h.decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	version, ok, err := ifMatchVersion(r)
	if err != nil {
		return err
	}
	switch {
	case ok && req.Version != 0 && req.Version != version:
		return &catalog.ValidationError{Field: "version", Reason: "the body's version and If-Match disagree"}
	case ok:
		req.Version = version
	}
	a, err := actor(r, req.Reason)
	if err != nil {
		return err
	}
	if req.Placement != nil && h.config.Provisioner != nil {
		// The placement names the storage provisioning made; a new one would
		// point the tenant at storage that does not hold its data.
		return &catalog.ValidationError{Field: "placement",
			Reason: "is managed by provisioning on this server; moving a tenant to another model or cluster is not supported"}
	}
	t, err := h.store.UpdateTenant(r.Context(), a, r.PathValue("slug"), catalog.TenantPatch{
		Version:     req.Version,
		DisplayName: req.DisplayName,
		State:       req.State,
		Tier:        req.Tier,
		Region:      req.Region,
		Placement:   req.Placement,
		Labels:      req.Labels,
	})
	if err != nil {
		return err
	}
	writeTenant(w, http.StatusOK, t)
	return nil
}

func (h *Handler) deleteTenant(w http.ResponseWriter, r *http.Request) error {
	a, err := h.reasonActor(w, r)
	if err != nil {
		return err
	}
	if h.config.Provisioner != nil {
		if err := h.deprovisionForDelete(r.Context(), a, r.PathValue("slug")); err != nil {
			return err
		}
	}
	if err := h.store.DeleteTenant(r.Context(), a, r.PathValue("slug")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) suspendTenant(w http.ResponseWriter, r *http.Request) error {
	return h.setState(w, r, tenant.StateSuspended)
}

func (h *Handler) resumeTenant(w http.ResponseWriter, r *http.Request) error {
	return h.setState(w, r, tenant.StateActive)
}

func (h *Handler) setState(w http.ResponseWriter, r *http.Request, st tenant.State) error {
	a, err := h.reasonActor(w, r)
	if err != nil {
		return err
	}
	t, err := h.store.SetState(r.Context(), a, r.PathValue("slug"), st)
	if err != nil {
		return err
	}
	writeTenant(w, http.StatusOK, t)
	return nil
}

func (h *Handler) addDomain(w http.ResponseWriter, r *http.Request) error {
	var req AddDomainRequest
	if err := h.decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	a, err := actor(r, req.Reason)
	if err != nil {
		return err
	}
	t, err := h.store.AddDomain(r.Context(), a, r.PathValue("slug"), req.Domain)
	if err != nil {
		return err
	}
	writeTenant(w, http.StatusCreated, t)
	return nil
}

func (h *Handler) removeDomain(w http.ResponseWriter, r *http.Request) error {
	a, err := h.reasonActor(w, r)
	if err != nil {
		return err
	}
	t, err := h.store.RemoveDomain(r.Context(), a, r.PathValue("slug"), r.PathValue("domain"))
	if err != nil {
		return err
	}
	writeTenant(w, http.StatusOK, t)
	return nil
}

// reasonActor reads the optional {"reason": ...} body of a request that
// carries nothing else and returns the audited actor.
func (h *Handler) reasonActor(w http.ResponseWriter, r *http.Request) (catalog.Actor, error) {
	var req ReasonRequest
	if err := h.decodeJSON(w, r, &req, true); err != nil {
		return catalog.Actor{}, err
	}
	return actor(r, req.Reason)
}
