package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantry/tenantry/certs"
)

// Defaults of `tenantry certs`.
const (
	// defaultTrustDomain is the SPIFFE trust domain of a development CA.
	defaultTrustDomain = "tenantry.local"
	// pkiDirName is the CA directory under the data directory.
	pkiDirName = "pki"
)

// newCertsCmd returns `tenantry certs`: a development certificate authority
// and the leaf certificates of Tenantry's SPIFFE identity scheme (see package
// certs). It needs no server: everything happens in a local directory,
// <data-dir>/pki unless --dir says otherwise.
func newCertsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Development CA and SPIFFE certificates for mutual TLS",
		Long: `Development CA and SPIFFE certificates for mutual TLS.

  tenantry certs init --trust-domain example.org
  tenantry certs issue --service public --dns api.example.org
  tenantry certs issue --tenant acme
  tenantry certs issue --admin alice --ttl 8h

Certificates are ECDSA P-256 with one SPIFFE URI SAN:
spiffe://<trust-domain>/service/<name>, /tenant/<slug> or /admin/<name>.
They are short-lived (24h by default): reissue rather than revoke. Production
deployments bring their own CA or SPIFFE/SPIRE.`,
	}
	cmd.AddCommand(newCertsInitCmd(), newCertsIssueCmd())
	return cmd
}

// pkiDir returns dir, or <data-dir>/pki when dir is "" (the root command's
// --data-dir flag, or its default when the command runs on its own).
func pkiDir(cmd *cobra.Command, dir string) string {
	if dir != "" {
		return dir
	}
	base := defaultDataDir
	if f := cmd.Flag("data-dir"); f != nil && f.Value.String() != "" {
		base = f.Value.String()
	}
	return filepath.Join(base, pkiDirName)
}

func newCertsInitCmd() *cobra.Command {
	var dir, trustDomain string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a development CA (ca.pem, ca-key.pem)",
		Example: "  tenantry certs init\n" +
			"  tenantry certs init --dir /etc/tenantry/pki --trust-domain example.org",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d := pkiDir(cmd, dir)
			ca, err := certs.InitCA(d, trustDomain)
			if errors.Is(err, certs.ErrExists) {
				return fmt.Errorf("%w; issue certificates with `tenantry certs issue`, or choose another --dir", err)
			}
			if err != nil {
				return err
			}
			return writeWritten(cmd.OutOrStdout(), []writtenFile{
				{filepath.Join(d, certs.CAFile), fmt.Sprintf("CA certificate %s, valid until %s: the trust bundle for every server and client",
					ca.TrustDomain.ID(), ca.Cert.NotAfter.UTC().Format(time.DateTime))},
				{filepath.Join(d, certs.CAKeyFile), "CA private key (mode 0600): keep it off servers"},
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory of the CA (default <data-dir>/"+pkiDirName+")")
	f.StringVar(&trustDomain, "trust-domain", defaultTrustDomain, "SPIFFE trust domain of every identity the CA issues")
	return cmd
}

func newCertsIssueCmd() *cobra.Command {
	var (
		dir, out               string
		service, tenant, admin string
		ttl                    time.Duration
		dnsNames, ips          []string
	)
	cmd := &cobra.Command{
		Use:   "issue --service NAME | --tenant SLUG | --admin NAME",
		Short: "Issue a certificate signed by the CA",
		Example: "  tenantry certs issue --service public --dns api.example.org --ip 127.0.0.1\n" +
			"  tenantry certs issue --tenant acme --ttl 1h\n" +
			"  tenantry certs issue --admin alice --out ~/.tenantry",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := certs.Request{TTL: ttl, DNSNames: dnsNames}
			switch {
			case service != "":
				req.Kind, req.Name = certs.Service, service
			case tenant != "":
				req.Kind, req.Name = certs.Tenant, tenant
			default:
				req.Kind, req.Name = certs.Admin, admin
			}
			if ttl < 0 {
				return fmt.Errorf("--ttl %s: must be positive", ttl)
			}
			for _, s := range ips {
				ip := net.ParseIP(s)
				if ip == nil {
					return fmt.Errorf("--ip %q: not an IP address", s)
				}
				req.IPs = append(req.IPs, ip)
			}
			if req.Kind != certs.Service && (len(req.DNSNames) > 0 || len(req.IPs) > 0) {
				return fmt.Errorf("--dns and --ip are for --service certificates only (%s certificates are client certificates)", req.Kind)
			}
			caDir := pkiDir(cmd, dir)
			outDir := out
			if outDir == "" {
				outDir = caDir
			}
			leaf, err := certs.IssueFiles(caDir, outDir, req)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%w: create a CA with `tenantry certs init` first, or point --dir at one", err)
			}
			if err != nil {
				return err
			}
			certPath, keyPath := certs.LeafFiles(outDir, leaf.Identity.Kind, leaf.Identity.Name)
			what := fmt.Sprintf("certificate %s, valid until %s", leaf.Identity, leaf.Cert.NotAfter.UTC().Format(time.DateTime))
			if sans := extraSANs(leaf.Cert.DNSNames, leaf.Cert.IPAddresses); sans != "" {
				what += ", also " + sans
			}
			return writeWritten(cmd.OutOrStdout(), []writtenFile{
				{certPath, what},
				{keyPath, "private key (mode 0600)"},
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory of the CA (default <data-dir>/"+pkiDirName+")")
	f.StringVar(&out, "out", "", "directory to write the certificate and key to (default: the CA directory)")
	f.StringVar(&service, "service", "", "issue a service certificate (server and client): spiffe://<td>/service/NAME")
	f.StringVar(&tenant, "tenant", "", "issue a client certificate bound to tenant SLUG: spiffe://<td>/tenant/SLUG")
	f.StringVar(&admin, "admin", "", "issue an admin API client certificate: spiffe://<td>/admin/NAME")
	f.DurationVar(&ttl, "ttl", certs.DefaultTTL, "validity of the certificate")
	f.StringSliceVar(&dnsNames, "dns", nil, "extra DNS name SAN of a service certificate (repeatable)")
	f.StringSliceVar(&ips, "ip", nil, "extra IP address SAN of a service certificate (repeatable)")
	cmd.MarkFlagsMutuallyExclusive("service", "tenant", "admin")
	cmd.MarkFlagsOneRequired("service", "tenant", "admin")
	return cmd
}

// writtenFile is one row of the table of files a certs command wrote.
type writtenFile struct{ path, what string }

func writeWritten(w io.Writer, files []writtenFile) error {
	tw := table(w)
	fmt.Fprintln(tw, "WROTE\tCONTENTS")
	for _, f := range files {
		fmt.Fprintf(tw, "%s\t%s\n", f.path, f.what)
	}
	return tw.Flush()
}

func extraSANs(dns []string, ips []net.IP) string {
	out := append([]string(nil), dns...)
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return strings.Join(out, ", ")
}
