package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tenantry/tenantry/certs"
)

// DefaultPollInterval is how often a FileSource looks for changed files.
const DefaultPollInterval = 30 * time.Second

// FileConfig configures a FileSource.
type FileConfig struct {
	// CertFile is the PEM certificate chain to present, leaf first. Required.
	CertFile string
	// KeyFile is the PEM private key of the leaf. Required.
	KeyFile string
	// CAFile is the PEM bundle of trust anchors (one or more CA
	// certificates) peers are verified against. Required.
	CAFile string
	// TrustDomain is the SPIFFE trust domain, e.g. "example.org". Required.
	TrustDomain string
	// PollInterval is how often Run checks the files' modification time and
	// size and reloads them when either changed. Default DefaultPollInterval
	// (30s); it must be positive.
	PollInterval time.Duration
	// Logger receives one record per reload and per failed reload. Default:
	// discard.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with defaults filled in.
func (c *FileConfig) WithDefaults() *FileConfig {
	out := *c
	if out.PollInterval == 0 {
		out.PollInterval = DefaultPollInterval
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return &out
}

func (c *FileConfig) validate() error {
	switch {
	case c.CertFile == "":
		return errors.New("mtls: FileConfig.CertFile is required")
	case c.KeyFile == "":
		return errors.New("mtls: FileConfig.KeyFile is required")
	case c.CAFile == "":
		return errors.New("mtls: FileConfig.CAFile is required")
	case c.PollInterval <= 0:
		return errors.New("mtls: FileConfig.PollInterval must be positive")
	}
	return nil
}

// FileSource is a Source over PEM files. It loads them once in
// NewFileSource, again whenever Reload is called, and, while Run is running,
// whenever a file's modification time or size changes. A load that fails
// (a missing or half-written file, a key that does not match the
// certificate, a certificate outside the trust domain or not signed by the
// bundle) leaves the previous certificate in place and is retried at the
// next poll.
//
// Kubernetes secret volumes replace files by swapping a symlink; the poll
// follows symlinks, so it sees the swap.
type FileSource struct {
	cfg *FileConfig
	td  spiffeid.TrustDomain

	mu    sync.Mutex // serialises loads
	state atomic.Pointer[fileState]
}

type fileState struct {
	cert  *tls.Certificate
	roots *x509.CertPool
	stamp [3]fileStamp // CertFile, KeyFile, CAFile as loaded
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// NewFileSource loads the files named in cfg and returns a source serving
// them. It fails if they cannot be loaded.
func NewFileSource(cfg *FileConfig) (*FileSource, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	td, err := spiffeid.TrustDomainFromString(cfg.TrustDomain)
	if err != nil || td.Name() != cfg.TrustDomain {
		return nil, fmt.Errorf("mtls: FileConfig.TrustDomain %q is not a trust domain name", cfg.TrustDomain)
	}
	s := &FileSource{cfg: cfg, td: td}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Certificate implements Source.
func (s *FileSource) Certificate() (*tls.Certificate, error) { return s.state.Load().cert, nil }

// Roots implements Source.
func (s *FileSource) Roots() (*x509.CertPool, error) { return s.state.Load().roots, nil }

// TrustDomain implements Source.
func (s *FileSource) TrustDomain() spiffeid.TrustDomain { return s.td }

// Reload implements Source: it reads the three files now. On error the
// source keeps what it had.
func (s *FileSource) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.load()
	if err != nil {
		s.cfg.Logger.Warn("mtls: certificate reload failed; keeping the previous certificate", "cert", s.cfg.CertFile, "err", err)
		return err
	}
	prev := s.state.Swap(st)
	if prev != nil {
		s.cfg.Logger.Info("mtls: certificate reloaded", "cert", s.cfg.CertFile,
			"serial", st.cert.Leaf.SerialNumber.Text(16), "not_after", st.cert.Leaf.NotAfter)
	}
	return nil
}

// Run polls the files every PollInterval and reloads them when one changed.
// It returns when ctx is done.
func (s *FileSource) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stamp, err := s.stamps()
		if err != nil || stamp == s.state.Load().stamp {
			// A missing file is an update in progress, or an error that
			// the next successful Reload reports.
			continue
		}
		_ = s.Reload() // logged; retried at the next tick
	}
}

func (s *FileSource) stamps() ([3]fileStamp, error) {
	var out [3]fileStamp
	for i, p := range []string{s.cfg.CertFile, s.cfg.KeyFile, s.cfg.CAFile} {
		fi, err := os.Stat(p)
		if err != nil {
			return out, err
		}
		out[i] = fileStamp{mod: fi.ModTime(), size: fi.Size()}
	}
	return out, nil
}

func (s *FileSource) load() (*fileState, error) {
	// Stamp before reading: a write racing with the read changes the stamp
	// again, so the next poll reloads.
	stamp, err := s.stamps()
	if err != nil {
		return nil, fmt.Errorf("mtls: %w", err)
	}
	certPEM, err := os.ReadFile(s.cfg.CertFile)
	if err != nil {
		return nil, fmt.Errorf("mtls: %w", err)
	}
	keyPEM, err := os.ReadFile(s.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("mtls: %w", err)
	}
	caPEM, err := os.ReadFile(s.cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("mtls: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("mtls: %s, %s: %w", s.cfg.CertFile, s.cfg.KeyFile, err)
	}
	roots, err := parseBundle(caPEM)
	if err != nil {
		return nil, fmt.Errorf("mtls: %s: %w", s.cfg.CAFile, err)
	}
	if err := checkOwn(&cert, roots, s.td); err != nil {
		return nil, fmt.Errorf("mtls: %s: %w", s.cfg.CertFile, err)
	}
	return &fileState{cert: &cert, roots: roots, stamp: stamp}, nil
}

// parseBundle parses one or more PEM CA certificates.
func parseBundle(b []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		if !c.IsCA {
			return nil, fmt.Errorf("certificate %q is not a CA", c.Subject)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("no CA certificate")
	}
	return pool, nil
}

// checkOwn refuses to serve a certificate that peers would refuse: outside
// the trust domain, or not chaining to the bundle.
func checkOwn(cert *tls.Certificate, roots *x509.CertPool, td spiffeid.TrustDomain) error {
	if _, err := certs.IdentityOf(cert.Leaf, td); err != nil {
		return err
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		inter.AddCert(c)
	}
	_, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}
