package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tenantry/tenantry/admin"
)

// Environment variables the CLI reads.
const (
	envDatabaseURL = "TENANTRY_DATABASE_URL"
	envAdminToken  = "TENANTRY_ADMIN_TOKEN" //nolint:gosec // the name of a variable, not a credential
	envAdminURL    = "TENANTRY_ADMIN_URL"
	envDataDir     = "TENANTRY_DATA_DIR"
	envAdminCA     = "TENANTRY_ADMIN_CA"
	envAdminCert   = "TENANTRY_ADMIN_CERT"
	envAdminKey    = "TENANTRY_ADMIN_KEY"
)

// Defaults a user can rely on.
const (
	defaultDataDir  = "./.tenantry"
	defaultAdminURL = "http://127.0.0.1:8081"
	tokenFileName   = "admin-token"
)

type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// app holds what every command shares: I/O, the environment and the global
// flags.
type app struct {
	io     stdio
	getenv func(string) string

	dataDir  string
	adminURL string
	reason   string
	output   string

	// TLS of the admin API client: a CA bundle that verifies an https
	// admin URL, and an admin client certificate for mutual TLS.
	adminCA, adminCert, adminKey string

	// closers run when the command has finished, last first.
	closers []func()
}

// run executes the CLI and returns the process exit code.
func run(ctx context.Context, args []string, io stdio, getenv func(string) string) int {
	a := &app{io: io, getenv: getenv}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(io.in)
	root.SetOut(io.out)
	root.SetErr(io.err)
	err := root.ExecuteContext(ctx)
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	if err != nil {
		fmt.Fprintln(io.err, "tenantry:", a.explain(err))
		return 1
	}
	return 0
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "tenantry",
		Short: "Multi-tenant backend toolkit on PostgreSQL",
		Long: `Tenantry serves multi-tenant applications on PostgreSQL.

  tenantry serve                                   run the server (embedded PostgreSQL under ./.tenantry)
  tenantry tenant create acme --domain acme.example.com
  tenantry tenant list
  curl -H 'Host: acme.localhost' localhost:8080/api/v1/tenant

Client commands talk to the admin API of a running "tenantry serve"
(--admin-url, default ` + defaultAdminURL + `) with the admin token from
$` + envAdminToken + ` or <data-dir>/` + tokenFileName + `.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	f := root.PersistentFlags()
	f.StringVar(&a.dataDir, "data-dir", a.envOr(envDataDir, defaultDataDir), "directory of the embedded PostgreSQL and the admin token ($"+envDataDir+")")
	f.StringVar(&a.adminURL, "admin-url", a.envOr(envAdminURL, defaultAdminURL), "admin API of a running tenantry serve ($"+envAdminURL+")")
	f.StringVar(&a.reason, "reason", "", "why: recorded in the audit log with the change")
	f.StringVarP(&a.output, "output", "o", "table", "output format of client commands: table or json")
	f.StringVar(&a.adminCA, "admin-ca", a.getenv(envAdminCA), "PEM CA bundle that verifies an https --admin-url ($"+envAdminCA+")")
	f.StringVar(&a.adminCert, "admin-cert", a.getenv(envAdminCert), "PEM admin client certificate for a mutual-TLS admin listener ($"+envAdminCert+"); a token is then not needed")
	f.StringVar(&a.adminKey, "admin-key", a.getenv(envAdminKey), "PEM private key of --admin-cert ($"+envAdminKey+")")

	root.AddCommand(a.serveCommand(), a.tenantCommand(), a.clusterCommand(), a.auditCommand(),
		a.migrateCommand(), a.benchCommand(), a.checkCommand(), newCertsCmd())
	return root
}

func (a *app) envOr(name, def string) string {
	if v := a.getenv(name); v != "" {
		return v
	}
	return def
}

// client returns an admin API client with the token from the environment
// or the data directory.
func (a *app) client() (*admin.Client, error) {
	if a.output != "table" && a.output != "json" {
		return nil, fmt.Errorf("--output must be table or json, not %q", a.output)
	}
	hc, err := a.adminHTTPClient()
	if err != nil {
		return nil, err
	}
	token := strings.TrimSpace(a.getenv(envAdminToken))
	if token == "" && a.adminCert == "" {
		path := filepath.Join(a.dataDir, tokenFileName)
		b, err := os.ReadFile(path) //nolint:gosec // path is the operator's own data directory
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("no admin token: set $%s, or run where `tenantry serve` keeps its data (%s not found; see --data-dir)", envAdminToken, path)
		case err != nil:
			return nil, fmt.Errorf("reading the admin token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	c, err := admin.NewClient(a.adminURL, token, hc)
	if err != nil {
		return nil, err
	}
	c.Reason = a.reason
	return c, nil
}

// adminHTTPClient returns the HTTP client of admin API calls: with
// --admin-ca, trusting that CA for an https admin URL; with --admin-cert,
// presenting that client certificate.
func (a *app) adminHTTPClient() (*http.Client, error) {
	hc := &http.Client{Timeout: httpTimeout}
	if a.adminCA == "" && a.adminCert == "" && a.adminKey == "" {
		return hc, nil
	}
	if (a.adminCert == "") != (a.adminKey == "") {
		return nil, errors.New("--admin-cert and --admin-key go together")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if a.adminCA != "" {
		pem, err := os.ReadFile(a.adminCA)
		if err != nil {
			return nil, fmt.Errorf("--admin-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--admin-ca %s holds no PEM certificate", a.adminCA)
		}
	}
	if a.adminCert != "" {
		pair, err := tls.LoadX509KeyPair(a.adminCert, a.adminKey)
		if err != nil {
			return nil, fmt.Errorf("--admin-cert: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	hc.Transport = &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	return hc, nil
}

// explain turns an error into a message that says what to do.
func (a *app) explain(err error) string {
	var (
		unreachable *admin.UnreachableError
		apiErr      *admin.Error
	)
	switch {
	case errors.As(err, &unreachable):
		return fmt.Sprintf("cannot reach the admin API at %s: is `tenantry serve` running? (%v)", unreachable.URL, unreachable.Err)
	case errors.As(err, &apiErr):
		switch apiErr.Code {
		case admin.CodeUnauthenticated:
			return fmt.Sprintf("the admin API at %s refused the token: set $%s to the token `tenantry serve` printed, or point --data-dir at its data directory", a.adminURL, envAdminToken)
		case admin.CodeExists:
			return fmt.Sprintf("that %s is already taken (409 %s)", apiErr.Field, apiErr.Code)
		case admin.CodeVersionConflict:
			return "the tenant changed while this command ran; run it again (409 version_conflict)"
		}
		msg := apiErr.Detail
		if msg == "" {
			msg = apiErr.Title
		}
		if apiErr.Field != "" {
			msg = apiErr.Field + ": " + msg
		}
		return fmt.Sprintf("%s (%d %s)", msg, apiErr.Status, apiErr.Code)
	}
	return err.Error()
}
