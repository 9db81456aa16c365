package pgcluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/internal/pgcluster"
)

// tempDir returns a fresh directory that the postgres OS user can reach when
// the tests run as root (t.TempDir's parent is 0700).
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgcluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func start(t *testing.T, cfg *pgcluster.Config) *pgcluster.Cluster {
	t.Helper()
	c, err := pgcluster.Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return c
}

func queryString(t *testing.T, url, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(context.Background())
	var s string
	if err := conn.QueryRow(t.Context(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	c := start(t, &pgcluster.Config{Dir: filepath.Join(dir, "c"), Settings: map[string]string{"work_mem": "7MB"}})

	if c.Port() <= 0 {
		t.Fatalf("Port() = %d", c.Port())
	}
	if want := "sslmode=disable"; !strings.HasSuffix(c.ConnString("postgres"), want) {
		t.Errorf("ConnString = %q, want suffix %q", c.ConnString("postgres"), want)
	}
	for sql, want := range map[string]string{
		"SHOW work_mem":                  "7MB",
		"SHOW fsync":                     "off",
		"SHOW max_connections":           "300",
		"SHOW max_locks_per_transaction": "256",
		"SHOW server_encoding":           "UTF8",
		"SELECT current_user":            "postgres",
	} {
		if got := queryString(t, c.ConnString("postgres"), sql); got != want {
			t.Errorf("%s = %q, want %q", sql, got, want)
		}
	}

	if err := c.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	if conn, err := pgx.Connect(t.Context(), c.ConnString("postgres")); err == nil {
		conn.Close(context.Background())
		t.Fatal("connected after Stop")
	}
}

func TestBinariesMissing(t *testing.T) {
	t.Parallel()
	_, err := pgcluster.Start(t.Context(), &pgcluster.Config{Dir: tempDir(t), BinDir: "/nonexistent"})
	if !errors.Is(err, pgcluster.ErrBinariesNotFound) || !strings.Contains(err.Error(), "apt-get install -y postgresql") {
		t.Fatalf("err = %v, want ErrBinariesNotFound with install hint", err)
	}
}

func exec1(t *testing.T, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func TestRestartReusesDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(tempDir(t), "c")

	first := start(t, &pgcluster.Config{Dir: dir})
	exec1(t, first.ConnString("postgres"), "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('across restarts')")
	if err := first.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}

	second := start(t, &pgcluster.Config{Dir: dir})
	if got := queryString(t, second.ConnString("postgres"), "SELECT v FROM kept"); got != "across restarts" {
		t.Fatalf("after restart: %q", got)
	}
	// The remembered port is reused when free; it can only be lost to a race
	// with another process binding it in between, which this test accepts.
	if second.Port() != first.Port() {
		t.Logf("port changed across restart: %d -> %d (taken meanwhile?)", first.Port(), second.Port())
	}
}

func TestRememberedPortTaken(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(tempDir(t), "c")
	first := start(t, &pgcluster.Config{Dir: dir})
	if err := first.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(first.Port())))
	if err != nil {
		t.Skipf("remembered port was taken by someone else: %v", err)
	}
	defer l.Close()
	second := start(t, &pgcluster.Config{Dir: dir})
	if second.Port() == first.Port() {
		t.Fatal("reused a port that is taken")
	}
}

