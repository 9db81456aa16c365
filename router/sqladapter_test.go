package router_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/tenantry/tenantry/router"
	"github.com/tenantry/tenantry/router/sqladapter"
	"github.com/tenantry/tenantry/tenant"
)

func TestSQLAdapter(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	a := sqladapter.New(b.router)
	noop := func(context.Context, *sql.Tx) error { return nil }
	if err := a.Tx(context.Background(), nil, noop); !errors.Is(err, router.ErrNoTenant) {
		t.Errorf("no tenant: %v", err)
	}
	ro := b.addTenant(t, "sql-reader", tenant.ModelShared, tenant.StateReadOnly)
	if err := a.Tx(ctxFor(ro), nil, noop); !errors.Is(err, router.ErrReadOnly) {
		t.Errorf("read-only tenant: %v", err)
	}
	if err := a.Tx(ctxFor(ro), &sql.TxOptions{ReadOnly: true}, noop); err != nil {
		t.Errorf("read-only transaction of a read-only tenant: %v", err)
	}

	for _, m := range []tenant.Model{tenant.ModelShared, tenant.ModelSchema, tenant.ModelDatabase} {
		tn := b.addTenant(t, "sql-"+string(m), m, tenant.StateActive)
		insert := func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO notes (tenant_id, body) VALUES ($1, 'via database/sql')", tn.ID)
			return err
		}
		if err := a.Tx(ctxFor(tn), nil, insert); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		boom := errors.New("boom")
		if err := a.Tx(ctxFor(tn), nil, func(ctx context.Context, tx *sql.Tx) error {
			if err := insert(ctx, tx); err != nil {
				return err
			}
			return boom
		}); !errors.Is(err, boom) {
			t.Errorf("%s: %v, want fn's error", m, err)
		}
		func() {
			defer func() { _ = recover() }()
			_ = a.Tx(ctxFor(tn), nil, func(ctx context.Context, tx *sql.Tx) error {
				_ = insert(ctx, tx)
				panic("boom")
			})
		}()
		var id string
		var n int
		err := a.Tx(ctxFor(tn), &sql.TxOptions{ReadOnly: true}, func(ctx context.Context, tx *sql.Tx) error {
			return tx.QueryRowContext(ctx, "SELECT current_setting('tenantry.tenant_id'), (SELECT count(*) FROM notes)").Scan(&id, &n)
		})
		if err != nil || id != tn.ID || n != 1 {
			t.Errorf("%s: sees tenant %q and %d notes (%v); want %s and 1", m, id, n, err, tn.ID)
		}
		if s := b.see(t, tn); s.notes != 1 {
			t.Errorf("%s: router sees %d notes, want 1", m, s.notes)
		}
	}
	if n := b.inUse(); n != 0 {
		t.Errorf("%d connections in use", n)
	}
}
