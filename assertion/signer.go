package assertion

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tenantry/tenantry/tenant"
)

// DefaultLifetime is the lifetime of an assertion when SignerConfig.Lifetime
// is zero. An assertion is made per outgoing request, so it only has to
// survive the hop.
const DefaultLifetime = 30 * time.Second

// SignerConfig configures a Signer.
type SignerConfig struct {
	// Issuer is the name of this service (iss), as the verifiers' KeySet
	// and transport identities know it: the <name> of
	// spiffe://<trust-domain>/service/<name>. Required.
	Issuer string
	// Key is the ECDSA P-256 signing key (ES256). Required.
	Key *ecdsa.PrivateKey
	// Lifetime is exp - iat. Default DefaultLifetime (30s); at most
	// MaxLifetime (60s).
	Lifetime time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Signer makes assertions for one issuing service. It is safe for concurrent
// use.
type Signer struct {
	issuer   string
	lifetime time.Duration
	now      func() time.Time
	signer   jose.Signer
}

// NewSigner returns a Signer. The JWS header carries typ (Type) and kid, the
// RFC 7638 thumbprint of the public key.
func NewSigner(cfg *SignerConfig) (*Signer, error) {
	if cfg == nil || cfg.Key == nil {
		return nil, errors.New("assertion: SignerConfig.Key is required")
	}
	if err := checkName("SignerConfig.Issuer", cfg.Issuer); err != nil {
		return nil, err
	}
	if cfg.Key.Curve != elliptic.P256() {
		return nil, errors.New("assertion: SignerConfig.Key must be ECDSA P-256")
	}
	lifetime := cfg.Lifetime
	if lifetime == 0 {
		lifetime = DefaultLifetime
	}
	if lifetime < time.Second || lifetime > MaxLifetime {
		return nil, fmt.Errorf("assertion: SignerConfig.Lifetime must be between 1s and %s", MaxLifetime)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	kid, err := KeyID(&cfg.Key.PublicKey)
	if err != nil {
		return nil, err
	}
	opts := (&jose.SignerOptions{}).WithType(Type).WithHeader(jose.HeaderKey("kid"), kid)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: cfg.Key}, opts)
	if err != nil {
		return nil, fmt.Errorf("assertion: %w", err)
	}
	return &Signer{issuer: cfg.Issuer, lifetime: lifetime, now: now, signer: s}, nil
}

// Issuer returns the signer's issuer name.
func (s *Signer) Issuer() string { return s.issuer }

// Sign returns a compact JWS asserting that this service calls audience for
// tenant t on behalf of subject (which may be empty).
func (s *Signer) Sign(audience string, t *tenant.Tenant, subject string) (string, error) {
	if t == nil || t.ID == "" || !tenant.IsValidSlug(t.Slug) {
		return "", errors.New("assertion: a tenant with an ID and a valid slug is required")
	}
	if err := checkName("audience", audience); err != nil {
		return "", err
	}
	if len(subject) > maxSubjectLen {
		return "", fmt.Errorf("assertion: subject longer than %d bytes", maxSubjectLen)
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("assertion: %w", err)
	}
	now := s.now()
	c := wireClaims{
		Issuer:   s.issuer,
		Subject:  subject,
		Audience: jwt.Audience{audience},
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(s.lifetime)),
		ID:       base64.RawURLEncoding.EncodeToString(jti[:]),
		Tenant:   &wireTenant{ID: t.ID, Slug: t.Slug},
	}
	tok, err := jwt.Signed(s.signer).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("assertion: sign: %w", err)
	}
	return tok, nil
}

// KeyID returns the RFC 7638 JWK thumbprint of key, base64url-encoded: the
// kid a Signer puts in its assertions.
func KeyID(key *ecdsa.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: key}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("assertion: key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

const (
	maxNameLen     = 253
	maxSubjectLen  = 256
	maxIDLen       = 128
	maxTenantIDLen = 128
	maxTokenLen    = 4096
)

// checkName accepts a service name: 1 to 253 printable ASCII characters
// without spaces.
func checkName(what, s string) error {
	if s == "" || len(s) > maxNameLen {
		return fmt.Errorf("assertion: %s must be 1 to %d characters", what, maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return fmt.Errorf("assertion: %s contains a space or a non-printable character", what)
		}
	}
	return nil
}
