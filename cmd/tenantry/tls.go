package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tenantry/tenantry/admin"
	"github.com/tenantry/tenantry/certs"
	"github.com/tenantry/tenantry/mtls"
)

// Values of --client-certs.
const (
	clientCertsNone     = "none"
	clientCertsOptional = "optional"
	clientCertsRequire  = "require"
)

// tlsOptions are the TLS flags of tenantry serve.
type tlsOptions struct {
	cert, key, clientCA string
	clientCerts         string
	trustDomain         string
}

func (o *tlsOptions) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.cert, "tls-cert", "", "PEM certificate chain both listeners serve TLS with (reloaded on SIGHUP)")
	f.StringVar(&o.key, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&o.clientCA, "tls-client-ca", "", "PEM CA bundle that verifies client certificates (SPIFFE identities, see 'tenantry certs'); turns on mutual TLS")
	f.StringVar(&o.clientCerts, "client-certs", "", "client certificates: none, optional or require (default: optional with --tls-client-ca, else none)")
	f.StringVar(&o.trustDomain, "trust-domain", defaultTrustDomain, "SPIFFE trust domain of client (and, with mutual TLS, server) certificates")
}

// mutual reports whether client certificates are asked for.
func (o *tlsOptions) mutual() bool {
	return o.clientCerts == clientCertsOptional || o.clientCerts == clientCertsRequire
}

// enabled reports whether the listeners serve TLS.
func (o *tlsOptions) enabled() bool { return o.cert != "" }

// validate checks the combination of flags and settles --client-certs.
func (o *tlsOptions) validate() error {
	if (o.cert == "") != (o.key == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	switch o.clientCerts {
	case "":
		o.clientCerts = clientCertsNone
		if o.clientCA != "" {
			o.clientCerts = clientCertsOptional
		}
	case clientCertsNone, clientCertsOptional, clientCertsRequire:
	default:
		return fmt.Errorf("--client-certs must be none, optional or require, not %q", o.clientCerts)
	}
	if o.clientCA != "" && o.cert == "" {
		return errors.New("--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS first")
	}
	if o.mutual() && o.clientCA == "" {
		return fmt.Errorf("--client-certs %s needs --tls-client-ca, the CA that issued the client certificates", o.clientCerts)
	}
	if o.clientCerts == clientCertsNone && o.clientCA != "" {
		return errors.New("--tls-client-ca with --client-certs none: drop one of them")
	}
	if _, err := spiffeid.TrustDomainFromString(o.trustDomain); err != nil {
		return fmt.Errorf("--trust-domain %q: %w", o.trustDomain, err)
	}
	return nil
}

// listenerTLS is the TLS of both listeners and how to reload it.
type listenerTLS struct {
	public, admin *tls.Config
	// reload re-reads the certificate, key and CA files (SIGHUP).
	reload func() error
	// run polls the files for changes until ctx ends; nil when nothing
	// polls.
	run func(ctx context.Context)
	// adminAuth authenticates admin identities from client certificates;
	// nil without mutual TLS.
	adminAuth admin.Authenticator
}

// newListenerTLS builds the listeners' TLS from the flags: nil when TLS is
// off. With mutual TLS, both listeners verify client certificates against
// --tls-client-ca (package mtls: TLS 1.3, SPIFFE identities of the trust
// domain), and the admin listener admits only admin identities at the
// handshake; otherwise they serve --tls-cert to any client.
func newListenerTLS(o *tlsOptions, logger *slog.Logger) (*listenerTLS, error) {
	if !o.enabled() {
		return nil, nil
	}
	if !o.mutual() {
		kp, err := newKeyPair(o.cert, o.key)
		if err != nil {
			return nil, err
		}
		cfg := &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: kp.get,
			NextProtos:     []string{"h2", "http/1.1"},
		}
		return &listenerTLS{public: cfg, admin: cfg.Clone(), reload: kp.load}, nil
	}
	src, err := mtls.NewFileSource(&mtls.FileConfig{
		CertFile: o.cert, KeyFile: o.key, CAFile: o.clientCA, TrustDomain: o.trustDomain, Logger: logger,
	})
	if err != nil {
		return nil, fmt.Errorf("mutual TLS: %w", err)
	}
	auth := mtls.OptionalClientCert
	if o.clientCerts == clientCertsRequire {
		auth = mtls.RequireClientCert
	}
	public, err := mtls.ServerTLS(src, &mtls.ServerConfig{ClientAuth: auth})
	if err != nil {
		return nil, err
	}
	adm, err := mtls.ServerTLS(src, &mtls.ServerConfig{ClientAuth: auth, Authorize: mtls.AuthorizeKind(certs.Admin)})
	if err != nil {
		return nil, err
	}
	return &listenerTLS{
		public: public, admin: adm, reload: src.Reload, run: src.Run,
		adminAuth: admin.ClientCertificate(src.TrustDomain()),
	}, nil
}

// keyPair is a certificate and key loaded from files, replaced whole by
// load: handshakes after a reload get the new certificate, established
// connections keep theirs.
type keyPair struct {
	certFile, keyFile string
	current           atomic.Pointer[tls.Certificate]
}

func newKeyPair(certFile, keyFile string) (*keyPair, error) {
	kp := &keyPair{certFile: certFile, keyFile: keyFile}
	if err := kp.load(); err != nil {
		return nil, err
	}
	return kp, nil
}

// load reads the files; on error the previous certificate stays.
func (kp *keyPair) load() error {
	c, err := tls.LoadX509KeyPair(kp.certFile, kp.keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s: %w", kp.certFile, err)
	}
	kp.current.Store(&c)
	return nil
}

func (kp *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return kp.current.Load(), nil
}

// scheme is the URL scheme of the listeners.
func (o *tlsOptions) scheme() string {
	if o.enabled() {
		return "https"
	}
	return "http"
}

// adminAuthenticator is the admin API's authenticator: the bearer token,
// and admin client certificates when mutual TLS is on.
func adminAuthenticator(token string, lt *listenerTLS) (admin.Authenticator, error) {
	bearer, err := admin.BearerToken("admin", token)
	if err != nil {
		return nil, fmt.Errorf("$%s: %w", envAdminToken, err)
	}
	if lt == nil || lt.adminAuth == nil {
		return bearer, nil
	}
	return admin.AnyOf(lt.adminAuth, bearer), nil
}
