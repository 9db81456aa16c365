package assertion

import (
	"context"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
)

// Header is the request header that carries an assertion.
const Header = "Tenantry-Assertion"

// Type is the JWS "typ" header of an assertion. Verifiers require it, so that
// no other JWT signed by a trusted key (a user's access token, say) can pass
// as an assertion (RFC 8725, section 3.11).
const Type = "tenantry-assertion+jwt"

// MaxLifetime is the longest an assertion may live, from iat to exp.
const MaxLifetime = time.Minute

// Claims are the verified contents of an assertion.
type Claims struct {
	// Issuer is the calling service (iss).
	Issuer string
	// Audience is the service the assertion is for (aud).
	Audience string
	// Subject is the end user or principal on whose behalf the call is made
	// (sub); empty for work the service does on its own account.
	Subject string
	// TenantID and TenantSlug name the tenant (claim "tenant": {"id", "slug"}).
	TenantID   string
	TenantSlug string
	// IssuedAt and Expiry bound the assertion's life (iat, exp).
	IssuedAt time.Time
	Expiry   time.Time
	// ID is the unique assertion ID (jti) the replay cache remembers.
	ID string
}

// wireClaims is the JWT payload.
type wireClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub,omitempty"`
	Audience  jwt.Audience     `json:"aud"`
	Expiry    *jwt.NumericDate `json:"exp"`
	NotBefore *jwt.NumericDate `json:"nbf,omitempty"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	ID        string           `json:"jti"`
	Tenant    *wireTenant      `json:"tenant"`
}

type wireTenant struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
}

type claimsKey struct{}

// FromContext returns the claims of the assertion the middleware verified for
// this request, if any. It is nil-safe.
func FromContext(ctx context.Context) (*Claims, bool) {
	if ctx == nil {
		return nil, false
	}
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok
}

func withClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

type subjectKey struct{}

// WithSubject returns a context whose outgoing assertions (see Transport)
// carry subject as sub. Without it, the subject of the verified incoming
// assertion, if any, is passed on.
func WithSubject(ctx context.Context, subject string) context.Context {
	return context.WithValue(ctx, subjectKey{}, subject)
}

func subjectFrom(ctx context.Context) string {
	if s, ok := ctx.Value(subjectKey{}).(string); ok {
		return s
	}
	if c, ok := FromContext(ctx); ok {
		return c.Subject
	}
	return ""
}
