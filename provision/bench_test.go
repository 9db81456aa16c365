package provision_test

import (
	"context"
	"testing"
	"time"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/tenant"
)

// BenchmarkProvision measures the provisioning of one tenant per model:
// placement, storage and grants (for the database model, CREATE DATABASE
// ... TEMPLATE plus a connection for the grants), and its deprovisioning.
func BenchmarkProvision(b *testing.B) {
	for _, m := range tenant.Models {
		b.Run(string(m), func(b *testing.B) {
			bb := setupB(b)
			ctx := b.Context()
			var up, down time.Duration
			for b.Loop() {
				s := slug("bp")
				if _, err := bb.store.CreateTenant(ctx, actor, catalog.NewTenant{Slug: s, Placement: tenant.Placement{Model: m},
					Labels: map[string]string{"tenantry.io/model": string(m)}}); err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				if _, err := bb.prov.Provision(ctx, actor, s); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := bb.prov.Deprovision(context.Background(), actor, s); err != nil {
					b.Fatal(err)
				}
				up, down = up+t1.Sub(t0), down+time.Since(t1)
			}
			b.ReportMetric(float64(up.Milliseconds())/float64(b.N), "ms-provision/op")
			b.ReportMetric(float64(down.Milliseconds())/float64(b.N), "ms-deprovision/op")
		})
	}
}
