package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/migrate"
	"github.com/tenantry/tenantry/tenant"
)

// TestLockTimeout holds a lock on one target's table from another
// connection while live traffic keeps reading it. The step waits at most
// lock_timeout per attempt (so traffic queued behind it waits at most that
// long), retries with back-off, and succeeds once the lock is released; or,
// when the lock is never released, fails that target alone after its
// retries.
func TestLockTimeout(t *testing.T) {
	t.Parallel()
	for _, release := range []bool{true, false} {
		t.Run(fmt.Sprintf("released=%v", release), func(t *testing.T) {
			t.Parallel()
			f := newFleet(t, false)
			f.src = loadSource(t, nil)
			victim := f.addTenant("victim", tenant.ModelSchema, 1, 10)
			for i := range 3 {
				f.addTenant(fmt.Sprintf("other-%d", i), tenant.ModelSchema, 1, 10)
			}
			ctx := context.Background()
			p := victim.Placement

			// The blocker: a long transaction holding ACCESS SHARE on notes.
			blocker, err := pgx.Connect(ctx, f.url("main", p.Database))
			if err != nil {
				t.Fatal(err)
			}
			defer blocker.Close(ctx)
			btx, err := blocker.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := btx.Exec(ctx, `LOCK TABLE `+p.Schema+`.notes IN ACCESS SHARE MODE`); err != nil {
				t.Fatal(err)
			}

			// Traffic: reads of the victim's table, each on its own
			// transaction, all through the rollout.
			stop := make(chan struct{})
			var reads, failures atomic.Int64
			trafficDone := make(chan struct{})
			go func() {
				defer close(trafficDone)
				conn, err := pgx.Connect(ctx, f.url("main", p.Database))
				if err != nil {
					failures.Add(1)
					return
				}
				defer conn.Close(ctx)
				for {
					select {
					case <-stop:
						return
					default:
					}
					var n int
					if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+p.Schema+`.notes WHERE tenant_id = $1`, victim.ID).Scan(&n); err != nil {
						failures.Add(1)
					} else {
						reads.Add(1)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()

			var rec recorder
			e := f.engine(&migrate.Config{LockTimeout: 100 * time.Millisecond, LockRetries: 6, RetryBackoff: 50 * time.Millisecond, MaxRetryBackoff: 200 * time.Millisecond})
			released := make(chan struct{})
			if release {
				go func() {
					defer close(released)
					for rec.count(migrate.EventLockRetry) < 3 {
						time.Sleep(10 * time.Millisecond)
					}
					_ = btx.Rollback(ctx)
				}()
			} else {
				close(released)
			}
			readsBefore := reads.Load()
			rep, err := e.Up(ctx, migrate.RunOptions{Actor: "alice", Canary: -1, MaxFailures: 1, OnEvent: rec.handle})
			readsDuring := reads.Load() - readsBefore
			<-released
			close(stop)
			<-trafficDone
			if failures.Load() != 0 {
				t.Fatalf("%d failed reads during the rollout", failures.Load())
			}
			if readsDuring == 0 {
				t.Fatal("no traffic got through during the rollout")
			}
			if rec.count(migrate.EventLockRetry) < 3 {
				t.Fatalf("%d lock retries, want at least 3", rec.count(migrate.EventLockRetry))
			}
			if release {
				if err != nil || rep.Done != 4 {
					t.Fatalf("rollout after the lock was released: %+v %v", rep, err)
				}
				f.assertAtHead(t)
				return
			}
			if !errors.Is(err, migrate.ErrHalted) || rep.Done != 3 || rep.Failed != 1 {
				t.Fatalf("rollout against a held lock: %+v %v", rep, err)
			}
			if fl := rep.Failures[0]; fl.Schema != p.Schema || fl.Step != 2 || !strings.Contains(fl.LastError, "lock timeout after 7 attempts") || fl.LockRetries != 6 {
				t.Fatalf("failed target: %+v", fl)
			}
			if st := f.inspect("main", p.Database, p.Schema); st.version != 1 || st.effects[2] != 0 {
				t.Fatalf("victim changed by a failed step: %+v", st)
			}
			// Once the lock is gone, resume finishes the victim.
			_ = btx.Rollback(ctx)
			if rep, err := e.Resume(ctx, migrate.RunOptions{Actor: "alice"}); err != nil || rep.Done != 4 {
				t.Fatalf("resume: %+v %v", rep, err)
			}
			f.assertAtHead(t)
		})
	}
}

// TestInvalidIndexRepair leaves an INVALID index where step 3 builds one
// (as a CREATE INDEX CONCURRENTLY that failed or was killed does): the
// engine drops it and builds it again, where IF NOT EXISTS alone would have
// kept the invalid index.
func TestInvalidIndexRepair(t *testing.T) {
	t.Parallel()
	f := newFleet(t, false)
	f.src = loadSource(t, nil)
	tn := f.addTenant("acme", tenant.ModelSchema, 2, 10)
	ctx := context.Background()
	p := tn.Placement
	err := f.withTarget("main", p.Database, p.Schema, func(conn *pgx.Conn) error {
		// A unique build over duplicate statuses fails and leaves the index
		// INVALID.
		_, err := conn.Exec(ctx, `CREATE UNIQUE INDEX CONCURRENTLY notes_status_idx ON notes (tenant_id, status)`)
		if err == nil {
			return errors.New("unique index over duplicates built")
		}
		// The ledger as a crash during the build leaves it.
		_, err = conn.Exec(ctx, `INSERT INTO tenantry_migration (version, name, checksum, state, progress) VALUES (3, 'index', $1, 'running', 0)`,
			mustStep(t, f.src, 3).Checksum)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if st := f.inspect("main", p.Database, p.Schema); !st.indexSeen || st.indexOK {
		t.Fatalf("setup: index seen %v valid %v", st.indexSeen, st.indexOK)
	}
	var rec recorder
	rep, err := f.engine(nil).Up(ctx, migrate.RunOptions{Actor: "alice", OnEvent: rec.handle})
	if err != nil || rep.IndexRepairs != 1 || rec.count(migrate.EventIndexRepaired) != 1 {
		t.Fatalf("up: %+v %v", rep, err)
	}
	f.assertAtHead(t)
}

func mustStep(t testing.TB, src *migrate.Source, v int) *migrate.Step {
	t.Helper()
	st, ok := src.Step(v)
	if !ok {
		t.Fatalf("no step %d", v)
	}
	return st
}

// TestErrorBudget breaks one target of a later wave: the rollout halts
// after it, the targets of later waves stay untouched and pending, and
// resume after the fix completes the run.
func TestErrorBudget(t *testing.T) {
	t.Parallel()
	f := newFleet(t, false)
	f.src = loadSource(t, nil)
	for i := range 12 {
		f.addTenant(fmt.Sprintf("t%02d", i), tenant.ModelSchema, 1, 5)
	}
	ctx := context.Background()
	// t03 is broken: step 2 cannot add a column it already has.
	broken := "t_t03"
	breakIt := func(sql string) {
		t.Helper()
		if err := f.withTarget("main", f.name("schemas"), broken, func(conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, sql)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	breakIt(`ALTER TABLE notes ADD COLUMN status integer`)

	e := f.engine(nil)
	// Canary 2 (t00, t01), then waves of 25%: t02-t04, t05-t07, ...
	var rec recorder
	rep, err := e.Up(ctx, migrate.RunOptions{Actor: "alice", Canary: 2, Waves: []int{25, 50, 75, 100}, Concurrency: 1, OnEvent: rec.handle})
	if !errors.Is(err, migrate.ErrHalted) {
		t.Fatalf("up: %v", err)
	}
	if rep.Failed != 1 || rep.Failures[0].Schema != broken || rep.Failures[0].Step != 2 || !strings.Contains(rep.HaltReason, "error budget") {
		t.Fatalf("report: %+v", rep)
	}
	if len(rep.Waves) != 2 || rep.Done != 3 {
		t.Fatalf("halted after %d waves with %d done, want 2 waves (canary + the broken one) and 3 done: %+v", len(rep.Waves), rep.Done, rep.Waves)
	}
	st, err := e.Status(ctx, migrate.StatusOptions{Targets: true, States: []migrate.TargetState{migrate.StatePending}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Run.State != migrate.RunHalted || len(st.Targets) != 8 {
		t.Fatalf("status after halt: run %+v, %d pending", st.Run, len(st.Targets))
	}
	for _, ts := range st.Targets {
		if v := f.inspect("main", ts.Database, ts.Schema).version; v != 1 || ts.Attempts != 0 {
			t.Errorf("untouched target %s at %d after %d attempts", ts.Schema, v, ts.Attempts)
		}
	}
	if _, err := e.Up(ctx, migrate.RunOptions{Actor: "alice"}); !errors.Is(err, migrate.ErrUnfinishedRun) {
		t.Fatalf("up over a halted run: %v", err)
	}

	breakIt(`ALTER TABLE notes DROP COLUMN status`)
	rep2, err := e.Resume(ctx, migrate.RunOptions{Actor: "alice"})
	if err != nil || rep2.RunID != rep.RunID || rep2.Done != 12 {
		t.Fatalf("resume: %+v %v", rep2, err)
	}
	f.assertAtHead(t)
	st, _ = e.Status(ctx, migrate.StatusOptions{Targets: true, States: []migrate.TargetState{migrate.StateDone}})
	for _, ts := range st.Targets {
		want := 1
		if ts.Schema == broken {
			want = 2
		}
		if ts.Attempts != want {
			t.Errorf("%s: %d attempts, want %d", ts.Schema, ts.Attempts, want)
		}
	}
}

// TestTakeoverOfDeadEngine: an engine whose heartbeat looks dead (its host
// crashed, leaving a half-open catalog session that holds the rollout lock)
// is taken over by Resume, which terminates that session. If the first
// engine was in fact alive, it notices the lost lock and stops; the target
// locks and ledgers keep any step from running twice.
func TestTakeoverOfDeadEngine(t *testing.T) {
	t.Parallel()
	f := newFleet(t, false)
	f.src = loadSource(t, map[string]string{"0002_status.sql": sqlStatus + "SELECT pg_sleep(0.3);\n"})
	for i := range 16 {
		f.addTenant(fmt.Sprintf("t%d", i), tenant.ModelSchema, 1, 3)
	}
	ctx := context.Background()
	a := f.engine(&migrate.Config{LeaseTTL: 6 * time.Second})
	aDone := make(chan error, 1)
	go func() {
		_, err := a.Up(ctx, migrate.RunOptions{Actor: "a", Canary: -1, Waves: []int{100}, Concurrency: 1})
		aDone <- err
	}()
	var runID string
	for deadline := time.Now().Add(10 * time.Second); runID == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if runs, _ := a.Runs(ctx, 1); len(runs) == 1 {
			runID = runs[0].ID
		}
	}
	if runID == "" {
		t.Fatal("no run")
	}
	if _, err := f.catalogPool.Exec(ctx, `UPDATE tenantry.migration_run SET heartbeat_at = now() - interval '1 hour' WHERE id = $1`, runID); err != nil {
		t.Fatal(err)
	}
	b := f.engine(&migrate.Config{LeaseTTL: 3 * time.Second})
	rep, err := b.Resume(ctx, migrate.RunOptions{Actor: "b"})
	if err != nil || rep.RunID != runID {
		t.Fatalf("takeover: %+v %v", rep, err)
	}
	if err := <-aDone; !errors.Is(err, migrate.ErrLeaseLost) {
		t.Fatalf("the engine whose rollout lock was taken: %v, want ErrLeaseLost", err)
	}
	f.assertAtHead(t)
}
