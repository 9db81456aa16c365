package tenant

import "context"

// ctxKey is the unexported context key; only this package can set or read it.
type ctxKey struct{}

// scoped is the context that carries a tenant. It is its own context type,
// rather than a context.WithValue, so that the tenant and the strategy that
// resolved it travel in a single allocation.
type scoped struct {
	context.Context
	tenant *Tenant
	via    string
}

func (c *scoped) Value(key any) any {
	if key == (ctxKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// NewContext returns a copy of ctx that carries t. via names what resolved the
// tenant (a resolution strategy such as "host" or "header", or "admin" for
// work started by an operator); it is informational only.
func NewContext(ctx context.Context, t *Tenant, via string) context.Context {
	return &scoped{Context: ctx, tenant: t, via: via}
}

// FromContext returns the tenant carried by ctx, if any. It is nil-safe.
func FromContext(ctx context.Context) (*Tenant, bool) {
	if ctx == nil {
		return nil, false
	}
	s, ok := ctx.Value(ctxKey{}).(*scoped)
	if !ok || s.tenant == nil {
		return nil, false
	}
	return s.tenant, true
}

// ResolvedVia returns how the tenant in ctx was resolved, or "" if ctx
// carries no tenant.
func ResolvedVia(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	if s, ok := ctx.Value(ctxKey{}).(*scoped); ok {
		return s.via
	}
	return ""
}

// WithoutTenant returns a context that carries no tenant, even if ctx did.
// Use it for control-plane work started from inside a tenant request.
func WithoutTenant(ctx context.Context) context.Context {
	return &scoped{Context: ctx}
}
