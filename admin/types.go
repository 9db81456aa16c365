package admin

import (
	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/tenant"
)

// CreateTenantRequest is the body of POST /admin/v1/tenants.
type CreateTenantRequest struct {
	// Slug is required; see tenant.ValidateSlug.
	Slug string `json:"slug"`
	// DisplayName defaults to the slug.
	DisplayName string `json:"display_name,omitempty"`
	// State defaults to active.
	State tenant.State `json:"state,omitempty"`
	// Tier defaults to "free".
	Tier string `json:"tier,omitempty"`
	// Region defaults to none.
	Region string `json:"region,omitempty"`
	// Placement is usually left out, or given only a model: the tenant is
	// then "unplaced" and the server's placement policy chooses its model
	// (from the tier: free -> shared, pro -> schema, enterprise ->
	// database) and its cluster when it provisions it; the answer carries
	// the placement chosen. A model given here overrides the tier; a
	// cluster given here is used as is.
	Placement tenant.Placement `json:"placement,omitzero"`
	// Domains are custom domains, unique across tenants.
	Domains []string          `json:"domains,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	// Reason is recorded in the audit log (or use X-Tenantry-Reason).
	Reason string `json:"reason,omitempty"`
}

// UpdateTenantRequest is the body of PATCH /admin/v1/tenants/{slug}. Absent
// fields are left alone.
type UpdateTenantRequest struct {
	// Version is the version the change is based on; it may instead come
	// in an If-Match header (the ETag of GET). Required, one way or the
	// other.
	Version     int64             `json:"version,omitempty"`
	DisplayName *string           `json:"display_name,omitempty"`
	State       *tenant.State     `json:"state,omitempty"`
	Tier        *string           `json:"tier,omitempty"`
	Region      *string           `json:"region,omitempty"`
	Placement   *tenant.Placement `json:"placement,omitempty"`
	// Labels, when present, replaces every label.
	Labels map[string]string `json:"labels,omitempty"`
	Reason string            `json:"reason,omitempty"`
}

// ReasonRequest is the optional body of suspend, resume and delete.
type ReasonRequest struct {
	Reason string `json:"reason,omitempty"`
}

// AddDomainRequest is the body of POST /admin/v1/tenants/{slug}/domains.
type AddDomainRequest struct {
	Domain string `json:"domain"`
	Reason string `json:"reason,omitempty"`
}

// CreateClusterRequest is the body of POST /admin/v1/clusters; see
// catalog.Cluster for the fields and their defaults.
type CreateClusterRequest struct {
	Name       string            `json:"name"`
	ConnString string            `json:"conn_string"`
	Region     string            `json:"region,omitempty"`
	Role       string            `json:"role,omitempty"`
	MaxConns   int               `json:"max_conns,omitempty"`
	MaxTenants int               `json:"max_tenants,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Reason     string            `json:"reason,omitempty"`
}

// TenantList is the body of GET /admin/v1/tenants.
type TenantList struct {
	Tenants []*tenant.Tenant `json:"tenants"`
	// Next is the cursor of the next page (pass it as ?after=), empty on
	// the last page.
	Next string `json:"next,omitempty"`
}

// ClusterList is the body of GET /admin/v1/clusters. Connection strings
// are redacted.
type ClusterList struct {
	Clusters []catalog.Cluster `json:"clusters"`
}

// AuditList is the body of GET /admin/v1/audit.
type AuditList struct {
	Entries []catalog.AuditEntry `json:"entries"`
}
