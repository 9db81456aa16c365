// Package versitygw starts versitygw, an S3-compatible server, for tests:
// the posix backend on a temporary directory, internal IAM for per-tenant
// users, listening on loopback only.
//
// The binary is not vendored; .ci/install-versitygw.sh installs it. Start
// looks for it in $TENANTRY_VERSITYGW, $PATH, $(go env GOPATH)/bin and
// ${XDG_CACHE_HOME:-~/.cache}/tenantry/bin, and skips the test with a loud
// message when it is in none of them (fails it when CI=true).
//
//	srv := versitygw.Start(t)
//	// srv.Endpoint, srv.RootAccess, srv.RootSecret
package versitygw

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the versitygw release the tests are written against.
const Version = "v1.8.0"

// Server is a running versitygw.
type Server struct {
	// Endpoint is the base URL, "http://127.0.0.1:<port>".
	Endpoint string
	// Region is the region the server signs with.
	Region string
	// RootAccess and RootSecret are the root (admin) credentials.
	RootAccess, RootSecret string
	// DataDir is the posix backend's directory (buckets are directories).
	DataDir string

	cmd *exec.Cmd
	log *bytes.Buffer
}

var (
	findOnce sync.Once
	found    string
	findErr  error
)

// Find returns the path of the versitygw binary.
func Find() (string, error) {
	findOnce.Do(func() { found, findErr = find() })
	return found, findErr
}

func find() (string, error) {
	if p := os.Getenv("TENANTRY_VERSITYGW"); p != "" {
		if isExec(p) {
			return p, nil
		}
		return "", fmt.Errorf("TENANTRY_VERSITYGW=%s is not an executable", p)
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var dirs []string
	if out, err := exec.CommandContext(context.Background(), "go", "env", "GOPATH").Output(); err == nil {
		for _, d := range filepath.SplitList(strings.TrimSpace(string(out))) {
			dirs = append(dirs, filepath.Join(d, "bin"))
		}
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(home, ".cache")
		}
	}
	if cache != "" {
		dirs = append(dirs, filepath.Join(cache, "tenantry", "bin"))
	}
	for _, d := range dirs {
		if p := filepath.Join(d, "versitygw"); isExec(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("versitygw not found in $TENANTRY_VERSITYGW, $PATH or %s", strings.Join(dirs, ", "))
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Start starts a versitygw for the test and stops it when the test ends. It
// skips the test, loudly, when the binary is absent.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := Find()
	if err != nil {
		msg := fmt.Sprintf("\n"+
			"************************************************************\n"+
			"* SKIPPING S3 TESTS: %v\n"+
			"* Install it with: bash .ci/install-versitygw.sh\n"+
			"************************************************************", err)
		fmt.Fprintln(os.Stderr, msg)
		if os.Getenv("CI") == "true" {
			// CI installs it (.ci/run); a skip there would hide a broken
			// install step behind a green run.
			tb.Fatal("versitygw is required when CI=true: " + err.Error())
		}
		tb.Skip(msg)
	}
	var lastErr error
	for range 3 { // a free port can be taken between probe and listen
		s, err := start(tb, bin)
		if err == nil {
			tb.Cleanup(s.stop)
			return s
		}
		lastErr = err
	}
	tb.Fatalf("versitygw: %v", lastErr)
	return nil
}

func start(tb testing.TB, bin string) (*Server, error) {
	dir := tb.TempDir()
	data, iam := filepath.Join(dir, "data"), filepath.Join(dir, "iam")
	for _, d := range []string{data, iam} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		Endpoint:   "http://" + port,
		Region:     "us-east-1",
		RootAccess: "root" + randomHex(6),
		RootSecret: randomHex(20),
		DataDir:    data,
		log:        &bytes.Buffer{},
	}
	s.cmd = exec.CommandContext(context.Background(), bin,
		"--port", port,
		"--access", s.RootAccess, "--secret", s.RootSecret,
		"--region", s.Region,
		"--iam-dir", iam,
		"--health", "/health",
		"--quiet",
		"posix", data)
	s.cmd.SysProcAttr = sysProcAttr()
	s.cmd.Stdout = &syncWriter{b: s.log}
	s.cmd.Stderr = s.cmd.Stdout
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1) // buffered: Wait's goroutine never blocks
	go func() { exited <- s.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("exited at start: %w: %s", err, s.cmd.Stdout.(*syncWriter).String())
		default:
		}
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, s.Endpoint+"/health", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			_ = s.cmd.Process.Kill()
			return nil, fmt.Errorf("not ready after 30s (%w): %s", <-exited, s.cmd.Stdout.(*syncWriter).String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill() // already gone is fine
	}
}

// Log returns what the server printed so far.
func (s *Server) Log() string { return s.cmd.Stdout.(*syncWriter).String() }

func freePort() (string, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

type syncWriter struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
