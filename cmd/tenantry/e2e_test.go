package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/admin"
	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/versitygw"
	"github.com/tenantry/tenantry/tenant"
	"github.com/tenantry/tenantry/tenantrytest"
)

// served is a `tenantry serve` running in-process for a test.
type served struct {
	public, admin string // host:port
	client        *admin.Client
	out           *lockedBuffer
}

// serveInProcess runs `tenantry serve` with args (plus listeners on free
// loopback ports and the test admin token) until the test ends, and waits
// for its banner.
func serveInProcess(t *testing.T, env map[string]string, args ...string) *served {
	t.Helper()
	out := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	exit := make(chan int, 1)
	env = mergeEnv(map[string]string{envAdminToken: cliToken}, env)
	args = append([]string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--log-level", "error"}, args...)
	go func() {
		exit <- run(ctx, args, stdio{in: strings.NewReader(""), out: out, err: io.Discard}, func(k string) string { return env[k] })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-exit:
			if code != 0 {
				t.Errorf("serve exited %d after its context ended", code)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not return after its context ended")
		}
	})
	re := regexp.MustCompile(`public: https?://localhost:(\d+) .*\n  admin:  https?://(\S+)\n`)
	s := &served{out: out}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			s.public, s.admin = "127.0.0.1:"+m[1], m[2]
			break
		}
		select {
		case code := <-exit:
			t.Fatalf("serve exited %d before serving:\n%s", code, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not print its banner:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c, err := admin.NewClient("http://"+s.admin, cliToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.client = c
	return s
}

func mergeEnv(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// reply is an answer of the public listener.
type reply struct {
	status int
	body   []byte
}

// call sends a request to the public listener as tenant host.
func (s *served) call(t *testing.T, method, host, path, contentType string, body []byte) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+s.public+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, b}
}

func (s *served) want(t *testing.T, r reply, status int, what string) reply {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: %d %s, want %d", what, r.status, r.body, status)
	}
	return r
}

type note struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Body    string `json:"body"`
	Version int64  `json:"version"`
}

