package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tenantry/tenantry/tenantrytest"
)

// TestServeEmbedded builds the tenantry binary and runs `tenantry serve`
// on a fresh data directory, as `make run` does: it must start its own
// PostgreSQL, print the admin token once, serve tenants created with the
// CLI by host, subdomain and header, stop everything on SIGTERM, and come
// back with the same data and token on the next start.
func TestServeEmbedded(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary and runs PostgreSQL; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "tenantry")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The postgres OS user (when the test runs as root) must traverse the
	// data directory's parents: t.TempDir's are 0700.
	dataDir, err := os.MkdirTemp("", "tenantry-serve-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dataDir) })
	dataDir = filepath.Join(dataDir, "data")

	// First start: initdb, token generated and printed.
	s := startServe(t, bin, dataDir)
	token := s.printedToken(t)
	saved, err := os.ReadFile(filepath.Join(dataDir, tokenFileName))
	if err != nil || strings.TrimSpace(string(saved)) != token {
		t.Fatalf("token file = %q (%v), printed %q", saved, err, token)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, tokenFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}

	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--data-dir", dataDir, "--admin-url", "http://" + s.admin}, args...)...)
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tenantry %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// The demo tenants, one per model, and the curl lines that try them,
	// run as printed.
	banner := s.stdout.String()
	for _, want := range []string{"acme      shared", "globex    sharded   on demo-shard", "initech   schema", "umbrella  database"} {
		if !strings.Contains(banner, want) {
			t.Fatalf("the banner does not list %q:\n%s", want, banner)
		}
	}
	runPrintedCurlLines(t, banner)

	if out := cli("tenant", "create", "hooli", "--model", "schema", "--domain", "hooli.example.com", "--tier", "pro"); !strings.Contains(out, "model schema on cluster local (database tenantry_schemas, schema t_hooli)") {
		t.Fatalf("tenant create does not print the placement:\n%s", out)
	}
	if list := cli("tenant", "list"); !regexp.MustCompile(`(?m)^hooli\s+active\s+pro\s+schema\s`).MatchString(list) {
		t.Fatalf("tenant list:\n%s", list)
	}
	if clusters := cli("cluster", "list"); !strings.Contains(clusters, "local") || !strings.Contains(clusters, "demo-shard") {
		t.Fatalf("the embedded cluster is not registered as local and demo-shard:\n%s", clusters)
	}
	for _, tc := range []struct {
		host, header, via string
	}{
		{"hooli.localhost", "", "subdomain"},
		{"hooli.example.com", "", "host"},
		{"localhost", "hooli", "header"},
	} {
		waitFor(t, "hooli by "+tc.via, func() bool {
			got, ok := s.tenant(t, tc.host, tc.header)
			return ok && got["slug"] == "hooli" && got["resolved_by"] == tc.via
		})
	}
	// tenantry migrate reaches the catalog of the running server.
	if status := cli("migrate", "plan"); !strings.Contains(status, "local/tenantry_schemas/t_hooli") {
		t.Fatalf("migrate plan:\n%s", status)
	}
	s.stop(t, syscall.SIGTERM)

	// Second start: same data, same token, nothing printed.
	s = startServe(t, bin, dataDir)
	waitFor(t, "the banner", func() bool { return strings.Contains(s.stdout.String(), "Tenantry is serving") })
	if strings.Contains(s.stdout.String(), "Admin token") {
		t.Fatalf("the token was printed again:\n%s", s.stdout.String())
	}
	waitFor(t, "hooli after restart", func() bool {
		got, ok := s.tenant(t, "hooli.localhost", "")
		return ok && got["tier"] == "pro"
	})
	if list := cli("tenant", "list"); !strings.Contains(list, "hooli") || strings.Count(list, "\n") != 6 {
		t.Fatalf("tenant list after restart (the demo tenants once, hooli):\n%s", list)
	}
	// The file written through the printed lines is still there.
	if got := s.get(t, "acme.localhost", "/api/v1/files/docs/hello.txt"); got != "hello from acme" {
		t.Fatalf("acme's file after restart = %q", got)
	}
	s.stop(t, syscall.SIGINT)
}

