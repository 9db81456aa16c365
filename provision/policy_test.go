package provision_test

import (
	"errors"
	"testing"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/provision"
	"github.com/tenantry/tenantry/tenant"
	"github.com/tenantry/tenantry/tenantrytest"
)

func TestTierPolicy(t *testing.T) {
	t.Parallel()
	cl := func(name, role, region string, maxTenants, tenants int) provision.ClusterLoad {
		return provision.ClusterLoad{Cluster: &catalog.Cluster{Name: name, Role: role, Region: region, MaxTenants: maxTenants}, Tenants: tenants}
	}
	clusters := []provision.ClusterLoad{
		cl("p-eu", catalog.RolePrimary, "eu", 0, 5),
		cl("p-us", catalog.RolePrimary, "us", 0, 1),
		cl("p-us2", catalog.RolePrimary, "us", 0, 1),
		cl("s-eu-1", catalog.RoleShard, "eu", 3, 3),
		cl("s-eu-2", catalog.RoleShard, "eu", 0, 7),
		cl("s-us-1", catalog.RoleShard, "us", 0, 2),
		cl("s-us-2", catalog.RoleShard, "us", 10, 1),
	}
	for _, tt := range []struct {
		name  string
		t     tenant.Tenant
		model tenant.Model
		want  string
		err   error
	}{
		{"FreeIsShared", tenant.Tenant{Tier: "free"}, tenant.ModelShared, "p-us", nil},
		{"ProIsSchema", tenant.Tenant{Tier: "pro", Region: "eu"}, tenant.ModelSchema, "p-eu", nil},
		{"EnterpriseIsDatabase", tenant.Tenant{Tier: "enterprise", Region: "us"}, tenant.ModelDatabase, "p-us", nil},
		{"UnknownTierIsShared", tenant.Tenant{Tier: "gold"}, tenant.ModelShared, "p-us", nil},
		{"ExplicitModelWins", tenant.Tenant{Tier: "free", Placement: tenant.Placement{Model: tenant.ModelDatabase}}, tenant.ModelDatabase, "p-us", nil},
		{"LabelWins", tenant.Tenant{Tier: "enterprise", Labels: map[string]string{provision.ModelLabel: "shared"}}, tenant.ModelShared, "p-us", nil},
		{"ShardFewestTenants", tenant.Tenant{Placement: tenant.Placement{Model: tenant.ModelSharded}}, tenant.ModelSharded, "s-us-2", nil},
		{"ShardRespectsRegionAndCap", tenant.Tenant{Region: "eu", Placement: tenant.Placement{Model: tenant.ModelSharded}}, tenant.ModelSharded, "s-eu-2", nil},
		{"ExplicitCluster", tenant.Tenant{Placement: tenant.Placement{Model: tenant.ModelSharded, Cluster: "s-us-1"}}, tenant.ModelSharded, "s-us-1", nil},
		{"ExplicitFullCluster", tenant.Tenant{Placement: tenant.Placement{Model: tenant.ModelSharded, Cluster: "s-eu-1"}}, "", "", provision.ErrNoCapacity},
		{"ExplicitClusterWrongRole", tenant.Tenant{Tier: "pro", Placement: tenant.Placement{Cluster: "s-us-1"}}, "", "", provision.ErrNoCapacity},
		{"ExplicitClusterUnknown", tenant.Tenant{Placement: tenant.Placement{Cluster: "nope"}}, "", "", provision.ErrNoCapacity},
		{"NoRegion", tenant.Tenant{Region: "ap"}, "", "", provision.ErrNoCapacity},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := provision.TierPolicy{}.Place(&tt.t, clusters)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Place = %+v, %v; want %v", d, err, tt.err)
				}
				return
			}
			if err != nil || d.Model != tt.model || d.Cluster != tt.want {
				t.Fatalf("Place = %+v, %v; want %s on %s", d, err, tt.model, tt.want)
			}
		})
	}
}

// TestShardPlacement places tenants over two shards, checks the balance and
// the caps, then adds a third shard: nothing moves, new tenants go there.
func TestShardPlacement(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	sharded := func() string {
		t.Helper()
		s := slug("sh")
		b.create(t, catalog.NewTenant{Slug: s, Placement: tenant.Placement{Model: tenant.ModelSharded}})
		if _, err := b.prov.Provision(ctx, actor, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	var slugs []string
	for range 6 {
		slugs = append(slugs, sharded())
	}
	count := func() map[string]int {
		t.Helper()
		n := map[string]int{}
		for _, s := range slugs {
			tn, err := b.store.Tenant(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			n[tn.Placement.Cluster]++
		}
		return n
	}
	before := map[string]string{}
	for _, s := range slugs {
		tn, _ := b.store.Tenant(ctx, s)
		before[s] = tn.Placement.Cluster
	}
	if n := count(); n["shard-1"] != 3 || n["shard-2"] != 3 {
		t.Fatalf("6 tenants over 2 shards: %v, want 3 each", n)
	}

	// A new shard with room for two: nothing moves, the next two tenants
	// go there, then the old shards take turns again.
	if _, err := b.store.CreateCluster(ctx, actor, catalog.Cluster{
		Name: "shard-3", ConnString: tenantrytest.Cluster(t, "shard-3").AdminURL(), Role: catalog.RoleShard, MaxTenants: 2,
	}); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		slugs = append(slugs, sharded())
	}
	for s, cl := range before {
		tn, _ := b.store.Tenant(ctx, s)
		if tn.Placement.Cluster != cl {
			t.Fatalf("%s moved from %s to %s when a shard was added", s, cl, tn.Placement.Cluster)
		}
	}
	if n := count(); n["shard-1"] != 4 || n["shard-2"] != 4 || n["shard-3"] != 2 {
		t.Fatalf("after adding shard-3 (max 2 tenants) and 4 tenants: %v, want 4, 4, 2", n)
	}
}
