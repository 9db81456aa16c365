package tenant_test

import (
	"context"
	"testing"

	"github.com/tenantry/tenantry/tenant"
)

type otherKey struct{}

func TestContext(t *testing.T) {
	t.Parallel()
	if _, ok := tenant.FromContext(context.Background()); ok {
		t.Fatal("empty context carries a tenant")
	}
	//nolint:staticcheck // a nil context must not panic
	if _, ok := tenant.FromContext(nil); ok {
		t.Fatal("nil context carries a tenant")
	}
	acme := &tenant.Tenant{ID: "1", Slug: "acme"}
	ctx := context.WithValue(context.Background(), otherKey{}, "kept")
	ctx = tenant.NewContext(ctx, acme, "host")
	got, ok := tenant.FromContext(ctx)
	if !ok || got != acme || tenant.ResolvedVia(ctx) != "host" {
		t.Fatalf("FromContext = %v, %v, via %q", got, ok, tenant.ResolvedVia(ctx))
	}
	if ctx.Value(otherKey{}) != "kept" {
		t.Fatal("other values lost")
	}
	// A later tenant shadows the earlier one; WithoutTenant hides both.
	beta := &tenant.Tenant{ID: "2", Slug: "beta"}
	inner := tenant.NewContext(ctx, beta, "header")
	if got, _ := tenant.FromContext(inner); got != beta {
		t.Fatalf("inner tenant = %v", got)
	}
	if _, ok := tenant.FromContext(tenant.WithoutTenant(inner)); ok {
		t.Fatal("WithoutTenant still carries a tenant")
	}
	if got, _ := tenant.FromContext(ctx); got != acme {
		t.Fatal("outer context changed")
	}
}
