package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// File names of a CA directory written by InitCA.
const (
	// CAFile holds the CA certificate (PEM); it is the trust bundle to give
	// every server and client.
	CAFile = "ca.pem"
	// CAKeyFile holds the CA's private key (PKCS #8 PEM, mode 0600).
	CAKeyFile = "ca-key.pem"
)

// DefaultCAValidity is the validity of a CA made by InitCA.
const DefaultCAValidity = 365 * 24 * time.Hour

// ErrExists is returned by InitCA when the directory already holds a CA.
var ErrExists = errors.New("certificate authority already exists")

// CA is a development certificate authority: a self-signed ECDSA P-256 root
// for one SPIFFE trust domain. Production deployments bring their own CA or
// SPIFFE/SPIRE; this one is for development, tests and small installations.
type CA struct {
	// Cert is the CA certificate. Its URI SAN is the trust domain's SPIFFE
	// ID (spiffe://<trust-domain>).
	Cert *x509.Certificate
	// Key is the CA's signing key.
	Key *ecdsa.PrivateKey
	// TrustDomain is the trust domain whose identities the CA issues.
	TrustDomain spiffeid.TrustDomain
}

// NewCA makes a CA for trustDomain in memory. validity <= 0 means
// DefaultCAValidity.
func NewCA(trustDomain string, validity time.Duration) (*CA, error) {
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		return nil, fmt.Errorf("certs: trust domain: %w", err)
	}
	// A trust domain, not a SPIFFE ID: "spiffe://example.org/x" would
	// otherwise be accepted as example.org.
	if td.Name() != trustDomain {
		return nil, fmt.Errorf("certs: trust domain %q: give the bare name, e.g. example.org", trustDomain)
	}
	if validity <= 0 {
		validity = DefaultCAValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Tenantry"}, CommonName: "Tenantry development CA " + td.Name()},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("certs: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: parse CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key, TrustDomain: td}, nil
}

// InitCA makes a CA for trustDomain and writes it to dir as CAFile and
// CAKeyFile, creating dir (mode 0700) if needed. It refuses, with ErrExists,
// to overwrite an existing CA.
func InitCA(dir, trustDomain string) (*CA, error) {
	for _, name := range []string{CAFile, CAKeyFile} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return nil, fmt.Errorf("certs: %s: %w", filepath.Join(dir, name), ErrExists)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("certs: %w", err)
		}
	}
	ca, err := NewCA(trustDomain, 0)
	if err != nil {
		return nil, err
	}
	if err := ca.Save(dir); err != nil {
		return nil, err
	}
	return ca, nil
}

// Save writes the CA to dir as CAFile and CAKeyFile (mode 0600), creating dir
// (mode 0700) if needed. It never overwrites: an existing file is ErrExists.
func (ca *CA) Save(dir string) error {
	keyPEM, err := marshalKey(ca.Key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	// The key first: a crash in between leaves no certificate without a key.
	if err := writeNew(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	return writeNew(filepath.Join(dir, CAFile), ca.PEM(), 0o644)
}

// LoadCA reads a CA written by InitCA from dir. The trust domain is taken from
// the CA certificate's URI SAN.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", CAFile, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("certs: %s is not a CA certificate", CAFile)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", CAKeyFile, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("certs: %s does not match %s", CAKeyFile, CAFile)
	}
	if len(cert.URIs) != 1 {
		return nil, fmt.Errorf("certs: %s: want exactly one URI SAN (the trust domain)", CAFile)
	}
	td, err := spiffeid.TrustDomainFromURI(cert.URIs[0])
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", CAFile, err)
	}
	return &CA{Cert: cert, Key: key, TrustDomain: td}, nil
}

// PEM returns the CA certificate in PEM form.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// Pool returns a certificate pool holding only the CA certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

func randomSerial() (*big.Int, error) {
	// 128 bits, as RFC 5280 allows up to 20 octets and CAs use >= 64 random bits.
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("certs: serial: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil // never zero
}
