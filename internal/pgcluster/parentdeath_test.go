package pgcluster_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/pgcluster"
)

// helperEnv makes the test binary act as a process that starts a cluster,
// reports it, and waits to be killed.
const helperEnv = "PGCLUSTER_TEST_HELPER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		c, err := pgcluster.Start(context.Background(), &pgcluster.Config{Dir: dir})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("pid", c.Pid())
		select {}
	}
	os.Exit(m.Run())
}

// alive reports whether pid runs (a zombie left unreaped by a container's
// init counts as gone).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func TestParentDeathStopsServer(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(tempDir(t), "c")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "pid ")))
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper said %q", line)
	}
	if !alive(pid) {
		t.Fatalf("postgres %d not running under the helper", pid)
	}

	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("postgres %d still running 30s after its parent was killed", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The parent-death signal follows the thread that forked the child, and
// the runtime retires threads whose locked goroutine returns. Retiring many
// threads must not take the server down.
func TestThreadChurnKeepsServer(t *testing.T) {
	t.Parallel()
	c := start(t, &pgcluster.Config{Dir: filepath.Join(tempDir(t), "c")})
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			runtime.LockOSThread()
			time.Sleep(time.Millisecond) // returns locked: the thread exits
		})
	}
	wg.Wait()
	time.Sleep(200 * time.Millisecond)
	select {
	case <-c.Done():
		t.Fatalf("server exited after thread churn: %v", c.Err())
	default:
	}
	exec1(t, c.ConnString("postgres"), "SELECT 1")
}
