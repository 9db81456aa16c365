package mtls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tenantry/tenantry/certs"
)

var (
	// ErrNoPeerCertificate is returned by PeerIdentity for a request that did
	// not come over TLS with a verified client certificate.
	ErrNoPeerCertificate = errors.New("no verified client certificate")
	// ErrPeerExpired is returned by PeerIdentity when the client certificate
	// expired (or is not yet valid) at the time of the request: a TLS
	// connection can outlive the certificate it was made with.
	ErrPeerExpired = errors.New("client certificate is not valid now")
)

// PeerIdentity returns the identity of the client of r, for handlers and
// middleware. Call it on every request: it works on resumed TLS sessions
// (Go restores the peer certificates and verified chains) and is where a
// per-request binding, such as a tenant certificate to the tenant of the
// request, belongs, since a session is verified only at its handshakes.
//
// It requires a chain verified by crypto/tls (a listener configured by
// ServerTLS, or any configuration that verifies client certificates), a
// certificate valid at the time of the request, and an identity of td.
func PeerIdentity(r *http.Request, td spiffeid.TrustDomain) (certs.Identity, error) {
	return ConnIdentity(r.TLS, td, time.Now())
}

// ConnIdentity is PeerIdentity for a connection state at time now.
func ConnIdentity(cs *tls.ConnectionState, td spiffeid.TrustDomain, now time.Time) (certs.Identity, error) {
	if cs == nil || len(cs.PeerCertificates) == 0 || len(cs.VerifiedChains) == 0 {
		return certs.Identity{}, ErrNoPeerCertificate
	}
	leaf := cs.PeerCertificates[0]
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return certs.Identity{}, fmt.Errorf("%w: valid %s to %s", ErrPeerExpired,
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return certs.IdentityOf(leaf, td)
}