func randomSuffix(t *testing.T) string {
	t.Helper()
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// TestEndToEnd runs `tenantry serve` against PostgreSQL with a primary and
// a shard cluster, creates one tenant per storage model through the admin
// API, and drives the reference application over HTTP as its users would:
// notes CRUD and file upload and download for each tenant, every
// cross-tenant access refused, a failed provisioning leaving nothing
// behind, and a delete dropping the tenant's storage and files.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	primary, shard := tenantrytest.Shared(t), tenantrytest.Cluster(t, "shard-1")
	filesDir := t.TempDir()
	s := serveInProcess(t, nil, "--database-url", tenantrytest.NewDatabase(t), "--files-dir", filesDir, "--files-quota-objects", "2")
	ctx := t.Context()
	for _, c := range []admin.CreateClusterRequest{
		{Name: "main", ConnString: primary.AdminURL(), Role: catalog.RolePrimary},
		{Name: "shard-1", ConnString: shard.AdminURL(), Role: catalog.RoleShard},
	} {
		if _, err := s.client.CreateCluster(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	// One tenant per model: the tier chooses, except for sharded.
	sfx := randomSuffix(t)
	type tenantCase struct {
		slug  string
		model tenant.Model
		t     *tenant.Tenant
	}
	cases := []*tenantCase{
		{slug: "free-" + sfx, model: tenant.ModelShared},
		{slug: "shard-" + sfx, model: tenant.ModelSharded},
		{slug: "pro-" + sfx, model: tenant.ModelSchema},
		{slug: "ent-" + sfx, model: tenant.ModelDatabase},
	}
	tiers := map[tenant.Model]string{tenant.ModelShared: "free", tenant.ModelSharded: "free", tenant.ModelSchema: "pro", tenant.ModelDatabase: "enterprise"}
	for _, tc := range cases {
		req := admin.CreateTenantRequest{Slug: tc.slug, Tier: tiers[tc.model]}
		if tc.model == tenant.ModelSharded {
			req.Placement.Model = tenant.ModelSharded
		}
		created, err := s.client.CreateTenant(ctx, req)
		if err != nil {
			t.Fatalf("create %s: %v", tc.slug, err)
		}
		wantCluster := "main"
		if tc.model == tenant.ModelSharded {
			wantCluster = "shard-1"
		}
		if created.Placement.Model != tc.model || created.Placement.Cluster != wantCluster {
			t.Fatalf("%s placed %+v, want %s on %s", tc.slug, created.Placement, tc.model, wantCluster)
		}
		tc.t = created
	}
	t.Cleanup(func() {
		for _, tc := range cases {
			_ = s.client.DeleteTenant(context.WithoutCancel(ctx), tc.slug)
		}
	})
	host := func(tc *tenantCase) string { return tc.slug + ".localhost" }

	// Notes CRUD and a file on each.
	ids := map[string]string{}
	for _, tc := range cases {
		// Served as soon as the create has answered: no waiting.
		var n note
		r := s.want(t, s.call(t, http.MethodPost, host(tc), "/api/v1/notes", "application/json", []byte(`{"title":"secret of `+tc.slug+`","body":"only `+tc.slug+` may read this"}`)), http.StatusCreated, "post")
		if err := json.Unmarshal(r.body, &n); err != nil {
			t.Fatal(err)
		}
		ids[tc.slug] = n.ID
		r = s.want(t, s.call(t, http.MethodGet, host(tc), "/api/v1/notes/"+n.ID, "", nil), http.StatusOK, "get")
		if !bytes.Contains(r.body, []byte("secret of "+tc.slug)) {
			t.Fatalf("%s: get = %s", tc.slug, r.body)
		}
		r = s.want(t, s.call(t, http.MethodPut, host(tc), "/api/v1/notes/"+n.ID, "application/json", []byte(`{"title":"secret of `+tc.slug+`","body":"edited","version":1}`)), http.StatusOK, "put")
		if !bytes.Contains(r.body, []byte(`"version":2`)) {
			t.Fatalf("%s: put = %s", tc.slug, r.body)
		}
		s.want(t, s.call(t, http.MethodPut, host(tc), "/api/v1/notes/"+n.ID, "application/json", []byte(`{"title":"stale","version":1}`)), http.StatusConflict, "stale put")
		extra := s.want(t, s.call(t, http.MethodPost, host(tc), "/api/v1/notes", "application/json", []byte(`{"title":"scratch"}`)), http.StatusCreated, "post")
		var scratch note
		_ = json.Unmarshal(extra.body, &scratch)
		s.want(t, s.call(t, http.MethodDelete, host(tc), "/api/v1/notes/"+scratch.ID, "", nil), http.StatusNoContent, "delete")
		s.want(t, s.call(t, http.MethodGet, host(tc), "/api/v1/notes/"+scratch.ID, "", nil), http.StatusNotFound, "get deleted")

		s.want(t, s.call(t, http.MethodPut, host(tc), "/api/v1/files/docs/secret.txt", "text/plain", []byte("file of "+tc.slug)), http.StatusCreated, "file put")
		r = s.want(t, s.call(t, http.MethodGet, host(tc), "/api/v1/files/docs/secret.txt", "", nil), http.StatusOK, "file get")
		if string(r.body) != "file of "+tc.slug {
			t.Fatalf("%s: file = %q", tc.slug, r.body)
		}
	}

	// Isolation: every tenant against every other, by note id and by key.
	for _, a := range cases {
		for _, b := range cases {
			if a == b {
				continue
			}
			id := ids[b.slug]
			s.want(t, s.call(t, http.MethodGet, host(a), "/api/v1/notes/"+id, "", nil), http.StatusNotFound, a.slug+" reads "+b.slug+"'s note")
			s.want(t, s.call(t, http.MethodPut, host(a), "/api/v1/notes/"+id, "application/json", []byte(`{"title":"hijacked"}`)), http.StatusNotFound, a.slug+" overwrites "+b.slug+"'s note")
			s.want(t, s.call(t, http.MethodDelete, host(a), "/api/v1/notes/"+id, "", nil), http.StatusNotFound, a.slug+" deletes "+b.slug+"'s note")
			// Another tenant's ID in the path prefix disagrees with the host.
			s.want(t, s.call(t, http.MethodGet, host(a), "/t/"+b.slug+"/api/v1/notes/"+id, "", nil), http.StatusForbidden, "conflicting sources")
			// The object key space is per tenant: a's key names a's object.
			s.want(t, s.call(t, http.MethodGet, host(a), "/api/v1/files/tenants/"+b.t.ID+"/docs/secret.txt", "", nil), http.StatusNotFound, "key with b's prefix")
			for _, key := range []string{"../" + b.t.ID + "/docs/secret.txt", "..%2F" + b.t.ID + "%2Fdocs%2Fsecret.txt", "%2E%2E/%2E%2E/tenants/" + b.t.ID + "/docs/secret.txt"} {
				r := s.call(t, http.MethodGet, host(a), "/api/v1/files/"+key, "", nil)
				if r.status < 400 || r.status >= 500 || bytes.Contains(r.body, []byte("file of")) {
					t.Fatalf("%s GET files/%s = %d %s", a.slug, key, r.status, r.body)
				}
			}
		}
		r := s.want(t, s.call(t, http.MethodGet, host(a), "/api/v1/notes", "", nil), http.StatusOK, "list")
		var page struct{ Notes []note }
		if err := json.Unmarshal(r.body, &page); err != nil || len(page.Notes) != 1 || page.Notes[0].ID != ids[a.slug] || page.Notes[0].Body != "edited" {
			t.Fatalf("%s lists %s", a.slug, r.body)
		}
		r = s.want(t, s.call(t, http.MethodGet, host(a), "/api/v1/files", "", nil), http.StatusOK, "file list")
		if bytes.Count(r.body, []byte(`"key"`)) != 1 {
			t.Fatalf("%s lists files %s", a.slug, r.body)
		}
		r = s.want(t, s.call(t, http.MethodGet, host(a), "/api/v1/files/docs/secret.txt", "", nil), http.StatusOK, "own file")
		if string(r.body) != "file of "+a.slug {
			t.Fatalf("%s reads %q under its own key", a.slug, r.body)
		}
	}

	// Quotas hold: two files per tenant here.
	free := cases[0]
	s.want(t, s.call(t, http.MethodPut, host(free), "/api/v1/files/two.txt", "text/plain", []byte("2")), http.StatusCreated, "second file")
	r := s.want(t, s.call(t, http.MethodPut, host(free), "/api/v1/files/three.txt", "text/plain", []byte("3")), http.StatusInsufficientStorage, "third file")
	if !bytes.Contains(r.body, []byte(`"code":"quota_exceeded"`)) || !bytes.Contains(r.body, []byte("objects")) {
		t.Fatalf("over quota: %s", r.body)
	}
	s.want(t, s.call(t, http.MethodPut, host(cases[1]), "/api/v1/files/two.txt", "text/plain", []byte("2")), http.StatusCreated, "another tenant's quota")

	// The fleet migration status covers every tenant's storage.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.admin+"/admin/v1/migrations/plan", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+cliToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	plan, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(plan, []byte(cases[2].t.Placement.Schema)) || !bytes.Contains(plan, []byte(cases[3].t.Placement.Database)) {
		t.Fatalf("GET /admin/v1/migrations/plan = %d %s", resp.StatusCode, plan)
	}

	// A tenant no cluster can take is not created, and does not resolve.
	_, err = s.client.CreateTenant(ctx, admin.CreateTenantRequest{Slug: "nowhere-" + sfx, Region: "mars"})
	var ae *admin.Error
	if !errors.As(err, &ae) || ae.Code != admin.CodeNoCapacity {
		t.Fatalf("create on no cluster = %v, want no_capacity", err)
	}
	if _, err := s.client.Tenant(ctx, "nowhere-"+sfx); !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		t.Fatalf("the failed tenant was kept: %v", err)
	}
	waitFor(t, "the rolled-back tenant to be unknown", func() bool {
		return s.call(t, http.MethodGet, "nowhere-"+sfx+".localhost", "/api/v1/notes", "", nil).status == http.StatusNotFound
	})

	// Deleting drops the storage and the files.
	ent := cases[3]
	if err := s.client.DeleteTenant(ctx, ent.slug); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, primary.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, ent.t.Placement.Database).Scan(&exists); err != nil || exists {
		t.Fatalf("database %s after delete: exists=%v %v", ent.t.Placement.Database, exists, err)
	}
	if _, err := os.Stat(filepath.Join(filesDir, "tenants", ent.t.ID, "docs.dir", "secret.txt.obj")); !os.IsNotExist(err) {
		t.Fatalf("the deleted tenant's file is still on disk: %v", err)
	}
	waitFor(t, "the deleted tenant to stop resolving", func() bool {
		return s.call(t, http.MethodGet, host(ent), "/api/v1/notes", "", nil).status == http.StatusNotFound
	})
	// The others are untouched.
	for _, tc := range cases[:3] {
		s.want(t, s.call(t, http.MethodGet, host(tc), "/api/v1/notes/"+ids[tc.slug], "", nil), http.StatusOK, tc.slug+" after another's delete")
	}
}

