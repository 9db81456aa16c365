// Package catalog is Tenantry's control plane: the one record, in
// PostgreSQL, of every tenant (its state, tier, region, placement and custom
// domains), every PostgreSQL cluster tenants can live on, and an append-only
// audit log of every administrative change.
//
// A Store reads and writes the catalog; every write is one transaction that
// also appends to the audit log, and updates carry the version they read
// (optimistic concurrency). A Cache is a process's in-memory view of it, kept
// fresh through LISTEN/NOTIFY, that resolution, routing and pools read on the
// request path without touching the database:
//
//	store, _ := catalog.NewStore(pool, nil)
//	if _, err := store.Migrate(ctx); err != nil { ... }
//	t, err := store.CreateTenant(ctx, catalog.Actor{Name: "alice"}, catalog.NewTenant{
//		Slug:      "acme",
//		Placement: tenant.Placement{Model: tenant.ModelSchema},
//		Domains:   []string{"acme.example.com"},
//	})
//
//	cache, _ := catalog.NewCache(store, nil)
//	if err := cache.Start(ctx); err != nil { ... }
//	defer cache.Stop()
//	t, err = cache.ByDomain("acme.example.com")
//
// The catalog's own schema ("tenantry") is versioned by Migrate, separately
// from tenants' application schemas.
package catalog
