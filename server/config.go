package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Defaults of the Config fields.
const (
	DefaultListen            = ":8080"
	DefaultAdminListen       = "127.0.0.1:8081"
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultShutdownTimeout   = 25 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
)

// Config configures a Server. The zero value of every field selects its
// documented default.
type Config struct {
	// Listen is the public listener's address. Default ":8080".
	Listen string

	// AdminListen is the admin listener's address. Default
	// "127.0.0.1:8081": loopback only, so the admin API is not reachable
	// from the network unless the operator says so.
	AdminListen string

	// PublicTLS, when set, makes the public listener serve TLS with it
	// (with ClientAuth set, the client-certificate resolution strategy can
	// read r.TLS). Default nil: plain HTTP.
	PublicTLS *tls.Config

	// AdminTLS, when set, makes the admin listener serve TLS with it, for
	// example requiring client certificates for mTLS admin identities.
	// Default nil: plain HTTP.
	AdminTLS *tls.Config

	// ReadHeaderTimeout bounds reading a request's headers. Default 10s.
	ReadHeaderTimeout time.Duration

	// ReadTimeout bounds reading a whole request, body included. Default 30s.
	ReadTimeout time.Duration

	// WriteTimeout bounds writing a response, counted from the end of the
	// request headers. Default 60s.
	WriteTimeout time.Duration

	// IdleTimeout bounds how long a keep-alive connection waits for its
	// next request. Default 120s.
	IdleTimeout time.Duration

	// ShutdownTimeout bounds the graceful drain after Run's context ends;
	// connections still busy after it are closed. Default 25s (below the
	// 30s a container runtime usually waits between SIGTERM and SIGKILL).
	ShutdownTimeout time.Duration

	// MaxHeaderBytes caps the size of request headers. Default 64 KiB.
	MaxHeaderBytes int

	// Routes, when set, registers the application's tenant routes on the
	// public listener's tenant mux, behind resolution: every handler it
	// registers runs with the resolved tenant in its request context
	// (tenant.FromContext). GET /api/v1/tenant is registered before it is
	// called; Routes must not register "/" (unmatched paths answer a JSON
	// 404). Default nil: only GET /api/v1/tenant.
	Routes func(mux *http.ServeMux)

	// Logger receives the server's records: one per request (with the
	// tenant, when one was resolved), start, shutdown and failures. Build
	// it on NewLogHandler so records of tenant work carry the tenant.
	// Default: discard.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with every unset field at its default.
// c may be nil.
func (c *Config) WithDefaults() *Config {
	out := &Config{}
	if c != nil {
		*out = *c
	}
	if out.Listen == "" {
		out.Listen = DefaultListen
	}
	if out.AdminListen == "" {
		out.AdminListen = DefaultAdminListen
	}
	if out.ReadHeaderTimeout == 0 {
		out.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if out.ReadTimeout == 0 {
		out.ReadTimeout = DefaultReadTimeout
	}
	if out.WriteTimeout == 0 {
		out.WriteTimeout = DefaultWriteTimeout
	}
	if out.IdleTimeout == 0 {
		out.IdleTimeout = DefaultIdleTimeout
	}
	if out.ShutdownTimeout == 0 {
		out.ShutdownTimeout = DefaultShutdownTimeout
	}
	if out.MaxHeaderBytes == 0 {
		out.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return out
}

func (c *Config) validate() error {
	for name, addr := range map[string]string{"Listen": c.Listen, "AdminListen": c.AdminListen} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("server: Config.%s %q is not a host:port address: %w", name, addr, err)
		}
	}
	if _, port, _ := net.SplitHostPort(c.Listen); c.Listen == c.AdminListen && port != "0" {
		return fmt.Errorf("server: Config.Listen and Config.AdminListen are both %q; the admin API needs its own listener", c.Listen)
	}
	if c.ReadHeaderTimeout < 0 || c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.IdleTimeout < 0 || c.ShutdownTimeout < 0 {
		return errors.New("server: Config timeouts must not be negative")
	}
	if c.MaxHeaderBytes < 0 {
		return errors.New("server: Config.MaxHeaderBytes must not be negative")
	}
	return nil
}
