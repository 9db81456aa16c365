package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	"github.com/tenantry/tenantry/tenant"
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

	demo            bool
	securityCheck   bool
	migrationsDir   string
	transferTimeout time.Duration
	files           fileOptions
	tls             tlsOptions
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

A request's tenant is found by, in order: with mutual TLS, the tenant
identity of its client certificate; its Host as a custom domain; a
subdomain of a base domain (acme.localhost); the X-Tenant-ID header, only
from trusted proxies; a /t/<slug>/ path prefix.

The public listener serves the reference application behind resolution:
notes (/api/v1/notes) on each tenant's PostgreSQL storage, whatever its
model, and files (/api/v1/files) in a local directory (<data-dir>/blobs) or
an S3 bucket, under per-tenant quotas and fair upload scheduling. Creating a
tenant through the admin API provisions its storage; deleting it drops it.
With the embedded default, the first start creates four demo tenants, one
per storage model, and prints curl lines to try them (--demo=false: none).

The runtime role (tenantry_app, created by provisioning) connects to each
cluster with the cluster's connection string, user replaced: the embedded
PostgreSQL trusts local connections; for other servers give it a password
(ALTER ROLE tenantry_app PASSWORD ...) and set $` + envAppPassword + `.

SIGHUP reloads the TLS certificate, key and client CA files.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("database-url") {
				o.databaseURL = a.getenv(envDatabaseURL)
			}
			if !cmd.Flags().Changed("demo") {
				o.demo = o.databaseURL == ""
			}
			o.files.fillFromEnv(cmd, a.getenv)
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
	f.BoolVar(&o.demo, "demo", false, "create the demo tenants (one per storage model) on first start (default: on with the embedded PostgreSQL)")
	f.BoolVar(&o.securityCheck, "security-check", true, "refuse to serve when the start-up check of roles, privileges and row-level security on the clusters finds a weakness (false: log the findings and serve)")
	f.StringVar(&o.migrationsDir, "migrations", "", "directory of the reference application's NNNN_name.sql migrations, for the status at /admin/v1/migrations/ (default: its provisioned schema)")
	f.DurationVar(&o.transferTimeout, "file-timeout", time.Hour, "how long one file upload or download may take (replaces the read and write timeouts on /api/v1/files)")
	o.files.flags(cmd)
	o.tls.flags(cmd)
	return cmd
}

// newLogger builds the process logger on server.NewLogHandler, so records
// logged with a tenant's context carry tenant=<slug>.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
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
	logger, err := newLogger(a.io.err, o.logFormat, o.logLevel)
	if err != nil {
		return err
	}
	trusted, err := parsePrefixes(o.trustedProxies)
	if err != nil {
		return err
	}
	if err := o.tls.validate(); err != nil {
		return err
	}
	lt, err := newListenerTLS(&o.tls, logger)
	if err != nil {
		return err
	}
	if o.transferTimeout <= 0 {
		return errors.New("--file-timeout must be positive")
	}
	src, err := loadMigrations(o.migrationsDir)
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

	files, err := newFileStack(ctx, &o.files, dataDir, pool, a.getenv, logger)
	if err != nil {
		return err
	}
	defer files.close()
	dp, err := newDataPlane(store, cache, files, src, a.getenv(envAppPassword), o.transferTimeout, logger)
	if err != nil {
		return err
	}
	defer dp.Close()

	var demo []*tenant.Tenant
	if o.demo {
		if demo, err = provisionDemo(ctx, dp.provisioner, store, dataDir); err != nil {
			return err
		}
	}

	if err := checkSecurity(ctx, store, o.securityCheck, logger); err != nil {
		return err
	}

	engine, err := newMigrationEngine(store, src, logger)
	if err != nil {
		return err
	}
	resolver, err := newResolver(cache, o, trusted, logger)
	if err != nil {
		return err
	}
	auth, err := adminAuthenticator(token, lt)
	if err != nil {
		return err
	}
	api, err := admin.New(store, &admin.Config{
		Authenticator: auth,
		Provisioner:   &tenantProvisioner{Provisioner: dp.provisioner, store: store, cache: cache, files: files.backend},
		Migrations:    engine.Handler(logger),
		Logger:        logger,
	})
	if err != nil {
		return err
	}
	scfg := &server.Config{
		Listen:      o.listen,
		AdminListen: o.adminListen,
		Routes:      dp.routes,
		Logger:      logger,
	}
	if lt != nil {
		scfg.PublicTLS, scfg.AdminTLS = lt.public, lt.admin
		if lt.run != nil {
			go lt.run(ctx)
		}
		stopReload := reloadOnHangup(ctx, lt.reload, logger)
		defer stopReload()
	}
	srv, err := server.New(server.Deps{Catalog: cache, Resolve: resolver, Admin: api}, scfg)
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	logger.InfoContext(ctx, "serving the reference application", "files", files.describe, "demo_tenants", len(demo), "migrations_head", src.Head())
	a.banner(srv, dataDir, token, generated, o, files, demo)
	return srv.Run(ctx)
}

// reloadOnHangup calls reload on every SIGHUP until ctx ends or the
// returned function is called.
func reloadOnHangup(ctx context.Context, reload func() error, logger *slog.Logger) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				if err := reload(); err != nil {
					logger.ErrorContext(ctx, "SIGHUP: reloading the TLS files failed; the previous certificate stays", "error", err)
				} else {
					logger.InfoContext(ctx, "SIGHUP: TLS files reloaded")
				}
			case <-ctx.Done():
				return
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

// banner tells the user what runs where, the admin token the one time it
// is generated, and the curl lines that try the demo tenants.
func (a *app) banner(srv *server.Server, dataDir, token string, generated bool, o *serveOptions, files *fileStack, demo []*tenant.Tenant) {
	w := a.io.out
	pub := srv.PublicAddr().(*net.TCPAddr)
	adm := srv.AdminAddr().String()
	scheme := o.tls.scheme()
	fmt.Fprintf(w, "Tenantry is serving.\n  public: %s://localhost:%d  (try: curl -H 'Host: acme.%s' %s/api/v1/tenant)\n  admin:  %s://%s\n  files:  %s (%s)\n",
		scheme, pub.Port, o.baseDomains[0], publicBase(scheme, pub.Port), scheme, adm, files.describe, o.files.quotaSummary())
	if o.tls.enabled() {
		fmt.Fprintf(w, "  TLS:    client certificates %s (trust domain %s); SIGHUP reloads the files\n", o.tls.clientCerts, o.tls.trustDomain)
	}
	if generated {
		fmt.Fprintf(w, "\nAdmin token (saved to %s, shown only this once):\n\n  %s\n", filepath.Join(dataDir, tokenFileName), token)
	}
	if o.tls.enabled() && len(demo) > 0 {
		fmt.Fprintf(w, "\n(with TLS, add --cacert <CA bundle> to the curl lines below%s)\n",
			map[bool]string{true: ", and --cert/--key of a client certificate", false: ""}[o.tls.clientCerts == clientCertsRequire])
	}
	writeDemo(w, demo, o.baseDomains[0], publicBase(scheme, pub.Port))
	if !generated && len(demo) == 0 {
		return
	}
	fmt.Fprintln(w)
}

// publicBase is the public listener as curl lines name it.
func publicBase(scheme string, port int) string {
	if scheme == "http" {
		return fmt.Sprintf("localhost:%d", port)
	}
	return fmt.Sprintf("%s://localhost:%d", scheme, port)
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
