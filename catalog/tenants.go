package catalog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/tenant"
)

// NewTenant is the input to CreateTenant.
type NewTenant struct {
	// Slug is required; see tenant.ValidateSlug.
	Slug string
	// DisplayName defaults to the slug.
	DisplayName string
	// State defaults to active.
	State tenant.State
	// Tier defaults to "free".
	Tier string
	// Region defaults to "" (no residency constraint).
	Region string
	// Placement may be left empty: the tenant is then unplaced, and the
	// data plane's placement policy chooses its model (by tier, say) when it
	// provisions the tenant. A model given here is an explicit choice the
	// policy honours.
	Placement tenant.Placement
	// Domains are custom domains; each is normalised (see NormalizeDomain)
	// and must be unique across tenants.
	Domains []string
	// Labels are free-form annotations.
	Labels map[string]string
}

func (in *NewTenant) normalize() error {
	if err := validateSlugField(in.Slug); err != nil {
		return err
	}
	if in.DisplayName == "" {
		in.DisplayName = in.Slug
	}
	if err := validateDisplayName(in.DisplayName); err != nil {
		return err
	}
	if in.State == "" {
		in.State = tenant.StateActive
	}
	if !in.State.Valid() {
		return &ValidationError{Field: "state", Reason: "must be one of active, suspended, read-only, deleting"}
	}
	if in.Tier == "" {
		in.Tier = "free"
	}
	if err := validateTier(in.Tier); err != nil {
		return err
	}
	if err := validateRegion(in.Region); err != nil {
		return err
	}
	if err := validatePlacement(in.Placement); err != nil {
		return err
	}
	if err := validateLabels("labels", in.Labels); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, d := range in.Domains {
		n, err := NormalizeDomain(d)
		if err != nil {
			// Report the request's field (domains), not NormalizeDomain's.
			var ve *ValidationError
			if !errors.As(err, &ve) {
				return err
			}
			return &ValidationError{Field: "domains", Reason: ve.Reason}
		}
		if seen[n] {
			return &ValidationError{Field: "domains", Reason: fmt.Sprintf("%q given twice", n)}
		}
		seen[n] = true
		in.Domains[i] = n
	}
	return nil
}

const tenantColumns = `t.id::text, t.slug, t.display_name, t.state, t.tier, t.region,
	t.placement_model, COALESCE(t.placement_cluster, ''), t.placement_database, t.placement_schema,
	COALESCE((SELECT array_agg(d.domain ORDER BY d.domain) FROM tenantry.domain d WHERE d.tenant_id = t.id), '{}'),
	t.labels, t.created_at, t.updated_at, t.version`

func scanTenant(row pgx.Row) (*tenant.Tenant, error) {
	var t tenant.Tenant
	var state, model string
	err := row.Scan(&t.ID, &t.Slug, &t.DisplayName, &state, &t.Tier, &t.Region,
		&model, &t.Placement.Cluster, &t.Placement.Database, &t.Placement.Schema,
		&t.Domains, &t.Labels, &t.CreatedAt, &t.UpdatedAt, &t.Version)
	if err != nil {
		return nil, err
	}
	t.State, t.Placement.Model = tenant.State(state), tenant.Model(model)
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	return &t, nil
}