type serveProcess struct {
	cmd           *exec.Cmd
	dataDir       string
	public, admin string
	stdout        *lockedBuffer
	exited        chan error
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// cleanEnv is the test's environment without anything that would point
// tenantry or libpq elsewhere.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TENANTRY_") || strings.HasPrefix(kv, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func startServe(t *testing.T, bin, dataDir string) *serveProcess {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--data-dir", dataDir,
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--log-format", "json")
	cmd.Env = cleanEnv()
	s := &serveProcess{cmd: cmd, dataDir: dataDir, stdout: &lockedBuffer{}, exited: make(chan error, 1)}
	cmd.Stdout = s.stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = cmd.Process.Kill()
			<-s.exited
		}
	})

	listening := make(chan map[string]any, 1)
	var logs lockedBuffer
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			_, _ = logs.Write(append(sc.Bytes(), '\n'))
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "listening" {
				listening <- rec
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		s.exited <- cmd.Wait()
	}()
	select {
	case rec := <-listening:
		s.public, _ = rec["public"].(string)
		s.admin, _ = rec["admin"].(string)
	case err := <-s.exited:
		s.exited <- err
		t.Fatalf("tenantry serve exited: %v\nstderr:\n%s", err, logs.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("tenantry serve did not start listening\nstderr:\n%s", logs.String())
	}
	return s
}

func (s *serveProcess) printedToken(t *testing.T) string {
	t.Helper()
	re := regexp.MustCompile(`Admin token \(saved to .*\):\n\n  (\S+)\n`)
	var m []string
	// stdout is copied from a pipe: it may trail the stderr record that
	// said the server is listening.
	waitFor(t, "the admin token on stdout", func() bool {
		m = re.FindStringSubmatch(s.stdout.String())
		return m != nil
	})
	return m[1]
}

// tenant asks GET /api/v1/tenant with a Host and an optional X-Tenant-ID.
func (s *serveProcess) tenant(t *testing.T, host, header string) (map[string]any, bool) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+s.public+"/api/v1/tenant", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if header != "" {
		req.Header.Set("X-Tenant-ID", header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	var out map[string]any
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		return nil, false
	}
	return out, true
}

// get returns the body of a GET on the public listener as tenant host.
func (s *serveProcess) get(t *testing.T, host, path string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+s.public+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// runPrintedCurlLines runs the curl lines of the banner with bash, as a
// user pasting them would, and checks what they answer: each demo tenant's
// note created, read, updated, listed and deleted; a file written, read
// and listed; the other tenant's read of it refused.
func runPrintedCurlLines(t *testing.T, banner string) {
	t.Helper()
	for _, tool := range []string{"bash", "curl", "grep", "cut"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Logf("%s not installed: the printed curl lines are not run", tool)
			return
		}
	}
	var script strings.Builder
	for _, line := range strings.Split(banner, "\n") {
		if strings.HasPrefix(line, "  id=") || strings.HasPrefix(line, "  curl ") {
			script.WriteString(strings.TrimPrefix(line, "  ") + "\necho\n")
		}
	}
	cmd := exec.CommandContext(t.Context(), "bash", "-c", script.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the printed curl lines failed: %v\n%s\nscript:\n%s", err, out, script.String())
	}
	got := string(out)
	for _, slug := range []string{"acme", "globex", "initech", "umbrella"} {
		for _, want := range []string{
			`"title":"hello","body":"a note of ` + slug + `","version":1`, // GET by id
		} {
			if !strings.Contains(got, want) {
				t.Fatalf("the curl lines of %s did not answer %s:\n%s", slug, want, got)
			}
		}
	}
	for want, n := range map[string]int{
		`"title":"hello again","body":"edited","version":2`: 8, // PUT, then the list
		`"key":"docs/hello.txt"`:                            2, // PUT, then the listing
		"hello from acme\n":                                 1, // GET
		`"code":"object_not_found"`:                         1, // another tenant's GET
	} {
		if c := strings.Count(got, want); c != n {
			t.Fatalf("the curl lines answered %s %d times, want %d:\n%s", want, c, n, got)
		}
	}
}

