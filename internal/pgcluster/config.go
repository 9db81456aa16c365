package pgcluster

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"
)

// Config says where and how to run a cluster. The zero value of every field
// but Dir selects its documented default; Start applies WithDefaults itself.
type Config struct {
	// Dir is the parent of the cluster's files: the data directory is
	// Dir/pgdata, the unix socket, server log and remembered port live in
	// Dir itself. It is created (0755) if absent. Required.
	Dir string

	// Port is the TCP port on 127.0.0.1. Default 0: reuse the port
	// remembered in Dir from a previous run if it is still free, otherwise
	// pick a free one.
	Port int

	// BinDir holds initdb and postgres. Default: the highest version under
	// /usr/lib/postgresql/*/bin, else `pg_config --bindir`, else the
	// directory of initdb found in PATH.
	BinDir string

	// Settings are extra postgresql.conf settings passed as `-c name=value`;
	// they override the ones Start chooses. Default none.
	Settings map[string]string

	// Durable keeps PostgreSQL's crash safety. Default false: fsync,
	// synchronous_commit and full_page_writes are off, which is what tests
	// want and what a real deployment must never use.
	Durable bool

	// MaxConnections is max_connections. Default 300.
	MaxConnections int

	// StartTimeout bounds initdb plus the wait until the server accepts
	// connections. Default 60s.
	StartTimeout time.Duration

	// StopTimeout is how long Stop waits after a fast shutdown (SIGINT)
	// before it escalates to an immediate shutdown (SIGQUIT). Default 30s.
	StopTimeout time.Duration

	// Logger receives start/stop records. Default: discard.
	Logger *slog.Logger
}

// Defaults of the Config fields.
const (
	DefaultMaxConnections = 300
	DefaultStartTimeout   = 60 * time.Second
	DefaultStopTimeout    = 30 * time.Second
)

// WithDefaults returns a copy of c with every unset field at its default.
// Dir is made absolute. BinDir is left empty here and detected by Start.
func (c *Config) WithDefaults() *Config {
	out := &Config{}
	if c != nil {
		*out = *c
	}
	if out.Dir != "" {
		if abs, err := filepath.Abs(out.Dir); err == nil {
			out.Dir = abs
		}
	}
	if out.MaxConnections == 0 {
		out.MaxConnections = DefaultMaxConnections
	}
	if out.StartTimeout == 0 {
		out.StartTimeout = DefaultStartTimeout
	}
	if out.StopTimeout == 0 {
		out.StopTimeout = DefaultStopTimeout
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return out
}

// maxSocketPath is the usable length of sun_path on Linux (108 with NUL).
const maxSocketPath = 107

func (c *Config) validate() error {
	if c.Dir == "" {
		return errors.New("pgcluster: Config.Dir is required")
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("pgcluster: Config.Port %d out of range 0-65535", c.Port)
	}
	if c.MaxConnections < 1 {
		return fmt.Errorf("pgcluster: Config.MaxConnections %d must be positive", c.MaxConnections)
	}
	if c.StartTimeout < 0 || c.StopTimeout < 0 {
		return errors.New("pgcluster: Config timeouts must not be negative")
	}
	// PostgreSQL names its socket Dir/.s.PGSQL.<port>; the kernel limits the
	// whole path, and the server only says "path too long" in its log.
	if n := len(filepath.Join(c.Dir, ".s.PGSQL.65535")); n > maxSocketPath {
		return fmt.Errorf("pgcluster: Config.Dir %q is too long for a unix socket path (%d > %d bytes); use a shorter directory", c.Dir, n, maxSocketPath)
	}
	for name, value := range c.Settings {
		if !validSettingName(name) {
			return fmt.Errorf("pgcluster: Config.Settings: invalid setting name %q", name)
		}
		for i := 0; i < len(value); i++ {
			if value[i] == 0 || value[i] == '\n' || value[i] == '\r' {
				return fmt.Errorf("pgcluster: Config.Settings[%q]: value contains a NUL or line break", name)
			}
		}
	}
	return nil
}

// validSettingName accepts PostgreSQL GUC names: letters, digits, '_' and
// '.' (for extension settings), starting with a letter or '_'.
func validSettingName(name string) bool {
	if name == "" || len(name) > 63 {
		return false
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b == '_':
		case (b >= '0' && b <= '9') || b == '.':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}
