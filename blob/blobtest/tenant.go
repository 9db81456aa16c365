package blobtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/tenantry/tenantry/tenant"
)

// NewTenant returns an active tenant with a fresh random ID and the given
// tier, and a context carrying it (as the resolution middleware would).
func NewTenant(tb testing.TB, tier string) (context.Context, *tenant.Tenant) {
	tb.Helper()
	t := &tenant.Tenant{ID: NewUUID(), Slug: "t" + randomHex(6), State: tenant.StateActive, Tier: tier}
	return tenant.NewContext(context.Background(), t, "test"), t
}

// WithTenant returns ctx carrying t.
func WithTenant(ctx context.Context, t *tenant.Tenant) context.Context {
	return tenant.NewContext(ctx, t, "test")
}

// NewUUID returns a random (version 4) UUID in canonical form.
func NewUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return fmt.Sprintf("%x", b)[:n]
}
