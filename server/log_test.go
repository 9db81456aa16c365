package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/server"
	"github.com/tenantry/tenantry/tenant"
)

func TestLogHandler(t *testing.T) {
	t.Parallel()
	acme := &tenant.Tenant{ID: "00000000-0000-0000-0000-000000000001", Slug: "acme"}
	globex := &tenant.Tenant{ID: "00000000-0000-0000-0000-000000000002", Slug: "globex"}
	inAcme := tenant.NewContext(context.Background(), acme, "host")

	for _, tc := range []struct {
		name string
		log  func(l *slog.Logger)
		want string // the record's tenant attribute; "" for none
		// count is how many "tenant" keys the JSON line has.
		count int
	}{
		{"tenant from context", func(l *slog.Logger) { l.InfoContext(inAcme, "m") }, "acme", 1},
		{"no tenant in context", func(l *slog.Logger) { l.InfoContext(context.Background(), "m") }, "", 0},
		{"no context", func(l *slog.Logger) { l.Info("m") }, "", 0},
		{"record already names one", func(l *slog.Logger) { l.InfoContext(inAcme, "m", "tenant", "globex") }, "globex", 1},
		{"logger already names one", func(l *slog.Logger) { l.With("tenant", "globex").InfoContext(inAcme, "m") }, "globex", 1},
		{"LogAttrs", func(l *slog.Logger) { l.LogAttrs(inAcme, slog.LevelWarn, "m", slog.Int("n", 1)) }, "acme", 1},
		{"other attrs kept", func(l *slog.Logger) { l.With("component", "x").InfoContext(inAcme, "m", "k", "v") }, "acme", 1},
		{"tenant removed from context", func(l *slog.Logger) { l.InfoContext(tenant.WithoutTenant(inAcme), "m") }, "", 0},
		{"inner context wins", func(l *slog.Logger) {
			l.InfoContext(tenant.NewContext(inAcme, globex, "header"), "m")
		}, "globex", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			tc.log(slog.New(server.NewLogHandler(slog.NewJSONHandler(&buf, nil))))
			line := buf.String()
			if n := strings.Count(line, `"tenant":`); n != tc.count {
				t.Fatalf("%d tenant keys in %s, want %d", n, line, tc.count)
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatal(err)
			}
			got, _ := rec["tenant"].(string)
			if got != tc.want {
				t.Fatalf("tenant = %q, want %q in %s", got, tc.want, line)
			}
		})
	}

	t.Run("level filtering is the wrapped handler's", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		l := slog.New(server.NewLogHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
		l.InfoContext(inAcme, "quiet")
		if buf.Len() != 0 {
			t.Fatalf("logged below the level: %s", buf.String())
		}
		l.WarnContext(inAcme, "loud")
		if !strings.Contains(buf.String(), "tenant=acme") {
			t.Fatalf("text record = %s", buf.String())
		}
	})

	t.Run("groups", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		l := slog.New(server.NewLogHandler(slog.NewTextHandler(&buf, nil)))
		l.WithGroup("req").InfoContext(inAcme, "m", "id", 7)
		if !strings.Contains(buf.String(), "req.tenant=acme") {
			t.Fatalf("grouped record = %s", buf.String())
		}
	})
}
