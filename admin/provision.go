package admin

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"time"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/provision"
	"github.com/tenantry/tenantry/tenant"
)

// Provisioner creates and drops the storage of tenants.
// *provision.Provisioner implements it; a server may wrap it to drop more
// of a tenant's data (its files) in Deprovision.
type Provisioner interface {
	// Provision places the tenant with slug (if it has no placement yet)
	// and creates its storage; it is idempotent.
	Provision(ctx context.Context, actor catalog.Actor, slug string) (*provision.Result, error)
	// Deprovision drops the tenant's storage and clears its placement; it
	// is idempotent.
	Deprovision(ctx context.Context, actor catalog.Actor, slug string) error
}

// LabelProvisioning marks a tenant whose storage could not be created and
// whose partial storage could not be dropped either, so that its catalog
// record could not be removed: the value is ProvisioningFailed. Such a
// tenant resolves, but `tenantry serve` answers its application requests
// 503 tenant_not_provisioned until POST /admin/v1/tenants/{slug}/provision
// succeeds (which removes the label) or the tenant is deleted.
const LabelProvisioning = "tenantry.io/provisioning"

// ProvisioningFailed is the value of LabelProvisioning on a tenant whose
// provisioning failed and could not be rolled back.
const ProvisioningFailed = "failed"

// cleanupTimeout bounds the rollback of a failed provisioning, which runs
// even when the client has gone away.
const cleanupTimeout = 2 * time.Minute

// provisionNew provisions a tenant the request just created. On failure
// it rolls the creation back: the storage is dropped (Deprovision, which
// also drops anything a partial provisioning made) and the catalog record
// deleted, so that nothing half-written stays behind and the same request
// can be sent again. If the rollback fails too, the tenant is kept and
// marked with LabelProvisioning, and the error says so.
func (h *Handler) provisionNew(ctx context.Context, a catalog.Actor, t *tenant.Tenant) (*tenant.Tenant, error) {
	res, err := h.config.Provisioner.Provision(ctx, a, t.Slug)
	if err == nil {
		return res.Tenant, nil
	}
	h.logger.ErrorContext(ctx, "provisioning a new tenant failed; rolling the creation back", "tenant", t.Slug, "error", err)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	undo := catalog.Actor{Name: a.Name, Reason: "provisioning failed: creation rolled back"}
	var rollbackErr error
	if !errors.Is(err, provision.ErrForeignStorage) {
		rollbackErr = h.config.Provisioner.Deprovision(ctx, undo, t.Slug)
	} // else the storage is someone else's: leave it, drop only the record
	if rollbackErr == nil {
		rollbackErr = h.store.DeleteTenant(ctx, undo, t.Slug)
	}
	if rollbackErr == nil {
		e := provisioningError(err)
		e.Detail += "; nothing was kept: the tenant was not created"
		return nil, e
	}
	h.logger.ErrorContext(ctx, "rolling back a failed provisioning failed; the tenant is kept and marked",
		"tenant", t.Slug, "label", LabelProvisioning+"="+ProvisioningFailed, "error", rollbackErr)
	h.markFailed(ctx, a, t.Slug)
	return nil, keptError(err, t.Slug)
}

// markFailed sets LabelProvisioning=failed on the tenant, best effort.
func (h *Handler) markFailed(ctx context.Context, a catalog.Actor, slug string) {
	err := h.relabel(ctx, catalog.Actor{Name: a.Name, Reason: "provisioning failed"}, slug, func(l map[string]string) {
		l[LabelProvisioning] = ProvisioningFailed
	})
	if err != nil {
		h.logger.ErrorContext(ctx, "cannot mark the tenant as failed to provision", "tenant", slug, "error", err)
	}
}

