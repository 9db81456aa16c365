package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// DefaultTTL is the validity of an issued certificate when Request.TTL is zero.
// Certificates are short-lived and reissued rather than revoked.
const DefaultTTL = 24 * time.Hour

// backdate moves NotBefore into the past to absorb small clock skew between
// the issuer and the verifiers.
const backdate = time.Minute

// Request describes a certificate to issue.
type Request struct {
	// Kind is what the identity stands for. Required.
	Kind Kind
	// Name is the service name, tenant slug or admin name. Required.
	Name string
	// TTL is how long the certificate is valid from NotBefore. Default
	// DefaultTTL (24h); it may not outlive the CA.
	TTL time.Duration
	// DNSNames and IPs are extra SANs for a service certificate that is also
	// served to clients verifying by host name. Only for Kind Service.
	DNSNames []string
	IPs      []net.IP
	// NotBefore is the start of validity. Default: now minus one minute.
	// Set it to issue certificates that are not yet valid (tests).
	NotBefore time.Time
}

// Leaf is an issued certificate with its private key.
type Leaf struct {
	// Identity is the certificate's SPIFFE identity.
	Identity Identity
	// Cert is the certificate.
	Cert *x509.Certificate
	// Key is its private key (ECDSA P-256).
	Key *ecdsa.PrivateKey
	// CertPEM and KeyPEM are the certificate and the PKCS #8 key in PEM form.
	CertPEM, KeyPEM []byte
}

// TLSCertificate returns the leaf as a tls.Certificate.
func (l *Leaf) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{l.Cert.Raw}, PrivateKey: l.Key, Leaf: l.Cert}
}

// Issue issues a leaf certificate signed by ca with the SPIFFE ID of req's
// kind and name as its only URI SAN. Service certificates carry the server
// and client extended key usages; tenant and admin certificates only the
// client one.
func Issue(ca *CA, req Request) (*Leaf, error) {
	if ca == nil || ca.Cert == nil || ca.Key == nil {
		return nil, errors.New("certs: nil CA")
	}
	id, err := NewIdentity(ca.TrustDomain, req.Kind, req.Name)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	if req.Kind != Service && (len(req.DNSNames) > 0 || len(req.IPs) > 0) {
		return nil, fmt.Errorf("certs: DNS names and IPs are only for service certificates, not %s", req.Kind)
	}
	if req.TTL < 0 {
		return nil, fmt.Errorf("certs: negative TTL %s", req.TTL)
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	notBefore := req.NotBefore
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-backdate)
	}
	notAfter := notBefore.Add(ttl)
	if notAfter.After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("certs: certificate would outlive the CA (expires %s)", ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	eku := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if req.Kind == Service {
		eku = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Tenantry"}, OrganizationalUnit: []string{string(req.Kind)}, CommonName: req.Name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.SPIFFEID.URL()},
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("certs: create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: parse certificate: %w", err)
	}
	keyPEM, err := marshalKey(key)
	if err != nil {
		return nil, err
	}
	return &Leaf{
		Identity: id,
		Cert:     cert,
		Key:      key,
		CertPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:   keyPEM,
	}, nil
}