// CreateTenant records a new tenant with its domains. Nothing is written if
// any part fails.
func (s *Store) CreateTenant(ctx context.Context, actor Actor, in NewTenant) (*tenant.Tenant, error) {
	if err := actor.validate(); err != nil {
		return nil, err
	}
	in.Domains = slices.Clone(in.Domains)
	if err := in.normalize(); err != nil {
		return nil, err
	}
	labels := in.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	var out *tenant.Tenant
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var id string
		err := tx.QueryRow(ctx, `INSERT INTO tenantry.tenant
    (slug, display_name, state, tier, region, placement_model, placement_cluster, placement_database, placement_schema, labels)
VALUES ($1, $2, $3, $4, $5, $6, NULLIF($7, ''), $8, $9, $10)
RETURNING id::text`, in.Slug, in.DisplayName, string(in.State), in.Tier, in.Region,
			string(in.Placement.Model), in.Placement.Cluster, in.Placement.Database, in.Placement.Schema, labels).Scan(&id)
		if err != nil {
			if _, ok := uniqueViolation(err); ok {
				return &ExistsError{Field: "slug", Value: in.Slug}
			}
			if _, ok := foreignKeyViolation(err); ok {
				return &ValidationError{Field: "placement.cluster", Reason: fmt.Sprintf("no cluster named %q", in.Placement.Cluster)}
			}
			return fmt.Errorf("insert tenant: %w", err)
		}
		for _, d := range in.Domains {
			if err := insertDomain(ctx, tx, id, d); err != nil {
				var ee *ExistsError
				if errors.As(err, &ee) {
					ee.Field = "domains" // the create request's field
				}
				return err
			}
		}
		if out, err = scanTenant(tx.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenantry.tenant t WHERE t.id = $1`, id)); err != nil {
			return fmt.Errorf("read new tenant: %w", err)
		}
		return s.audit(ctx, tx, actor, "tenant.create", id, in.Slug, nil, out)
	})
	if err != nil {
		return nil, err
	}
	s.logger.InfoContext(ctx, "tenant created", "tenant", out.Slug, "tenant_id", out.ID, "model", out.Placement.Model, "actor", actor.Name)
	return out, nil
}

func insertDomain(ctx context.Context, tx pgx.Tx, tenantID, domain string) error {
	_, err := tx.Exec(ctx, `INSERT INTO tenantry.domain (domain, tenant_id) VALUES ($1, $2)`, domain, tenantID)
	if _, ok := uniqueViolation(err); ok {
		return &ExistsError{Field: "domain", Value: domain}
	}
	if err != nil {
		return fmt.Errorf("insert domain: %w", err)
	}
	return nil
}

// Tenant returns one tenant by slug or by ID.
func (s *Store) Tenant(ctx context.Context, slugOrID string) (*tenant.Tenant, error) {
	return s.tenant(ctx, s.pool, slugOrID, false)
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Store) tenant(ctx context.Context, q querier, slugOrID string, forUpdate bool) (*tenant.Tenant, error) {
	where := `t.slug = $1`
	if isUUID(slugOrID) {
		where = `t.id = $1::uuid`
	} else if !tenant.IsValidSlug(slugOrID) {
		return nil, fmt.Errorf("tenant %q: %w", truncate(slugOrID, 64), ErrNotFound)
	}
	sql := `SELECT ` + tenantColumns + ` FROM tenantry.tenant t WHERE ` + where
	if forUpdate {
		sql += ` FOR UPDATE OF t`
	}
	t, err := scanTenant(q.QueryRow(ctx, sql, slugOrID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("tenant %q: %w", slugOrID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read tenant: %w", err)
	}
	return t, nil
}

// ListOptions selects tenants for Tenants.
type ListOptions struct {
	// State limits the list to one state. Default: all.
	State tenant.State
	// After is a slug cursor: only tenants whose slug sorts after it.
	After string
	// Limit caps the page size. Default 100, at most 1000.
	Limit int
}

// Tenants lists tenants ordered by slug.
func (s *Store) Tenants(ctx context.Context, opts ListOptions) ([]*tenant.Tenant, error) {
	if opts.Limit <= 0 {
		opts.Limit = 100
	}
	if opts.Limit > 1000 {
		opts.Limit = 1000
	}
	if opts.State != "" && !opts.State.Valid() {
		return nil, &ValidationError{Field: "state", Reason: "must be one of active, suspended, read-only, deleting"}
	}
	rows, err := s.pool.Query(ctx, `SELECT `+tenantColumns+` FROM tenantry.tenant t
WHERE ($1 = '' OR t.state = $1) AND t.slug > $2
ORDER BY t.slug LIMIT $3`, string(opts.State), opts.After, opts.Limit)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*tenant.Tenant, error) { return scanTenant(row) })
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return out, nil
}

// allTenants loads every tenant (for the cache).
func (s *Store) allTenants(ctx context.Context) ([]*tenant.Tenant, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tenantColumns+` FROM tenantry.tenant t`)
	if err != nil {
		return nil, fmt.Errorf("load tenants: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*tenant.Tenant, error) { return scanTenant(row) })
	if err != nil {
		return nil, fmt.Errorf("load tenants: %w", err)
	}
	return out, nil
}

// TenantPatch is a partial update; nil fields are left alone.
type TenantPatch struct {
	// Version must equal the stored version (optimistic concurrency); the
	// update fails with ErrVersionConflict otherwise.
	Version     int64
	DisplayName *string
	State       *tenant.State
	Tier        *string
	Region      *string
	Placement   *tenant.Placement
	// Labels, when non-nil, replaces all labels.
	Labels map[string]string
}

func (p *TenantPatch) apply(t *tenant.Tenant) error {
	if p.Version <= 0 {
		return &ValidationError{Field: "version", Reason: "required: send the version you read"}
	}
	if p.DisplayName != nil {
		if err := validateDisplayName(*p.DisplayName); err != nil {
			return err
		}
		t.DisplayName = *p.DisplayName
	}
	if p.State != nil {
		if !p.State.Valid() {
			return &ValidationError{Field: "state", Reason: "must be one of active, suspended, read-only, deleting"}
		}
		t.State = *p.State
	}
	if p.Tier != nil {
		if err := validateTier(*p.Tier); err != nil {
			return err
		}
		t.Tier = *p.Tier
	}
	if p.Region != nil {
		if err := validateRegion(*p.Region); err != nil {
			return err
		}
		t.Region = *p.Region
	}
	if p.Placement != nil {
		if err := validatePlacement(*p.Placement); err != nil {
			return err
		}
		t.Placement = *p.Placement
	}
	if p.Labels != nil {
		if err := validateLabels("labels", p.Labels); err != nil {
			return err
		}
		t.Labels = maps.Clone(p.Labels)
	}
	return nil
}

// UpdateTenant applies p to the tenant if its version still matches.
func (s *Store) UpdateTenant(ctx context.Context, actor Actor, slugOrID string, p TenantPatch) (*tenant.Tenant, error) {
	return s.modifyTenant(ctx, actor, slugOrID, "tenant.update", p.Version, func(t *tenant.Tenant) error { return p.apply(t) })
}

// SetState moves a tenant to state st whatever its version (suspend, resume).
func (s *Store) SetState(ctx context.Context, actor Actor, slugOrID string, st tenant.State) (*tenant.Tenant, error) {
	if !st.Valid() {
		return nil, &ValidationError{Field: "state", Reason: "must be one of active, suspended, read-only, deleting"}
	}
	action := "tenant.state"
	switch st {
	case tenant.StateSuspended:
		action = "tenant.suspend"
	case tenant.StateActive:
		action = "tenant.resume"
	}
	return s.modifyTenant(ctx, actor, slugOrID, action, 0, func(t *tenant.Tenant) error {
		t.State = st
		return nil
	})
}

// modifyTenant reads the tenant under a row lock, lets change edit it, and
// writes it back with version+1. version 0 skips the version check.
func (s *Store) modifyTenant(ctx context.Context, actor Actor, slugOrID, action string, version int64, change func(*tenant.Tenant) error) (*tenant.Tenant, error) {
	if err := actor.validate(); err != nil {
		return nil, err
	}
	var out *tenant.Tenant
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := s.tenant(ctx, tx, slugOrID, true)
		if err != nil {
			return err
		}
		if version != 0 && before.Version != version {
			return fmt.Errorf("tenant %q is at version %d, not %d: %w", before.Slug, before.Version, version, ErrVersionConflict)
		}
		after := *before
		after.Labels = maps.Clone(before.Labels)
		if err := change(&after); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE tenantry.tenant SET display_name = $2, state = $3, tier = $4, region = $5,
    placement_model = $6, placement_cluster = NULLIF($7, ''), placement_database = $8, placement_schema = $9,
    labels = $10, updated_at = now(), version = version + 1
WHERE id = $1`, before.ID, after.DisplayName, string(after.State), after.Tier, after.Region,
			string(after.Placement.Model), after.Placement.Cluster, after.Placement.Database, after.Placement.Schema, after.Labels)
		if _, ok := foreignKeyViolation(err); ok {
			return &ValidationError{Field: "placement.cluster", Reason: fmt.Sprintf("no cluster named %q", after.Placement.Cluster)}
		}
		if err != nil {
			return fmt.Errorf("update tenant: %w", err)
		}
		if out, err = s.tenant(ctx, tx, before.ID, false); err != nil {
			return err
		}
		return s.audit(ctx, tx, actor, action, before.ID, before.Slug, before, out)
	})
	if err != nil {
		return nil, err
	}
	s.logger.InfoContext(ctx, "tenant changed", "tenant", out.Slug, "action", action, "state", out.State, "version", out.Version, "actor", actor.Name)
	return out, nil
}