func TestTwoClusters(t *testing.T) {
	t.Parallel()
	base := tempDir(t)
	var a, b *pgcluster.Cluster
	var wg sync.WaitGroup
	var errA, errB error
	wg.Go(func() { a, errA = pgcluster.Start(t.Context(), &pgcluster.Config{Dir: filepath.Join(base, "a")}) })
	wg.Go(func() { b, errB = pgcluster.Start(t.Context(), &pgcluster.Config{Dir: filepath.Join(base, "b")}) })
	wg.Wait()
	for _, c := range []*pgcluster.Cluster{a, b} {
		if c != nil {
			t.Cleanup(func() { _ = c.Stop(context.Background()) })
		}
	}
	if errA != nil || errB != nil {
		t.Fatalf("Start: %v / %v", errA, errB)
	}
	if a.Port() == b.Port() {
		t.Fatalf("both on port %d", a.Port())
	}
	exec1(t, a.ConnString("postgres"), "CREATE DATABASE only_on_a")
	if got := queryString(t, b.ConnString("postgres"), "SELECT count(*)::text FROM pg_database WHERE datname = 'only_on_a'"); got != "0" {
		t.Fatal("database created on a is visible on b")
	}
	exec1(t, a.ConnString("only_on_a"), "SELECT 1")
}

func TestStaleLockFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(tempDir(t), "c")
	c := start(t, &pgcluster.Config{Dir: dir})
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A crash leaves postmaster.pid behind; after a container restart its pid
	// often belongs to an unrelated live process, which postgres itself
	// mistakes for a running server. This test process plays that part.
	stale := fmt.Sprintf("%d\n%s/pgdata\n1700000000\n%d\n", os.Getpid(), dir, c.Port())
	if err := os.WriteFile(filepath.Join(dir, "pgdata", "postmaster.pid"), []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	c2 := start(t, &pgcluster.Config{Dir: dir})
	exec1(t, c2.ConnString("postgres"), "SELECT 1")
}

func TestAlreadyRunning(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(tempDir(t), "c")
	start(t, &pgcluster.Config{Dir: dir})
	c, err := pgcluster.Start(t.Context(), &pgcluster.Config{Dir: dir})
	if err == nil {
		_ = c.Stop(context.Background())
		t.Fatal("second Start on a running dir succeeded")
	}
	if !errors.Is(err, pgcluster.ErrAlreadyRunning) {
		t.Fatalf("err = %v, want ErrAlreadyRunning", err)
	}
}

func TestPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	c, err := pgcluster.Start(t.Context(), &pgcluster.Config{Dir: tempDir(t), Port: port})
	if err == nil {
		_ = c.Stop(context.Background())
		t.Fatal("started on a port in use")
	}
	if !strings.Contains(err.Error(), "could not bind") || !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Fatalf("err = %v, want the server log's bind failure and the port", err)
	}
}

func TestInitdbFailure(t *testing.T) {
	t.Parallel()
	bin := tempDir(t)
	for name, script := range map[string]string{
		"initdb":   "#!/bin/sh\necho 'initdb: error: the fake initdb refuses' >&2\nexit 1\n",
		"postgres": "#!/bin/sh\nexit 1\n",
	} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := tempDir(t)
	_, err := pgcluster.Start(t.Context(), &pgcluster.Config{Dir: dir, BinDir: bin})
	if err == nil || !strings.Contains(err.Error(), "the fake initdb refuses") {
		t.Fatalf("err = %v, want initdb's output", err)
	}
	for _, left := range []string{"pgdata", "pgdata.initdb"} {
		if _, err := os.Stat(filepath.Join(dir, left)); err == nil {
			t.Errorf("failed initdb left %s behind", left)
		}
	}
}

