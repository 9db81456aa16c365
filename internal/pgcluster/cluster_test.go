package pgcluster_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
