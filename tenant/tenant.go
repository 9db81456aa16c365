package tenant

import (
	"time"
)

// State is a tenant's lifecycle state. Only an active or read-only tenant is
// served; the resolution middleware answers the other states with an error.
type State string

const (
	// StateActive is a tenant that is served normally.
	StateActive State = "active"
	// StateSuspended is a tenant whose requests are refused with 423 Locked.
	StateSuspended State = "suspended"
	// StateReadOnly is a tenant that is served, but whose writes are refused.
	StateReadOnly State = "read-only"
	// StateDeleting is a tenant being offboarded; it is no longer served.
	StateDeleting State = "deleting"
)

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	switch s {
	case StateActive, StateSuspended, StateReadOnly, StateDeleting:
		return true
	}
	return false
}

// Model is a storage isolation model.
type Model string

const (
	// ModelShared keeps the tenant's rows in tables shared with other
	// tenants, separated by a tenant_id column and row-level security.
	ModelShared Model = "shared"
	// ModelSchema gives the tenant its own PostgreSQL schema.
	ModelSchema Model = "schema"
	// ModelDatabase gives the tenant its own PostgreSQL database.
	ModelDatabase Model = "database"
	// ModelSharded places the tenant on one of several PostgreSQL servers
	// (shards), where its rows live in shared tables under row-level security.
	ModelSharded Model = "sharded"
)

// Models lists every storage model, in order of increasing isolation.
var Models = []Model{ModelShared, ModelSharded, ModelSchema, ModelDatabase}

// Valid reports whether m is one of the known models.
func (m Model) Valid() bool {
	switch m {
	case ModelShared, ModelSchema, ModelDatabase, ModelSharded:
		return true
	}
	return false
}

// Placement says where a tenant's data lives. The catalog records it when the
// tenant is created and it changes only through an explicit move: it is never
// recomputed implicitly.
type Placement struct {
	// Model is the storage isolation model; "" while the tenant is unplaced.
	Model Model `json:"model"`
	// Cluster names the PostgreSQL cluster (server) in the catalog's cluster
	// table. For the sharded model it is the shard.
	Cluster string `json:"cluster"`
	// Database is the database on Cluster holding the tenant's tables.
	Database string `json:"database"`
	// Schema is the schema holding the tenant's tables.
	Schema string `json:"schema"`
}

// Placed reports whether the placement names a model. A tenant created
// without one is unplaced until the data plane provisions it.
func (p Placement) Placed() bool { return p.Model != "" }

// Tenant is one customer organisation. Values handed out by the catalog are
// shared snapshots: treat them as read-only.
type Tenant struct {
	// ID is the tenant's immutable identifier (a UUID).
	ID string `json:"id"`
	// Slug is the tenant's unique, DNS-label-shaped name (see ValidateSlug).
	Slug string `json:"slug"`
	// DisplayName is a human-readable name.
	DisplayName string `json:"display_name"`
	// State is the lifecycle state.
	State State `json:"state"`
	// Tier is the commercial tier (free, pro, enterprise, ...). A placement
	// policy may derive the default model from it.
	Tier string `json:"tier"`
	// Region is the data-residency region the tenant's data must stay in.
	Region string `json:"region"`
	// Placement says where the tenant's data lives.
	Placement Placement `json:"placement"`
	// Domains are the custom domains (exact hosts) that resolve to the tenant.
	Domains []string `json:"domains"`
	// Labels are free-form key/value annotations.
	Labels map[string]string `json:"labels"`
	// CreatedAt is when the tenant was created.
	CreatedAt time.Time `json:"created_at"`
	// UpdatedAt is when the tenant was last changed.
	UpdatedAt time.Time `json:"updated_at"`
	// Version increases by one on every change; updates carry the version
	// they read (optimistic concurrency).
	Version int64 `json:"version"`
}

// Servable reports whether requests for the tenant may be served at all.
func (t *Tenant) Servable() bool {
	return t.State == StateActive || t.State == StateReadOnly
}

// Writable reports whether the tenant accepts writes.
func (t *Tenant) Writable() bool {
	return t.State == StateActive
}
