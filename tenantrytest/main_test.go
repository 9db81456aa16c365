package tenantrytest_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tenantry/tenantry/tenantrytest"
)

func TestMain(m *testing.M) { tenantrytest.Main(m) }

// helperEnv makes TestHelperServers run: it starts servers and reports
// them, for the tests below that watch what Main does when the binary ends.
const helperEnv = "TENANTRYTEST_HELPER"

// TestHelperServers starts the shared server and a named cluster, prints
// "server <data dir> <postmaster pid>" for each, and then returns
// (helperEnv=return) or blocks until killed (helperEnv=block).
func TestHelperServers(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("run as a subprocess by TestMainStopsServers")
	}
	for _, s := range []*tenantrytest.Server{tenantrytest.Shared(t), tenantrytest.Cluster(t, "helper")} {
		var dir string
		if err := tenantrytest.Pool(t, s.AdminURL()).QueryRow(t.Context(), "SHOW data_directory").Scan(&dir); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("server %s %s\n", dir, strings.SplitN(string(b), "\n", 2)[0])
	}
	if mode == "block" {
		fmt.Println("blocking")
		select {}
	}
}

type helperServer struct {
	dir string
	pid int
}

// runHelper runs TestHelperServers in a new test binary process; wait says
// whether to let it finish or kill it once it has reported.
func runHelper(t *testing.T, mode string) []helperServer {
	t.Helper()
	return runHelperWith(t, mode, "", "^TestHelperServers$")
}

// runHelperWith runs the tests matching run in a new test binary process,
// with TestHelperServers in mode and EnvDatabaseURL set to databaseURL.
func runHelperWith(t *testing.T, mode, databaseURL, run string) []helperServer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run="+run, "-test.v")
	cmd.Env = []string{helperEnv + "=" + mode}
	if databaseURL != "" {
		cmd.Env = append(cmd.Env, tenantrytest.EnvDatabaseURL+"="+databaseURL)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, tenantrytest.EnvDatabaseURL+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var servers []helperServer
	var transcript strings.Builder
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		transcript.WriteString(line + "\n")
		var s helperServer
		if _, err := fmt.Sscanf(line, "server %s %d", &s.dir, &s.pid); err == nil {
			servers = append(servers, s)
		}
		if line == "blocking" {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			break
		}
	}
	err = cmd.Wait()
	if mode == "return" && err != nil {
		t.Fatalf("helper failed: %v\n%s", err, transcript.String())
	}
	if len(servers) != 2 {
		t.Fatalf("helper reported %d servers:\n%s", len(servers), transcript.String())
	}
	return servers
}

func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z' // a zombie is gone
}

// waitGone waits for the pid to exit: after Main it has already, after a
// kill the kernel's SIGQUIT takes a moment.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); running(pid); {
		if time.Now().After(deadline) {
			t.Fatalf("postgres %d still running", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMainStopsServers(t *testing.T) {
	t.Parallel()
	for _, s := range runHelper(t, "return") {
		if running(s.pid) {
			t.Errorf("postgres %d still running after Main returned", s.pid)
		}
		// pgdata is <tmp>/tenantrytest-*/<server>/pgdata: the whole tree goes.
		if _, err := os.Stat(filepath.Dir(filepath.Dir(s.dir))); !os.IsNotExist(err) {
			t.Errorf("temp dir of %s not removed: %v", s.dir, err)
		}
	}
}

func TestKilledBinaryIsSweptLater(t *testing.T) {
	t.Parallel()
	killed := runHelper(t, "block")
	for _, s := range killed {
		waitGone(t, s.pid)
	}
	base := filepath.Dir(filepath.Dir(killed[0].dir))
	if _, err := os.Stat(base); err != nil {
		t.Fatalf("killed binary's dir already gone: %v", err)
	}
	runHelper(t, "return") // its first server start sweeps dead binaries' dirs
	if _, err := os.Stat(base); !os.IsNotExist(err) {
		t.Fatalf("dir %s of a killed test binary not swept: %v", base, err)
	}
}

func TestEnvDatabaseURL(t *testing.T) {
	t.Parallel()
	ext := tenantrytest.Cluster(t, "external")
	admin := tenantrytest.Pool(t, ext.AdminURL())
	var extDir string
	if err := admin.QueryRow(t.Context(), "SHOW data_directory").Scan(&extDir); err != nil {
		t.Fatal(err)
	}

	servers := runHelperWith(t, "return", ext.AdminURL(),
		"^(TestHelperServers|TestNewDatabase|TestNewSchema|TestTestTx|TestPoolSearchPath)$")
	if servers[0].dir != extDir {
		t.Fatalf("shared server of the helper is %s, want the one from %s (%s)", servers[0].dir, tenantrytest.EnvDatabaseURL, extDir)
	}
	if servers[1].dir == extDir {
		t.Fatal("named cluster is the environment's server, want a local one")
	}
	// Main must leave a server it did not start running, and the tests must
	// have dropped everything they made on it.
	var leftover int
	if err := admin.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname LIKE 'tt\\_%'").Scan(&leftover); err != nil {
		t.Fatalf("external server after the helper: %v", err)
	}
	if leftover != 0 {
		t.Fatalf("%d test databases left on the external server", leftover)
	}
}
