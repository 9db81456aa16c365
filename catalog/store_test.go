package catalog_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/tenant"
	"github.com/tenantry/tenantry/tenantrytest"
)

type testBundle struct {
	pool  *pgxpool.Pool
	store *catalog.Store
	url   string
}

var alice = catalog.Actor{Name: "alice", Reason: "test"}

func setup(t testing.TB) *testBundle {
	t.Helper()
	url := tenantrytest.NewDatabase(t)
	pool := tenantrytest.Pool(t, url)
	store, err := catalog.NewStore(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return &testBundle{pool: pool, store: store, url: url}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	// A second run, and concurrent runs, apply nothing more.
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			applied, err := b.store.Migrate(ctx)
			if err == nil && len(applied) != 0 {
				err = errors.New("re-run applied migrations again")
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	migrations, err := catalog.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	v, err := b.store.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := migrations[len(migrations)-1].Version; v != want {
		t.Fatalf("version = %d, want %d", v, want)
	}
}

func TestCreateAndReadTenant(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	created, err := b.store.CreateTenant(ctx, alice, catalog.NewTenant{
		Slug:      "acme",
		Tier:      "pro",
		Region:    "eu-west",
		Placement: tenant.Placement{Model: tenant.ModelSchema},
		Domains:   []string{"Acme.Example.COM.", "app.acme.io"},
		Labels:    map[string]string{"plan": "annual"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if created.Slug != "acme" || created.DisplayName != "acme" || created.State != tenant.StateActive ||
		created.Tier != "pro" || created.Region != "eu-west" || created.Placement.Model != tenant.ModelSchema ||
		created.Version != 1 || created.Labels["plan"] != "annual" || created.ID == "" {
		t.Fatalf("unexpected tenant: %+v", created)
	}
	if want := []string{"acme.example.com", "app.acme.io"}; len(created.Domains) != 2 || created.Domains[0] != want[0] || created.Domains[1] != want[1] {
		t.Fatalf("domains = %v, want %v (normalised, sorted)", created.Domains, want)
	}
	byID, err := b.store.Tenant(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	bySlug, err := b.store.Tenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if byID.ID != created.ID || bySlug.ID != created.ID {
		t.Fatalf("lookups disagree: %s %s %s", created.ID, byID.ID, bySlug.ID)
	}
	if _, err := b.store.Tenant(ctx, "nobody"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("unknown slug: err = %v, want ErrNotFound", err)
	}
	if _, err := b.store.Tenant(ctx, "x'; DROP TABLE tenantry.tenant; --"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("hostile slug: err = %v, want ErrNotFound", err)
	}
}

func TestCreateTenantRefusesBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if _, err := b.store.CreateTenant(ctx, alice, catalog.NewTenant{Slug: "taken", Domains: []string{"taken.example.com"}}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		actor     catalog.Actor
		in        catalog.NewTenant
		wantField string
		wantErr   error
	}{
		{"empty slug", alice, catalog.NewTenant{}, "slug", nil},
		{"upper case slug", alice, catalog.NewTenant{Slug: "Acme"}, "slug", nil},
		{"injection slug", alice, catalog.NewTenant{Slug: "a'; DROP TABLE x;--"}, "slug", nil},
		{"unicode slug", alice, catalog.NewTenant{Slug: "аcme"}, "slug", nil},
		{"reserved slug", alice, catalog.NewTenant{Slug: "admin"}, "slug", nil},
		{"overlong slug", alice, catalog.NewTenant{Slug: "a123456789012345678901234567890123456789012345678"}, "slug", nil},
		{"bad state", alice, catalog.NewTenant{Slug: "ok1", State: "gone"}, "state", nil},
		{"bad tier", alice, catalog.NewTenant{Slug: "ok2", Tier: "Pro Plus"}, "tier", nil},
		{"bad region", alice, catalog.NewTenant{Slug: "ok3", Region: "eu west"}, "region", nil},
		{"cluster without model", alice, catalog.NewTenant{Slug: "ok16", Placement: tenant.Placement{Cluster: "local"}}, "placement.model", nil},
		{"bad model", alice, catalog.NewTenant{Slug: "ok4", Placement: tenant.Placement{Model: "mongo"}}, "placement.model", nil},
		{"unknown cluster", alice, catalog.NewTenant{Slug: "ok5", Placement: tenant.Placement{Model: tenant.ModelShared, Cluster: "nowhere"}}, "placement.cluster", nil},
		{"injection schema", alice, catalog.NewTenant{Slug: "ok6", Placement: tenant.Placement{Model: tenant.ModelSchema, Schema: `x"; drop`}}, "placement.schema", nil},
		{"ip domain", alice, catalog.NewTenant{Slug: "ok7", Domains: []string{"10.0.0.1"}}, "domains", nil},
		{"unicode domain", alice, catalog.NewTenant{Slug: "ok8", Domains: []string{"аcme.com"}}, "domains", nil},
		{"domain with port", alice, catalog.NewTenant{Slug: "ok9", Domains: []string{"acme.com:8080"}}, "domains", nil},
		{"single-label domain", alice, catalog.NewTenant{Slug: "ok10", Domains: []string{"localhost"}}, "domains", nil},
		{"domain twice", alice, catalog.NewTenant{Slug: "ok11", Domains: []string{"a.example.com", "A.example.com"}}, "domains", nil},
		{"control bytes in name", alice, catalog.NewTenant{Slug: "ok12", DisplayName: "evil\x00name"}, "display_name", nil},
		{"bad label key", alice, catalog.NewTenant{Slug: "ok13", Labels: map[string]string{"bad key": "v"}}, "labels", nil},
		{"no actor", catalog.Actor{}, catalog.NewTenant{Slug: "ok14"}, "actor", nil},
		{"duplicate slug", alice, catalog.NewTenant{Slug: "taken"}, "slug", catalog.ErrExists},
		{"duplicate domain", alice, catalog.NewTenant{Slug: "ok15", Domains: []string{"TAKEN.example.com"}}, "domains", catalog.ErrExists},
		{"NUL in label value", alice, catalog.NewTenant{Slug: "ok17", Labels: map[string]string{"k": "a\x00b"}}, "labels", nil},
		{"invalid UTF-8 in label value", alice, catalog.NewTenant{Slug: "ok18", Labels: map[string]string{"k": "a\xffb"}}, "labels", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := b.store.CreateTenant(ctx, tt.actor, tt.in)
			if err == nil {
				t.Fatal("accepted")
			}
			if tt.wantErr != nil {
				var ee *catalog.ExistsError
				if !errors.Is(err, tt.wantErr) || !errors.As(err, &ee) || ee.Field != tt.wantField {
					t.Fatalf("err = %v, want %v on field %s", err, tt.wantErr, tt.wantField)
				}
				return
			}
			var ve *catalog.ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.wantField {
				t.Fatalf("err = %v, want a validation error on %q", err, tt.wantField)
			}
		})
	}

	// Nothing half-written: the failed creates left no tenant behind.
	all, err := b.store.Tenants(ctx, catalog.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].Slug != "taken" {
		t.Fatalf("tenants after failed creates = %d, want only 'taken'", len(all))
	}
}

func TestUpdateTenantOptimisticConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	created, err := b.store.CreateTenant(ctx, alice, catalog.NewTenant{Slug: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	name := "Acme Corp"
	updated, err := b.store.UpdateTenant(ctx, alice, "acme", catalog.TenantPatch{Version: created.Version, DisplayName: &name})
	if err != nil {
		t.Fatal(err)
	}
	if updated.DisplayName != name || updated.Version != created.Version+1 {
		t.Fatalf("update: %+v", updated)
	}
	// A writer holding the old version loses.
	tier := "enterprise"
	_, err = b.store.UpdateTenant(ctx, alice, "acme", catalog.TenantPatch{Version: created.Version, Tier: &tier})
	if !errors.Is(err, catalog.ErrVersionConflict) {
		t.Fatalf("stale update: err = %v, want ErrVersionConflict", err)
	}
	got, err := b.store.Tenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if got.Tier != "free" {
		t.Fatalf("stale update was applied: tier = %q", got.Tier)
	}
	// Missing version is refused.
	var ve *catalog.ValidationError
	if _, err := b.store.UpdateTenant(ctx, alice, "acme", catalog.TenantPatch{Tier: &tier}); !errors.As(err, &ve) || ve.Field != "version" {
		t.Fatalf("versionless update: err = %v", err)
	}
	// Suspend and resume bump the version and are audited.
	s, err := b.store.SetState(ctx, alice, "acme", tenant.StateSuspended)
	if err != nil || s.State != tenant.StateSuspended || s.Version != updated.Version+1 {
		t.Fatalf("suspend: %+v, %v", s, err)
	}
	if _, err := b.store.SetState(ctx, alice, "acme", tenant.StateActive); err != nil {
		t.Fatal(err)
	}
	entries, err := b.store.Audit(ctx, catalog.AuditFilter{TenantID: created.ID})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
		if e.Actor != "alice" || e.Reason != "test" {
			t.Fatalf("audit entry without actor or reason: %+v", e)
		}
	}
	want := []string{"tenant.resume", "tenant.suspend", "tenant.update", "tenant.create"}
	if len(actions) != len(want) {
		t.Fatalf("audit actions = %v, want %v", actions, want)
	}
	for i := range want {
		if actions[i] != want[i] {
			t.Fatalf("audit actions = %v, want %v", actions, want)
		}
	}
}

func TestConcurrentUpdatesOneWins(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	created, err := b.store.CreateTenant(ctx, alice, catalog.NewTenant{Slug: "race"})
	if err != nil {
		t.Fatal(err)
	}
	const writers = 8
	results := make(chan error, writers)
	for i := range writers {
		go func() {
			name := "writer " + string(rune('a'+i))
			_, err := b.store.UpdateTenant(ctx, alice, "race", catalog.TenantPatch{Version: created.Version, DisplayName: &name})
			results <- err
		}()
	}
	wins, conflicts := 0, 0
	for range writers {
		err := <-results
		switch {
		case err == nil:
			wins++
		case errors.Is(err, catalog.ErrVersionConflict):
			conflicts++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if wins != 1 || conflicts != writers-1 {
		t.Fatalf("wins = %d, conflicts = %d; want exactly one winner", wins, conflicts)
	}
}

func TestDomains(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if _, err := b.store.CreateTenant(ctx, alice, catalog.NewTenant{Slug: "one"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.CreateTenant(ctx, alice, catalog.NewTenant{Slug: "two"}); err != nil {
		t.Fatal(err)
	}
	one, err := b.store.AddDomain(ctx, alice, "one", "shop.one.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(one.Domains) != 1 || one.Domains[0] != "shop.one.com" || one.Version != 2 {
		t.Fatalf("after add: %+v", one)
	}
	if _, err := b.store.AddDomain(ctx, alice, "two", "SHOP.one.com."); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("stealing a domain: err = %v, want ErrExists", err)
	}
	if _, err := b.store.RemoveDomain(ctx, alice, "two", "shop.one.com"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("removing another tenant's domain: err = %v, want ErrNotFound", err)
	}
	one, err = b.store.RemoveDomain(ctx, alice, "one", "shop.one.com")
	if err != nil || len(one.Domains) != 0 {
		t.Fatalf("remove: %+v, %v", one, err)
	}
	if _, err := b.store.AddDomain(ctx, alice, "two", "shop.one.com"); err != nil {
		t.Fatalf("domain free again: %v", err)
	}
}

func TestDeleteTenantKeepsAudit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	created, err := b.store.CreateTenant(ctx, alice, catalog.NewTenant{Slug: "gone", Domains: []string{"gone.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.store.DeleteTenant(ctx, alice, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Tenant(ctx, "gone"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := b.store.DeleteTenant(ctx, alice, "gone"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// The domain is free again, and the audit log still tells the story.
	if _, err := b.store.CreateTenant(ctx, alice, catalog.NewTenant{Slug: "new", Domains: []string{"gone.example.com"}}); err != nil {
		t.Fatal(err)
	}
	entries, err := b.store.Audit(ctx, catalog.AuditFilter{TenantID: created.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].Action != "tenant.delete" || len(entries[0].Before) == 0 {
		t.Fatalf("audit after delete: %+v", entries)
	}
}

func TestAuditLogIsAppendOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if _, err := b.store.CreateTenant(ctx, alice, catalog.NewTenant{Slug: "acme"}); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`UPDATE tenantry.audit_log SET actor = 'mallory'`,
		`DELETE FROM tenantry.audit_log`,
		`TRUNCATE tenantry.audit_log`,
	} {
		if _, err := b.pool.Exec(ctx, sql); err == nil {
			t.Fatalf("%s: accepted", sql)
		}
	}
	entries, err := b.store.Audit(ctx, catalog.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Actor != "alice" {
		t.Fatalf("audit log changed: %+v", entries)
	}
}

func TestClusters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	c, err := b.store.CreateCluster(ctx, alice, catalog.Cluster{
		Name: "eu-1", ConnString: "postgres://admin:s3cret@db.eu:5432/postgres", Region: "eu-west", Role: catalog.RoleShard,
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxConns != 50 || c.Role != catalog.RoleShard {
		t.Fatalf("defaults: %+v", c)
	}
	if r := c.Redacted().ConnString; r != "postgres://admin:xxxxx@db.eu:5432/postgres" {
		t.Fatalf("redacted = %q", r)
	}
	if _, err := b.store.CreateCluster(ctx, alice, catalog.Cluster{Name: "eu-1", ConnString: "postgres://x@y/z"}); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("duplicate cluster: %v", err)
	}
	var ve *catalog.ValidationError
	for _, bad := range []catalog.Cluster{
		{Name: "EU", ConnString: "postgres://x@y/z"},
		{Name: "ok", ConnString: ""},
		{Name: "ok", ConnString: "postgres://x@y/z", Role: "leader"},
		{Name: "ok", ConnString: "postgres://x@y/z", MaxConns: -1},
	} {
		if _, err := b.store.CreateCluster(ctx, alice, bad); !errors.As(err, &ve) {
			t.Fatalf("bad cluster %+v accepted or wrong error: %v", bad, err)
		}
	}
	if _, err := b.store.CreateTenant(ctx, alice, catalog.NewTenant{Slug: "placed", Placement: tenant.Placement{Model: tenant.ModelSharded, Cluster: "eu-1", Database: "tenantry_shard", Schema: "app"}}); err != nil {
		t.Fatalf("placement on a known cluster: %v", err)
	}
	unplaced, err := b.store.CreateTenant(ctx, alice, catalog.NewTenant{Slug: "unplaced"})
	if err != nil {
		t.Fatal(err)
	}
	if unplaced.Placement.Placed() {
		t.Fatalf("a tenant created without a model is placed: %+v", unplaced.Placement)
	}
	counts, err := b.store.ClusterTenantCounts(ctx)
	if err != nil || len(counts) != 1 || counts["eu-1"] != 1 {
		t.Fatalf("ClusterTenantCounts = %v, %v; want eu-1: 1", counts, err)
	}
	list, err := b.store.Clusters(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("clusters: %v %v", list, err)
	}
}

func TestNormalizeDomain(t *testing.T) {
	t.Parallel()
	good := map[string]string{
		"Acme.Example.com.":     "acme.example.com",
		"xn--bcher-kva.example": "xn--bcher-kva.example",
		"a-b.c-d.io":            "a-b.c-d.io",
		"acme.localhost":        "acme.localhost",
	}
	for in, want := range good {
		got, err := catalog.NormalizeDomain(in)
		if err != nil || got != want {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", ".", "a..b", "-a.com", "a-.com", "a.com..", "localhost", "127.0.0.1", "::1",
		"acme.com:80", "acme com", "аcme.com", "a_b.com", "a.com/x", "a\x00.com", string(make([]byte, 254))} {
		if got, err := catalog.NormalizeDomain(bad); err == nil {
			t.Errorf("NormalizeDomain(%q) = %q, accepted", bad, got)
		}
	}
}
