package provision

import (
	"context"
	"errors"
	"fmt"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/tenant"
)

// DemoTenant is one tenant Demo creates.
type DemoTenant struct {
	Slug  string
	Tier  string
	Model tenant.Model
}

// DemoTenants are the tenants of Demo: one per storage model.
var DemoTenants = []DemoTenant{
	{Slug: "acme", Tier: "free", Model: tenant.ModelShared},
	{Slug: "globex", Tier: "free", Model: tenant.ModelSharded},
	{Slug: "initech", Tier: "pro", Model: tenant.ModelSchema},
	{Slug: "umbrella", Tier: "enterprise", Model: tenant.ModelDatabase},
}

// DemoShardCluster is the shard cluster Demo registers when the catalog has
// none.
const DemoShardCluster = "demo-shard"

// Demo creates the DemoTenants in the catalog (those that already exist are
// kept as they are) and provisions them, so that every storage model can be
// tried side by side. The catalog needs a primary cluster; if it has no
// shard, Demo registers DemoShardCluster on the first primary's connection
// string (the shard database has its own name, so one server can play
// both parts). It is idempotent and returns the provisioned tenants in
// DemoTenants order.
func Demo(ctx context.Context, p *Provisioner, actor catalog.Actor) ([]*tenant.Tenant, error) {
	clusters, err := p.store.Clusters(ctx)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	var primary *catalog.Cluster
	hasShard := false
	for _, c := range clusters {
		switch {
		case c.Role == catalog.RolePrimary && primary == nil:
			primary = c
		case c.Role == catalog.RoleShard:
			hasShard = true
		}
	}
	if primary == nil {
		return nil, errors.New("demo: the catalog has no primary cluster; register one first")
	}
	if !hasShard {
		_, err := p.store.CreateCluster(ctx, actor, catalog.Cluster{
			Name: DemoShardCluster, ConnString: primary.ConnString, Region: primary.Region,
			Role: catalog.RoleShard, MaxConns: primary.MaxConns,
		})
		if err != nil && !errors.Is(err, catalog.ErrExists) {
			return nil, fmt.Errorf("demo: register shard: %w", err)
		}
	}
	out := make([]*tenant.Tenant, 0, len(DemoTenants))
	for _, d := range DemoTenants {
		_, err := p.store.CreateTenant(ctx, actor, catalog.NewTenant{
			Slug: d.Slug, Tier: d.Tier, Region: primary.Region,
			Placement: tenant.Placement{Model: d.Model},
			Labels:    map[string]string{ModelLabel: string(d.Model), "demo": "true"},
		})
		if err != nil && !errors.Is(err, catalog.ErrExists) {
			return nil, fmt.Errorf("demo: create %s: %w", d.Slug, err)
		}
		res, err := p.Provision(ctx, actor, d.Slug)
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		out = append(out, res.Tenant)
	}
	return out, nil
}