// relabel changes a tenant's labels with edit, retrying on concurrent
// changes. It writes nothing when edit changes nothing.
func (h *Handler) relabel(ctx context.Context, a catalog.Actor, slug string, edit func(map[string]string)) error {
	for attempt := 0; ; attempt++ {
		t, err := h.store.Tenant(ctx, slug)
		if err != nil {
			return err
		}
		labels := maps.Clone(t.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		edit(labels)
		if maps.Equal(labels, t.Labels) {
			return nil
		}
		_, err = h.store.UpdateTenant(ctx, a, t.ID, catalog.TenantPatch{Version: t.Version, Labels: labels})
		if !errors.Is(err, catalog.ErrVersionConflict) || attempt == 5 {
			return err
		}
	}
}

// provisionTenant serves POST /admin/v1/tenants/{slug}/provision: it
// creates what is missing of an existing tenant's storage (after a failed
// provisioning, or for a tenant created before its server provisioned) and
// clears LabelProvisioning. It is idempotent: on a provisioned tenant it
// changes nothing and answers the tenant.
func (h *Handler) provisionTenant(w http.ResponseWriter, r *http.Request) error {
	a, err := h.reasonActor(w, r)
	if err != nil {
		return err
	}
	if h.config.Provisioner == nil {
		return errNoProvisioner
	}
	slug := r.PathValue("slug")
	if _, err := h.store.Tenant(r.Context(), slug); err != nil {
		return err
	}
	res, err := h.config.Provisioner.Provision(r.Context(), a, slug)
	if errors.Is(err, provision.ErrDeleting) || errors.Is(err, provision.ErrPlacementMismatch) || errors.Is(err, provision.ErrForeignStorage) {
		return provisioningError(err)
	}
	if err != nil {
		h.logger.ErrorContext(r.Context(), "provisioning failed", "tenant", slug, "error", err)
		h.markFailed(context.WithoutCancel(r.Context()), a, slug)
		return keptError(err, slug)
	}
	t := res.Tenant
	if t.Labels[LabelProvisioning] != "" {
		if err := h.relabel(r.Context(), a, t.ID, func(l map[string]string) { delete(l, LabelProvisioning) }); err != nil {
			return err
		}
		if t, err = h.store.Tenant(r.Context(), t.ID); err != nil {
			return err
		}
	}
	writeTenant(w, http.StatusOK, t)
	return nil
}

// deprovisionForDelete drops a tenant's storage before its catalog record
// is deleted. The tenant first moves to state deleting, so resolution
// answers its requests 410 while its data goes; if dropping fails, it stays
// in that state and DELETE can be sent again.
func (h *Handler) deprovisionForDelete(ctx context.Context, a catalog.Actor, slug string) error {
	t, err := h.store.Tenant(ctx, slug)
	if err != nil {
		return err
	}
	if t.State != tenant.StateDeleting {
		if _, err := h.store.SetState(ctx, a, t.ID, tenant.StateDeleting); err != nil {
			return err
		}
	}
	if err := h.config.Provisioner.Deprovision(ctx, a, t.Slug); err != nil {
		h.logger.ErrorContext(ctx, "deprovisioning failed; the tenant stays in state deleting", "tenant", slug, "error", err)
		if errors.Is(err, provision.ErrForeignStorage) {
			e := newError(http.StatusConflict, CodeStorageConflict, "placement",
				"the tenant's placement names a schema or database that Tenantry did not make; it is not dropped, and the tenant stays in state deleting")
			e.cause = err
			return e
		}
		e := newError(http.StatusServiceUnavailable, CodeDeprovisioningFailed, "",
			"the tenant's storage could not be dropped; it stays in state deleting (its requests are answered 410): send DELETE again")
		e.cause = err
		return e
	}
	return nil
}

var errNoProvisioner = newError(http.StatusNotImplemented, CodeNotImplemented, "",
	"this server does not provision tenant storage")

// provisioningError maps a failed provisioning to the answer: 422
// no_capacity when no cluster can take the tenant (its model, region or
// the clusters' caps are at fault), 409 for a tenant being deleted or whose
// recorded placement this server would not have made, else 503
// provisioning_failed; 409 storage_conflict when the tenant's schema or
// database name is taken by storage Tenantry did not make.
func provisioningError(err error) *Error {
	var e *Error
	switch {
	case errors.Is(err, provision.ErrNoCapacity):
		e = newError(http.StatusUnprocessableEntity, CodeNoCapacity, "placement",
			"no cluster can take the tenant: none of its model's role (primary, or shard for sharded) in its region, or all at their max_tenants")
	case errors.Is(err, provision.ErrDeleting):
		e = newError(http.StatusConflict, CodeTenantDeleting, "", "the tenant is being deleted")
	case errors.Is(err, provision.ErrForeignStorage):
		e = newError(http.StatusConflict, CodeStorageConflict, "slug",
			"a schema or database named for this tenant exists and was not made by Tenantry; nothing of it was changed (choose another slug, or move that storage away)")
	case errors.Is(err, provision.ErrPlacementMismatch):
		e = newError(http.StatusConflict, CodePlacementMismatch, "placement",
			"the tenant's recorded placement names storage this server would not create for it")
	case errors.Is(err, catalog.ErrUnavailable):
		e = newError(http.StatusServiceUnavailable, CodeUnavailable, "", "the catalog is unavailable; retry shortly")
	default:
		e = newError(http.StatusServiceUnavailable, CodeProvisioningFailed, "",
			"the tenant's storage could not be created (the server log says why)")
	}
	e.cause = err
	return e
}

// keptError is provisioningError for a tenant that stays in the catalog,
// marked with LabelProvisioning.
func keptError(err error, slug string) *Error {
	e := provisioningError(err)
	e.Detail += "; the tenant is kept with label " + LabelProvisioning + "=" + ProvisioningFailed +
		": retry with POST /admin/v1/tenants/" + slug + "/provision, or delete it"
	return e
}
