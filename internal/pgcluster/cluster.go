package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Names of the files Start keeps in Config.Dir.
const (
	dataDirName = "pgdata"
	logFileName = "postgres.log"
	portFile    = "port"
)

// ErrAlreadyRunning is returned (wrapped) when another postgres already
// serves Config.Dir.
var ErrAlreadyRunning = errors.New("a PostgreSQL server is already running on this directory")

// Cluster is a running PostgreSQL server started by Start. Its methods are
// safe for concurrent use.
type Cluster struct {
	cfg    *Config
	port   int
	logger *slog.Logger

	proc   *os.Process
	done   chan struct{} // closed when postgres has exited
	exitMu sync.Mutex
	exit   error // postgres's exit status, once done is closed

	stopOnce sync.Once
	stopErr  error
}

// Start runs the cluster in cfg.Dir, creating it with initdb if
// Dir/pgdata does not exist, and returns once it accepts connections. The
// server is a child process: call Stop to shut it down; if this process dies
// first, the kernel sends it SIGQUIT.
func Start(ctx context.Context, cfg *Config) (*Cluster, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	pgdata := filepath.Join(cfg.Dir, dataDirName)
	if cfg.BinDir == "" {
		ver, _ := os.ReadFile(filepath.Join(pgdata, "PG_VERSION"))
		dir, err := findBinDir(strings.TrimSpace(string(ver)))
		if err != nil {
			return nil, fmt.Errorf("pgcluster: %w", err)
		}
		cfg.BinDir = dir
	} else if err := checkBinDir(cfg.BinDir); err != nil {
		return nil, fmt.Errorf("pgcluster: Config.BinDir: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()

	who, err := lookupRunAs()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	rotateLog(filepath.Join(cfg.Dir, logFileName))
	logFile, err := os.OpenFile(filepath.Join(cfg.Dir, logFileName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	if err := who.prepareDir(cfg.Dir); err != nil {
		return nil, err
	}

	switch _, err := os.Stat(filepath.Join(pgdata, "PG_VERSION")); {
	case err == nil:
		if err := removeStaleLocks(cfg.Dir, pgdata); err != nil {
			return nil, err
		}
	case errors.Is(err, os.ErrNotExist):
		if _, err := os.Stat(pgdata); err == nil {
			return nil, fmt.Errorf("pgcluster: %s exists but is not a PostgreSQL data directory (no PG_VERSION); move it away", pgdata)
		}
		began := time.Now()
		if err := initdb(ctx, cfg, who, pgdata); err != nil {
			return nil, err
		}
		cfg.Logger.Info("pgcluster: initdb done", "dir", pgdata, "elapsed", time.Since(began))
	default:
		return nil, fmt.Errorf("pgcluster: %w", err)
	}

	// A port chosen here may be taken by someone else before postgres binds
	// it; then try another. A port the caller asked for is not replaced.
	preferred, chosen := cfg.Port, cfg.Port == 0
	if chosen {
		preferred = rememberedPort(cfg.Dir)
	}
	const attempts = 5
	for attempt := 1; ; attempt++ {
		port := cfg.Port
		if chosen {
			if port, err = freePort(ctx, preferred); err != nil {
				return nil, fmt.Errorf("pgcluster: picking a free port: %w", err)
			}
			preferred = 0
		}
		c, err := launch(ctx, cfg, who, logFile, port)
		if err == nil {
			if err := os.WriteFile(filepath.Join(cfg.Dir, portFile), []byte(strconv.Itoa(port)+"\n"), 0o644); err != nil {
				cfg.Logger.Warn("pgcluster: cannot remember port", "err", err)
			}
			return c, nil
		}
		var be *bindError
		if !chosen || !errors.As(err, &be) || attempt == attempts {
			return nil, err
		}
		cfg.Logger.Info("pgcluster: port taken, retrying", "port", port)
	}
}

// initdb creates the data directory in a sibling temp dir and renames it into
// place, so a failed or interrupted initdb never leaves a half-made pgdata
// that a later Start would try to reuse.
func initdb(ctx context.Context, cfg *Config, who runAs, pgdata string) error {
	tmp := pgdata + ".initdb"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	args := []string{"-D", tmp, "--auth=trust", "-U", "postgres", "-E", "UTF8", "--locale=C"}
	if !cfg.Durable {
		args = append(args, "--no-sync")
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(cfg.BinDir, "initdb"), args...)
	cmd.Dir = cfg.Dir
	cmd.Env = serverEnv()
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = who.attr()
	// initdb runs postgres children in its process group (attr sets
	// Setpgid): when ctx ends, kill the whole group, or an orphaned child
	// would keep the output pipe open and Wait with it.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	exited, err := startLocked(cmd, syscall.SIGKILL)
	if err != nil {
		return fmt.Errorf("pgcluster: running initdb: %w", err)
	}
	if err := <-exited; err != nil {
		_ = os.RemoveAll(tmp)
		if ctx.Err() != nil {
			return fmt.Errorf("pgcluster: initdb did not finish: %w", ctx.Err())
		}
		return fmt.Errorf("pgcluster: initdb failed (%w):\n%s", err, strings.TrimSpace(out.String()))
	}
	if err := os.Rename(tmp, pgdata); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return nil
}

// bindError marks a start that failed because the port was taken.
type bindError struct{ err error }

func (e *bindError) Error() string { return e.err.Error() }
func (e *bindError) Unwrap() error { return e.err }

// launch runs postgres on port and waits until it accepts connections.
func launch(ctx context.Context, cfg *Config, who runAs, logFile *os.File, port int) (*Cluster, error) {
	logStart, _ := logFile.Seek(0, io.SeekEnd)
	// The server outlives ctx, which bounds only the wait for readiness (and
	// is cancelled when Start returns): exec.CommandContext would kill it
	// then. Stop ends it, and Pdeathsig if this process dies first.
	cmd := exec.Command(filepath.Join(cfg.BinDir, "postgres"), serverArgs(cfg, port)...) //nolint:noctx // the server outlives ctx; Stop ends it
	cmd.Dir = cfg.Dir
	cmd.Env = serverEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = who.attr()
	// SIGQUIT is postgres's immediate shutdown: the postmaster kills its
	// backends and exits, releasing the port and shared memory.
	exited, err := startLocked(cmd, syscall.SIGQUIT)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: running postgres: %w", err)
	}
	c := &Cluster{cfg: cfg, port: port, logger: cfg.Logger, proc: cmd.Process, done: make(chan struct{})}
	go func() {
		err := <-exited
		c.exitMu.Lock()
		c.exit = err
		c.exitMu.Unlock()
		close(c.done)
	}()

	began := time.Now()
	if err := c.waitReady(ctx); err != nil {
		_ = c.Stop(context.Background())
		tail := logTail(filepath.Join(cfg.Dir, logFileName), logStart)
		err = fmt.Errorf("pgcluster: postgres in %s did not start on port %d: %w\nserver log (%s):\n%s",
			cfg.Dir, port, err, filepath.Join(cfg.Dir, logFileName), tail)
		if strings.Contains(tail, "could not bind") || strings.Contains(tail, "could not create any TCP/IP sockets") {
			return nil, &bindError{err}
		}
		return nil, err
	}
	c.logger.Info("pgcluster: started", "dir", cfg.Dir, "port", port, "pid", cmd.Process.Pid, "elapsed", time.Since(began))
	return c, nil
}

// waitReady polls until a connection succeeds, the server exits, or ctx ends.
func (c *Cluster) waitReady(ctx context.Context) error {
	var last error
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(attemptCtx, c.ConnString("postgres"))
		cancel()
		if err == nil {
			return conn.Close(ctx)
		}
		last = err
		select {
		case <-c.done:
			if err := c.Err(); err != nil {
				return fmt.Errorf("postgres exited: %w", err)
			}
			return errors.New("postgres exited")
		case <-ctx.Done():
			return fmt.Errorf("%w (last connection error: %w)", ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// serverArgs are postgres's arguments: Tenantry's settings, then the
// caller's, which win.
func serverArgs(cfg *Config, port int) []string {
	settings := map[string]string{
		"listen_addresses":          "127.0.0.1",
		"port":                      strconv.Itoa(port),
		"unix_socket_directories":   cfg.Dir,
		"max_connections":           strconv.Itoa(cfg.MaxConnections),
		"max_locks_per_transaction": "256",
		"shared_buffers":            "128MB",
		"logging_collector":         "off",
	}
	if !cfg.Durable {
		settings["fsync"] = "off"
		settings["synchronous_commit"] = "off"
		settings["full_page_writes"] = "off"
	}
	for k, v := range cfg.Settings {
		settings[k] = v
	}
	names := make([]string, 0, len(settings))
	for k := range settings {
		names = append(names, k)
	}
	sort.Strings(names)
	args := []string{"-D", filepath.Join(cfg.Dir, dataDirName)}
	for _, k := range names {
		args = append(args, "-c", k+"="+settings[k])
	}
	return args
}

// serverEnv is the caller's environment without libpq variables (which could
// point initdb or postgres elsewhere) and with C messages.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// ConnString returns a URL for database on this cluster as the postgres
// superuser over TCP.
func (c *Cluster) ConnString(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Port returns the TCP port the cluster listens on (127.0.0.1).
func (c *Cluster) Port() int { return c.port }

// Dir returns the cluster's directory (Config.Dir, absolute).
func (c *Cluster) Dir() string { return c.cfg.Dir }

// Pid returns the process id of the postmaster.
func (c *Cluster) Pid() int { return c.proc.Pid }

// Done is closed when the server process has exited, after Stop or not.
func (c *Cluster) Done() <-chan struct{} { return c.done }

// Err returns the server's exit status once Done is closed, nil before.
func (c *Cluster) Err() error {
	c.exitMu.Lock()
	defer c.exitMu.Unlock()
	return c.exit
}

// Stop shuts the server down: a fast shutdown (SIGINT: open sessions are
// ended, then a checkpoint), escalated to an immediate shutdown (SIGQUIT)
// after Config.StopTimeout or when ctx ends, and to SIGKILL if even that does
// not end it. It returns when the process has exited. Calling it again
// returns the first call's result.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() { c.stopErr = c.stop(ctx) })
	return c.stopErr
}

func (c *Cluster) stop(ctx context.Context) error {
	select {
	case <-c.done:
		if err := c.Err(); err != nil {
			return fmt.Errorf("pgcluster: postgres had already exited: %w", err)
		}
		return nil
	default:
	}
	began := time.Now()
	_ = c.proc.Signal(syscall.SIGINT)
	timer := time.NewTimer(c.cfg.StopTimeout)
	defer timer.Stop()
	select {
	case <-c.done:
		c.logger.Info("pgcluster: stopped", "dir", c.cfg.Dir, "elapsed", time.Since(began))
		return nil
	case <-timer.C:
	case <-ctx.Done():
	}
	c.logger.Warn("pgcluster: fast shutdown too slow, sending SIGQUIT", "dir", c.cfg.Dir)
	_ = c.proc.Signal(syscall.SIGQUIT)
	select {
	case <-c.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = c.proc.Kill()
	<-c.done
	return fmt.Errorf("pgcluster: postgres in %s ignored SIGINT and SIGQUIT and was killed", c.cfg.Dir)
}

// freePort returns preferred if it is free on 127.0.0.1, else a port the
// kernel picks.
func freePort(ctx context.Context, preferred int) (int, error) {
	var lc net.ListenConfig
	if preferred > 0 {
		if l, err := lc.Listen(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(preferred))); err == nil {
			_ = l.Close()
			return preferred, nil
		}
	}
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// rememberedPort is the port of a previous run in dir, or 0.
func rememberedPort(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, portFile))
	if err != nil {
		return 0
	}
	p, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || p <= 0 || p > 65535 {
		return 0
	}
	return p
}

// maxLogSize is the size past which Start moves the server log to
// postgres.log.1 (replacing an older one) before appending to a new one.
const maxLogSize = 16 << 20

func rotateLog(path string) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > maxLogSize {
		_ = os.Rename(path, path+".1")
	}
}

// logTail returns the last lines of the log written since offset.
func logTail(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	const tailBytes = 4096
	if fi, err := f.Stat(); err == nil && fi.Size()-offset > tailBytes {
		offset = fi.Size() - tailBytes
	}
	buf := make([]byte, tailBytes)
	n, _ := f.ReadAt(buf, offset)
	lines := strings.Split(strings.TrimRight(string(buf[:n]), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}
