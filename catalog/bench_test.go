package catalog_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tenantry/tenantry/catalog"
)

// BenchmarkCacheLookup measures the cached catalog lookups on the request
// path, with 1,000 tenants loaded.
//
//	go test -run '^$' -bench CacheLookup -benchmem ./catalog/
func BenchmarkCacheLookup(b *testing.B) {
	bundle := setup(b)
	ctx := context.Background()
	for i := range 1000 {
		slug := fmt.Sprintf("tenant-%d", i)
		if _, err := bundle.store.CreateTenant(ctx, alice, catalog.NewTenant{Slug: slug, Domains: []string{slug + ".example.com"}}); err != nil {
			b.Fatal(err)
		}
	}
	cache, err := catalog.NewCache(bundle.store, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := cache.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cache.Stop)
	t500, err := cache.BySlug("tenant-500")
	if err != nil {
		b.Fatal(err)
	}

	b.Run("by-slug", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cache.BySlug("tenant-500"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("by-domain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cache.ByDomain("tenant-500.example.com"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("by-id", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cache.ByID(t500.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("by-slug-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := cache.BySlug("tenant-500"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cache.BySlug("nobody"); err == nil {
				b.Fatal("found nobody")
			}
		}
	})
}
