package provision_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/sqlident"
	"github.com/tenantry/tenantry/provision"
	"github.com/tenantry/tenantry/tenant"
)

// A migration that adds a table to a shared location, followed by
// SecureShared (as tenantry migrate does after every step), leaves the new
// table under forced row-level security: one tenant cannot read another's
// rows in it, and no tenant set means no rows.
func TestSecureSharedAfterMigration(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	var ts []*tenant.Tenant
	for range 2 {
		in := catalog.NewTenant{Slug: slug("sec"), Placement: tenant.Placement{Model: tenant.ModelShared}}
		b.create(t, in)
		res, err := b.prov.Provision(ctx, actor, in.Slug)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, res.Tenant)
	}
	p := ts[0].Placement

	// The "migration", as the owner, then SecureShared in the same
	// transaction.
	cl, err := b.store.Cluster(ctx, p.Cluster)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(cl.ConnString)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = p.Database
	admin, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	table := "secrets_" + slug("t")[2:]
	qt := sqlident.MustQuote(p.Schema) + "." + sqlident.MustQuote(table)
	err = pgx.BeginFunc(ctx, admin, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+sqlident.MustQuote(provision.OwnerRole)+`;
CREATE TABLE `+qt+` (tenant_id uuid NOT NULL DEFAULT NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid, id int, secret text, PRIMARY KEY (tenant_id, id));
RESET ROLE`); err != nil {
			return err
		}
		return provision.SecureShared(ctx, tx, p.Schema)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(ctx, "DROP TABLE IF EXISTS "+qt) })

	var forced bool
	if err := admin.QueryRow(ctx, `SELECT relforcerowsecurity AND relrowsecurity FROM pg_class WHERE oid = $1::regclass`, qt).Scan(&forced); err != nil || !forced {
		t.Fatalf("new table not under forced row-level security: %v %v", forced, err)
	}

	conn := appConn(t, b, p)
	for i, tn := range ts {
		err := scoped(ctx, conn, tn, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO "+qt+" (id, secret) VALUES ($1, $2)", i, tn.Slug)
			return err
		})
		if err != nil {
			t.Fatalf("insert as %s: %v", tn.Slug, err)
		}
	}
	for _, tn := range ts {
		var n int
		var owner string
		err := scoped(ctx, conn, tn, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT count(*), min(secret) FROM "+qt).Scan(&n, &owner)
		})
		if err != nil || n != 1 || owner != tn.Slug {
			t.Fatalf("%s sees %d rows (first %q), err %v; want only its own", tn.Slug, n, owner, err)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+qt).Scan(&n); err != nil || n != 0 {
		t.Fatalf("no tenant set: %d rows, err %v; want 0", n, err)
	}
}
