package assertion

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tenantry/tenantry/tenant"
)

// Errors of Verify. Each is wrapped with a reason for logs; branch with
// errors.Is.
var (
	// ErrInvalid: not a well-formed, correctly signed assertion of a known
	// issuer (bad syntax, wrong alg or typ, unknown issuer, bad signature,
	// a missing or malformed claim, a lifetime over the maximum).
	ErrInvalid = errors.New("invalid assertion")
	// ErrExpired: the assertion expired, or is not valid yet, beyond the
	// clock leeway.
	ErrExpired = errors.New("assertion expired or not yet valid")
	// ErrAudience: the assertion is for another service.
	ErrAudience = errors.New("assertion is for another audience")
	// ErrPeerMismatch: the issuer is not the service that sent the request.
	ErrPeerMismatch = errors.New("assertion issuer is not the transport peer")
	// ErrReplayed: the assertion was used before.
	ErrReplayed = errors.New("assertion replayed")
)

// KeySet gives the verification keys of each issuer.
type KeySet interface {
	// PublicKeys returns the ES256 public keys of issuer (several during a
	// key rotation), or none for an unknown issuer.
	PublicKeys(issuer string) []*ecdsa.PublicKey
}

// StaticKeys is a KeySet from configuration: issuer name to public keys.
type StaticKeys map[string][]*ecdsa.PublicKey

// PublicKeys implements KeySet.
func (k StaticKeys) PublicKeys(issuer string) []*ecdsa.PublicKey { return k[issuer] }

// DefaultLeeway is the clock skew allowed between services.
const DefaultLeeway = 5 * time.Second

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Audience is the name of this service; an assertion must be for it
	// alone (aud holding exactly this name). Required.
	Audience string
	// Keys gives the issuers' public keys. Required.
	Keys KeySet
	// MaxLifetime is the longest exp - iat accepted. Default and maximum
	// MaxLifetime (60s).
	MaxLifetime time.Duration
	// Leeway is the clock skew tolerated on exp, iat and nbf. Default
	// DefaultLeeway (5s); at most 30s.
	Leeway time.Duration
	// Replay remembers used assertion IDs. Default: a MemoryReplayCache of
	// DefaultReplayCapacity entries. Several replicas of one service need a
	// shared cache (see ReplayCache) to refuse a replay across replicas.
	Replay ReplayCache
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Verifier verifies assertions addressed to one service. It is safe for
// concurrent use.
type Verifier struct {
	audience    string
	keys        KeySet
	maxLifetime time.Duration
	leeway      time.Duration
	replay      ReplayCache
	now         func() time.Time
}

