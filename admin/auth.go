package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tenantry/tenantry/certs"
)

// Identity is an authenticated caller of the admin API.
type Identity struct {
	// Name identifies the caller in the audit log, for example
	// "token:admin" or "spiffe://example.org/admin/alice".
	Name string
	// Method says how the caller was authenticated: "token" or "mtls".
	Method string
}

// Authenticator decides who a request comes from.
type Authenticator interface {
	// Authenticate returns the caller's identity. It returns an error
	// matching ErrNoCredentials when r carries no credentials of the kind
	// it checks (so that another Authenticator may try), and any other
	// error when r carries credentials that are wrong. The error is logged,
	// never shown to the client.
	Authenticate(r *http.Request) (Identity, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(r *http.Request) (Identity, error)

// Authenticate calls f(r).
func (f AuthenticatorFunc) Authenticate(r *http.Request) (Identity, error) { return f(r) }

var (
	// ErrNoCredentials means a request carries no credentials an
	// Authenticator checks.
	ErrNoCredentials = errors.New("no credentials")
	// ErrBadCredentials means a request carries credentials that are wrong.
	ErrBadCredentials = errors.New("invalid credentials")
)

// MinTokenLen is the shortest bearer token BearerToken accepts.
const MinTokenLen = 16

// BearerToken returns an Authenticator that accepts requests carrying
// "Authorization: Bearer <token>". The comparison takes the same time
// whatever the presented token (both sides are hashed first, so not even
// the length leaks). The identity is "token:<name>".
func BearerToken(name, token string) (Authenticator, error) {
	if name == "" {
		return nil, errors.New("admin: bearer token needs a name for the audit log")
	}
	if len(token) < MinTokenLen {
		return nil, fmt.Errorf("admin: the admin token must be at least %d characters", MinTokenLen)
	}
	want := sha256.Sum256([]byte(token))
	id := Identity{Name: "token:" + name, Method: "token"}
	return AuthenticatorFunc(func(r *http.Request) (Identity, error) {
		values := r.Header.Values("Authorization")
		if len(values) == 0 {
			return Identity{}, ErrNoCredentials
		}
		if len(values) > 1 {
			return Identity{}, fmt.Errorf("%w: several Authorization headers", ErrBadCredentials)
		}
		scheme, given, ok := strings.Cut(values[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return Identity{}, ErrNoCredentials
		}
		got := sha256.Sum256([]byte(strings.TrimSpace(given)))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return Identity{}, fmt.Errorf("%w: wrong bearer token", ErrBadCredentials)
		}
		return id, nil
	}), nil
}

// ClientCertificate returns an Authenticator that accepts requests whose
// TLS client certificate was verified by the listener (tls.Config with
// ClientAuth RequireAndVerifyClientCert or VerifyClientCertIfGiven) and
// carries an admin identity of trust domain td
// (spiffe://<td>/admin/<name>, see package certs). The identity is the
// SPIFFE ID.
func ClientCertificate(td spiffeid.TrustDomain) Authenticator {
	return AuthenticatorFunc(func(r *http.Request) (Identity, error) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			return Identity{}, ErrNoCredentials
		}
		ident, err := certs.IdentityOf(r.TLS.VerifiedChains[0][0], td)
		if err != nil {
			return Identity{}, fmt.Errorf("%w: %w", ErrBadCredentials, err)
		}
		if ident.Kind != certs.Admin {
			return Identity{}, fmt.Errorf("%w: %s is not an admin identity", ErrBadCredentials, ident)
		}
		return Identity{Name: ident.String(), Method: "mtls"}, nil
	})
}

// AnyOf returns an Authenticator that asks each of auths in turn: the first
// identity wins, wrong credentials fail at once, and a request with no
// credentials for any of them fails with ErrNoCredentials.
func AnyOf(auths ...Authenticator) Authenticator {
	return AuthenticatorFunc(func(r *http.Request) (Identity, error) {
		for _, a := range auths {
			id, err := a.Authenticate(r)
			if errors.Is(err, ErrNoCredentials) {
				continue
			}
			return id, err
		}
		return Identity{}, ErrNoCredentials
	})
}

type identityKey struct{}

// IdentityFromContext returns the authenticated caller of an admin request.
func IdentityFromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}