// TestInitdbTimeout: an initdb still running when StartTimeout ends is
// killed with the children it started (its process group), so Start returns
// instead of waiting on a child that holds initdb's output open.
func TestInitdbTimeout(t *testing.T) {
	t.Parallel()
	bin := tempDir(t)
	for name, script := range map[string]string{
		"initdb":   "#!/bin/sh\nsleep 600 &\necho $! > child.pid\nwait\n",
		"postgres": "#!/bin/sh\nexit 1\n",
	} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := tempDir(t)
	_, err := pgcluster.Start(t.Context(), &pgcluster.Config{Dir: dir, BinDir: bin, StartTimeout: time.Second})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "initdb did not finish") {
		t.Fatalf("err = %v, want initdb's deadline", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pgdata.initdb")); err == nil {
		t.Error("timed-out initdb left pgdata.initdb behind")
	}
	b, err := os.ReadFile(filepath.Join(dir, "child.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// Killed, it is gone once reaped, or a zombie until then. SIGKILL takes
	// effect when the kernel next schedules the process, so allow it a
	// moment to die; a child that is still alive after that escaped.
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return // gone
		}
		if f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return // dead, not yet reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("initdb's child %d survived the timeout: %s", pid, stat)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNotADataDir(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	if err := os.Mkdir(filepath.Join(dir, "pgdata"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := pgcluster.Start(t.Context(), &pgcluster.Config{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "not a PostgreSQL data directory") {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigRejected(t *testing.T) {
	t.Parallel()
	long := "/tmp/" + strings.Repeat("d", 100)
	for name, tc := range map[string]struct {
		cfg  pgcluster.Config
		want string
	}{
		"no dir":             {pgcluster.Config{}, "Dir is required"},
		"dir too long":       {pgcluster.Config{Dir: long}, "too long for a unix socket"},
		"negative port":      {pgcluster.Config{Dir: "/tmp/x", Port: -1}, "out of range"},
		"port too big":       {pgcluster.Config{Dir: "/tmp/x", Port: 70000}, "out of range"},
		"negative max conns": {pgcluster.Config{Dir: "/tmp/x", MaxConnections: -5}, "MaxConnections"},
		"negative timeout":   {pgcluster.Config{Dir: "/tmp/x", StopTimeout: -1}, "timeouts"},
		"empty setting":      {pgcluster.Config{Dir: "/tmp/x", Settings: map[string]string{"": "1"}}, "invalid setting name"},
		"setting with =":     {pgcluster.Config{Dir: "/tmp/x", Settings: map[string]string{"fsync=on x": "1"}}, "invalid setting name"},
		"setting injection":  {pgcluster.Config{Dir: "/tmp/x", Settings: map[string]string{"-D/etc": "1"}}, "invalid setting name"},
		"setting digit":      {pgcluster.Config{Dir: "/tmp/x", Settings: map[string]string{"1abc": "1"}}, "invalid setting name"},
		"value newline":      {pgcluster.Config{Dir: "/tmp/x", Settings: map[string]string{"work_mem": "4MB\nfsync=off"}}, "line break"},
		"value NUL":          {pgcluster.Config{Dir: "/tmp/x", Settings: map[string]string{"work_mem": "4MB\x00"}}, "NUL"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := pgcluster.Start(t.Context(), &tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	t.Parallel()
	got := (&pgcluster.Config{Dir: "rel"}).WithDefaults()
	if !filepath.IsAbs(got.Dir) || got.MaxConnections != pgcluster.DefaultMaxConnections ||
		got.StartTimeout != pgcluster.DefaultStartTimeout || got.StopTimeout != pgcluster.DefaultStopTimeout ||
		got.Logger == nil || got.Durable || got.Port != 0 {
		t.Fatalf("WithDefaults = %+v", got)
	}
	if (*pgcluster.Config)(nil).WithDefaults() == nil {
		t.Fatal("nil Config WithDefaults returned nil")
	}
}

func TestStopCancelledContext(t *testing.T) {
	t.Parallel()
	c := start(t, &pgcluster.Config{Dir: filepath.Join(tempDir(t), "c")})
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // no time for a fast shutdown: straight to immediate shutdown
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
}

func TestServerDiesUnexpectedly(t *testing.T) {
	t.Parallel()
	c, err := pgcluster.Start(t.Context(), &pgcluster.Config{Dir: filepath.Join(tempDir(t), "c")})
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(c.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.Done()
	if c.Err() == nil {
		t.Fatal("Err() = nil after the server was killed")
	}
	if err := c.Stop(t.Context()); err == nil || !strings.Contains(err.Error(), "already exited") {
		t.Fatalf("Stop after death = %v, want it to report the exit", err)
	}
}