// DeleteTenant removes a tenant and its domains from the catalog. The audit
// log keeps its last state. Callers deprovision the tenant's data first.
func (s *Store) DeleteTenant(ctx context.Context, actor Actor, slugOrID string) error {
	if err := actor.validate(); err != nil {
		return err
	}
	var slug string
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := s.tenant(ctx, tx, slugOrID, true)
		if err != nil {
			return err
		}
		slug = before.Slug
		if _, err := tx.Exec(ctx, `DELETE FROM tenantry.tenant WHERE id = $1`, before.ID); err != nil {
			return fmt.Errorf("delete tenant: %w", err)
		}
		return s.audit(ctx, tx, actor, "tenant.delete", before.ID, before.Slug, before, nil)
	})
	if err == nil {
		s.logger.InfoContext(ctx, "tenant deleted", "tenant", slug, "actor", actor.Name)
	}
	return err
}

// AddDomain attaches a custom domain to a tenant. Domains are unique across
// tenants.
func (s *Store) AddDomain(ctx context.Context, actor Actor, slugOrID, domain string) (*tenant.Tenant, error) {
	d, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	return s.modifyDomains(ctx, actor, slugOrID, "domain.add", d, func(tx pgx.Tx, t *tenant.Tenant) error {
		return insertDomain(ctx, tx, t.ID, d)
	})
}