// stop signals the process and checks that it exits cleanly and stops its
// PostgreSQL (which removes postmaster.pid on a clean shutdown).
func (s *serveProcess) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		s.exited <- err
		if err != nil {
			t.Fatalf("tenantry serve after %v: %v", sig, err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("tenantry serve did not exit after %v", sig)
	}
	if _, err := os.Stat(filepath.Join(s.dataDir, embeddedDirName, "pgdata", "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("postmaster.pid still there after tenantry serve exited (%v): PostgreSQL was not stopped", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeDatabaseURL runs serve in-process against an existing database
// given by --database-url, with the token from $TENANTRY_ADMIN_TOKEN: no
// embedded PostgreSQL, no cluster registered, no token file written.
func TestServeDatabaseURL(t *testing.T) {
	t.Parallel()
	dbURL := tenantrytest.NewDatabase(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	out := &lockedBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"serve", "--database-url", dbURL, "--data-dir", dataDir,
			"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--log-level", "error",
			"--base-domain", "tenants.test", "--trusted-proxy", "10.0.0.0/8"},
			stdio{in: strings.NewReader(""), out: out, err: io.Discard},
			func(k string) string { return map[string]string{envAdminToken: cliToken}[k] })
	}()
	var public, adminAddr string
	re := regexp.MustCompile(`public: http://localhost:(\d+) .*\n  admin:  http://(\S+)\n`)
	waitFor(t, "the banner", func() bool {
		m := re.FindStringSubmatch(out.String())
		if m != nil {
			public, adminAddr = "127.0.0.1:"+m[1], m[2]
		}
		return m != nil
	})
	if strings.Contains(out.String(), "Admin token") {
		t.Fatalf("a token was generated although $%s is set:\n%s", envAdminToken, out.String())
	}
	if _, err := os.Stat(filepath.Join(dataDir, embeddedDirName)); !os.IsNotExist(err) {
		t.Fatalf("an embedded cluster was created with --database-url: %v", err)
	}

	b := &cliBundle{adminURL: "http://" + adminAddr, env: map[string]string{envAdminToken: cliToken}}
	if clusters := b.mustCLI(t, "cluster", "list"); strings.Contains(clusters, "local") {
		t.Fatalf("a local cluster was registered with --database-url:\n%s", clusters)
	}
	// No cluster, no storage: the tenant is not created.
	if code, _, errOut := b.cli(t, "tenant", "create", "acme"); code == 0 || !strings.Contains(errOut, "no_capacity") {
		t.Fatalf("tenant create without a cluster: exit %d\n%s", code, errOut)
	}
	b.mustCLI(t, "cluster", "add", "main", "--conn-string", tenantrytest.Shared(t).AdminURL())
	if out := b.mustCLI(t, "tenant", "create", "acme"); !strings.Contains(out, "tenant acme created: model shared on cluster main (database tenantry_shared, schema app)") {
		t.Fatalf("tenant create does not say where acme went:\n%s", out)
	}

	s := &serveProcess{public: public}
	waitFor(t, "acme under the configured base domain", func() bool {
		got, ok := s.tenant(t, "acme.tenants.test", "")
		return ok && got["resolved_by"] == "subdomain"
	})
	// localhost is no base domain now, and loopback no trusted proxy.
	if _, ok := s.tenant(t, "acme.localhost", ""); ok {
		t.Fatal("acme.localhost resolved although localhost is not a base domain")
	}
	if _, ok := s.tenant(t, "localhost", "acme"); ok {
		t.Fatal("X-Tenant-ID was honoured from a peer outside --trusted-proxy")
	}

	b.mustCLI(t, "tenant", "delete", "acme")
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("serve exited %d after its context ended", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not return after its context ended")
	}
}
