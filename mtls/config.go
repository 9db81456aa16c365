package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tenantry/tenantry/certs"
)

// ClientAuth says whether a server asks for client certificates.
type ClientAuth int

const (
	// RequireClientCert refuses a client without a valid certificate of the
	// trust domain. The default.
	RequireClientCert ClientAuth = iota
	// OptionalClientCert accepts a client without a certificate, but verifies
	// one that is presented; handlers learn which through PeerIdentity.
	OptionalClientCert
	// NoClientCert does not ask for client certificates (server-only TLS
	// with the same rotating certificate).
	NoClientCert
)

// ServerConfig configures ServerTLS.
type ServerConfig struct {
	// ClientAuth says whether client certificates are required. Default
	// RequireClientCert.
	ClientAuth ClientAuth
	// Authorize, if set, is called during every handshake, including resumed
	// ones, with the identity of a client that presented a certificate; an
	// error refuses the connection. Use it for coarse listener-wide rules
	// (the admin listener admits only certs.Admin); check anything tied to
	// the request, such as a tenant binding, per request with PeerIdentity.
	// Default: any identity of the trust domain.
	Authorize func(certs.Identity) error
	// NextProtos are the ALPN protocols. Default {"h2", "http/1.1"}.
	NextProtos []string
}

// ClientConfig configures ClientTLS.
type ClientConfig struct {
	// Authorize, if set, is called during every handshake with the server's
	// identity; an error refuses the connection. Default: any certs.Service
	// identity of the trust domain. See AuthorizeID.
	Authorize func(certs.Identity) error
	// NextProtos are the ALPN protocols. Default nil: net/http's Transport
	// fills in what it speaks.
	NextProtos []string
	// SessionCache enables TLS session resumption. Default nil: none.
	SessionCache tls.ClientSessionCache
}

// AuthorizeID returns an Authorize function admitting only id.
func AuthorizeID(id certs.Identity) func(certs.Identity) error {
	return func(got certs.Identity) error {
		if got.SPIFFEID != id.SPIFFEID {
			return fmt.Errorf("peer is %s, want %s", got, id)
		}
		return nil
	}
}

// AuthorizeKind returns an Authorize function admitting only identities of
// the given kinds.
func AuthorizeKind(kinds ...certs.Kind) func(certs.Identity) error {
	return func(got certs.Identity) error {
		for _, k := range kinds {
			if got.Kind == k {
				return nil
			}
		}
		return fmt.Errorf("peer %s: kind %s not allowed", got, got.Kind)
	}
}

var defaultProtos = []string{"h2", "http/1.1"}

// ServerTLS returns a server *tls.Config over src: TLS 1.3 only; the
// certificate, the client CA pool and the trust domain taken from src on every
// handshake (GetConfigForClient), so that a reloaded source serves new
// connections while established ones continue; client chains verified against
// the pool and client identities checked against the trust domain and
// cfg.Authorize in VerifyConnection, which Go runs on resumed sessions too.
//
// A TLS session outlives the check: handlers call PeerIdentity on every
// request, which also refuses a certificate that expired since the handshake.
func ServerTLS(src Source, cfg *ServerConfig) (*tls.Config, error) {
	if src == nil {
		return nil, errors.New("mtls: nil Source")
	}
	if cfg == nil {
		cfg = &ServerConfig{}
	}
	var auth tls.ClientAuthType
	switch cfg.ClientAuth {
	case RequireClientCert:
		auth = tls.RequireAndVerifyClientCert
	case OptionalClientCert:
		auth = tls.VerifyClientCertIfGiven
	case NoClientCert:
		auth = tls.NoClientCert
	default:
		return nil, fmt.Errorf("mtls: unknown ClientAuth %d", cfg.ClientAuth)
	}
	td := src.TrustDomain()
	authorize := cfg.Authorize
	base := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: protos(cfg.NextProtos),
		// For callers that bypass GetConfigForClient; it never does.
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return src.Certificate() },
	}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cert, err := src.Certificate()
		if err != nil {
			return nil, err
		}
		roots, err := src.Roots()
		if err != nil {
			return nil, err
		}
		// The clone keeps using base's session ticket keys, so sessions
		// resume across reloads; Go then re-verifies the stored chain
		// against the current ClientCAs, and VerifyConnection runs.
		c := base.Clone()
		c.GetConfigForClient = nil
		c.GetCertificate = nil
		c.Certificates = []tls.Certificate{*cert}
		c.ClientAuth = auth
		c.ClientCAs = roots
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil // ClientAuth decided that this is acceptable
			}
			if len(cs.VerifiedChains) == 0 {
				return errors.New("mtls: client certificate not verified")
			}
			id, err := certs.IdentityOf(cs.PeerCertificates[0], td)
			if err != nil {
				return fmt.Errorf("mtls: client identity: %w", err)
			}
			if authorize != nil {
				if err := authorize(id); err != nil {
					return fmt.Errorf("mtls: client %s not authorized: %w", id, err)
				}
			}
			return nil
		}
		return c, nil
	}
	return base, nil
}

// ClientTLS returns a client *tls.Config over src: TLS 1.3 only; the client
// certificate taken from src on every handshake; the server's chain verified
// against src's current roots and its SPIFFE identity, not its host name,
// checked against the trust domain and cfg.Authorize, on every handshake
// including resumed ones.
func ClientTLS(src Source, cfg *ClientConfig) (*tls.Config, error) {
	if src == nil {
		return nil, errors.New("mtls: nil Source")
	}
	if cfg == nil {
		cfg = &ClientConfig{}
	}
	td := src.TrustDomain()
	authorize := cfg.Authorize
	if authorize == nil {
		authorize = AuthorizeKind(certs.Service)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: append([]string(nil), cfg.NextProtos...),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return src.Certificate()
		},
		ClientSessionCache: cfg.SessionCache,
		// Host-name verification does not apply to SPIFFE identities: the
		// chain and the identity are verified in VerifyConnection instead,
		// which, unlike VerifyPeerCertificate, also runs on resumption.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			roots, err := src.Roots()
			if err != nil {
				return err
			}
			id, err := verifyChain(cs.PeerCertificates, roots, td, x509.ExtKeyUsageServerAuth, time.Now())
			if err != nil {
				return fmt.Errorf("mtls: server: %w", err)
			}
			if err := authorize(id); err != nil {
				return fmt.Errorf("mtls: server %s not authorized: %w", id, err)
			}
			return nil
		},
	}, nil
}

func verifyChain(chain []*x509.Certificate, roots *x509.CertPool, td spiffeid.TrustDomain, usage x509.ExtKeyUsage, now time.Time) (certs.Identity, error) {
	if len(chain) == 0 {
		return certs.Identity{}, errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{usage},
	}); err != nil {
		return certs.Identity{}, err
	}
	return certs.IdentityOf(chain[0], td)
}

func protos(p []string) []string {
	if len(p) == 0 {
		return append([]string(nil), defaultProtos...)
	}
	return append([]string(nil), p...)
}
