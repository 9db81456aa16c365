package provision_test

import (
	"context"
	"fmt"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/provision"
	"github.com/tenantry/tenantry/tenant"
)

// A tenant of the pro tier gets its own schema; an enterprise tenant that
// asks for the sharded model gets a shard.
func Example() {
	ctx := context.Background()
	var store *catalog.Store // catalog.NewStore(pool, nil), migrated, with clusters registered
	p, err := provision.New(store, &provision.Config{DDL: []string{`CREATE TABLE notes (
    tenant_id uuid NOT NULL DEFAULT NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    title text NOT NULL,
    PRIMARY KEY (tenant_id, id))`}})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	actor := catalog.Actor{Name: "ops"}
	if _, err := store.CreateTenant(ctx, actor, catalog.NewTenant{Slug: "initech", Tier: "pro"}); err != nil {
		panic(err)
	}
	res, err := p.Provision(ctx, actor, "initech")
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Tenant.Placement.Schema) // t_initech

	if _, err := store.CreateTenant(ctx, actor, catalog.NewTenant{Slug: "globex", Tier: "enterprise",
		Placement: tenant.Placement{Model: tenant.ModelSharded}}); err != nil {
		panic(err)
	}
	if _, err := p.Provision(ctx, actor, "globex"); err != nil {
		panic(err)
	}
	// Drop the data (the rows of a sharded tenant), then the tenant.
	if err := p.Deprovision(ctx, actor, "globex"); err != nil {
		panic(err)
	}
}
