package assertion_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tenantry/tenantry/assertion"
	"github.com/tenantry/tenantry/tenant"
)

var acme = &tenant.Tenant{ID: "0b6e2a0c-6a43-4c8e-9d5e-0a1c2b3d4e5f", Slug: "acme", State: tenant.StateActive}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newSigner(t testing.TB, issuer string, key *ecdsa.PrivateKey, now func() time.Time) *assertion.Signer {
	t.Helper()
	s, err := assertion.NewSigner(&assertion.SignerConfig{Issuer: issuer, Key: key, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newVerifier(t testing.TB, audience string, keys assertion.KeySet) *assertion.Verifier {
	t.Helper()
	v, err := assertion.NewVerifier(&assertion.VerifierConfig{Audience: audience, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// craft signs arbitrary claims with arbitrary headers, for tokens a Signer
// refuses to make.
func craft(t *testing.T, key any, alg jose.SignatureAlgorithm, typ string, claims map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func goodClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": "gateway", "aud": "orders", "sub": "user-42",
		"iat": now.Unix(), "exp": now.Add(30 * time.Second).Unix(),
		"jti":    "abc123",
		"tenant": map[string]any{"id": acme.ID, "slug": acme.Slug},
	}
}

func with(m map[string]any, k string, v any) map[string]any {
	out := make(map[string]any, len(m))
	for kk, vv := range m {
		out[kk] = vv
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	s := newSigner(t, "gateway", key, nil)
	v := newVerifier(t, "orders", assertion.StaticKeys{"gateway": {&key.PublicKey}})
	tok, err := s.Sign("orders", acme, "user-42")
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(context.Background(), tok, "gateway")
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "gateway" || c.Audience != "orders" || c.Subject != "user-42" ||
		c.TenantID != acme.ID || c.TenantSlug != "acme" || c.ID == "" {
		t.Fatalf("claims %+v", c)
	}
	if life := c.Expiry.Sub(c.IssuedAt); life != assertion.DefaultLifetime {
		t.Fatalf("lifetime %s", life)
	}
	// Used once; the second use is a replay.
	if _, err := v.Verify(context.Background(), tok, "gateway"); !errors.Is(err, assertion.ErrReplayed) {
		t.Fatalf("second use: %v", err)
	}
	// Two assertions for the same call are distinct.
	tok2, _ := s.Sign("orders", acme, "user-42")
	if tok2 == tok {
		t.Fatal("two assertions are identical")
	}
	if _, err := v.Verify(context.Background(), tok2, "gateway"); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyHostile(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	otherKey := newKey(t)
	keys := assertion.StaticKeys{"gateway": {&key.PublicKey}, "orders": {&otherKey.PublicKey}}
	now := time.Now()
	good := goodClaims(now)
	valid := craft(t, key, jose.ES256, assertion.Type, good)
	parts := strings.Split(valid, ".")

	tamperedPayload := func() string {
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		forged := strings.Replace(string(payload), `"slug":"acme"`, `"slug":"evil"`, 1)
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]
	}()
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[len(sig)-1] ^= 1
	tamperedSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"`+assertion.Type+`"}`)) + "." + parts[1] + "."
	// HS256 with the verifier's public key bytes as the secret: the classic
	// algorithm confusion.
	pubBytes := elliptic.MarshalCompressed(elliptic.P256(), key.PublicKey.X, key.PublicKey.Y) //nolint:staticcheck // test of a known attack
	hs := craft(t, pubBytes, jose.HS256, assertion.Type, good)

	for _, tc := range []struct {
		name  string
		token string
		peer  string
		want  error
	}{
		{"empty", "", "gateway", assertion.ErrInvalid},
		{"garbage", "not.a.jwt", "gateway", assertion.ErrInvalid},
		{"oversized", strings.Repeat("a", 5000), "gateway", assertion.ErrInvalid},
		{"tampered payload", tamperedPayload, "gateway", assertion.ErrInvalid},
		{"tampered signature", tamperedSig, "gateway", assertion.ErrInvalid},
		{"alg none", unsigned, "gateway", assertion.ErrInvalid},
		{"alg HS256 with public key", hs, "gateway", assertion.ErrInvalid},
		{"ES384", craft(t, newP384(t), jose.ES384, assertion.Type, good), "gateway", assertion.ErrInvalid},
		{"no typ", craft(t, key, jose.ES256, "", good), "gateway", assertion.ErrInvalid},
		{"plain JWT typ", craft(t, key, jose.ES256, "JWT", good), "gateway", assertion.ErrInvalid},
		{"unknown issuer", craft(t, key, jose.ES256, assertion.Type, with(good, "iss", "intruder")), "intruder", assertion.ErrInvalid},
		{"signed with another issuer's key", craft(t, otherKey, jose.ES256, assertion.Type, good), "gateway", assertion.ErrInvalid},
		{"wrong audience", craft(t, key, jose.ES256, assertion.Type, with(good, "aud", "billing")), "gateway", assertion.ErrAudience},
		{"two audiences", craft(t, key, jose.ES256, assertion.Type, with(good, "aud", []string{"orders", "billing"})), "gateway", assertion.ErrAudience},
		{"no audience", craft(t, key, jose.ES256, assertion.Type, with(good, "aud", nil)), "gateway", assertion.ErrAudience},
		{"expired", craft(t, key, jose.ES256, assertion.Type, with(with(good, "iat", now.Add(-2*time.Minute).Unix()), "exp", now.Add(-90*time.Second).Unix())), "gateway", assertion.ErrExpired},
		{"issued in the future", craft(t, key, jose.ES256, assertion.Type, with(with(good, "iat", now.Add(time.Minute).Unix()), "exp", now.Add(80*time.Second).Unix())), "gateway", assertion.ErrExpired},
		{"not before", craft(t, key, jose.ES256, assertion.Type, with(good, "nbf", now.Add(20*time.Second).Unix())), "gateway", assertion.ErrExpired},
		{"lifetime over a minute", craft(t, key, jose.ES256, assertion.Type, with(good, "exp", now.Add(61*time.Second).Unix())), "gateway", assertion.ErrInvalid},
		{"exp before iat", craft(t, key, jose.ES256, assertion.Type, with(good, "exp", now.Add(-time.Second).Unix())), "gateway", assertion.ErrInvalid},
		{"no exp", craft(t, key, jose.ES256, assertion.Type, with(good, "exp", nil)), "gateway", assertion.ErrInvalid},
		{"no iat", craft(t, key, jose.ES256, assertion.Type, with(good, "iat", nil)), "gateway", assertion.ErrInvalid},
		{"no jti", craft(t, key, jose.ES256, assertion.Type, with(good, "jti", nil)), "gateway", assertion.ErrInvalid},
		{"long jti", craft(t, key, jose.ES256, assertion.Type, with(good, "jti", strings.Repeat("j", 129))), "gateway", assertion.ErrInvalid},
		{"no tenant", craft(t, key, jose.ES256, assertion.Type, with(good, "tenant", nil)), "gateway", assertion.ErrInvalid},
		{"tenant as string", craft(t, key, jose.ES256, assertion.Type, with(good, "tenant", "acme")), "gateway", assertion.ErrInvalid},
		{"tenant without id", craft(t, key, jose.ES256, assertion.Type, with(good, "tenant", map[string]any{"slug": "acme"})), "gateway", assertion.ErrInvalid},
		{"bad slug", craft(t, key, jose.ES256, assertion.Type, with(good, "tenant", map[string]any{"id": acme.ID, "slug": "Acme"})), "gateway", assertion.ErrInvalid},
		{"issuer is not the peer", valid, "orders", assertion.ErrPeerMismatch},
		{"no peer", valid, "", assertion.ErrPeerMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newVerifier(t, "orders", keys)
			_, err := v.Verify(context.Background(), tc.token, tc.peer)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}

	// After all of that, the valid token is still unused: refusals do not
	// consume an ID.
	t.Run("refusals do not consume the ID", func(t *testing.T) {
		t.Parallel()
		v := newVerifier(t, "orders", keys)
		if _, err := v.Verify(context.Background(), valid, "orders"); !errors.Is(err, assertion.ErrPeerMismatch) {
			t.Fatal(err)
		}
		if _, err := v.Verify(context.Background(), valid, "gateway"); err != nil {
			t.Fatalf("valid token refused after a refused attempt: %v", err)
		}
	})
}

func newP384(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVerifyLeewayAndKeyRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey2 := newKey(t), newKey(t)
	keys := assertion.StaticKeys{"gateway": {&oldKey.PublicKey, &newKey2.PublicKey}}
	base := time.Now()
	clock := func(d time.Duration) func() time.Time { return func() time.Time { return base.Add(d) } }

	v, err := assertion.NewVerifier(&assertion.VerifierConfig{Audience: "orders", Keys: keys, Leeway: 2 * time.Second, Now: clock(0)})
	if err != nil {
		t.Fatal(err)
	}
	// Both keys of a rotation verify.
	for _, k := range []*ecdsa.PrivateKey{oldKey, newKey2} {
		tok, _ := newSigner(t, "gateway", k, clock(0)).Sign("orders", acme, "")
		if _, err := v.Verify(context.Background(), tok, "gateway"); err != nil {
			t.Fatal(err)
		}
	}
	// A signer whose clock runs 1s ahead is within the leeway, 10s is not.
	ahead, _ := newSigner(t, "gateway", oldKey, clock(time.Second)).Sign("orders", acme, "")
	if _, err := v.Verify(context.Background(), ahead, "gateway"); err != nil {
		t.Fatalf("1s ahead: %v", err)
	}
	farAhead, _ := newSigner(t, "gateway", oldKey, clock(10*time.Second)).Sign("orders", acme, "")
	if _, err := v.Verify(context.Background(), farAhead, "gateway"); !errors.Is(err, assertion.ErrExpired) {
		t.Fatalf("10s ahead: %v", err)
	}
	// Just expired, within the leeway; then beyond it.
	old, _ := newSigner(t, "gateway", oldKey, clock(-31*time.Second)).Sign("orders", acme, "")
	if _, err := v.Verify(context.Background(), old, "gateway"); err != nil {
		t.Fatalf("1s past exp: %v", err)
	}
	older, _ := newSigner(t, "gateway", oldKey, clock(-33*time.Second)).Sign("orders", acme, "")
	if _, err := v.Verify(context.Background(), older, "gateway"); !errors.Is(err, assertion.ErrExpired) {
		t.Fatalf("3s past exp: %v", err)
	}
}

func TestConfigRefused(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	for name, cfg := range map[string]*assertion.SignerConfig{
		"no key":        {Issuer: "gateway"},
		"no issuer":     {Key: key},
		"issuer space":  {Issuer: "gate way", Key: key},
		"P-384":         {Issuer: "gateway", Key: newP384(t)},
		"2m lifetime":   {Issuer: "gateway", Key: key, Lifetime: 2 * time.Minute},
		"neg. lifetime": {Issuer: "gateway", Key: key, Lifetime: -time.Second},
	} {
		if _, err := assertion.NewSigner(cfg); err == nil {
			t.Errorf("signer %s: accepted", name)
		}
	}
	keys := assertion.StaticKeys{}
	for name, cfg := range map[string]*assertion.VerifierConfig{
		"no keys":         {Audience: "orders"},
		"no audience":     {Keys: keys},
		"2m max lifetime": {Audience: "orders", Keys: keys, MaxLifetime: 2 * time.Minute},
		"1m leeway":       {Audience: "orders", Keys: keys, Leeway: time.Minute},
	} {
		if _, err := assertion.NewVerifier(cfg); err == nil {
			t.Errorf("verifier %s: accepted", name)
		}
	}
	s := newSigner(t, "gateway", key, nil)
	for name, tn := range map[string]*tenant.Tenant{
		"nil": nil, "no ID": {Slug: "acme"}, "bad slug": {ID: "x", Slug: "ACME"},
	} {
		if _, err := s.Sign("orders", tn, ""); err == nil {
			t.Errorf("sign %s: accepted", name)
		}
	}
	if _, err := s.Sign("", acme, ""); err == nil {
		t.Error("sign without audience: accepted")
	}
}

func TestReplayConcurrent(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	v := newVerifier(t, "orders", assertion.StaticKeys{"gateway": {&key.PublicKey}})
	tok, _ := newSigner(t, "gateway", key, nil).Sign("orders", acme, "")
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := v.Verify(context.Background(), tok, "gateway"); err == nil {
				mu.Lock()
				accepted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if accepted != 1 {
		t.Fatalf("%d of 16 concurrent uses accepted, want 1", accepted)
	}
}
