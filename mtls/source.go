package mtls

import (
	"crypto/tls"
	"crypto/x509"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Source supplies the certificate a process presents and the trust anchors it
// verifies peers against. The TLS configurations built by ServerTLS and
// ClientTLS ask it on every handshake, so a source that changes its answers
// rotates certificates without a restart: new connections see the new
// certificate, established ones keep theirs.
//
// Implementations: FileSource (PEM files, polled and reloaded on demand) and
// SPIFFESource (the SPIFFE Workload API, e.g. a SPIRE agent, or any go-spiffe
// source). All methods must be safe for concurrent use.
type Source interface {
	// Certificate returns the current certificate chain and private key.
	Certificate() (*tls.Certificate, error)
	// Roots returns the current trust anchors of TrustDomain. During a CA
	// rotation it holds the old and the new CA.
	Roots() (*x509.CertPool, error)
	// TrustDomain is the SPIFFE trust domain every peer must belong to.
	TrustDomain() spiffeid.TrustDomain
	// Reload re-reads the certificate, key and trust anchors now; the server
	// calls it on SIGHUP. On error the source keeps serving what it had.
	// Sources that are pushed updates return nil.
	Reload() error
}
