package migrate_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/migrate"
	"github.com/tenantry/tenantry/tenant"
)

// The crash child is this test binary re-executed with these variables set:
// it runs a rollout on the catalog given and prints a line per finished
// target, until the parent kills it with SIGKILL.
const (
	crashChildEnv    = "TENANTRY_MIGRATE_CRASH_CHILD"
	crashCatalogEnv  = "TENANTRY_MIGRATE_CRASH_CATALOG"
	crashTemplateEnv = "TENANTRY_MIGRATE_CRASH_TEMPLATE"
)

// slowFS is the test migrations slowed down so that a kill lands in the
// middle of steps of every mode.
func slowFS() map[string]string {
	return map[string]string{
		"0002_status.sql": sqlStatus + "SELECT pg_sleep(0.1);\n",
		"0003_index.sql":  sqlIndex + "SELECT pg_sleep(0.05);\n",
		"0004_words.sql":  strings.Replace(sqlWords, "-- migrate:mode batch\n", "-- migrate:mode batch\n-- migrate:batch-pause 30ms\n", 1),
	}
}

func crashChild() int {
	ctx := context.Background()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 2
	}
	pool, err := pgxpool.New(ctx, os.Getenv(crashCatalogEnv))
	if err != nil {
		return fail(err)
	}
	defer pool.Close()
	store, err := catalog.NewStore(pool, nil)
	if err != nil {
		return fail(err)
	}
	src, err := migrate.Load(appFS(slowFS()))
	if err != nil {
		return fail(err)
	}
	e, err := migrate.New(store, &migrate.Config{
		Source:    src,
		Templates: []migrate.TemplateRef{{Database: os.Getenv(crashTemplateEnv), Schema: "app", IsDatabase: true}},
	})
	if err != nil {
		return fail(err)
	}
	out := bufio.NewWriter(os.Stdout)
	_, err = e.Up(ctx, migrate.RunOptions{Actor: "crash-child", Canary: 2, Concurrency: 4, PerCluster: 4, OnEvent: func(ev migrate.Event) {
		if ev.Kind == migrate.EventTargetDone {
			fmt.Fprintln(out, "done", ev.Target.Key())
			out.Flush()
		}
	}})
	if err != nil {
		return fail(err)
	}
	fmt.Fprintln(out, "finished")
	out.Flush()
	return 0
}

// TestCrashResume kills a rollout with SIGKILL half-way, then resumes it:
// every target ends at head with every step applied exactly once (the
// step_effect rows) and every note backfilled exactly once (touched), in the
// same run.
func TestCrashResume(t *testing.T) {
	t.Parallel()
	f := newFleet(t, false)
	f.src = loadSource(t, slowFS())
	f.addTenant("shared-a", tenant.ModelShared, 1, 20)
	f.addTenant("shared-b", tenant.ModelShared, 1, 20)
	for i := range 10 {
		f.addTenant(fmt.Sprintf("s%02d", i), tenant.ModelSchema, 1, 20)
	}
	f.template(1)
	for i := range 6 {
		f.addTenant(fmt.Sprintf("d%02d", i), tenant.ModelDatabase, 1, 20)
	}
	const targets = 1 + 10 + 1 + 6
	ctx := context.Background()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"=1", crashCatalogEnv+"="+f.catalogURL, crashTemplateEnv+"="+f.name("tpl"))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	done := 0
	for done < 6 && lines.Scan() {
		if strings.HasPrefix(lines.Text(), "done ") {
			done++
		}
	}
	if done < 6 {
		_ = cmd.Process.Kill()
		t.Fatalf("the child finished %d targets and stopped: %v", done, cmd.Wait())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	e := f.engine(&migrate.Config{TargetLockWait: 30 * time.Second})
	st, err := e.Status(ctx, migrate.StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	killedAt := st.Counts
	if killedAt[migrate.StateDone] >= targets || killedAt[migrate.StateDone] < 6 || killedAt[migrate.StateRunning] == 0 || st.Run.State != migrate.RunRunning {
		t.Fatalf("not killed half-way: %v, run %s", killedAt, st.Run.State)
	}
	runID := st.Run.ID
	if _, err := e.Up(ctx, migrate.RunOptions{Actor: "alice"}); err == nil {
		t.Fatal("up started over an interrupted run")
	}
	rep, err := e.Resume(ctx, migrate.RunOptions{Actor: "alice"})
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if rep.RunID != runID || rep.State != migrate.RunDone || rep.Done != targets {
		t.Fatalf("resume report: %+v", rep)
	}
	t.Logf("killed with %v; resume applied %d steps in %s", killedAt, rep.StepsApplied, rep.Elapsed)
	f.assertAtHead(t)
	// The template is sealed, even if the kill caught it open.
	var allow bool
	if err := f.admin["main"].QueryRow(ctx, `SELECT datallowconn FROM pg_database WHERE datname = $1`, f.name("tpl")).Scan(&allow); err != nil || allow {
		t.Fatalf("template allows connections after resume: %v %v", allow, err)
	}
}
