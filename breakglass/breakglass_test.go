package breakglass_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantry/tenantry/breakglass"
	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/pool"
	"github.com/tenantry/tenantry/router"
	"github.com/tenantry/tenantry/tenant"
	"github.com/tenantry/tenantry/tenantrytest"
)

var ddl = []string{`CREATE TABLE items (
    tenant_id uuid NOT NULL DEFAULT NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid,
    id        bigint NOT NULL,
    body      text NOT NULL,
    PRIMARY KEY (tenant_id, id)
)`}

const reason = "INC-4711: customer reports missing items since Monday"

type testBundle struct {
	dp *tenantrytest.DataPlane
	// shared and other share tables; schema has its own.
	shared, other, schema *tenant.Tenant
}

// setup builds a data plane with two shared tenants and a schema tenant,
// each holding items of its own: shared 3, other 5, schema 2.
func setup(t *testing.T) *testBundle {
	t.Helper()
	dp := tenantrytest.NewDataPlane(t, &tenantrytest.DataPlaneConfig{DDL: ddl, Shards: 1})
	b := &testBundle{
		dp:     dp,
		shared: dp.Tenant("bg", tenant.ModelShared, dp.Primary),
		other:  dp.Tenant("bg", tenant.ModelShared, dp.Primary),
		schema: dp.Tenant("bg", tenant.ModelSchema, dp.Primary),
	}
	for tn, n := range map[*tenant.Tenant]int{b.shared: 3, b.other: 5, b.schema: 2} {
		err := dp.Router.Tx(tenant.NewContext(t.Context(), tn, "test"), func(ctx context.Context, tx router.Tx) error {
			for i := range n {
				if _, err := tx.Exec(ctx, `INSERT INTO items (id, body) VALUES ($1, $2)`, i, tn.Slug); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// entries returns the break-glass entries of tn by actor, oldest first
// (tests running in parallel access the same tenants as other actors).
func (b *testBundle) entries(t *testing.T, tn *tenant.Tenant, actor string) []catalog.AuditEntry {
	t.Helper()
	all, err := b.dp.Store.Audit(context.Background(), catalog.AuditFilter{TenantID: tn.ID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []catalog.AuditEntry
	for i := len(all) - 1; i >= 0; i-- {
		if strings.HasPrefix(all[i].Action, "breakglass.") && all[i].Actor == actor {
			out = append(out, all[i])
		}
	}
	return out
}

func record(t *testing.T, e catalog.AuditEntry) breakglass.Record {
	t.Helper()
	var r breakglass.Record
	if err := json.Unmarshal(e.After, &r); err != nil {
		t.Fatalf("entry %d: %v", e.ID, err)
	}
	return r
}

// session checks that entries are one session's begin and end, by actor,
// and returns their records.
func session(t *testing.T, entries []catalog.AuditEntry, tn *tenant.Tenant, actor string) (begin, end breakglass.Record) {
	t.Helper()
	if len(entries) != 2 || entries[0].Action != breakglass.ActionBegin || entries[1].Action != breakglass.ActionEnd {
		t.Fatalf("want a begin and an end entry, got %+v", entries)
	}
	for _, e := range entries {
		if e.Actor != actor || e.Reason != reason || e.TenantID != tn.ID || e.Target != tn.Slug {
			t.Errorf("entry %s: actor %q reason %q tenant %q target %q", e.Action, e.Actor, e.Reason, e.TenantID, e.Target)
		}
	}
	if entries[1].At.Before(entries[0].At) {
		t.Errorf("end at %s before begin at %s", entries[1].At, entries[0].At)
	}
	begin, end = record(t, entries[0]), record(t, entries[1])
	if begin.Session == "" || begin.Session != end.Session || begin.Outcome != "" {
		t.Errorf("begin %+v, end %+v", begin, end)
	}
	return begin, end
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func TestAccess(t *testing.T) {
	t.Parallel()
	b := setup(t)

	t.Run("ReadsOneTenant", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			tn   *tenant.Tenant
			rows int
		}{{b.shared, 3}, {b.schema, 2}} {
			actor := "alice-" + tt.tn.Slug
			var n, foreign int
			err := breakglass.Access(t.Context(), b.dp.Store, b.dp.Router, breakglass.Request{Actor: actor, Tenant: tt.tn.Slug, Reason: reason},
				func(ctx context.Context, tx router.Tx) error {
					if got, ok := tenant.FromContext(ctx); !ok || got.ID != tt.tn.ID {
						t.Errorf("context tenant %v", got)
					}
					return tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE tenant_id <> $1 OR body <> $2) FROM items`, tt.tn.ID, tt.tn.Slug).Scan(&n, &foreign)
				})
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.rows || foreign != 0 {
				t.Errorf("%s (%s): saw %d rows, %d of other tenants; want %d, 0", tt.tn.Slug, tt.tn.Placement.Model, n, foreign, tt.rows)
			}
			begin, end := session(t, b.entries(t, tt.tn, actor), tt.tn, actor)
			if begin.Mode != "read-only" || begin.TTL != breakglass.DefaultTTL.String() || begin.ExpiresAt.IsZero() {
				t.Errorf("begin %+v", begin)
			}
			if end.Outcome != breakglass.OutcomeCommitted || end.Error != "" || end.Elapsed == "" {
				t.Errorf("end %+v", end)
			}
		}
	})

	t.Run("AuditedBeforeData", func(t *testing.T) {
		t.Parallel()
		// Looked up by ID this time.
		var seen []catalog.AuditEntry
		err := breakglass.Access(t.Context(), b.dp.Store, b.dp.Router, breakglass.Request{Actor: "bob", Tenant: b.other.ID, Reason: reason},
			func(ctx context.Context, tx router.Tx) error {
				// Before the transaction's first statement: the begin
				// entry is committed, visible on another connection.
				seen = b.entries(t, b.other, "bob")
				var n int
				return tx.QueryRow(ctx, `SELECT count(*) FROM items`).Scan(&n)
			})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != 1 || seen[0].Action != breakglass.ActionBegin || seen[0].Actor != "bob" {
			t.Fatalf("before any data was read, the log held %+v", seen)
		}
		session(t, b.entries(t, b.other, "bob"), b.other, "bob")
	})

	t.Run("FailureIsAudited", func(t *testing.T) {
		t.Parallel()
		tn := b.dp.Tenant("bgf", tenant.ModelShared, b.dp.Primary)
		boom := errors.New("boom")
		err := breakglass.Access(t.Context(), b.dp.Store, b.dp.Router, breakglass.Request{Actor: "carol", Tenant: tn.Slug, Reason: reason},
			func(ctx context.Context, tx router.Tx) error {
				if _, err := tx.Exec(ctx, `SELECT count(*) FROM items`); err != nil {
					return err
				}
				return boom
			})
		if !errors.Is(err, boom) {
			t.Fatalf("got %v, want fn's error", err)
		}
		_, end := session(t, b.entries(t, tn, "carol"), tn, "carol")
		if end.Outcome != breakglass.OutcomeRolledBack || end.Error != "error" {
			t.Errorf("end %+v", end)
		}
	})

	t.Run("SQLFailureIsAuditedWithoutItsText", func(t *testing.T) {
		t.Parallel()
		tn := b.dp.Tenant("bgs", tenant.ModelShared, b.dp.Primary)
		err := breakglass.Access(t.Context(), b.dp.Store, b.dp.Router, breakglass.Request{Actor: "carol", Tenant: tn.Slug, Reason: reason, Mode: breakglass.ReadWrite},
			func(ctx context.Context, tx router.Tx) error {
				_, err := tx.Exec(ctx, `SELECT 1 / 0 FROM items WHERE body = 'secret customer data'`)
				return err
			})
		if sqlState(err) != "22012" {
			t.Fatalf("got %v, want division by zero", err)
		}
		entries := b.entries(t, tn, "carol")
		_, end := session(t, entries, tn, "carol")
		if end.Outcome != breakglass.OutcomeRolledBack || end.Error != "22012" {
			t.Errorf("end %+v", end)
		}
		if strings.Contains(string(entries[1].After), "secret") || strings.Contains(string(entries[1].After), "division") {
			t.Errorf("the end entry quotes the error: %s", entries[1].After)
		}
	})

	t.Run("PanicIsAudited", func(t *testing.T) {
		t.Parallel()
		tn := b.dp.Tenant("bgp", tenant.ModelShared, b.dp.Primary)
		func() {
			defer func() {
				if p := recover(); p != "operator bug" {
					t.Errorf("recovered %v, want the function's panic", p)
				}
			}()
			_ = breakglass.Access(t.Context(), b.dp.Store, b.dp.Router, breakglass.Request{Actor: "dave", Tenant: tn.Slug, Reason: reason},
				func(ctx context.Context, tx router.Tx) error {
					if _, err := tx.Exec(ctx, `SELECT 1`); err != nil {
						return err
					}
					panic("operator bug")
				})
		}()
		_, end := session(t, b.entries(t, tn, "dave"), tn, "dave")
		if end.Outcome != breakglass.OutcomePanicked {
			t.Errorf("end %+v", end)
		}
	})

	t.Run("ReadOnlyEnforced", func(t *testing.T) {
		t.Parallel()
		for _, tn := range []*tenant.Tenant{b.shared, b.schema} {
			for _, stmt := range []string{
				`INSERT INTO items (id, body) VALUES (100, 'x')`,
				`UPDATE items SET body = 'x'`,
				`DELETE FROM items`,
				`SET TRANSACTION READ WRITE`,
				`SELECT set_config('transaction_read_only', 'off', true)`,
				`CREATE TABLE sneaky (id int)`,
			} {
				err := breakglass.Access(t.Context(), b.dp.Store, b.dp.Router, breakglass.Request{Actor: "erin", Tenant: tn.Slug, Reason: reason},
					func(ctx context.Context, tx router.Tx) error {
						if _, err := tx.Exec(ctx, `SELECT count(*) FROM items`); err != nil {
							return err
						}
						_, err := tx.Exec(ctx, stmt)
						return err
					})
				if err == nil {
					t.Errorf("%s (%s): allowed in a read-only session", stmt, tn.Placement.Model)
				} else {
					t.Logf("%s (%s): refused, SQLSTATE %s", stmt, tn.Placement.Model, sqlState(err))
				}
			}
		}
		// Nothing changed.
		var n int
		err := b.dp.Router.ReadTx(tenant.NewContext(t.Context(), b.shared, "test"), func(ctx context.Context, tx router.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FROM items WHERE body = $1`, b.shared.Slug).Scan(&n)
		})
		if err != nil || n != 3 {
			t.Errorf("after refused writes: %d rows, %v", n, err)
		}
	})

	t.Run("ReadWrite", func(t *testing.T) {
		t.Parallel()
		tn := b.dp.Tenant("bgw", tenant.ModelSchema, b.dp.Primary)
		err := breakglass.Access(t.Context(), b.dp.Store, b.dp.Router, breakglass.Request{Actor: "frank", Tenant: tn.Slug, Reason: reason, Mode: breakglass.ReadWrite},
			func(ctx context.Context, tx router.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO items (id, body) VALUES (1, 'repaired')`)
				return err
			})
		if err != nil {
			t.Fatal(err)
		}
		var body string
		err = b.dp.Router.ReadTx(tenant.NewContext(t.Context(), tn, "test"), func(ctx context.Context, tx router.Tx) error {
			return tx.QueryRow(ctx, `SELECT body FROM items WHERE id = 1`).Scan(&body)
		})
		if err != nil || body != "repaired" {
			t.Errorf("after the repair: %q, %v", body, err)
		}
		begin, end := session(t, b.entries(t, tn, "frank"), tn, "frank")
		if begin.Mode != "read-write" || end.Outcome != breakglass.OutcomeCommitted {
			t.Errorf("begin %+v end %+v", begin, end)
		}
	})

	t.Run("LeavingTheTransactionIsDetected", func(t *testing.T) {
		t.Parallel()
		for _, mode := range []breakglass.Mode{breakglass.ReadOnly, breakglass.ReadWrite} {
			tn := b.dp.Tenant("bgl", tenant.ModelShared, b.dp.Primary)
			err := breakglass.Access(t.Context(), b.dp.Store, b.dp.Router, breakglass.Request{Actor: "gina", Tenant: tn.Slug, Reason: reason, Mode: mode},
				func(ctx context.Context, tx router.Tx) error {
					if _, err := tx.Exec(ctx, `SELECT count(*) FROM items`); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, `COMMIT`)
					return err
				})
			if !errors.Is(err, breakglass.ErrScopeLost) {
				t.Errorf("%s: got %v, want ErrScopeLost", mode, err)
			}
			_, end := session(t, b.entries(t, tn, "gina"), tn, "gina")
			if end.Outcome != breakglass.OutcomeScopeLost {
				t.Errorf("%s: end %+v", mode, end)
			}
		}
	})

	t.Run("TTL", func(t *testing.T) {
		t.Parallel()
		tn := b.dp.Tenant("bgt", tenant.ModelShared, b.dp.Primary)
		err := breakglass.Access(t.Context(), b.dp.Store, b.dp.Router, breakglass.Request{Actor: "hank", Tenant: tn.Slug, Reason: reason, TTL: 300 * time.Millisecond},
			func(ctx context.Context, tx router.Tx) error {
				_, err := tx.Exec(ctx, `SELECT pg_sleep(30)`)
				return err
			})
		if err == nil {
			t.Fatal("a session outlived its TTL")
		}
		begin, end := session(t, b.entries(t, tn, "hank"), tn, "hank")
		if begin.TTL != "300ms" || end.Outcome != breakglass.OutcomeRolledBack || (end.Error != "deadline_exceeded" && end.Error != "57014") {
			t.Errorf("begin %+v end %+v (error %v)", begin, end, err)
		}
	})

	t.Run("SuspendedTenant", func(t *testing.T) {
		t.Parallel()
		tn := b.dp.Tenant("bgx", tenant.ModelShared, b.dp.Primary)
		st, err := b.dp.Store.SetState(t.Context(), tenantrytest.Actor, tn.ID, tenant.StateSuspended)
		if err != nil {
			t.Fatal(err)
		}
		b.dp.WaitCached(st)
		called := false
		err = breakglass.Access(t.Context(), b.dp.Store, b.dp.Router, breakglass.Request{Actor: "ivy", Tenant: tn.Slug, Reason: reason},
			func(context.Context, router.Tx) error { called = true; return nil })
		if !errors.Is(err, router.ErrSuspended) || called {
			t.Errorf("got %v (called %v), want router.ErrSuspended", err, called)
		}
		// The attempt is on the record.
		_, end := session(t, b.entries(t, tn, "ivy"), tn, "ivy")
		if end.Error != "tenant_unavailable" {
			t.Errorf("end %+v", end)
		}
	})

	t.Run("AuditLogIsAppendOnly", func(t *testing.T) {
		t.Parallel()
		tn := b.dp.Tenant("bga", tenant.ModelShared, b.dp.Primary)
		if err := breakglass.Access(t.Context(), b.dp.Store, b.dp.Router, breakglass.Request{Actor: "judy", Tenant: tn.Slug, Reason: reason},
			func(context.Context, router.Tx) error { return nil }); err != nil {
			t.Fatal(err)
		}
		before := b.entries(t, tn, "judy")
		pool := b.dp.Store.Pool()
		for _, stmt := range []string{
			`UPDATE tenantry.audit_log SET actor = 'nobody', reason = '' WHERE tenant_id = $1`,
			`DELETE FROM tenantry.audit_log WHERE tenant_id = $1`,
			`TRUNCATE tenantry.audit_log`,
		} {
			var args []any
			if strings.Contains(stmt, "$1") {
				args = []any{tn.ID}
			}
			_, err := pool.Exec(t.Context(), stmt, args...)
			if sqlState(err) != "42501" {
				t.Errorf("%s: got %v, want insufficient_privilege", stmt, err)
			}
		}
		after := b.entries(t, tn, "judy")
		if len(after) != len(before) || after[0].Actor != "judy" || after[1].Reason != reason {
			t.Errorf("entries changed: %+v", after)
		}
	})
}

func TestAccessRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	valid := breakglass.Request{Actor: "mallory", Tenant: b.shared.Slug, Reason: reason}
	tests := []struct {
		name string
		edit func(*breakglass.Request)
		want error
	}{
		{"NoReason", func(r *breakglass.Request) { r.Reason = "" }, breakglass.ErrNoReason},
		{"SpacesOnly", func(r *breakglass.Request) { r.Reason = " \t  " }, breakglass.ErrNoReason},
		{"ShortReason", func(r *breakglass.Request) { r.Reason = "debugging" }, breakglass.ErrNoReason},
		{"PaddedShortReason", func(r *breakglass.Request) { r.Reason = "      just looking       " }, breakglass.ErrNoReason},
		{"LongReason", func(r *breakglass.Request) { r.Reason = strings.Repeat("x", breakglass.MaxReasonLength+1) }, breakglass.ErrInvalid},
		{"ReasonWithNewline", func(r *breakglass.Request) { r.Reason = "INC-1: looking\nforged log line here" }, breakglass.ErrInvalid},
		{"ReasonWithNUL", func(r *breakglass.Request) { r.Reason = "INC-1: looking around\x00" }, breakglass.ErrInvalid},
		{"ReasonWithEscape", func(r *breakglass.Request) { r.Reason = "INC-1: \x1b[2Jlooking around" }, breakglass.ErrInvalid},
		{"ReasonInvalidUTF8", func(r *breakglass.Request) { r.Reason = "INC-1: looking \xff\xfe around" }, breakglass.ErrInvalid},
		{"NoActor", func(r *breakglass.Request) { r.Actor = "  " }, breakglass.ErrInvalid},
		{"ActorWithControl", func(r *breakglass.Request) { r.Actor = "root\r\nadmin" }, breakglass.ErrInvalid},
		{"LongActor", func(r *breakglass.Request) { r.Actor = strings.Repeat("a", breakglass.MaxActorLength+1) }, breakglass.ErrInvalid},
		{"NoTenant", func(r *breakglass.Request) { r.Tenant = "" }, breakglass.ErrInvalid},
		{"UpperCaseSlug", func(r *breakglass.Request) { r.Tenant = strings.ToUpper(b.shared.Slug) }, breakglass.ErrInvalid},
		{"Traversal", func(r *breakglass.Request) { r.Tenant = "../" + b.shared.Slug }, breakglass.ErrInvalid},
		{"SQL", func(r *breakglass.Request) { r.Tenant = "x' OR '1'='1" }, breakglass.ErrInvalid},
		{"UpperCaseID", func(r *breakglass.Request) { r.Tenant = strings.ToUpper(b.shared.ID) }, breakglass.ErrInvalid},
		{"UnknownTenant", func(r *breakglass.Request) { r.Tenant = "no-such-tenant" }, catalog.ErrNotFound},
		{"UnknownID", func(r *breakglass.Request) { r.Tenant = "00000000-0000-4000-8000-000000000000" }, catalog.ErrNotFound},
		{"NegativeTTL", func(r *breakglass.Request) { r.TTL = -time.Second }, breakglass.ErrInvalid},
		{"LongTTL", func(r *breakglass.Request) { r.TTL = breakglass.MaxTTL + time.Second }, breakglass.ErrInvalid},
		{"UnknownMode", func(r *breakglass.Request) { r.Mode = 7 }, breakglass.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := valid
			req.Actor += "-" + tt.name
			tt.edit(&req)
			var called atomic.Bool
			err := breakglass.Access(t.Context(), b.dp.Store, b.dp.Router, req, func(context.Context, router.Tx) error {
				called.Store(true)
				return nil
			})
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
			if called.Load() {
				t.Error("the function ran")
			}
			// Nothing was recorded for a refused request.
			if e := b.entries(t, b.shared, req.Actor); len(e) > 0 {
				t.Errorf("refused request recorded: %+v", e)
			}
		})
	}
}

// TestAccessAuditUnavailable: when the begin entry cannot be written, the
// function does not run.
func TestAccessAuditUnavailable(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := tenantrytest.Pool(t, tenantrytest.NewDatabase(t))
	store, err := catalog.NewStore(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateTenant(ctx, catalog.Actor{Name: "test"}, catalog.NewTenant{Slug: "acme"}); err != nil {
		t.Fatal(err)
	}
	// The audit log refuses inserts from now on.
	_, err = db.Exec(ctx, `CREATE FUNCTION tenantry.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit log full'; END $$;
CREATE TRIGGER refuse BEFORE INSERT ON tenantry.audit_log FOR EACH ROW EXECUTE FUNCTION tenantry.refuse()`)
	if err != nil {
		t.Fatal(err)
	}
	// A router that is never reached.
	cache, err := catalog.NewCache(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	pools, err := pool.New(&pool.Config{Catalog: cache})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pools.Close)
	r, err := router.New(cache, pools, nil)
	if err != nil {
		t.Fatal(err)
	}
	called := false
	err = breakglass.Access(ctx, store, r, breakglass.Request{Actor: "kim", Tenant: "acme", Reason: reason},
		func(context.Context, router.Tx) error { called = true; return nil })
	if !errors.Is(err, breakglass.ErrAudit) || called {
		t.Fatalf("got %v (called %v), want ErrAudit and no call", err, called)
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM tenantry.audit_log WHERE action LIKE 'breakglass.%'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d break-glass entries, %v", n, err)
	}
}
