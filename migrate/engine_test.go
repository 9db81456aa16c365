package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/migrate"
	"github.com/tenantry/tenantry/tenant"
)

// recorder collects a rollout's events.
type recorder struct {
	mu     sync.Mutex
	events []migrate.Event
}

func (r *recorder) handle(ev migrate.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recorder) count(kind migrate.EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.events {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

func TestUpAllModels(t *testing.T) {
	t.Parallel()
	f := standardFleet(t, 4, 3)
	e := f.engine(nil)
	ctx := context.Background()

	plan, err := e.Plan(ctx, migrate.RunOptions{Canary: 2, Waves: []int{50, 100}})
	if err != nil {
		t.Fatal(err)
	}
	// shared + shard + 4 schemas + 3 databases + the template
	const targets = 10
	if len(plan.Targets) != targets || plan.Head != 4 || plan.Blocking != 0 || len(plan.Waves) != 3 {
		t.Fatalf("plan: %d targets, head %d, %d blocking, %d waves", len(plan.Targets), plan.Head, plan.Blocking, len(plan.Waves))
	}
	if k := plan.Targets[0].Kind; k != migrate.KindTemplate {
		t.Errorf("first planned target is a %s, want the template in the canary", k)
	}
	if last := plan.Targets[len(plan.Targets)-1].Kind; last != migrate.KindShared && last != migrate.KindSharded {
		t.Errorf("last planned target is a %s, want a shared database (largest blast radius) last", last)
	}

	var rec recorder
	rep, err := e.Up(ctx, migrate.RunOptions{Actor: "alice", Canary: 2, Waves: []int{50, 100}, OnEvent: rec.handle})
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	if rep.State != migrate.RunDone || rep.Targets != targets || rep.Done != targets || rep.Failed != 0 || len(rep.Waves) != 3 {
		t.Fatalf("report: %+v", rep)
	}
	if rep.StepsApplied != targets*3 {
		t.Errorf("steps applied = %d, want %d", rep.StepsApplied, targets*3)
	}
	f.assertAtHead(t)
	if n := rec.count(migrate.EventTargetDone); n != targets {
		t.Errorf("%d target-done events, want %d", n, targets)
	}
	if first, last := rec.events[0], rec.events[len(rec.events)-1]; first.Kind != migrate.EventRunStarted || last.Kind != migrate.EventRunDone ||
		last.Progress.Done != targets || last.Progress.Remaining != 0 {
		t.Errorf("events run from %s to %s with progress %+v", first.Kind, last.Kind, last.Progress)
	}

	// The template is at head and sealed again; a database cloned from it
	// now is at head without a rollout.
	var allow bool
	if err := f.admin["main"].QueryRow(ctx, `SELECT datallowconn FROM pg_database WHERE datname = $1`, f.name("tpl")).Scan(&allow); err != nil || allow {
		t.Errorf("template allows connections after the rollout: %v %v", allow, err)
	}
	f.createDatabase("main", f.name("late"), f.name("tpl"))
	if st := f.inspect("main", f.name("late"), "app"); st.version != 4 || !st.indexOK {
		t.Errorf("clone of the template: version %d, index valid %v", st.version, st.indexOK)
	}

	status, err := e.Status(ctx, migrate.StatusOptions{Targets: true})
	if err != nil {
		t.Fatal(err)
	}
	if status.Counts[migrate.StateDone] != targets || status.Versions[4] != targets || status.Run.State != migrate.RunDone ||
		status.Progress.Done != targets || len(status.Targets) != targets {
		t.Errorf("status: %+v", status)
	}
	for _, ts := range status.Targets {
		if ts.Attempts != 1 || ts.DurationMS <= 0 || ts.RunID != rep.RunID {
			t.Errorf("target row %+v", ts)
		}
	}

	// Nothing left to do; visiting everything again applies nothing twice.
	again, err := e.Up(ctx, migrate.RunOptions{Actor: "alice"})
	if err != nil || again.RunID != "" {
		t.Fatalf("second up: %+v, %v", again, err)
	}
	all, err := e.Up(ctx, migrate.RunOptions{Actor: "alice", All: true})
	if err != nil || all.Done != targets || all.StepsApplied != 0 {
		t.Fatalf("up --all: %+v, %v", all, err)
	}
	f.assertAtHead(t)
}

func TestUpNewVersionLater(t *testing.T) {
	t.Parallel()
	f := standardFleet(t, 2, 1)
	ctx := context.Background()
	// Release 1 rolls out up to version 2, release 2 the rest.
	if _, err := f.engine(&migrate.Config{Source: f.src.Until(2)}).Up(ctx, migrate.RunOptions{Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	for _, tn := range f.tenants {
		if v, _ := migrate.TenantVersion(ctx, f.catalogPool, tn.Slug); v != 2 {
			t.Fatalf("%s at %d after release 1", tn.Slug, v)
		}
	}
	rep, err := f.engine(nil).Up(ctx, migrate.RunOptions{Actor: "alice"})
	if err != nil || rep.StepsApplied != 6*2 {
		t.Fatalf("release 2: %+v %v", rep, err)
	}
	f.assertAtHead(t)
}

func TestUpRefusesUnsafeSteps(t *testing.T) {
	t.Parallel()
	f := newFleet(t, false)
	f.src = loadSource(t, nil)
	f.addTenant("acme", tenant.ModelSchema, 4, 5)
	ctx := context.Background()
	unsafe := loadSource(t, map[string]string{
		"0005_unsafe.sql": "-- migrate:mode tx\nCREATE INDEX notes_body_idx ON notes (body);\nALTER TABLE notes ALTER COLUMN words TYPE bigint;\n",
	})
	e := f.engine(&migrate.Config{Source: unsafe})
	_, err := e.Up(ctx, migrate.RunOptions{Actor: "alice"})
	var le *migrate.LintError
	if !errors.As(err, &le) || !errors.Is(err, migrate.ErrLintFailed) || len(le.Findings) != 2 {
		t.Fatalf("up with unsafe step: %v", err)
	}
	runs, _ := e.Runs(ctx, 10)
	if len(runs) != 0 {
		t.Fatalf("a refused rollout recorded a run: %+v", runs)
	}
	if st := f.inspect("main", f.name("schemas"), "t_acme"); st.version != 4 {
		t.Fatalf("target changed: %+v", st)
	}
	// Allowed with a reason, it runs.
	allowed := loadSource(t, map[string]string{
		"0005_unsafe.sql": "-- migrate:mode tx\n-- migrate:allow index-not-concurrent notes is tiny in every tenant\n-- migrate:allow type-change int to bigint on a tiny table\nCREATE INDEX notes_body_idx ON notes (body);\nALTER TABLE notes ALTER COLUMN words TYPE bigint;\n",
	})
	if _, err := f.engine(&migrate.Config{Source: allowed}).Up(ctx, migrate.RunOptions{Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
}

func TestChecksumAndAhead(t *testing.T) {
	t.Parallel()
	f := newFleet(t, false)
	f.src = loadSource(t, nil)
	f.addTenant("acme", tenant.ModelSchema, 2, 5)
	ctx := context.Background()

	edited := loadSource(t, map[string]string{"0002_status.sql": sqlStatus + "-- edited after release\n"})
	rep, err := f.engine(&migrate.Config{Source: edited}).Up(ctx, migrate.RunOptions{Actor: "alice"})
	if !errors.Is(err, migrate.ErrHalted) || len(rep.Failures) != 1 || !strings.Contains(rep.Failures[0].LastError, "edited") {
		t.Fatalf("edited migration: %+v %v", rep, err)
	}
	if _, err := f.engine(nil).Abort(ctx, "alice", "test"); err != nil {
		t.Fatal(err)
	}
	// An old release (source up to 1) meets a target at 2.
	rep, err = f.engine(&migrate.Config{Source: f.src.Until(1)}).Up(ctx, migrate.RunOptions{Actor: "alice", All: true})
	if !errors.Is(err, migrate.ErrHalted) || len(rep.Failures) != 1 || !strings.Contains(rep.Failures[0].LastError, "ahead") {
		t.Fatalf("old release: %+v %v", rep, err)
	}
}

func TestBaselineAdoptsTargetsWithoutLedger(t *testing.T) {
	t.Parallel()
	f := newFleet(t, false)
	f.src = loadSource(t, nil)
	tn := f.addTenant("legacy", tenant.ModelSchema, 2, 5)
	ctx := context.Background()
	// A target built by other means: the same tables, no ledger; and
	// provisioning's default privileges that would give an application
	// role DML on every new table of the schema.
	app := f.prefix + "_app"
	err := f.withTarget("main", tn.Placement.Database, tn.Placement.Schema, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `DROP TABLE tenantry_migration; CREATE ROLE `+app+` NOLOGIN;
ALTER DEFAULT PRIVILEGES FOR ROLE tenantry_owner IN SCHEMA `+tn.Placement.Schema+` GRANT ALL ON TABLES TO `+app)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = f.withTarget("main", tn.Placement.Database, tn.Placement.Schema, func(conn *pgx.Conn) error {
			_, err := conn.Exec(context.Background(), `DROP OWNED BY `+app+`; DROP ROLE `+app)
			return err
		})
	})
	rep, err := f.engine(&migrate.Config{Baseline: 2}).Up(ctx, migrate.RunOptions{Actor: "alice"})
	if err != nil || rep.StepsApplied != 2 {
		t.Fatalf("baseline up: %+v %v", rep, err)
	}
	if st := f.inspect("main", tn.Placement.Database, tn.Placement.Schema); st.version != 4 || st.effects[2] != 1 || st.effects[3] != 1 {
		t.Fatalf("adopted target: %+v", st)
	}
	// The application role may read the ledger, not write it.
	err = f.withTarget("main", tn.Placement.Database, tn.Placement.Schema, func(conn *pgx.Conn) error {
		var read, write, notes bool
		err := conn.QueryRow(ctx, `SELECT has_table_privilege($1, 'tenantry_migration', 'SELECT'),
    has_table_privilege($1, 'tenantry_migration', 'INSERT, UPDATE, DELETE, TRUNCATE'), has_table_privilege($1, 'step_effect', 'SELECT')`, app).Scan(&read, &write, &notes)
		if err == nil && (!read || write) {
			err = fmt.Errorf("ledger privileges of the application role: read %v, write %v", read, write)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOneRolloutAtATime(t *testing.T) {
	t.Parallel()
	f := newFleet(t, false)
	slow := loadSource(t, map[string]string{"0002_status.sql": sqlStatus + "SELECT pg_sleep(0.5);\n"})
	f.src = slow
	f.addTenant("a", tenant.ModelSchema, 1, 1)
	f.addTenant("b", tenant.ModelSchema, 1, 1)
	ctx := context.Background()
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := f.engine(nil).Up(ctx, migrate.RunOptions{Actor: "alice"})
			errs <- err
		}()
	}
	a, b := <-errs, <-errs
	if a != nil && b != nil || a == nil && b == nil {
		t.Fatalf("two concurrent rollouts: %v / %v", a, b)
	}
	if err := errors.Join(a, b); !errors.Is(err, migrate.ErrRunInProgress) {
		t.Fatalf("the loser got %v, want ErrRunInProgress", err)
	}
}

func TestMigrateTargetAndBuild(t *testing.T) {
	t.Parallel()
	f := newFleet(t, false)
	f.src = loadSource(t, nil)
	ctx := context.Background()
	f.template(1)
	e := f.engine(nil)
	// Provisioning brings the template to head before cloning.
	v, err := e.MigrateTarget(ctx, migrate.Target{Cluster: "main", Database: f.name("tpl"), Schema: "app", Kind: migrate.KindTemplate})
	if err != nil || v != 4 {
		t.Fatalf("MigrateTarget(template) = %d, %v", v, err)
	}
	tn := f.addTenant("fresh", tenant.ModelDatabase, 4, 3)
	if st := f.inspect("main", tn.Placement.Database, "app"); st.version != 4 || !st.indexOK || st.effects[2] != 1 {
		t.Fatalf("tenant cloned from the migrated template: %+v", st)
	}
	// Build makes a new schema at head in one transaction (CONCURRENTLY
	// dropped on empty tables).
	sc := f.addTenant("built", tenant.ModelSchema, 4, 0)
	if st := f.inspect("main", sc.Placement.Database, sc.Placement.Schema); st.version != 4 || !st.indexOK {
		t.Fatalf("built schema: %+v", st)
	}
	rep, err := e.Up(ctx, migrate.RunOptions{Actor: "alice"})
	if err != nil || rep.StepsApplied != 0 {
		t.Fatalf("up over targets at head: %+v %v", rep, err)
	}
}

func TestReadVersionOfUnmigratedSchema(t *testing.T) {
	t.Parallel()
	f := newFleet(t, false)
	f.createDatabase("main", f.name("empty"), "")
	err := f.withTarget("main", f.name("empty"), "public", func(conn *pgx.Conn) error {
		v, err := migrate.ReadVersion(context.Background(), conn)
		if v != 0 {
			t.Errorf("version %d", v)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.TenantVersion(context.Background(), f.catalogPool, "nobody"); err == nil {
		t.Fatal("version of an unknown tenant")
	}
}

func TestLeases(t *testing.T) {
	t.Parallel()
	f := newFleet(t, false)
	f.src = loadSource(t, nil)
	a := f.addTenant("a", tenant.ModelSchema, 1, 0)
	b := f.addTenant("b", tenant.ModelSchema, 1, 0)
	ctx := context.Background()
	l := migrate.NewLeases(f.catalogPool)

	if err := l.Acquire(ctx, "mover-1", migrate.PurposeMove, time.Minute, a.ID); err != nil {
		t.Fatal(err)
	}
	// All or nothing: b is not taken when a is held by someone else.
	err := l.Acquire(ctx, "mover-2", migrate.PurposeMove, time.Minute, b.ID, a.ID)
	var lc *migrate.LeaseConflictError
	if !errors.As(err, &lc) || !errors.Is(err, migrate.ErrLeased) || lc.Held.Owner != "mover-1" || lc.Held.TenantID != a.ID {
		t.Fatalf("conflicting acquire: %v", err)
	}
	if h, _ := l.Holder(ctx, b.ID); h != nil {
		t.Fatalf("b leased after a failed all-or-nothing acquire: %+v", h)
	}
	// The holder extends its own lease.
	if err := l.Acquire(ctx, "mover-1", migrate.PurposeMove, time.Minute, a.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Renew(ctx, "mover-1", time.Minute); err != nil || n != 1 {
		t.Fatalf("renew = %d, %v", n, err)
	}
	// An expired lease is free for the taking.
	if err := l.Acquire(ctx, "mover-3", migrate.PurposeMove, time.Millisecond, b.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if err := l.Acquire(ctx, "mover-2", migrate.PurposeMove, time.Minute, b.ID); err != nil {
		t.Fatalf("acquire over an expired lease: %v", err)
	}
	if err := l.Release(ctx, "mover-2"); err != nil {
		t.Fatal(err)
	}
	if h, _ := l.Holder(ctx, b.ID); h != nil {
		t.Fatalf("released lease still held: %+v", h)
	}

	// A rollout leaves the moving tenant's target alone, migrates the rest
	// and halts; once the move is over, resume finishes.
	rep, err := f.engine(nil).Up(ctx, migrate.RunOptions{Actor: "alice", MaxFailures: 5})
	if !errors.Is(err, migrate.ErrHalted) || rep.Blocked != 1 || rep.Done != 1 || rep.Failures[0].Schema != "t_a" {
		t.Fatalf("rollout over a leased tenant: %+v %v", rep, err)
	}
	if st := f.inspect("main", a.Placement.Database, a.Placement.Schema); st.version != 1 {
		t.Fatalf("the leased tenant's target was migrated: %+v", st)
	}
	if h, _ := l.Holder(ctx, a.ID); h == nil || h.Owner != "mover-1" {
		t.Fatalf("the mover's lease was disturbed: %+v", h)
	}
	if h, _ := l.Holder(ctx, b.ID); h != nil {
		t.Fatalf("the rollout kept its lease on b: %+v", h)
	}
	// Invalid input.
	for _, bad := range []func() error{
		func() error { return l.Acquire(ctx, "", migrate.PurposeMove, time.Minute, a.ID) },
		func() error { return l.Acquire(ctx, "x", "Bad Purpose", time.Minute, a.ID) },
		func() error { return l.Acquire(ctx, "x", migrate.PurposeMove, time.Minute, "'; DROP TABLE x; --") },
	} {
		if bad() == nil {
			t.Error("invalid lease accepted")
		}
	}
	if err := l.Release(ctx, "mover-1", a.ID); err != nil {
		t.Fatal(err)
	}
	rep, err = f.engine(nil).Resume(ctx, migrate.RunOptions{Actor: "alice"})
	if err != nil || rep.State != migrate.RunDone {
		t.Fatalf("resume after the move: %+v %v", rep, err)
	}
	if st := f.inspect("main", a.Placement.Database, a.Placement.Schema); st.version != 4 {
		t.Fatalf("after resume: %+v", st)
	}
}

func TestStepErrorNamesLine(t *testing.T) {
	t.Parallel()
	f := newFleet(t, false)
	f.src = loadSource(t, nil)
	f.addTenant("acme", tenant.ModelSchema, 4, 3)
	bad := loadSource(t, map[string]string{
		"0005_bad.sql": "-- migrate:mode tx\nALTER TABLE notes ADD COLUMN ok integer;\n\nINSERT INTO notes (no_such_column) VALUES (1) -- a comment at the end\n",
	})
	rep, err := f.engine(&migrate.Config{Source: bad}).Up(context.Background(), migrate.RunOptions{Actor: "alice"})
	if !errors.Is(err, migrate.ErrHalted) || len(rep.Failures) != 1 {
		t.Fatalf("up: %+v %v", rep, err)
	}
	if fl := rep.Failures[0]; fl.Step != 5 || !strings.Contains(fl.LastError, "step 5 line 4") || !strings.Contains(fl.LastError, "no_such_column") {
		t.Fatalf("failure: %+v", fl)
	}
	// The transaction was rolled back: the first statement left nothing.
	err = f.withTarget("main", f.name("schemas"), "t_acme", func(conn *pgx.Conn) error {
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.columns WHERE table_schema = 't_acme' AND column_name = 'ok'`).Scan(&n); err != nil {
			return err
		}
		if n != 0 {
			return errors.New("the failed step's first statement was kept")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st := f.inspect("main", f.name("schemas"), "t_acme"); st.version != 4 {
		t.Fatalf("version %d after a failed step", st.version)
	}
}

// TestAfterStepHook: provisioning's hook runs in each step's transaction on
// every target, as the administrative role: here it forces row-level
// security on tables a step creates in shared databases. A failing hook
// fails the step, which leaves nothing behind.
func TestAfterStepHook(t *testing.T) {
	t.Parallel()
	f := newFleet(t, true)
	f.src = loadSource(t, map[string]string{
		"0005_tags.sql": "-- migrate:mode tx\nCREATE TABLE tags (tenant_id uuid NOT NULL, name text NOT NULL, PRIMARY KEY (tenant_id, name));\n",
	})
	f.addTenant("sh", tenant.ModelShared, 4, 3)
	f.addTenant("sd", tenant.ModelSharded, 4, 3)
	f.addTenant("sc", tenant.ModelSchema, 4, 3)
	ctx := context.Background()
	var mu sync.Mutex
	calls := map[string]int{}
	secure := func(fail bool) func(context.Context, pgx.Tx, migrate.Target) error {
		return func(ctx context.Context, tx pgx.Tx, tg migrate.Target) error {
			mu.Lock()
			calls[tg.Key()]++
			mu.Unlock()
			if fail && tg.Kind == migrate.KindSharded {
				return errors.New("cannot secure the shard")
			}
			if tg.Kind != migrate.KindShared && tg.Kind != migrate.KindSharded {
				return nil
			}
			var user string
			if err := tx.QueryRow(ctx, `SELECT current_user`).Scan(&user); err != nil {
				return err
			}
			if user == "tenantry_owner" {
				return errors.New("hook runs as the owner")
			}
			_, err := tx.Exec(ctx, `ALTER TABLE tags ENABLE ROW LEVEL SECURITY; ALTER TABLE tags FORCE ROW LEVEL SECURITY`)
			return err
		}
	}
	rep, err := f.engine(&migrate.Config{AfterStep: secure(true)}).Up(ctx, migrate.RunOptions{Actor: "alice", MaxFailures: 5})
	if !errors.Is(err, migrate.ErrHalted) || rep.Failed != 1 || !strings.Contains(rep.Failures[0].LastError, "cannot secure the shard") {
		t.Fatalf("failing hook: %+v %v", rep, err)
	}
	if st := f.inspect("shard1", f.name("shard"), "app"); st.version != 4 {
		t.Fatalf("shard at %d after its hook failed", st.version)
	}
	if _, err := f.engine(nil).Abort(ctx, "alice", "retry with the fixed hook"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.engine(&migrate.Config{AfterStep: secure(false)}).Up(ctx, migrate.RunOptions{Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ cluster, db string }{{"main", f.name("shared")}, {"shard1", f.name("shard")}} {
		err := f.withTarget(c.cluster, c.db, "app", func(conn *pgx.Conn) error {
			var forced bool
			if err := conn.QueryRow(ctx, `SELECT relforcerowsecurity FROM pg_class WHERE oid = 'tags'::regclass`).Scan(&forced); err != nil {
				return err
			}
			if !forced {
				return fmt.Errorf("%s: tags not under forced row-level security", c.db)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := calls["main/"+f.name("schemas")+"/t_sc"]; n != 1 {
		t.Fatalf("hook ran %d times on the schema target, want 1 (one step)", n)
	}
}

// TestNewcomersJoin: a tenant provisioned behind head while the waves run
// (from old DDL) is caught by a last wave of the same rollout.
func TestNewcomersJoin(t *testing.T) {
	t.Parallel()
	f := newFleet(t, false)
	f.src = loadSource(t, nil)
	for i := range 4 {
		f.addTenant(fmt.Sprintf("old-%d", i), tenant.ModelSchema, 1, 3)
	}
	var once sync.Once
	rep, err := f.engine(nil).Up(context.Background(), migrate.RunOptions{Actor: "alice", Canary: 1, Waves: []int{100},
		OnEvent: func(ev migrate.Event) {
			if ev.Kind == migrate.EventWaveDone && ev.Wave == 0 {
				once.Do(func() { f.addTenant("late", tenant.ModelSchema, 1, 3) })
			}
		}})
	if err != nil || rep.Targets != 5 || rep.Done != 5 || len(rep.Waves) != 3 {
		t.Fatalf("up: %+v %v", rep, err)
	}
	f.assertAtHead(t)
}
