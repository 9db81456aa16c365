package resolve

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// JWTConfig configures the JWT strategy.
type JWTConfig struct {
	// Claim names the claim holding the tenant slug or ID (a canonical
	// lower-case UUID), a JSON string. Default "tenant".
	Claim string
	// Issuer must equal the token's "iss". Required.
	Issuer string
	// Audience must be one of the token's "aud" values. Required: a token
	// minted for another service must not name a tenant here.
	Audience string
	// HMACKeys are HS256 secrets, each at least 32 bytes. Default none.
	HMACKeys [][]byte
	// PublicKeys verify RS256 (*rsa.PublicKey, at least 2048 bits) and ES256
	// (*ecdsa.PublicKey on P-256) tokens. Default none.
	PublicKeys []crypto.PublicKey
	// JWKSFile is the path of a JSON Web Key Set whose keys are added, read
	// once by New: a changed file takes effect with a new Resolver. Keys with
	// "use" other than "sig" are skipped; a key's "alg", if set, must be the
	// one its type implies; private keys are reduced to their public half.
	// Default none. At least one key must come from HMACKeys, PublicKeys or
	// JWKSFile.
	JWKSFile string
	// Leeway is the clock skew allowed on "exp", "nbf" and "iat". Default
	// 30s; at most 5 minutes.
	Leeway time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

const (
	defaultClaim  = "tenant"
	defaultLeeway = 30 * time.Second
	maxLeeway     = 5 * time.Minute
	// maxTokenLen bounds a bearer token. Tenant tokens are small; anything
	// this long is refused before any base64 or JSON work is done.
	maxTokenLen = 8 << 10
)

// JWT returns the strategy that takes the tenant from a claim of a verified
// JSON Web Token in "Authorization: Bearer <token>".
//
// # Trust
//
// The token is the source, so it must be verified before any of it is
// read. Each key is bound to exactly one algorithm by its type: an HMAC
// secret to HS256, an RSA key to RS256, a P-256 key to ES256; only the
// algorithms of configured keys are accepted, and a token is checked only
// against keys of its own algorithm (and of its "kid", when both name one).
// So "alg":"none" is refused, and so is the classic confusion of an HS256
// token signed with an RSA public key as the HMAC secret: an RSA key is
// never used as an HMAC secret. The token must then carry "exp", and "iss",
// "aud", "exp", "nbf" and "iat" are checked with a small leeway.
//
//   - no Authorization header, or a scheme other than Bearer: no
//     identifier;
//   - Authorization repeated: tenant_ambiguous (400);
//   - a token that is not three base64url parts, or is longer than 8 KiB:
//     tenant_invalid (400);
//   - any other token that does not verify (algorithm not accepted, bad
//     signature, unknown key, wrong issuer or audience, expired, not yet
//     valid, no expiry): tenant_forbidden (403);
//   - a verified token without the claim: no identifier;
//   - a claim that is not a string holding a valid slug or lower-case UUID:
//     tenant_invalid (400).
//
// The strategy resolves a tenant; it does not authenticate a user. Whatever
// authorises the request must check the same token on its own terms.
func JWT(cfg JWTConfig) Strategy {
	cfg.HMACKeys = slices.Clone(cfg.HMACKeys)
	cfg.PublicKeys = slices.Clone(cfg.PublicKeys)
	return &jwtStrategy{base: base{name: StrategyJWT}, cfg: cfg}
}

type jwtKey struct {
	kid string
	alg jose.SignatureAlgorithm
	key any
}

type jwtStrategy struct {
	base
	cfg      JWTConfig
	keys     []jwtKey
	algs     []jose.SignatureAlgorithm
	expected jwt.Expected
}

func (s *jwtStrategy) prepare() error {
	s.setSource("bearer token")
	c := &s.cfg
	if c.Claim == "" {
		c.Claim = defaultClaim
	}
	if c.Leeway == 0 {
		c.Leeway = defaultLeeway
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.Issuer == "":
		return errors.New("issuer is required")
	case c.Audience == "":
		return errors.New("audience is required")
	case c.Leeway < 0 || c.Leeway > maxLeeway:
		return fmt.Errorf("leeway %s is not between 0 and %s", c.Leeway, maxLeeway)
	}
	for i, k := range c.HMACKeys {
		if len(k) < 32 {
			return fmt.Errorf("HMAC key %d is shorter than 32 bytes", i)
		}
		s.keys = append(s.keys, jwtKey{alg: jose.HS256, key: slices.Clone(k)})
	}
	for i, k := range c.PublicKeys {
		alg, err := keyAlgorithm(k)
		if err != nil {
			return fmt.Errorf("public key %d: %w", i, err)
		}
		s.keys = append(s.keys, jwtKey{alg: alg, key: k})
	}
	if c.JWKSFile != "" {
		keys, err := loadJWKS(c.JWKSFile)
		if err != nil {
			return err
		}
		s.keys = append(s.keys, keys...)
	}
	if len(s.keys) == 0 {
		return errors.New("no verification key")
	}
	for _, k := range s.keys {
		if !slices.Contains(s.algs, k.alg) {
			s.algs = append(s.algs, k.alg)
		}
	}
	s.expected = jwt.Expected{Issuer: c.Issuer, AnyAudience: jwt.Audience{c.Audience}}
	return nil
}

// keyAlgorithm is the one algorithm a public key may verify.
func keyAlgorithm(k any) (jose.SignatureAlgorithm, error) {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil || k.N.BitLen() < 2048 {
			return "", errors.New("RSA key shorter than 2048 bits")
		}
		return jose.RS256, nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve != elliptic.P256() {
			return "", errors.New("ECDSA key not on P-256")
		}
		return jose.ES256, nil
	case []byte:
		if len(k) < 32 {
			return "", errors.New("HMAC key shorter than 32 bytes")
		}
		return jose.HS256, nil
	}
	return "", fmt.Errorf("unsupported key type %T (want *rsa.PublicKey or *ecdsa.PublicKey)", k)
}

