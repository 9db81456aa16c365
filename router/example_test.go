package router_test

import (
	"context"
	"log"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/pool"
	"github.com/tenantry/tenantry/router"
	"github.com/tenantry/tenantry/tenant"
)

// Application code is written once, with unqualified table names, and runs
// in whatever storage model the tenant of the context is on.
func Example() {
	var cache *catalog.Cache // started on the catalog
	pools, err := pool.New(&pool.Config{Catalog: cache})
	if err != nil {
		log.Fatal(err)
	}
	defer pools.Close()
	r, err := router.New(cache, pools, nil)
	if err != nil {
		log.Fatal(err)
	}

	var t *tenant.Tenant // resolved from the request by the middleware
	ctx := tenant.NewContext(context.Background(), t, "host")
	err = r.Tx(ctx, func(ctx context.Context, tx router.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO notes (tenant_id, body) VALUES ($1, $2)", tx.Tenant().ID, "hello")
		return err
	})
	if err != nil {
		log.Print(err)
	}
}
