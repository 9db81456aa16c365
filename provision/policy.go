package provision

import (
	"errors"
	"fmt"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/tenant"
)

// ErrNoCapacity is returned (wrapped) when no cluster can take a tenant:
// none of the right role in its region, or all at their MaxTenants.
var ErrNoCapacity = errors.New("no cluster can take the tenant")

// ClusterLoad is a cluster and the number of tenants placed on it, as a
// Policy sees them.
type ClusterLoad struct {
	Cluster *catalog.Cluster
	// Tenants is the number of tenants whose placement names the cluster.
	Tenants int
}

// Decision is what a Policy decides for a tenant: its model and cluster.
// The provisioner derives the database and schema names from them.
type Decision struct {
	Model   tenant.Model
	Cluster string
}

// Policy decides where a tenant that has no placement yet goes. It is called
// once per tenant: the provisioner records the decision in the catalog and
// never asks again, so adding a cluster moves no existing tenant.
//
// Place must be a pure function of its arguments; the provisioner serialises
// calls (across processes, through an advisory lock on the catalog) so that
// the loads it is given are current.
type Policy interface {
	Place(t *tenant.Tenant, clusters []ClusterLoad) (Decision, error)
}

// PolicyFunc adapts a function to Policy.
type PolicyFunc func(t *tenant.Tenant, clusters []ClusterLoad) (Decision, error)

// Place calls f.
func (f PolicyFunc) Place(t *tenant.Tenant, clusters []ClusterLoad) (Decision, error) {
	return f(t, clusters)
}

// ModelLabel is the tenant label that names a model explicitly, overriding
// the tier ("tenantry.io/model": "shared").
const ModelLabel = "tenantry.io/model"

// ExplicitModel returns the model a tenant asked for at creation, if any: the
// ModelLabel label, else the placement model recorded in the catalog (a
// tenant created without one is unplaced, Model "").
func ExplicitModel(t *tenant.Tenant) (tenant.Model, bool) {
	if m := tenant.Model(t.Labels[ModelLabel]); m.Valid() {
		return m, true
	}
	if t.Placement.Model.Valid() {
		return t.Placement.Model, true
	}
	return "", false
}

// TierPolicy places a tenant by its tier, unless it asked for a model
// explicitly (ExplicitModel), on the least-loaded cluster of the model's
// role in its region.
//
// The cluster is the one named in the tenant's placement when given;
// otherwise, among clusters of the right role (shard for the sharded model,
// primary for the others) whose region is the tenant's (any region when the
// tenant has none) and that are below their MaxTenants, the one with the
// fewest tenants, ties broken by name.
type TierPolicy struct {
	// Tiers maps a tier to its model. Default: free -> shared, pro ->
	// schema, enterprise -> database.
	Tiers map[string]tenant.Model
	// Default is the model of a tier missing from Tiers. Default shared.
	Default tenant.Model
}

// DefaultTiers is TierPolicy's default tier map.
var DefaultTiers = map[string]tenant.Model{
	"free":       tenant.ModelShared,
	"pro":        tenant.ModelSchema,
	"enterprise": tenant.ModelDatabase,
}

// Place implements Policy.
func (p TierPolicy) Place(t *tenant.Tenant, clusters []ClusterLoad) (Decision, error) {
	model, ok := ExplicitModel(t)
	if !ok {
		tiers := p.Tiers
		if tiers == nil {
			tiers = DefaultTiers
		}
		if model, ok = tiers[t.Tier]; !ok {
			model = p.Default
			if model == "" {
				model = tenant.ModelShared
			}
		}
	}
	if !model.Valid() {
		return Decision{}, fmt.Errorf("provision: policy model %q is not a model", model)
	}
	cl, err := LeastLoaded(t, model, clusters)
	if err != nil {
		return Decision{}, err
	}
	return Decision{Model: model, Cluster: cl}, nil
}

// ClusterRole returns the cluster role that holds tenants of model.
func ClusterRole(model tenant.Model) string {
	if model == tenant.ModelSharded {
		return catalog.RoleShard
	}
	return catalog.RolePrimary
}

// LeastLoaded returns the cluster for a tenant of model, as TierPolicy
// chooses it. It is exported for policies that decide the model differently.
func LeastLoaded(t *tenant.Tenant, model tenant.Model, clusters []ClusterLoad) (string, error) {
	role := ClusterRole(model)
	fits := func(c ClusterLoad) error {
		switch {
		case c.Cluster.Role != role:
			return fmt.Errorf("cluster %q has role %s, model %s needs %s", c.Cluster.Name, c.Cluster.Role, model, role)
		case t.Region != "" && c.Cluster.Region != t.Region:
			return fmt.Errorf("cluster %q is in region %q, tenant in %q", c.Cluster.Name, c.Cluster.Region, t.Region)
		case c.Cluster.MaxTenants > 0 && c.Tenants >= c.Cluster.MaxTenants:
			return fmt.Errorf("cluster %q is full (%d of %d tenants)", c.Cluster.Name, c.Tenants, c.Cluster.MaxTenants)
		}
		return nil
	}
	if want := t.Placement.Cluster; want != "" {
		for _, c := range clusters {
			if c.Cluster.Name == want {
				if err := fits(c); err != nil {
					return "", fmt.Errorf("%w: %w", ErrNoCapacity, err)
				}
				return want, nil
			}
		}
		return "", fmt.Errorf("%w: cluster %q is not in the catalog", ErrNoCapacity, want)
	}
	var best *ClusterLoad
	for i := range clusters {
		c := &clusters[i]
		if fits(*c) != nil {
			continue
		}
		if best == nil || c.Tenants < best.Tenants || c.Tenants == best.Tenants && c.Cluster.Name < best.Cluster.Name {
			best = c
		}
	}
	if best == nil {
		region := t.Region
		if region == "" {
			region = "any"
		}
		return "", fmt.Errorf("%w: no %s cluster with room in region %s", ErrNoCapacity, role, region)
	}
	return best.Cluster.Name, nil
}
