package cli_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/migrate"
	"github.com/tenantry/tenantry/migrate/cli"
	"github.com/tenantry/tenantry/tenant"
	"github.com/tenantry/tenantry/tenantrytest"
)

func TestMain(m *testing.M) { tenantrytest.Main(m) }

var migrations = fstest.MapFS{
	"0001_notes.sql": {Data: []byte("-- migrate:mode tx\nCREATE TABLE notes (tenant_id uuid NOT NULL, id bigint NOT NULL, body text, PRIMARY KEY (tenant_id, id));\n")},
	"0002_tag.sql":   {Data: []byte("-- migrate:mode tx\nALTER TABLE notes ADD COLUMN tag text NOT NULL DEFAULT 'none';\n")},
	"0003_index.sql": {Data: []byte("-- migrate:mode no-tx\nCREATE INDEX CONCURRENTLY IF NOT EXISTS notes_tag ON notes (tenant_id, tag);\n")},
}

// setup makes a catalog with two schema tenants at version 1 and returns
// an engine factory over it.
func setup(t *testing.T) func(context.Context) (*migrate.Engine, error) {
	t.Helper()
	ctx := context.Background()
	src, err := migrate.Load(migrations)
	if err != nil {
		t.Fatal(err)
	}
	store, err := catalog.NewStore(tenantrytest.Pool(t, tenantrytest.NewDatabase(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	server := tenantrytest.Shared(t)
	if _, err := store.CreateCluster(ctx, catalog.Actor{Name: "test"}, catalog.Cluster{Name: "main", ConnString: server.AdminURL()}); err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	database := "c" + hex.EncodeToString(b[:])
	admin := tenantrytest.Pool(t, server.AdminURL())
	if _, err := admin.Exec(ctx, `DO $$ BEGIN CREATE ROLE tenantry_owner NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+database+" OWNER tenantry_owner"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP DATABASE "+database+" WITH (FORCE)") })
	conn, err := pgx.Connect(ctx, server.URL(database))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, slug := range []string{"acme", "beta"} {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "CREATE SCHEMA t_"+slug+" AUTHORIZATION tenantry_owner; SET LOCAL ROLE tenantry_owner"); err != nil {
				return err
			}
			_, err := migrate.Build(ctx, tx, "t_"+slug, src.Until(1))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.CreateTenant(ctx, catalog.Actor{Name: "test"}, catalog.NewTenant{Slug: slug,
			Placement: tenant.Placement{Model: tenant.ModelSchema, Cluster: "main", Database: database, Schema: "t_" + slug}}); err != nil {
			t.Fatal(err)
		}
	}
	return func(context.Context) (*migrate.Engine, error) {
		return migrate.New(store, &migrate.Config{Source: src, Templates: []migrate.TemplateRef{}})
	}
}

func run(t *testing.T, cfg cli.Config, args ...string) (string, error) {
	t.Helper()
	cmd := cli.Command(cfg)
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String() + errOut.String(), err
}

func TestCommand(t *testing.T) {
	t.Parallel()
	cfg := cli.Config{Engine: setup(t), Actor: func() string { return "alice" }}

	out, err := run(t, cfg, "plan")
	if err != nil || !strings.Contains(out, "2 target(s) to migrate, 0 at head") || !strings.Contains(out, "lint: no findings") ||
		!strings.Contains(out, "t_acme") {
		t.Fatalf("plan: %v\n%s", err, out)
	}
	out, err = run(t, cfg, "up", "--canary", "1", "--waves", "100")
	if err != nil || !strings.Contains(out, "done 2, failed 0") || !strings.Contains(out, "WAVE") || !strings.Contains(out, "done in") {
		t.Fatalf("up: %v\n%s", err, out)
	}
	out, err = run(t, cfg, "status", "--all")
	if err != nil || !strings.Contains(out, "targets by version: v3:2") || !strings.Contains(out, "t_beta") || !strings.Contains(out, "run ") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	out, err = run(t, cfg, "status", "-o", "json")
	var st migrate.Status
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Head != 3 || st.Counts[migrate.StateDone] != 2 {
		t.Fatalf("status json: %v\n%s", err, out)
	}
	out, err = run(t, cfg, "up")
	if err != nil || !strings.Contains(out, "nothing to do") {
		t.Fatalf("second up: %v\n%s", err, out)
	}
	if _, err := run(t, cfg, "resume"); !errors.Is(err, migrate.ErrNoRun) {
		t.Fatalf("resume without a run: %v", err)
	}
	if _, err := run(t, cfg, "abort"); !errors.Is(err, migrate.ErrNoRun) {
		t.Fatalf("abort without a run: %v", err)
	}
	if _, err := run(t, cfg, "plan", "-o", "yaml"); err == nil {
		t.Fatal("-o yaml accepted")
	}
	if _, err := run(t, cfg, "up", "--waves", "ten"); err == nil {
		t.Fatal("--waves ten accepted")
	}
}

func TestLintCommand(t *testing.T) {
	t.Parallel()
	bad := fstest.MapFS{
		"0001_notes.sql": migrations["0001_notes.sql"],
		"0002_idx.sql":   {Data: []byte("-- migrate:mode tx\nCREATE INDEX notes_body ON notes (body);\n")},
	}
	cfg := cli.Config{Source: func() (*migrate.Source, error) { return migrate.Load(bad) }}
	out, err := run(t, cfg, "lint")
	if !errors.Is(err, migrate.ErrLintFailed) || !strings.Contains(out, "index-not-concurrent") || !strings.Contains(out, "BLOCKING") ||
		!strings.Contains(out, "CONCURRENTLY IF NOT EXISTS") {
		t.Fatalf("lint: %v\n%s", err, out)
	}
	cfg.Source = func() (*migrate.Source, error) { return migrate.Load(migrations) }
	if out, err := run(t, cfg, "lint"); err != nil || !strings.Contains(out, "no findings") {
		t.Fatalf("clean lint: %v\n%s", err, out)
	}
}

func events() []migrate.Event {
	tgt := &migrate.Target{Cluster: "main", Database: "db", Schema: "t_x", Kind: migrate.KindSchema}
	p := func(done, failed, total int) migrate.Progress {
		return migrate.Progress{Total: total, Done: done, Failed: failed, Remaining: total - done - failed, Rate: 12.5, ETA: 3 * time.Second}
	}
	return []migrate.Event{
		{Kind: migrate.EventRunStarted, RunID: "r1", Progress: p(0, 0, 4)},
		{Kind: migrate.EventWaveStarted, Wave: 0, Progress: p(0, 0, 4)},
		{Kind: migrate.EventTargetDone, Target: tgt, Progress: p(1, 0, 4)},
		{Kind: migrate.EventWaveDone, Wave: 0, Elapsed: time.Second, Progress: p(1, 0, 4)},
		{Kind: migrate.EventWaveStarted, Wave: 1, Progress: p(1, 0, 4)},
		{Kind: migrate.EventIndexRepaired, Target: tgt, Version: 3, Progress: p(1, 0, 4)},
		{Kind: migrate.EventTargetFailed, Target: tgt, Err: "step 2: lock timeout\nafter 9 attempts", Progress: p(1, 1, 4)},
		{Kind: migrate.EventRunHalted, Err: "error budget exceeded", Progress: p(1, 1, 4)},
	}
}

func TestProgressPlain(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p := cli.NewProgress(&buf, false)
	p.Every = 0
	for _, ev := range events() {
		p.Handle(ev)
	}
	p.Close()
	out := buf.String()
	for _, want := range []string{
		"rollout r1: 4 targets", "wave 1 started", "wave 0 done in 1s: 1/4 done",
		"✗ main/db/t_x failed: step 2: lock timeout after 9 attempts", "dropped an INVALID index of step 3",
		"halted: error budget exceeded", "done 1  failed 1  remaining 2  12.5/s  ETA 3s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\r") || strings.Contains(out, "\033") {
		t.Error("terminal control characters in plain output")
	}
}

func TestProgressTerminal(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p := cli.NewProgress(&buf, true)
	for _, ev := range events() {
		p.Handle(ev)
	}
	p.Close()
	out := buf.String()
	if !strings.Contains(out, "\r\033[K") || !strings.Contains(out, "█") || !strings.Contains(out, "▓") {
		t.Fatalf("no live bar:\n%q", out)
	}
	if !strings.HasSuffix(out, "\r\033[K") {
		t.Fatalf("Close does not clear the bar: %q", out[len(out)-20:])
	}
	if cli.IsTerminal(&buf) {
		t.Fatal("a buffer is a terminal")
	}
}

func TestTables(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	started := time.Now().Add(-time.Minute)
	err := cli.WriteStatus(&buf, &migrate.Status{
		Head: 3, Total: 3,
		Run:      &migrate.RunStatus{ID: "r1", State: migrate.RunRunning, Actor: "alice", StartedAt: started, HeartbeatAt: started, Waves: 3, Wave: 1},
		Progress: &migrate.Progress{Total: 3, Done: 1, Failed: 1, Running: 1, Remaining: 1},
		Counts:   map[migrate.TargetState]int{migrate.StateDone: 1, migrate.StateFailed: 1, migrate.StateRunning: 1},
		Versions: map[int]int{3: 1, 1: 2},
		Targets: []migrate.TargetStatus{{Target: migrate.Target{Cluster: "main", Database: "d", Schema: "t_x", Kind: migrate.KindSchema},
			Version: 1, State: migrate.StateFailed, Step: 2, Wave: 1, Attempts: 1, LockRetries: 9, DurationMS: 2500, LastError: "lock\ttimeout\nafter 9"}},
		Next: "main/d/t_x",
	})
	if err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"head: version 3; 3 target(s)", "run r1: running (by alice", "wave 1 of 3: done 1, failed 1",
		"targets by version: v1:2 v3:1", "main/d/t_x", "lock timeout after 9", "2.5s", "more: --after main/d/t_x"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}
