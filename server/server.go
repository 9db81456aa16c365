package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// Readiness is what /readyz asks. *catalog.Cache implements it: Ready
// returns nil while the cache can vouch for its contents.
type Readiness interface {
	Ready() error
}

// Deps are the components a Server serves.
type Deps struct {
	// Catalog decides readiness: /readyz answers 503 while Catalog.Ready
	// returns an error. Pass the started *catalog.Cache. Required.
	Catalog Readiness

	// Resolve is the tenant resolution middleware (resolve.Resolver's
	// Middleware) put in front of every tenant route of the public
	// listener. It must answer a request it cannot resolve itself and call
	// its next handler only with the tenant in the request context.
	// Required.
	Resolve func(http.Handler) http.Handler

	// Admin serves /admin/ on the admin listener (the admin API, which
	// authenticates its callers itself). Default nil: the admin listener
	// serves only /healthz and /readyz.
	Admin http.Handler
}

// Server is Tenantry's HTTP front: a public listener and an admin listener.
type Server struct {
	config *Config
	deps   Deps
	logger *slog.Logger

	public, admin *http.Server

	// draining is set when shutdown starts; /readyz then answers 503 so a
	// load balancer stops sending new requests while in-flight ones finish.
	draining atomic.Bool

	mu                sync.Mutex
	publicLn, adminLn net.Listener
	running           bool
}

// New returns a Server for deps. It does not listen yet: see Listen and Run.
func New(deps Deps, cfg *Config) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if deps.Catalog == nil {
		return nil, errors.New("server: Deps.Catalog is required")
	}
	if deps.Resolve == nil {
		return nil, errors.New("server: Deps.Resolve is required")
	}
	s := &Server{config: cfg, deps: deps, logger: cfg.Logger}
	s.public = s.httpServer(s.publicHandler(), "public")
	s.public.TLSConfig = cfg.PublicTLS
	s.admin = s.httpServer(s.adminHandler(), "admin")
	s.admin.TLSConfig = cfg.AdminTLS
	return s, nil
}

func (s *Server) httpServer(h http.Handler, name string) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.config.ReadHeaderTimeout,
		ReadTimeout:       s.config.ReadTimeout,
		WriteTimeout:      s.config.WriteTimeout,
		IdleTimeout:       s.config.IdleTimeout,
		MaxHeaderBytes:    s.config.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.logger.With("listener", name).Handler(), slog.LevelWarn),
	}
}

// PublicHandler returns the public listener's handler: /healthz, /readyz,
// and every other path through resolution to the tenant routes.
func (s *Server) PublicHandler() http.Handler { return s.public.Handler }

// AdminHandler returns the admin listener's handler: /healthz, /readyz and
// /admin/.
func (s *Server) AdminHandler() http.Handler { return s.admin.Handler }

// Listen binds both listeners, so that an address in use is reported before
// Run and a port 0 is resolved (see PublicAddr, AdminAddr). Run calls it if
// it has not been called.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.publicLn != nil {
		return errors.New("server: already listening")
	}
	var lc net.ListenConfig
	pub, err := lc.Listen(context.Background(), "tcp", s.config.Listen)
	if err != nil {
		return fmt.Errorf("server: public listener: %w", err)
	}
	adm, err := lc.Listen(context.Background(), "tcp", s.config.AdminListen)
	if err != nil {
		_ = pub.Close()
		return fmt.Errorf("server: admin listener: %w", err)
	}
	s.publicLn, s.adminLn = pub, adm
	return nil
}

// PublicAddr returns the public listener's address, or nil before Listen.
func (s *Server) PublicAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.publicLn == nil {
		return nil
	}
	return s.publicLn.Addr()
}

// AdminAddr returns the admin listener's address, or nil before Listen.
func (s *Server) AdminAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.adminLn == nil {
		return nil
	}
	return s.adminLn.Addr()
}

// Run serves both listeners until ctx ends, then shuts down gracefully:
// /readyz starts answering 503, the listeners stop accepting, and Run waits
// up to Config.ShutdownTimeout for in-flight requests to finish before it
// closes what remains. It returns nil after a shutdown caused by ctx, or the
// error of a listener that failed (after shutting the other one down).
//
// Run does not handle signals itself: give it a context from
// signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM).
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("server: Run called twice")
	}
	s.running = true
	listening := s.publicLn != nil
	s.mu.Unlock()
	if !listening {
		if err := s.Listen(); err != nil {
			return err
		}
	}

	errc := make(chan error, 2)
	var wg sync.WaitGroup
	serve := func(name string, srv *http.Server, ln net.Listener) {
		defer wg.Done()
		var err error
		if srv.TLSConfig != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("server: %s listener: %w", name, err)
		}
	}
	wg.Add(2)
	go serve("public", s.public, s.publicLn)
	go serve("admin", s.admin, s.adminLn)
	s.logger.InfoContext(ctx, "listening", "public", s.publicLn.Addr().String(), "admin", s.adminLn.Addr().String())

	var runErr error
	select {
	case <-ctx.Done():
		s.logger.InfoContext(ctx, "shutting down: draining in-flight requests", "timeout", s.config.ShutdownTimeout)
	case runErr = <-errc:
		s.logger.ErrorContext(ctx, "listener failed; shutting down", "error", runErr)
	}
	err := s.shutdown(context.WithoutCancel(ctx))
	wg.Wait()
	if runErr != nil {
		return runErr
	}
	return err
}

// shutdown drains both listeners at once within the shutdown timeout.
func (s *Server) shutdown(ctx context.Context) error {
	s.draining.Store(true)
	ctx, cancel := context.WithTimeout(ctx, s.config.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, srv := range []*http.Server{s.public, s.admin} {
		wg.Go(func() {
			if err := srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
				errs[i] = fmt.Errorf("server: connections still busy after %s were closed: %w", s.config.ShutdownTimeout, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		s.logger.WarnContext(ctx, "shutdown was not clean", "error", err)
		return err
	}
	s.logger.InfoContext(ctx, "shut down")
	return nil
}
