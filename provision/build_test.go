package provision_test

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/migrate"
	"github.com/tenantry/tenantry/tenant"
)

// With Config.Build set to the fleet migrator's builder, a tenant schema is
// created at the head version with its ledger: a tenant provisioned after a
// rollout does not start behind it.
func TestBuildProvisionsAtHead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	src, err := migrate.Load(fstest.MapFS{
		"0001_base.sql": {Data: []byte("-- migrate:mode tx\n" + strings.Join(testDDL, ";\n") + ";\n")},
		"0002_pinned.sql": {Data: []byte("-- migrate:mode tx\n" +
			"ALTER TABLE items ADD COLUMN pinned boolean NOT NULL DEFAULT false;\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(testDDL)
	cfg.Build = func(ctx context.Context, tx pgx.Tx, schema string) error {
		_, err := migrate.Build(ctx, tx, schema, src)
		return err
	}
	prov := newProvisioner(t, b.store, cfg)

	in := catalog.NewTenant{Slug: slug("head"), Placement: tenant.Placement{Model: tenant.ModelSchema}}
	b.create(t, in)
	t.Cleanup(func() { _ = prov.Deprovision(context.Background(), actor, in.Slug) })
	res, err := prov.Provision(ctx, actor, in.Slug)
	if err != nil {
		t.Fatal(err)
	}
	tn := res.Tenant
	conn := appConn(t, b, tn.Placement)
	var version int
	var pinned bool
	err = scoped(ctx, conn, tn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO items (id, owner) VALUES (1, 'x')`); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT pinned FROM items WHERE id = 1`).Scan(&pinned); err != nil {
			return err
		}
		version, err = migrate.ReadVersion(ctx, tx)
		return err
	})
	if err != nil {
		t.Fatalf("tenant schema not at head: %v", err)
	}
	if version != src.Head() || pinned {
		t.Fatalf("version %d (pinned %v), want %d", version, pinned, src.Head())
	}
}
