package tenantrytest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/internal/pgcluster"
)

// EnvDatabaseURL names the environment variable with the URL of an existing
// server to use as the shared server instead of starting one. Its role must
// be able to create databases.
const EnvDatabaseURL = "TENANTRY_TEST_DATABASE_URL"

// tempPrefix starts the name of every temp directory this package makes.
const tempPrefix = "tenantrytest-"

// Server is a PostgreSQL server shared by the tests of one test binary.
type Server struct {
	name string

	once    sync.Once
	err     error
	baseURL string             // admin URL, database "postgres" unless given by the environment
	cluster *pgcluster.Cluster // nil for a server from EnvDatabaseURL
	admin   *pgxpool.Pool      // for CREATE/DROP DATABASE
}

// Name is the name given to Cluster, or "" for the shared server.
func (s *Server) Name() string { return s.name }

// URL returns the URL of database on this server, as a superuser.
func (s *Server) URL(database string) string { return withDatabase(s.baseURL, database) }

// AdminURL returns the URL of the server's maintenance database: that of
// TENANTRY_TEST_DATABASE_URL for a server from the environment, "postgres"
// for a started one.
func (s *Server) AdminURL() string { return s.baseURL }

// registry holds the servers of this test binary.
var registry struct {
	mu      sync.Mutex
	servers map[string]*Server // "" is the shared server
	dirOnce sync.Once
	dir     string // parent of the started clusters' directories
	dirErr  error
}

// Shared returns the server shared by all tests of the binary, starting it
// on first use.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	return server(tb, "")
}

// ServerURL returns the admin URL of the shared server (see Server.AdminURL).
func ServerURL(tb testing.TB) string {
	tb.Helper()
	return Shared(tb).AdminURL()
}

// Cluster returns an extra PostgreSQL server named name (for example
// "shard-1" or "eu"), started from the local binaries on first use, on its own
// port and directory, and shared by all tests of the binary that ask for the
// same name. Names are 1 to 32 of [a-z0-9_-], starting with a letter or
// digit. Extra clusters are always local, even when TENANTRY_TEST_DATABASE_URL
// is set.
func Cluster(tb testing.TB, name string) *Server {
	tb.Helper()
	if !validClusterName(name) {
		tb.Fatalf("tenantrytest: invalid cluster name %q: use 1 to 32 of [a-z0-9_-], starting with a letter or digit", name)
	}
	return server(tb, name)
}

func validClusterName(name string) bool {
	if name == "" || len(name) > 32 {
		return false
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		switch {
		case b >= 'a' && b <= 'z', b >= '0' && b <= '9':
		case (b == '-' || b == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

func server(tb testing.TB, name string) *Server {
	tb.Helper()
	registry.mu.Lock()
	if registry.servers == nil {
		registry.servers = map[string]*Server{}
	}
	s, ok := registry.servers[name]
	if !ok {
		s = &Server{name: name}
		registry.servers[name] = s
	}
	registry.mu.Unlock()

	// Started outside registry.mu, so different servers start in parallel.
	s.once.Do(func() { s.err = s.start() })
	if s.err != nil {
		what := "shared server"
		if name != "" {
			what = fmt.Sprintf("cluster %q", name)
		}
		tb.Fatalf("tenantrytest: %s unavailable: %v", what, s.err)
	}
	return s
}

func (s *Server) start() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if env := os.Getenv(EnvDatabaseURL); env != "" && s.name == "" {
		s.baseURL = env
	} else {
		base, err := baseDir()
		if err != nil {
			return err
		}
		dir := filepath.Join(base, "shared")
		if s.name != "" {
			dir = filepath.Join(base, "cluster-"+s.name)
		}
		c, err := pgcluster.Start(ctx, &pgcluster.Config{Dir: dir})
		if err != nil {
			if s.name == "" {
				return fmt.Errorf("%w\n(or set %s to the URL of a server whose role can create databases)", err, EnvDatabaseURL)
			}
			return err
		}
		s.cluster = c
		s.baseURL = c.ConnString("postgres")
	}
	cfg, err := pgxpool.ParseConfig(s.baseURL)
	if err != nil {
		return fmt.Errorf("parsing server URL: %w", err)
	}
	cfg.MaxConns = 8
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = admin.Ping(ctx)
	}
	if err != nil {
		if admin != nil {
			admin.Close()
		}
		if s.cluster != nil {
			_ = s.cluster.Stop(context.Background())
		}
		return fmt.Errorf("connecting to %s: %w", redact(s.baseURL), err)
	}
	s.admin = admin
	return nil
}

// stop closes the admin pool and stops a started cluster.
func (s *Server) stop(ctx context.Context) error {
	if s.admin != nil {
		s.admin.Close()
	}
	if s.cluster != nil {
		return s.cluster.Stop(ctx)
	}
	return nil
}

// Main runs the tests of m, then stops every cluster this package started
// and removes their directories, and exits with the tests' status. Call it
// from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if err := shutdown(); err != nil {
		fmt.Fprintln(os.Stderr, "tenantrytest:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// shutdown stops all servers in parallel and removes the temp directory.
func shutdown() error {
	registry.mu.Lock()
	servers := make([]*Server, 0, len(registry.servers))
	for _, s := range registry.servers {
		servers = append(servers, s)
	}
	registry.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() {
			s.once.Do(func() { s.err = errors.New("tenantrytest: shut down") }) // never start after shutdown
			errs[i] = s.stop(ctx)
		})
	}
	wg.Wait()
	err := errors.Join(errs...)
	if registry.dir != "" {
		err = errors.Join(err, os.RemoveAll(registry.dir))
	}
	return err
}

// baseDir returns this binary's temp directory for clusters, created on first
// use: 0755, so that the postgres OS user can reach the clusters inside when
// the tests run as root. It also removes directories left by test binaries
// that died without Main.
func baseDir() (string, error) {
	registry.dirOnce.Do(func() {
		sweepStaleDirs()
		dir, err := os.MkdirTemp("", tempPrefix)
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644)
		}
		registry.dir, registry.dirErr = dir, err
	})
	return registry.dir, registry.dirErr
}

// sweepStaleDirs removes temp directories whose owning test binary is dead.
// Its clusters are dead too: they got SIGQUIT when it died.
func sweepStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
		if err != nil {
			continue // being created, or not ours
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(dir)
		}
	}
}

// withDatabase returns base with its database replaced, for both URL and
// keyword/value connection strings.
func withDatabase(base, database string) string {
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err == nil {
			u.Path = "/" + database
			u.RawPath = "/" + url.PathEscape(database)
			return u.String()
		}
	}
	return base + " dbname='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(database) + "'"
}

// redact hides a password in a URL for error messages.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
	}
	return s
}