// NewVerifier returns a Verifier.
func NewVerifier(cfg *VerifierConfig) (*Verifier, error) {
	if cfg == nil || cfg.Keys == nil {
		return nil, errors.New("assertion: VerifierConfig.Keys is required")
	}
	if err := checkName("VerifierConfig.Audience", cfg.Audience); err != nil {
		return nil, err
	}
	v := &Verifier{audience: cfg.Audience, keys: cfg.Keys, maxLifetime: cfg.MaxLifetime,
		leeway: cfg.Leeway, replay: cfg.Replay, now: cfg.Now}
	if v.maxLifetime == 0 {
		v.maxLifetime = MaxLifetime
	}
	if v.maxLifetime < 0 || v.maxLifetime > MaxLifetime {
		return nil, fmt.Errorf("assertion: VerifierConfig.MaxLifetime must be at most %s", MaxLifetime)
	}
	if v.leeway == 0 {
		v.leeway = DefaultLeeway
	}
	if v.leeway < 0 || v.leeway > 30*time.Second {
		return nil, errors.New("assertion: VerifierConfig.Leeway must be between 0 and 30s")
	}
	if v.replay == nil {
		v.replay = NewMemoryReplayCache(DefaultReplayCapacity)
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// Audience returns the service name the verifier accepts assertions for.
func (v *Verifier) Audience() string { return v.audience }

// Verify checks token completely and, only if every check passes, records
// its ID so that it cannot be used again. peer is the service name that the
// transport authenticated as the sender of the request (see Peer); the
// issuer must equal it.
//
// Checks, in order: size and compact JWS syntax; alg ES256 and typ Type;
// signature by a key of the claimed issuer; aud exactly this service; iat
// and exp present, exp - iat at most MaxLifetime, now within [iat, exp]
// (and after nbf) give or take the leeway; jti, tenant ID and slug well
// formed; issuer == peer; jti not seen before.
func (v *Verifier) Verify(ctx context.Context, token, peer string) (*Claims, error) {
	c, err := v.verifyToken(token)
	if err != nil {
		return nil, err
	}
	if c.Issuer != peer {
		return c, fmt.Errorf("%w: issued by %q, sent by %q", ErrPeerMismatch, c.Issuer, peer)
	}
	fresh, err := v.replay.Claim(ctx, c.Issuer+"\x00"+c.ID, c.Expiry.Add(v.leeway))
	if err != nil {
		return c, fmt.Errorf("assertion: replay cache: %w", err)
	}
	if !fresh {
		return c, fmt.Errorf("%w: jti %q of %q", ErrReplayed, c.ID, c.Issuer)
	}
	return c, nil
}

var algorithms = []jose.SignatureAlgorithm{jose.ES256}

// verifyToken does every check but the peer and the replay. The claims it
// returns alongside an error are unverified, for logging only.
func (v *Verifier) verifyToken(token string) (*Claims, error) {
	if len(token) > maxTokenLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalid, maxTokenLen)
	}
	tok, err := jwt.ParseSigned(token, algorithms)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: want one signature", ErrInvalid)
	}
	if typ, _ := tok.Headers[0].ExtraHeaders[jose.HeaderType].(string); typ != Type {
		return nil, fmt.Errorf("%w: typ %q, want %q", ErrInvalid, typ, Type)
	}
	var unverified wireClaims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	keys := v.keys.PublicKeys(unverified.Issuer)
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: unknown issuer %q", ErrInvalid, truncate(unverified.Issuer))
	}
	var w wireClaims
	verified := false
	for _, k := range keys {
		if k == nil || k.Curve != elliptic.P256() {
			continue
		}
		if err := tok.Claims(k, &w); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, fmt.Errorf("%w: signature does not verify with any key of %q", ErrInvalid, unverified.Issuer)
	}
	c := &Claims{Issuer: w.Issuer, Subject: w.Subject, ID: w.ID}
	if len(w.Audience) > 0 {
		c.Audience = w.Audience[0]
	}
	if w.Tenant != nil {
		c.TenantID, c.TenantSlug = w.Tenant.ID, w.Tenant.Slug
	}
	if w.IssuedAt == nil || w.Expiry == nil {
		return c, fmt.Errorf("%w: iat and exp are required", ErrInvalid)
	}
	c.IssuedAt, c.Expiry = w.IssuedAt.Time(), w.Expiry.Time()

	if len(w.Audience) != 1 || w.Audience[0] != v.audience {
		return c, fmt.Errorf("%w: aud %q, want [%q]", ErrAudience, []string(w.Audience), v.audience)
	}
	if life := c.Expiry.Sub(c.IssuedAt); life <= 0 || life > v.maxLifetime {
		return c, fmt.Errorf("%w: lifetime %s, at most %s", ErrInvalid, life, v.maxLifetime)
	}
	now := v.now()
	if !now.Before(c.Expiry.Add(v.leeway)) {
		return c, fmt.Errorf("%w: expired at %s", ErrExpired, c.Expiry.UTC().Format(time.RFC3339))
	}
	if now.Add(v.leeway).Before(c.IssuedAt) {
		return c, fmt.Errorf("%w: issued in the future (%s)", ErrExpired, c.IssuedAt.UTC().Format(time.RFC3339))
	}
	if w.NotBefore != nil && now.Add(v.leeway).Before(w.NotBefore.Time()) {
		return c, fmt.Errorf("%w: not before %s", ErrExpired, w.NotBefore.Time().UTC().Format(time.RFC3339))
	}
	switch {
	case c.ID == "" || len(c.ID) > maxIDLen:
		return c, fmt.Errorf("%w: jti must be 1 to %d bytes", ErrInvalid, maxIDLen)
	case c.TenantID == "" || len(c.TenantID) > maxTenantIDLen:
		return c, fmt.Errorf("%w: tenant.id must be 1 to %d bytes", ErrInvalid, maxTenantIDLen)
	case !tenant.IsValidSlug(c.TenantSlug):
		return c, fmt.Errorf("%w: tenant.slug is not a valid slug", ErrInvalid)
	case len(c.Subject) > maxSubjectLen:
		return c, fmt.Errorf("%w: sub longer than %d bytes", ErrInvalid, maxSubjectLen)
	}
	return c, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