// TestEndToEndS3 serves files from an S3-compatible server (versitygw):
// upload, download, isolation between tenants, and the files dropped with
// their tenant.
func TestEndToEndS3(t *testing.T) {
	t.Parallel()
	gw := versitygw.Start(t)
	bucket := "tenantry-e2e-" + randomSuffix(t)
	s := serveInProcess(t, map[string]string{envS3AccessKey: gw.RootAccess, envS3SecretKey: gw.RootSecret},
		"--database-url", tenantrytest.NewDatabase(t), "--s3-bucket", bucket, "--s3-endpoint", gw.Endpoint, "--s3-region", gw.Region)
	if !strings.Contains(s.out.String(), "files:  s3://"+bucket) {
		t.Fatalf("banner:\n%s", s.out.String())
	}
	ctx := t.Context()
	if _, err := s.client.CreateCluster(ctx, admin.CreateClusterRequest{Name: "main", ConnString: tenantrytest.Shared(t).AdminURL()}); err != nil {
		t.Fatal(err)
	}
	sfx := randomSuffix(t)
	a, err := s.client.CreateTenant(ctx, admin.CreateTenantRequest{Slug: "s3a-" + sfx})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.client.CreateTenant(ctx, admin.CreateTenantRequest{Slug: "s3b-" + sfx})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.client.DeleteTenant(context.WithoutCancel(ctx), b.Slug) })
	ha, hb := a.Slug+".localhost", b.Slug+".localhost"
	for _, h := range []string{ha, hb} {
		waitFor(t, h+" to be served", func() bool {
			return s.call(t, http.MethodGet, h, "/api/v1/files", "", nil).status == http.StatusOK
		})
	}
	s.want(t, s.call(t, http.MethodPut, ha, "/api/v1/files/report.txt", "text/plain", []byte("a's report")), http.StatusCreated, "a writes")
	s.want(t, s.call(t, http.MethodGet, hb, "/api/v1/files/report.txt", "", nil), http.StatusNotFound, "b reads a's key")
	s.want(t, s.call(t, http.MethodPut, hb, "/api/v1/files/report.txt", "text/plain", []byte("b's report")), http.StatusCreated, "b writes the same key")
	if r := s.call(t, http.MethodGet, ha, "/api/v1/files/report.txt", "", nil); r.status != http.StatusOK || string(r.body) != "a's report" {
		t.Fatalf("a's file after b wrote the same key: %d %q", r.status, r.body)
	}
	if err := s.client.DeleteTenant(ctx, a.Slug); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(gw.DataDir, bucket, "tenants", a.ID)); !os.IsNotExist(err) {
		if entries, _ := os.ReadDir(filepath.Join(gw.DataDir, bucket, "tenants", a.ID)); len(entries) > 0 {
			t.Fatalf("a's objects survived its delete: %v", entries)
		}
	}
	if r := s.call(t, http.MethodGet, hb, "/api/v1/files/report.txt", "", nil); r.status != http.StatusOK || string(r.body) != "b's report" {
		t.Fatalf("b's file after a's delete: %d %q", r.status, r.body)
	}
}

// TestServeSecurityCheck: serve refuses to start when the start-up
// security check cannot vouch for a cluster (here, one it cannot reach),
// unless told to serve anyway.
func TestServeSecurityCheck(t *testing.T) {
	t.Parallel()
	dbURL := tenantrytest.NewDatabase(t)
	store, err := catalog.NewStore(tenantrytest.Pool(t, dbURL), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateCluster(t.Context(), tenantrytest.Actor, catalog.Cluster{Name: "gone", ConnString: "postgres://postgres@127.0.0.1:1/postgres?connect_timeout=2"}); err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	code := run(t.Context(), []string{"serve", "--database-url", dbURL, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--log-format", "json"},
		stdio{in: strings.NewReader(""), out: io.Discard, err: &errOut}, func(k string) string { return map[string]string{envAdminToken: cliToken}[k] })
	if code == 0 || !strings.Contains(errOut.String(), "security check finding") || !strings.Contains(errOut.String(), "--security-check=false") {
		t.Fatalf("serve with an unverifiable cluster: exit %d\n%s", code, errOut.String())
	}
	s := serveInProcess(t, nil, "--database-url", dbURL, "--security-check=false")
	if _, err := s.client.Clusters(t.Context()); err != nil {
		t.Fatal(err)
	}
}
