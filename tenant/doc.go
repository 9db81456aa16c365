// Package tenant holds Tenantry's core model: a Tenant, where its data lives
// (Placement), its lifecycle State, the one validation of tenant slugs, and
// the context plumbing by which a tenant travels through a request.
//
// The tenant travels in a context.Context only; there is no global "current
// tenant":
//
//	ctx = tenant.NewContext(ctx, t, "header")
//	if t, ok := tenant.FromContext(ctx); ok {
//		log.Printf("serving %s", t.Slug)
//	}
package tenant
