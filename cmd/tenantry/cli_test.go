package main

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/admin"
	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/tenant"
	"github.com/tenantry/tenantry/tenantrytest"
)

func TestMain(m *testing.M) { tenantrytest.Main(m) }

const cliToken = "cli-test-token-0123456789"

type cliBundle struct {
	store    *catalog.Store
	adminURL string
	env      map[string]string
}

// setupCLI serves the admin API of a fresh catalog over httptest; the CLI
// reaches it through --admin-url and $TENANTRY_ADMIN_TOKEN.
func setupCLI(t *testing.T) *cliBundle {
	t.Helper()
	pool := tenantrytest.Pool(t, tenantrytest.NewDatabase(t))
	store, err := catalog.NewStore(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	auth, err := admin.BearerToken("admin", cliToken)
	if err != nil {
		t.Fatal(err)
	}
	api, err := admin.New(store, &admin.Config{Authenticator: auth})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &cliBundle{store: store, adminURL: srv.URL, env: map[string]string{envAdminToken: cliToken}}
}

// cli runs the tenantry command with args and returns its exit code,
// stdout and stderr.
func (b *cliBundle) cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append([]string{"--admin-url", b.adminURL}, args...)
	code := run(t.Context(), args, stdio{in: strings.NewReader(""), out: &out, err: &errOut}, func(k string) string { return b.env[k] })
	return code, out.String(), errOut.String()
}

