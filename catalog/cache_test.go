package catalog_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/sqlident"
	"github.com/tenantry/tenantry/tenant"
	"github.com/tenantry/tenantry/tenantrytest"
)

// newInstance starts a cache as a separate Tenantry process would: its own
// pool, its own store, its own LISTEN connection, on the shared catalog.
func newInstance(t *testing.T, url string, cfg *catalog.Config) *catalog.Cache {
	t.Helper()
	store, err := catalog.NewStore(tenantrytest.Pool(t, url), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := catalog.NewCache(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cache.Start(ctx); err != nil {
		t.Fatalf("start cache: %v", err)
	}
	t.Cleanup(cache.Stop)
	return cache
}

// waitFor polls cond until it holds or the deadline passes and reports how
// long it took. The one-second bound is the catalog's promise to operators
// (several processes agree on a change within one second), not a
// performance measurement.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: not seen within %v", what, within)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestTwoInstancesAgreeWithinOneSecond(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a := newInstance(t, b.url, nil)
	c := newInstance(t, b.url, nil)

	// A tenant created through one store becomes visible to both instances.
	created, err := b.store.CreateTenant(ctx, alice, catalog.NewTenant{Slug: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	for name, inst := range map[string]*catalog.Cache{"a": a, "c": c} {
		d := waitFor(t, time.Second, "instance "+name+" sees new tenant", func() bool {
			got, err := inst.BySlug("acme")
			return err == nil && got.ID == created.ID
		})
		t.Logf("instance %s saw the new tenant after %v", name, d)
	}

	// A suspension reaches both.
	if _, err := b.store.SetState(ctx, alice, "acme", tenant.StateSuspended); err != nil {
		t.Fatal(err)
	}
	for name, inst := range map[string]*catalog.Cache{"a": a, "c": c} {
		d := waitFor(t, time.Second, "instance "+name+" sees suspension", func() bool {
			got, err := inst.BySlug("acme")
			return err == nil && got.State == tenant.StateSuspended
		})
		t.Logf("instance %s saw the suspension after %v", name, d)
	}

	// A new domain resolves on both; removing it stops it on both.
	if _, err := b.store.AddDomain(ctx, alice, "acme", "shop.acme.com"); err != nil {
		t.Fatal(err)
	}
	for _, inst := range []*catalog.Cache{a, c} {
		waitFor(t, time.Second, "domain added", func() bool {
			got, err := inst.ByDomain("shop.acme.com")
			return err == nil && got.ID == created.ID
		})
	}
	if _, err := b.store.RemoveDomain(ctx, alice, "acme", "shop.acme.com"); err != nil {
		t.Fatal(err)
	}
	for _, inst := range []*catalog.Cache{a, c} {
		waitFor(t, time.Second, "domain removed", func() bool {
			_, err := inst.ByDomain("shop.acme.com")
			return errors.Is(err, catalog.ErrNotFound)
		})
	}

	// A deletion too.
	if err := b.store.DeleteTenant(ctx, alice, "acme"); err != nil {
		t.Fatal(err)
	}
	for _, inst := range []*catalog.Cache{a, c} {
		waitFor(t, time.Second, "deletion", func() bool {
			_, err := inst.ByID(created.ID)
			return errors.Is(err, catalog.ErrNotFound)
		})
	}
}

func TestCacheLookups(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if _, err := b.store.CreateCluster(ctx, alice, catalog.Cluster{Name: "local", ConnString: "postgres://x@127.0.0.1/postgres"}); err != nil {
		t.Fatal(err)
	}
	created, err := b.store.CreateTenant(ctx, alice, catalog.NewTenant{Slug: "acme", Domains: []string{"acme.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	cache := newInstance(t, b.url, nil)
	if err := cache.Ready(); err != nil {
		t.Fatal(err)
	}
	for name, lookup := range map[string]func() (*tenant.Tenant, error){
		"slug":   func() (*tenant.Tenant, error) { return cache.BySlug("acme") },
		"id":     func() (*tenant.Tenant, error) { return cache.ByID(created.ID) },
		"domain": func() (*tenant.Tenant, error) { return cache.ByDomain("acme.example.com") },
	} {
		got, err := lookup()
		if err != nil || got.ID != created.ID {
			t.Fatalf("by %s: %v, %v", name, got, err)
		}
	}
	for _, miss := range []string{"", "ACME", "acme ", "acme'--", "acme.example.com."} {
		if _, err := cache.BySlug(miss); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("BySlug(%q) = %v, want ErrNotFound", miss, err)
		}
		if _, err := cache.ByDomain(miss); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("ByDomain(%q) = %v, want ErrNotFound", miss, err)
		}
	}
	if cl, err := cache.Cluster("local"); err != nil || cl.Name != "local" {
		t.Fatalf("cluster: %v %v", cl, err)
	}
	if got := cache.Tenants(); len(got) != 1 || got[0].Slug != "acme" {
		t.Fatalf("Tenants() = %v", got)
	}
}

func TestCacheSubscribersSeeChanges(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	cache := newInstance(t, b.url, nil)
	var creates, updates, deletes atomic.Int32
	cache.Subscribe(func(c catalog.Change) {
		switch {
		case c.Before == nil && c.After != nil:
			creates.Add(1)
		case c.Before != nil && c.After != nil:
			updates.Add(1)
		case c.Before != nil && c.After == nil:
			deletes.Add(1)
		}
	})
	if _, err := b.store.CreateTenant(ctx, alice, catalog.NewTenant{Slug: "sub"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "create event", func() bool { return creates.Load() == 1 })
	if _, err := b.store.SetState(ctx, alice, "sub", tenant.StateReadOnly); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "update event", func() bool { return updates.Load() == 1 })
	if err := b.store.DeleteTenant(ctx, alice, "sub"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "delete event", func() bool { return deletes.Load() == 1 })
}

// When the catalog cannot be reached, a cache keeps answering for
// StaleAfter, then refuses: a suspension it cannot hear about must not be
// ignored for long. Once the catalog is back it recovers by itself.
func TestCacheGoesUnavailableWhenCutOff(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if _, err := b.store.CreateTenant(ctx, alice, catalog.NewTenant{Slug: "acme"}); err != nil {
		t.Fatal(err)
	}
	cfg := &catalog.Config{StaleAfter: 300 * time.Millisecond, ReconnectDelay: 20 * time.Millisecond}
	cache := newInstance(t, b.url, cfg)
	if _, err := cache.BySlug("acme"); err != nil {
		t.Fatal(err)
	}

	// Cut the cache off: forbid new connections to the catalog database,
	// then terminate its LISTEN connection.
	admin := tenantrytest.Pool(t, tenantrytest.ServerURL(t))
	var db string
	if err := b.pool.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	allow := func(on bool) {
		t.Helper()
		sql := "ALTER DATABASE " + sqlident.MustQuote(db) + " ALLOW_CONNECTIONS " + map[bool]string{true: "true", false: "false"}[on]
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	allow(false)
	t.Cleanup(func() { allow(true) })
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'LISTEN%'`, db); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "cache refuses lookups once stale", func() bool {
		_, err := cache.BySlug("acme")
		return errors.Is(err, catalog.ErrUnavailable)
	})
	if err := cache.Ready(); !errors.Is(err, catalog.ErrUnavailable) {
		t.Fatalf("Ready() = %v while cut off", err)
	}

	// Reachable again: it reconnects, reloads and answers.
	allow(true)
	waitFor(t, 5*time.Second, "cache recovers", func() bool {
		_, err := cache.BySlug("acme")
		return err == nil
	})
}

func TestCacheClusterChangesAndUnsubscribe(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	c, err := b.store.CreateCluster(ctx, alice, catalog.Cluster{Name: "local", ConnString: "postgres://x@127.0.0.1/postgres"})
	if err != nil {
		t.Fatal(err)
	}
	cache := newInstance(t, b.url, nil)
	var seen, afterUnsub atomic.Int32
	unsubscribe := cache.Subscribe(func(ch catalog.Change) {
		if ch.Cluster == "local" {
			seen.Add(1)
		}
	})
	stay := cache.Subscribe(func(ch catalog.Change) {
		if ch.Cluster == "local" {
			afterUnsub.Add(1)
		}
	})
	defer stay()

	budget := 80
	updated, err := b.store.UpdateCluster(ctx, alice, "local", catalog.ClusterPatch{Version: c.Version, MaxConns: &budget})
	if err != nil {
		t.Fatal(err)
	}
	if updated.MaxConns != 80 || updated.Version != c.Version+1 {
		t.Fatalf("update: %+v", updated)
	}
	waitFor(t, time.Second, "cluster change seen by cache", func() bool {
		cl, err := cache.Cluster("local")
		return err == nil && cl.MaxConns == 80 && seen.Load() == 1
	})
	if _, err := b.store.UpdateCluster(ctx, alice, "local", catalog.ClusterPatch{Version: c.Version, MaxConns: &budget}); !errors.Is(err, catalog.ErrVersionConflict) {
		t.Fatalf("stale cluster update: %v", err)
	}
	bad := -3
	var ve *catalog.ValidationError
	if _, err := b.store.UpdateCluster(ctx, alice, "local", catalog.ClusterPatch{Version: updated.Version, MaxConns: &bad}); !errors.As(err, &ve) || ve.Field != "max_conns" {
		t.Fatalf("bad budget: %v", err)
	}

	unsubscribe()
	budget = 90
	if _, err := b.store.UpdateCluster(ctx, alice, "local", catalog.ClusterPatch{Version: updated.Version, MaxConns: &budget}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "second change reaches the remaining subscriber", func() bool { return afterUnsub.Load() == 2 })
	if n := seen.Load(); n != 1 {
		t.Fatalf("unsubscribed callback called %d times, want 1", n)
	}
}