// RemoveDomain detaches a custom domain from a tenant.
func (s *Store) RemoveDomain(ctx context.Context, actor Actor, slugOrID, domain string) (*tenant.Tenant, error) {
	d, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	return s.modifyDomains(ctx, actor, slugOrID, "domain.remove", d, func(tx pgx.Tx, t *tenant.Tenant) error {
		tag, err := tx.Exec(ctx, `DELETE FROM tenantry.domain WHERE domain = $1 AND tenant_id = $2`, d, t.ID)
		if err != nil {
			return fmt.Errorf("delete domain: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("domain %q of tenant %q: %w", d, t.Slug, ErrNotFound)
		}
		return nil
	})
}

func (s *Store) modifyDomains(ctx context.Context, actor Actor, slugOrID, action, domain string, change func(pgx.Tx, *tenant.Tenant) error) (*tenant.Tenant, error) {
	if err := actor.validate(); err != nil {
		return nil, err
	}
	var out *tenant.Tenant
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := s.tenant(ctx, tx, slugOrID, true)
		if err != nil {
			return err
		}
		if err := change(tx, before); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE tenantry.tenant SET updated_at = now(), version = version + 1 WHERE id = $1`, before.ID); err != nil {
			return fmt.Errorf("bump tenant version: %w", err)
		}
		if out, err = s.tenant(ctx, tx, before.ID, false); err != nil {
			return err
		}
		return s.audit(ctx, tx, actor, action, before.ID, domain, before.Domains, out.Domains)
	})
	if err != nil {
		return nil, err
	}
	s.logger.InfoContext(ctx, "tenant domains changed", "tenant", out.Slug, "action", action, "domain", domain, "actor", actor.Name)
	return out, nil
}
