package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// TestBenchCommand runs `tenantry bench` as a user would, on throwaway
// servers of its own, tiny: one model, two tenants, one short round.
func TestBenchCommand(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a PostgreSQL server; skipped with -short")
	}
	var out, errOut bytes.Buffer
	code := run(t.Context(), []string{"bench", "--model", "shared", "--tenants", "2", "--notes", "2", "--rounds", "1", "--round", "300ms", "--warmup", "100ms", "--shards", "0"},
		stdio{in: strings.NewReader(""), out: &out, err: &errOut}, func(string) string { return "" })
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "| shared | 2 | uniform |") || !strings.Contains(errOut.String(), "started 1 throwaway PostgreSQL server") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	}
	if strings.Contains(out.String(), "| database |") {
		t.Fatalf("a model not asked for was measured:\n%s", out.String())
	}
	var bad bytes.Buffer
	if code := run(t.Context(), []string{"bench", "--model", "nosql"}, stdio{in: strings.NewReader(""), out: io.Discard, err: &bad}, func(string) string { return "" }); code == 0 || !strings.Contains(bad.String(), `--model "nosql"`) {
		t.Fatalf("an unknown model: exit %d %s", code, bad.String())
	}
}