func loadJWKS(path string) ([]jwtKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", path, err)
	}
	var keys []jwtKey
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if !k.IsPublic() {
			if _, symmetric := k.Key.([]byte); !symmetric {
				k = k.Public()
			}
		}
		if !k.Valid() {
			return nil, fmt.Errorf("JWKS %s: key %d is invalid", path, i)
		}
		alg, err := keyAlgorithm(k.Key)
		if err != nil {
			return nil, fmt.Errorf("JWKS %s: key %d: %w", path, i, err)
		}
		if k.Algorithm != "" && k.Algorithm != string(alg) {
			return nil, fmt.Errorf("JWKS %s: key %d: alg %q does not match its key type (%s)", path, i, k.Algorithm, alg)
		}
		keys = append(keys, jwtKey{kid: k.KeyID, alg: alg, key: k.Key})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("JWKS %s: no signing key", path)
	}
	return keys, nil
}

func (s *jwtStrategy) find(r *http.Request) (key, *Problem) {
	vals := r.Header["Authorization"]
	if len(vals) == 0 {
		return key{}, nil
	}
	if len(vals) > 1 {
		return key{}, s.p.ambiguous
	}
	const bearer = "Bearer "
	v := vals[0]
	if len(v) < len(bearer) || !strings.EqualFold(v[:len(bearer)], bearer) {
		return key{}, nil
	}
	token := v[len(bearer):]
	if !compactJWS(token) {
		return key{}, s.p.invalid
	}
	claim, err := s.verify(token)
	if err != nil {
		return key{}, s.p.forbidden.WithCause(err)
	}
	if claim == nil {
		return key{}, nil
	}
	str, ok := claim.(string)
	if !ok {
		return key{}, s.p.invalid
	}
	k, ok := slugOrID(str)
	if !ok {
		return key{}, s.p.invalid
	}
	return k, nil
}

// verify checks the token and returns its tenant claim, nil if it has none.
func (s *jwtStrategy) verify(token string) (any, error) {
	tok, err := jwt.ParseSigned(token, s.algs)
	if err != nil {
		return nil, err
	}
	if len(tok.Headers) != 1 {
		return nil, errors.New("not exactly one signature")
	}
	h := tok.Headers[0]
	var std jwt.Claims
	var all map[string]any
	verified := false
	for _, k := range s.keys {
		if string(k.alg) != h.Algorithm || h.KeyID != "" && k.kid != "" && k.kid != h.KeyID {
			continue
		}
		if err = tok.Claims(k.key, &std, &all); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		if err == nil {
			err = errors.New("no key for the token's algorithm and key ID")
		}
		return nil, err
	}
	if std.Expiry == nil {
		return nil, errors.New("token has no expiry")
	}
	if err := std.ValidateWithLeeway(s.expected.WithTime(s.cfg.Now()), s.cfg.Leeway); err != nil {
		return nil, err
	}
	return all[s.cfg.Claim], nil
}

// compactJWS reports whether s looks like a JWS in compact serialisation:
// at most maxTokenLen bytes of base64url in three dot-separated parts.
// Empty parts are let through to verification, which refuses them (an
// unsigned "alg":"none" token has an empty signature).
func compactJWS(s string) bool {
	if s == "" || len(s) > maxTokenLen {
		return false
	}
	dots := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			dots++
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return dots == 2
}
