package router_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/sqlident"
	"github.com/tenantry/tenantry/pool"
	"github.com/tenantry/tenantry/router"
	"github.com/tenantry/tenantry/tenant"
)

func TestNoTenantFailsBeforeSQL(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	called := false
	for _, ctx := range []context.Context{
		context.Background(),
		tenant.WithoutTenant(ctxFor(&tenant.Tenant{ID: "00000000-0000-0000-0000-000000000001"})),
	} {
		err := b.router.Tx(ctx, func(context.Context, router.Tx) error { called = true; return nil })
		if !errors.Is(err, router.ErrNoTenant) {
			t.Errorf("Tx without tenant: %v, want ErrNoTenant", err)
		}
	}
	if called {
		t.Error("fn ran without a tenant")
	}
	if s := b.pools.Stats(); s.Pools != 0 || len(s.Clusters) != 0 {
		t.Errorf("a pool was opened without a tenant: %+v", s)
	}
}

func TestScopeOfEveryModel(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for _, tc := range []struct {
		slug  string
		model tenant.Model
	}{
		{"shared-a", tenant.ModelShared},
		{"shared-b", tenant.ModelShared},
		{"sharded-a", tenant.ModelSharded},
		{"schema-a", tenant.ModelSchema},
		{"schema-b", tenant.ModelSchema},
		{"db-a", tenant.ModelDatabase},
	} {
		tn := b.addTenant(t, tc.slug, tc.model, tenant.StateActive)
		b.insert(t, tn, "hello from "+tc.slug)
		b.insert(t, tn, "again from "+tc.slug)
	}
	for slug, tn := range b.tenants {
		s := b.see(t, tn)
		wantPath, wantUser := `"app"`, b.runtime
		switch tn.Placement.Model {
		case tenant.ModelSchema:
			wantPath, wantUser = `"`+tn.Placement.Schema+`"`, b.tenantRole(tn)
		case tenant.ModelDatabase:
			wantUser = b.tenantRole(tn)
		}
		if s.tenantID != tn.ID || s.searchPath != wantPath || s.user != wantUser || s.notes != 2 {
			t.Errorf("%s sees %+v; want tenant %s, search_path %s, user %s, 2 notes", slug, s, tn.ID, wantPath, wantUser)
		}
	}
	// Every tenant sees its own rows only, and Tenant() tells which.
	for slug, tn := range b.tenants {
		err := b.router.ReadTx(ctxFor(tn), func(ctx context.Context, tx router.Tx) error {
			if tx.Tenant().ID != tn.ID {
				t.Errorf("Tenant() = %s, want %s", tx.Tenant().Slug, slug)
			}
			rows, err := tx.Query(ctx, "SELECT tenant_id::text, body FROM notes")
			if err != nil {
				return err
			}
			for rows.Next() {
				var id, body string
				if err := rows.Scan(&id, &body); err != nil {
					return err
				}
				if id != tn.ID || !strings.HasSuffix(body, " "+slug) {
					t.Errorf("%s sees a row of another tenant: %s %q", slug, id, body)
				}
			}
			return rows.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestScopeEndsWithTransaction(t *testing.T) {
	t.Parallel()
	// One connection per pool, so every transaction reuses the same backend.
	b := setup(t, &pool.Config{MaxConnsPerPool: func(pool.Key, int) int { return 1 }})
	a := b.addTenant(t, "alpha", tenant.ModelShared, tenant.StateActive)
	z := b.addTenant(t, "zulu", tenant.ModelShared, tenant.StateActive)
	b.insert(t, a, "secret of alpha")

	pid := func(tn *tenant.Tenant) (p int) {
		err := b.router.ReadTx(ctxFor(tn), func(ctx context.Context, tx router.Tx) error {
			return tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&p)
		})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if pa, pz := pid(a), pid(z); pa != pz {
		t.Fatalf("expected one reused connection, got backends %d and %d", pa, pz)
	}
	if s := b.see(t, z); s.notes != 0 || s.tenantID != z.ID {
		t.Errorf("zulu on alpha's connection sees %+v", s)
	}

	// Outside a router transaction the same backend has no tenant: the
	// setting reads '' and row-level security shows nothing and refuses
	// writes.
	c, err := b.pools.Acquire(context.Background(), pool.Key{Cluster: cluster, Database: b.appDB, Role: b.runtime})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	ctx := context.Background()
	var setting, path string
	var n int
	if err := c.Conn().QueryRow(ctx, "SELECT current_setting('tenantry.tenant_id', true), current_setting('search_path'), (SELECT count(*) FROM app.notes)").Scan(&setting, &path, &n); err != nil {
		t.Fatal(err)
	}
	if setting != "" || n != 0 || strings.Contains(path, "app") {
		t.Errorf("after commit: tenant_id %q, search_path %q, %d rows visible; want '', default, 0", setting, path, n)
	}
	_, err = c.Conn().Exec(ctx, "INSERT INTO app.notes (tenant_id, body) VALUES ($1, 'sneaky')", a.ID)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Errorf("insert with no tenant set: %v, want a row-level security violation", err)
	}
}

func TestErrorPanicAndCancelRollBack(t *testing.T) {
	t.Parallel()
	b := setup(t, &pool.Config{MaxConnsPerPool: func(pool.Key, int) int { return 2 }})
	for _, m := range []tenant.Model{tenant.ModelShared, tenant.ModelSchema, tenant.ModelDatabase} {
		tn := b.addTenant(t, "t-"+string(m), m, tenant.StateActive)
		insert := func(ctx context.Context, tx router.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO notes (tenant_id, body) VALUES ($1, 'must not stay')", tn.ID)
			return err
		}
		boom := errors.New("boom")

		// An error.
		err := b.router.Tx(ctxFor(tn), func(ctx context.Context, tx router.Tx) error {
			if err := insert(ctx, tx); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Errorf("%s: Tx = %v, want fn's error", m, err)
		}

		// A panic, re-raised after the rollback.
		func() {
			defer func() {
				if p := recover(); p != "panic in fn" {
					t.Errorf("%s: recovered %v, want the panic of fn", m, p)
				}
			}()
			_ = b.router.Tx(ctxFor(tn), func(ctx context.Context, tx router.Tx) error {
				if err := insert(ctx, tx); err != nil {
					return err
				}
				panic("panic in fn")
			})
		}()

		// A panic with rows still open.
		func() {
			defer func() { _ = recover() }()
			_ = b.router.Tx(ctxFor(tn), func(ctx context.Context, tx router.Tx) error {
				if err := insert(ctx, tx); err != nil {
					return err
				}
				rows, _ := tx.Query(ctx, "SELECT generate_series(1, 100000)")
				rows.Next()
				panic("panic with rows open")
			})
		}()

		// A context cancelled while a statement runs.
		ctx, cancel := context.WithCancel(ctxFor(tn))
		err = b.router.Tx(ctx, func(ctx context.Context, tx router.Tx) error {
			if err := insert(ctx, tx); err != nil {
				return err
			}
			time.AfterFunc(50*time.Millisecond, cancel)
			_, err := tx.Exec(ctx, "SELECT pg_sleep(10)")
			return err
		})
		if err == nil {
			t.Errorf("%s: Tx with a cancelled statement succeeded", m)
		}

		// A context cancelled after the last statement: no commit.
		ctx, cancel = context.WithCancel(ctxFor(tn))
		err = b.router.Tx(ctx, func(ctx context.Context, tx router.Tx) error {
			err := insert(ctx, tx)
			cancel()
			return err
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: Tx after cancel = %v, want context.Canceled", m, err)
		}

		if s := b.see(t, tn); s.notes != 0 {
			t.Errorf("%s: %d rows survived rollbacks", m, s.notes)
		}
		if n := b.inUse(); n != 0 {
			t.Errorf("%s: %d connections still in use after the transactions", m, n)
		}
	}
	// The pools still work, within their share (2), so no connection leaked.
	for _, tn := range b.tenants {
		for range 5 {
			b.insert(t, tn, "fine")
		}
	}
}

func TestTenantSwitchOnOneGoroutine(t *testing.T) {
	t.Parallel()
	b := setup(t, &pool.Config{MaxConnsPerPool: func(pool.Key, int) int { return 1 }})
	ts := []*tenant.Tenant{
		b.addTenant(t, "one", tenant.ModelShared, tenant.StateActive),
		b.addTenant(t, "two", tenant.ModelShared, tenant.StateActive),
		b.addTenant(t, "three", tenant.ModelSchema, tenant.StateActive),
	}
	for i := range 30 {
		tn := ts[i%len(ts)]
		b.insert(t, tn, fmt.Sprint(i))
	}
	for _, tn := range ts {
		if s := b.see(t, tn); s.notes != 10 || s.tenantID != tn.ID {
			t.Errorf("%s sees %+v, want its 10 notes", tn.Slug, s)
		}
	}
}

func TestTenantStates(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ro := b.addTenant(t, "reader", tenant.ModelShared, tenant.StateReadOnly)
	sus := b.addTenant(t, "paused", tenant.ModelShared, tenant.StateSuspended)
	del := b.addTenant(t, "leaving", tenant.ModelShared, tenant.StateDeleting)
	noop := func(context.Context, router.Tx) error { return nil }

	if err := b.router.Tx(ctxFor(ro), noop); !errors.Is(err, router.ErrReadOnly) {
		t.Errorf("Tx on read-only tenant: %v", err)
	}
	if s := b.see(t, ro); s.tenantID != ro.ID {
		t.Errorf("ReadTx on read-only tenant: %+v", s)
	}
	err := b.router.ReadTx(ctxFor(ro), func(ctx context.Context, tx router.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO notes (tenant_id, body) VALUES ($1, 'x')", ro.ID)
		return err
	})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
		t.Errorf("write in ReadTx: %v, want read_only_sql_transaction", err)
	}
	if err := b.router.ReadTx(ctxFor(sus), noop); !errors.Is(err, router.ErrSuspended) {
		t.Errorf("suspended: %v", err)
	}
	if err := b.router.ReadTx(ctxFor(del), noop); !errors.Is(err, router.ErrDeleting) {
		t.Errorf("deleting: %v", err)
	}
	ghost := &tenant.Tenant{ID: "6f1c1c39-0000-4000-8000-000000000000", Slug: "ghost"}
	if err := b.router.ReadTx(ctxFor(ghost), noop); !errors.Is(err, router.ErrUnknownTenant) || !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("unknown tenant: %v", err)
	}

	// A suspension applies from the next transaction on.
	act := b.addTenant(t, "active", tenant.ModelShared, tenant.StateActive)
	b.insert(t, act, "before")
	after, err := b.store.SetState(context.Background(), actor, act.ID, tenant.StateSuspended)
	if err != nil {
		t.Fatal(err)
	}
	b.waitCached(t, after)
	if err := b.router.Tx(ctxFor(act), noop); !errors.Is(err, router.ErrSuspended) {
		t.Errorf("after suspension: %v", err)
	}
}

func TestFirstStatementOfEveryKind(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for _, m := range []tenant.Model{tenant.ModelShared, tenant.ModelSchema, tenant.ModelDatabase} {
		tn := b.addTenant(t, "first-"+string(m), m, tenant.StateActive)
		run := func(name string, fn func(context.Context, router.Tx) error) {
			t.Helper()
			if err := b.router.Tx(ctxFor(tn), fn); err != nil {
				t.Errorf("%s %s: %v", m, name, err)
			}
		}
		run("Exec", func(ctx context.Context, tx router.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO notes (tenant_id, body) VALUES ($1, 'exec')", tn.ID)
			return err
		})
		run("Query", func(ctx context.Context, tx router.Tx) error {
			rows, err := tx.Query(ctx, "SELECT body FROM notes")
			if err != nil {
				return err
			}
			bodies, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("collecting rows: %w", err)
			}
			if len(bodies) != 1 || rows.Conn() != nil {
				return fmt.Errorf("rows %v, conn exposed %v", bodies, rows.Conn() != nil)
			}
			_, err = tx.Exec(ctx, "INSERT INTO notes (tenant_id, body) VALUES ($1, 'after query')", tn.ID)
			return err
		})
		run("QueryRow", func(ctx context.Context, tx router.Tx) error {
			var n int
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM notes").Scan(&n); err != nil {
				return fmt.Errorf("count: %w", err)
			}
			if n != 2 {
				return fmt.Errorf("count %d, want 2", n)
			}
			var none string
			switch err := tx.QueryRow(ctx, "SELECT body FROM notes WHERE false").Scan(&none); {
			case err == nil:
				return errors.New("no rows: Scan succeeded, want pgx.ErrNoRows")
			case !errors.Is(err, pgx.ErrNoRows):
				return fmt.Errorf("no rows: %w, want pgx.ErrNoRows", err)
			}
			return nil
		})
		run("SendBatch", func(ctx context.Context, tx router.Tx) error {
			var batch pgx.Batch
			batch.Queue("INSERT INTO notes (tenant_id, body) VALUES ($1, 'batch')", tn.ID)
			batch.Queue("SELECT count(*) FROM notes")
			br := tx.SendBatch(ctx, &batch)
			if _, err := br.Exec(); err != nil {
				return err
			}
			var n int
			if err := br.QueryRow().Scan(&n); err != nil {
				return fmt.Errorf("count: %w", err)
			}
			if n != 3 {
				return fmt.Errorf("count %d, want 3", n)
			}
			if br.Tx() != nil {
				return errors.New("batch results expose a pgx.Tx")
			}
			return br.Close()
		})
		copyRows := func(ctx context.Context, tx router.Tx) error {
			n, err := tx.CopyFrom(ctx, pgx.Identifier{"notes"}, []string{"tenant_id", "body"},
				pgx.CopyFromRows([][]any{{tn.ID, "copy 1"}, {tn.ID, "copy 2"}}))
			if err == nil && n != 2 {
				return fmt.Errorf("copied %d rows, want 2", n)
			}
			return err
		}
		if m != tenant.ModelShared {
			run("CopyFrom", copyRows)
		} else {
			// PostgreSQL refuses COPY FROM into a table under row-level
			// security; insert instead.
			err := b.router.Tx(ctxFor(tn), copyRows)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "0A000" {
				t.Errorf("COPY into an RLS table: %v, want feature_not_supported", err)
			}
			b.insert(t, tn, "copy 1")
			b.insert(t, tn, "copy 2")
		}
		run("rows left open", func(ctx context.Context, tx router.Tx) error {
			_, err := tx.Query(ctx, "SELECT generate_series(1, 1000)") //nolint:sqlclosecheck // on purpose: the router must close what fn leaves open
			return err
		})
		var leaked router.Tx
		run("nothing", func(_ context.Context, tx router.Tx) error { leaked = tx; return nil })
		if _, err := leaked.Exec(context.Background(), "SELECT 1"); !errors.Is(err, router.ErrTxDone) {
			t.Errorf("%s: Tx used after its function: %v, want ErrTxDone", m, err)
		}
		if s := b.see(t, tn); s.notes != 5 {
			t.Errorf("%s: %d notes, want 5", m, s.notes)
		}
	}
	if n := b.inUse(); n != 0 {
		t.Errorf("%d connections in use after the transactions", n)
	}
}

// TestHostileTenantRoles checks that a per-tenant role name that is not a
// usable role never lets a statement run.
func TestHostileTenantRoles(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	tn := b.addTenant(t, "victim", tenant.ModelSchema, tenant.StateActive)
	for _, role := range []string{
		"", "none", `x"; DROP TABLE notes; --`, "tenantry_t_other", strings.Repeat("r", 64), "bad\x00nul", "ünïcödé", "' OR 1=1 --",
	} {
		r, err := router.New(b.cache, b.pools, &router.Config{RuntimeRole: b.runtime, TenantRole: func(*tenant.Tenant) string { return role }})
		if err != nil {
			t.Fatal(err)
		}
		ran := false
		err = r.Tx(ctxFor(tn), func(ctx context.Context, tx router.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO notes (tenant_id, body) VALUES ($1, 'hostile')", tn.ID)
			ran = err == nil
			return err
		})
		if err == nil || ran {
			t.Errorf("role %q: statement ran (err %v)", role, err)
		}
	}
	if s := b.see(t, tn); s.notes != 0 {
		t.Errorf("%d rows written under hostile roles", s.notes)
	}
	if n := b.inUse(); n != 0 {
		t.Errorf("%d connections in use", n)
	}
}

// TestScopeTravelsWithFirstStatement counts the writes a transaction makes
// on its socket: BEGIN, the scope and the first statement go in one, COMMIT
// in another.
func TestScopeTravelsWithFirstStatement(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	writes := 0
	b := setup(t, &pool.Config{
		MaxConnsPerPool: func(pool.Key, int) int { return 1 },
		ConfigureConn: func(_ pool.Key, cc *pgx.ConnConfig) error {
			base := cc.DialFunc
			cc.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := base(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return &countingConn{Conn: c, onWrite: func() { mu.Lock(); writes++; mu.Unlock() }}, nil
			}
			return nil
		},
	})
	tn := b.addTenant(t, "counted", tenant.ModelShared, tenant.StateActive)
	tx := func() {
		err := b.router.Tx(ctxFor(tn), func(ctx context.Context, tx router.Tx) error {
			var n int
			return tx.QueryRow(ctx, "SELECT count(*) FROM notes WHERE tenant_id = $1", tn.ID).Scan(&n)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	tx() // connects and prepares the statements
	mu.Lock()
	writes = 0
	mu.Unlock()
	tx()
	mu.Lock()
	defer mu.Unlock()
	if writes != 2 {
		t.Errorf("a one-statement transaction wrote %d times; want 2 (BEGIN+scope+statement, COMMIT)", writes)
	}
}

type countingConn struct {
	net.Conn
	onWrite func()
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.onWrite()
	return c.Conn.Write(p)
}

// A schema-model tenant naming another tenant's schema gets the server's
// permission error, not a generic "transaction aborted".
func TestForeignSchemaIsPermissionDenied(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	a := b.addTenant(t, "alpha", tenant.ModelSchema, tenant.StateActive)
	other := b.addTenant(t, "bravo", tenant.ModelSchema, tenant.StateActive)
	b.insert(t, other, "secret")
	err := b.router.Tx(ctxFor(a), func(ctx context.Context, tx router.Tx) error {
		var n int
		return tx.QueryRow(ctx, "SELECT count(*) FROM "+sqlident.MustQuote(other.Placement.Schema)+".notes").Scan(&n)
	})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("reading another tenant's schema: err = %v, want permission denied (42501)", err)
	}
	if s := b.see(t, a); s.tenantID != a.ID {
		t.Fatalf("the connection is unusable afterwards: %+v", s)
	}
}
