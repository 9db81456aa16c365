package provision

import (
	"fmt"
	"strings"

	"github.com/tenantry/tenantry/tenant"
)

// Roles every cluster gets on first use. They are fixed names, shared with
// the router (which connects as AppRole and switches to TenantRole per
// transaction), so they are not configurable.
const (
	// OwnerRole owns every tenant table, schema and database (NOLOGIN). DDL
	// runs as it; it is never used at runtime.
	OwnerRole = "tenantry_owner"
	// AppRole is the runtime login role: NOSUPERUSER, NOBYPASSRLS,
	// NOINHERIT, owns nothing. It has DML on the shared and sharded tables
	// (under row-level security) and is a member of every per-tenant role,
	// which it must SET ROLE to before it can touch a tenant schema or
	// database (NOINHERIT).
	AppRole = "tenantry_app"
	// ReportingRole is a read-only role (NOLOGIN: grant it to a login role
	// of your reporting tool). It can SELECT every tenant table in every
	// model; on shared and sharded tables a policy of its own lets it read
	// all rows. It has no BYPASSRLS and no write privilege anywhere.
	ReportingRole = "tenantry_reporting"
	// TenantRolePrefix starts the name of each per-tenant role.
	TenantRolePrefix = "tenantry_t_"
	// TenantPrefix starts the name of a tenant's schema (schema model) and
	// database (database model).
	TenantPrefix = "t_"
)

// tenantSuffix turns a validated slug into the identifier suffix used for
// its schema, database and role: hyphens become underscores. Slugs never
// contain underscores, so the mapping is one to one.
func tenantSuffix(slug string) (string, error) {
	if err := tenant.ValidateSlug(slug); err != nil {
		return "", err
	}
	return strings.ReplaceAll(slug, "-", "_"), nil
}

// TenantRole returns the per-tenant role of the tenant with slug, used by the
// schema and database models: "tenantry_t_" + slug with '-' replaced by '_'.
func TenantRole(slug string) (string, error) {
	s, err := tenantSuffix(slug)
	if err != nil {
		return "", err
	}
	return TenantRolePrefix + s, nil
}

// TenantSchema returns the schema of a schema-model tenant: "t_" + slug with
// '-' replaced by '_'.
func TenantSchema(slug string) (string, error) {
	s, err := tenantSuffix(slug)
	if err != nil {
		return "", err
	}
	return TenantPrefix + s, nil
}

// TenantDatabase returns the database of a database-model tenant: "t_" +
// slug with '-' replaced by '_'.
func TenantDatabase(slug string) (string, error) { return TenantSchema(slug) }

// placement returns the full placement of a tenant with slug on model and
// cluster, with the database names of c.
func (c *Config) placement(slug string, model tenant.Model, cluster string) (tenant.Placement, error) {
	p := tenant.Placement{Model: model, Cluster: cluster}
	switch model {
	case tenant.ModelShared:
		p.Database, p.Schema = c.SharedDatabase, c.AppSchema
	case tenant.ModelSharded:
		p.Database, p.Schema = c.ShardDatabase, c.AppSchema
	case tenant.ModelSchema:
		s, err := TenantSchema(slug)
		if err != nil {
			return p, err
		}
		p.Database, p.Schema = c.SchemasDatabase, s
	case tenant.ModelDatabase:
		d, err := TenantDatabase(slug)
		if err != nil {
			return p, err
		}
		p.Database, p.Schema = d, c.AppSchema
	default:
		return p, fmt.Errorf("provision: unknown model %q", model)
	}
	return p, nil
}
