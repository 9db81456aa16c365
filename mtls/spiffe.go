package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// SPIFFESource is a Source over go-spiffe sources: the SPIFFE Workload API
// (NewWorkloadSource, for SPIRE and other SPIFFE implementations) or any
// x509svid.Source and x509bundle.Source (NewSPIFFESource).
//
// The Workload API pushes rotated SVIDs and bundles, so Reload has nothing to
// do. The SVID's SPIFFE ID must follow Tenantry's scheme
// (spiffe://<trust-domain>/service/<name>): register workloads in SPIRE
// accordingly, e.g.
//
//	spire-server entry create -parentID spiffe://example.org/node/k8s \
//	    -spiffeID spiffe://example.org/service/billing \
//	    -selector k8s:ns:billing -selector k8s:sa:billing
type SPIFFESource struct {
	td      spiffeid.TrustDomain
	svids   x509svid.Source
	bundles x509bundle.Source
	closer  func() error

	mu       sync.Mutex
	lastSVID *x509svid.SVID
	cert     *tls.Certificate
	lastCAs  []*x509.Certificate
	pool     *x509.CertPool
}

// NewSPIFFESource returns a Source presenting the SVIDs of svids and
// verifying peers against the bundle of td from bundles.
// workloadapi.X509Source is both; so are x509svid.SVID and x509bundle.Bundle
// loaded from files (x509svid.Load, x509bundle.Load).
func NewSPIFFESource(td spiffeid.TrustDomain, svids x509svid.Source, bundles x509bundle.Source) (*SPIFFESource, error) {
	if td.IsZero() || svids == nil || bundles == nil {
		return nil, errors.New("mtls: NewSPIFFESource needs a trust domain, an SVID source and a bundle source")
	}
	s := &SPIFFESource{td: td, svids: svids, bundles: bundles, closer: func() error { return nil }}
	if _, err := s.Certificate(); err != nil {
		return nil, err
	}
	if _, err := s.Roots(); err != nil {
		return nil, err
	}
	return s, nil
}

// WorkloadConfig configures NewWorkloadSource.
type WorkloadConfig struct {
	// TrustDomain is the SPIFFE trust domain, e.g. "example.org". Required.
	TrustDomain string
	// Addr is the Workload API endpoint, e.g.
	// "unix:///run/spire/agent-sockets/spire-agent.sock". Default: the
	// SPIFFE_ENDPOINT_SOCKET environment variable.
	Addr string
}

// NewWorkloadSource connects to the SPIFFE Workload API and blocks until the
// first SVID and bundle arrive or ctx is done. Close it when done.
func NewWorkloadSource(ctx context.Context, cfg *WorkloadConfig) (*SPIFFESource, error) {
	td, err := spiffeid.TrustDomainFromString(cfg.TrustDomain)
	if err != nil || td.Name() != cfg.TrustDomain {
		return nil, fmt.Errorf("mtls: WorkloadConfig.TrustDomain %q is not a trust domain name", cfg.TrustDomain)
	}
	var opts []workloadapi.X509SourceOption
	if cfg.Addr != "" {
		opts = append(opts, workloadapi.WithClientOptions(workloadapi.WithAddr(cfg.Addr)))
	}
	x, err := workloadapi.NewX509Source(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("mtls: workload API: %w", err)
	}
	s, err := NewSPIFFESource(td, x, x)
	if err != nil {
		x.Close()
		return nil, err
	}
	s.closer = x.Close
	return s, nil
}

// Close releases the Workload API connection, if any.
func (s *SPIFFESource) Close() error { return s.closer() }

// TrustDomain implements Source.
func (s *SPIFFESource) TrustDomain() spiffeid.TrustDomain { return s.td }

// Reload implements Source; the Workload API pushes updates, so it does nothing.
func (s *SPIFFESource) Reload() error { return nil }

// Certificate implements Source.
func (s *SPIFFESource) Certificate() (*tls.Certificate, error) {
	svid, err := s.svids.GetX509SVID()
	if err != nil {
		return nil, fmt.Errorf("mtls: SVID: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if svid == s.lastSVID {
		return s.cert, nil
	}
	if !svid.ID.MemberOf(s.td) {
		return nil, fmt.Errorf("mtls: SVID %s is not in trust domain %s", svid.ID, s.td)
	}
	c := &tls.Certificate{PrivateKey: svid.PrivateKey, Leaf: svid.Certificates[0]}
	for _, x := range svid.Certificates {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	s.lastSVID, s.cert = svid, c
	return c, nil
}

// Roots implements Source.
func (s *SPIFFESource) Roots() (*x509.CertPool, error) {
	b, err := s.bundles.GetX509BundleForTrustDomain(s.td)
	if err != nil {
		return nil, fmt.Errorf("mtls: bundle: %w", err)
	}
	cas := b.X509Authorities()
	if len(cas) == 0 {
		return nil, fmt.Errorf("mtls: bundle of %s is empty", s.td)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pool != nil && slices.EqualFunc(cas, s.lastCAs, (*x509.Certificate).Equal) {
		return s.pool, nil
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	s.lastCAs, s.pool = cas, pool
	return pool, nil
}
