package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/tenantry/tenantry/admin"
	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/server"
)

// httpTimeout bounds one admin API call of a client command.
const httpTimeout = 30 * time.Second

// serveOptions are the flags of tenantry serve.
type serveOptions struct {
	listen, adminListen string
	databaseURL         string
	baseDomains         []string
	trustedProxies      []string
	tenantHeader        string
	pathPrefix          string
	resolveMode         string
	logFormat, logLevel string
}

func (a *app) serveCommand() *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the public and admin listeners (embedded PostgreSQL unless --database-url)",
		Long: `Run Tenantry: the public listener, where requests are resolved to their
tenant, and the admin listener with the admin API.

With no database configured, serve starts its own PostgreSQL under
<data-dir>/pg (created on first run, kept across runs, stopped on exit) from
the machine's PostgreSQL server binaries. --database-url or $` + envDatabaseURL + `
points it at an existing server instead.

The admin token comes from $` + envAdminToken + `, or is generated once into
<data-dir>/` + tokenFileName + ` (mode 0600) and printed at that first start.

A request's tenant is found by, in order: its Host as a custom domain; a
subdomain of a base domain (acme.localhost); the X-Tenant-ID header, only
from trusted proxies; a /t/<slug>/ path prefix.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("database-url") {
				o.databaseURL = a.getenv(envDatabaseURL)
			}
			return a.serve(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", server.DefaultListen, "public listener address")
	f.StringVar(&o.adminListen, "admin-listen", server.DefaultAdminListen, "admin listener address (keep it on loopback or a private network)")
	f.StringVar(&o.databaseURL, "database-url", "", "PostgreSQL URL of the catalog database ($"+envDatabaseURL+"); default: embedded PostgreSQL under <data-dir>/pg")
	f.StringArrayVar(&o.baseDomains, "base-domain", []string{"localhost"}, "base domain whose subdomains are tenant slugs (repeatable)")
	f.StringArrayVar(&o.trustedProxies, "trusted-proxy", []string{"127.0.0.0/8", "::1/128"}, "CIDR of proxies trusted to set the tenant header (repeatable)")
	f.StringVar(&o.tenantHeader, "tenant-header", "X-Tenant-ID", "header carrying the tenant slug or ID from trusted proxies")
	f.StringVar(&o.pathPrefix, "path-prefix", "/t/", "path prefix before the tenant slug")
	f.StringVar(&o.resolveMode, "resolve-mode", "require-agreement", "require-agreement (sources that name a tenant must agree, else 403) or first-match")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// newLogger builds the process logger on server.NewLogHandler, so records
// logged with a tenant's context carry tenant=<slug>.
func newLogger(w *os.File, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level must be debug, info, warn or error, not %q", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
	}
	return slog.New(server.NewLogHandler(h)), nil
}

func parsePrefixes(cidrs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, c := range cidrs {
		for _, part := range strings.Split(c, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			p, err := netip.ParsePrefix(part)
			if err != nil {
				if addr, aerr := netip.ParseAddr(part); aerr == nil {
					p = netip.PrefixFrom(addr, addr.BitLen())
				} else {
					return nil, fmt.Errorf("--trusted-proxy %q is not a CIDR like 10.0.0.0/8 or an IP address", part)
				}
			}
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

// serve runs until SIGINT or SIGTERM, then drains and stops everything it
// started, the embedded PostgreSQL last.
func (a *app) serve(ctx context.Context, o *serveOptions) (err error) {
	logOut, ok := a.io.err.(*os.File)
	if !ok {
		logOut = os.Stderr
	}
	logger, err := newLogger(logOut, o.logFormat, o.logLevel)
	if err != nil {
		return err
	}
	trusted, err := parsePrefixes(o.trustedProxies)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	dataDir, err := filepath.Abs(a.dataDir)
	if err != nil {
		return err
	}

	dbURL := o.databaseURL
	var embedded *embeddedPostgres
	if dbURL == "" {
		embedded, err = startEmbedded(ctx, dataDir, logger)
		if err != nil {
			return err
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
			defer cancel()
			if serr := embedded.stop(stopCtx); serr != nil && err == nil {
				err = serr
			}
		}()
		dbURL = embedded.catalogURL
	}

	token, generated, err := a.adminToken(dataDir)
	if err != nil {
		return err
	}

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("catalog database URL: %w", err)
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("cannot connect to the catalog database: %w", err)
	}
	catalogCfg := &catalog.Config{Logger: logger}
	store, err := catalog.NewStore(pool, catalogCfg)
	if err != nil {
		return err
	}
	if _, err := store.Migrate(ctx); err != nil {
		return err
	}
	if embedded != nil {
		if err := embedded.register(ctx, store, logger); err != nil {
			return err
		}
	}
	cache, err := catalog.NewCache(store, catalogCfg)
	if err != nil {
		return err
	}
	if err := cache.Start(ctx); err != nil {
		return fmt.Errorf("loading the catalog: %w", err)
	}
	defer cache.Stop()

	resolver, err := newResolver(cache, o, trusted, logger)
	if err != nil {
		return err
	}
	auth, err := admin.BearerToken("admin", token)
	if err != nil {
		return fmt.Errorf("$%s: %w", envAdminToken, err)
	}
	api, err := admin.New(store, &admin.Config{Authenticator: auth, Logger: logger})
	if err != nil {
		return err
	}
	srv, err := server.New(server.Deps{Catalog: cache, Resolve: resolver, Admin: api}, &server.Config{
		Listen:      o.listen,
		AdminListen: o.adminListen,
		Logger:      logger,
	})
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	a.banner(srv, dataDir, token, generated, o)
	return srv.Run(ctx)
}

// banner tells the user what runs where, and the admin token the one time
// it is generated.
func (a *app) banner(srv *server.Server, dataDir, token string, generated bool, o *serveOptions) {
	w := a.io.out
	pub := srv.PublicAddr().(*net.TCPAddr)
	adm := srv.AdminAddr().String()
	fmt.Fprintf(w, "Tenantry is serving.\n  public: http://localhost:%d  (try: curl -H 'Host: acme.%s' localhost:%d/api/v1/tenant)\n  admin:  http://%s\n",
		pub.Port, o.baseDomains[0], pub.Port, adm)
	if generated {
		fmt.Fprintf(w, "\nAdmin token (saved to %s, shown only this once):\n\n  %s\n\n", filepath.Join(dataDir, tokenFileName), token)
	}
}

// adminToken returns the token from the environment, or the one in the
// data directory, generating it on first use.
func (a *app) adminToken(dataDir string) (token string, generated bool, err error) {
	if t := strings.TrimSpace(a.getenv(envAdminToken)); t != "" {
		return t, false, nil
	}
	path := filepath.Join(dataDir, tokenFileName)
	b, err := os.ReadFile(path) //nolint:gosec // the operator's own data directory
	if err == nil {
		t := strings.TrimSpace(string(b))
		if len(t) < admin.MinTokenLen {
			return "", false, fmt.Errorf("%s holds no usable token; delete it to have a new one generated", path)
		}
		return t, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("reading the admin token: %w", err)
	}
	if err := ensureDataDir(dataDir); err != nil {
		return "", false, err
	}
	t, err := writeNewToken(path)
	if err != nil {
		return "", false, err
	}
	return t, true, nil
}