func (b *cliBundle) mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := b.cli(t, args...)
	if code != 0 {
		t.Fatalf("tenantry %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func TestTenantListTable(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	b.mustCLI(t, "tenant", "create", "acme", "--model", "schema", "--domain", "acme.example.com", "--domain", "acme.test", "--tier", "pro", "--region", "eu-west")
	b.mustCLI(t, "tenant", "create", "globex-corporation", "--display-name", "Globex Corp")
	b.mustCLI(t, "tenant", "suspend", "globex-corporation", "--reason", "unpaid")

	tenants, err := b.store.Tenants(t.Context(), catalog.ListOptions{})
	if err != nil || len(tenants) != 2 {
		t.Fatalf("tenants: %v %d", err, len(tenants))
	}
	at := func(i int) string { return tenants[i].CreatedAt.UTC().Format(time.DateTime) }
	want := "" +
		"SLUG                 STATE       TIER   MODEL    REGION    DOMAINS                      VERSION   CREATED\n" +
		"acme                 active      pro    schema   eu-west   acme.example.com,acme.test   1         " + at(0) + "\n" +
		"globex-corporation   suspended   free   -        -         -                            2         " + at(1) + "\n"
	if got := b.mustCLI(t, "tenant", "list"); got != want {
		t.Fatalf("tenant list:\n%s\nwant:\n%s", got, want)
	}
	if got := b.mustCLI(t, "tenant", "list", "--state", "suspended"); strings.Contains(got, "acme ") || !strings.Contains(got, "globex-corporation") {
		t.Fatalf("tenant list --state suspended:\n%s", got)
	}

	var listed []tenant.Tenant
	if err := json.Unmarshal([]byte(b.mustCLI(t, "tenant", "list", "-o", "json")), &listed); err != nil || len(listed) != 2 {
		t.Fatalf("-o json: %v %+v", err, listed)
	}

	got := b.mustCLI(t, "tenant", "get", "globex-corporation")
	for _, line := range []string{"Display name:   Globex Corp", "State:          suspended", "Model:          -"} {
		if !strings.Contains(got, line) {
			t.Errorf("tenant get lacks %q:\n%s", line, got)
		}
	}
	entries := b.mustCLI(t, "audit", "--tenant", "globex-corporation")
	if !strings.Contains(entries, "tenant.suspend") || !strings.Contains(entries, "unpaid") || !strings.Contains(entries, "token:admin") {
		t.Fatalf("audit:\n%s", entries)
	}
}

func TestTenantCommands(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	out := b.mustCLI(t, "tenant", "create", "acme", "--label", "team=core")
	if !strings.HasPrefix(out, "tenant acme created\n") {
		t.Fatalf("create output:\n%s", out)
	}
	b.mustCLI(t, "tenant", "update", "acme", "--tier", "enterprise", "--display-name", "ACME")
	b.mustCLI(t, "tenant", "domain", "add", "acme", "shop.acme.test")
	var got tenant.Tenant
	if err := json.Unmarshal([]byte(b.mustCLI(t, "tenant", "get", "acme", "-o", "json")), &got); err != nil {
		t.Fatal(err)
	}
	if got.Tier != "enterprise" || got.DisplayName != "ACME" || got.Labels["team"] != "core" || len(got.Domains) != 1 {
		t.Fatalf("after update: %+v", got)
	}
	b.mustCLI(t, "tenant", "domain", "remove", "acme", "shop.acme.test")
	b.mustCLI(t, "tenant", "resume", "acme")
	b.mustCLI(t, "cluster", "add", "eu-1", "--conn-string", "postgres://tenantry:hunter2@db:5432/postgres", "--region", "eu")
	clusters := b.mustCLI(t, "cluster", "list")
	if !strings.Contains(clusters, "eu-1") || strings.Contains(clusters, "hunter2") {
		t.Fatalf("cluster list:\n%s", clusters)
	}
	if out := b.mustCLI(t, "tenant", "delete", "acme"); out != "tenant acme deleted\n" {
		t.Fatalf("delete output %q", out)
	}
}

func TestCLIErrorsSayWhatToDo(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	b.mustCLI(t, "tenant", "create", "acme")

	dead := httptest.NewServer(nil)
	deadURL := dead.URL
	dead.Close()

	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"duplicate", nil, []string{"tenant", "create", "acme"}, "that slug is already taken (409 already_exists)"},
		{"invalid slug", nil, []string{"tenant", "create", "Bad_Slug"}, "slug: only lower-case letters, digits and hyphens are allowed (422 validation_failed)"},
		{"unknown tenant", nil, []string{"tenant", "get", "nobody"}, "404 not_found"},
		{"wrong token", map[string]string{envAdminToken: "wrong-token-0123456789"}, []string{"tenant", "list"}, "refused the token"},
		{"no token", map[string]string{}, []string{"--data-dir", t.TempDir(), "tenant", "list"}, "no admin token: set $TENANTRY_ADMIN_TOKEN"},
		{"server down", nil, []string{"--admin-url", deadURL, "tenant", "list"}, "is `tenantry serve` running?"},
		{"bad label", nil, []string{"tenant", "create", "x1", "--label", "novalue"}, "must look like key=value"},
		{"bad output", nil, []string{"tenant", "list", "-o", "yaml"}, "--output must be table or json"},
		{"missing argument", nil, []string{"tenant", "get"}, "accepts 1 arg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bb := *b
			if tc.env != nil {
				bb.env = tc.env
			}
			code, _, errOut := bb.cli(t, tc.args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q, want it to contain %q", code, errOut, tc.want)
			}
		})
	}
}

func TestTokenFromDataDir(t *testing.T) {
	t.Parallel()
	b := setupCLI(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, tokenFileName), []byte(cliToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.env = map[string]string{}
	if code, _, errOut := b.cli(t, "--data-dir", dir, "tenant", "list"); code != 0 {
		t.Fatalf("with the token file: exit %d %s", code, errOut)
	}
	b.env = map[string]string{envDataDir: dir}
	if code, _, errOut := b.cli(t, "tenant", "list"); code != 0 {
		t.Fatalf("with $TENANTRY_DATA_DIR: exit %d %s", code, errOut)
	}
}

func TestParsePrefixes(t *testing.T) {
	t.Parallel()
	got, err := parsePrefixes([]string{"127.0.0.0/8, ::1/128", "10.1.2.3", "192.168.1.7/24"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.0/8", "::1/128", "10.1.2.3/32", "192.168.1.0/24"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("prefix %d = %s, want %s", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"localhost", "10.0.0.0/33", "1.2.3.4/8/8"} {
		if _, err := parsePrefixes([]string{bad}); err == nil {
			t.Errorf("parsePrefixes(%q) accepted", bad)
		}
	}
}
