package resolve

import (
	"crypto"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/problem"
	"github.com/tenantry/tenantry/tenant"
)

// configs are the resolver configurations the hostile table runs against.
// Strategies are prepared in place by New, so each test builds its own.
var configs = map[string]func() *Config{
	"host":      func() *Config { return &Config{Strategies: []Strategy{Host()}} },
	"subdomain": func() *Config { return &Config{Strategies: []Strategy{Subdomain("localhost", "tenants.example.com")}} },
	"header":    func() *Config { return &Config{Strategies: []Strategy{Header("", gateways)}} },
	"path":      func() *Config { return &Config{Strategies: []Strategy{PathPrefix("")}} },
	"jwt":       func() *Config { return &Config{Strategies: []Strategy{JWT(jwtConfig())}} },
	"jwt-hmac": func() *Config {
		k := testKeys()
		return &Config{Strategies: []Strategy{JWT(JWTConfig{
			Issuer:     jwtIssuer,
			Audience:   jwtAudience,
			HMACKeys:   [][]byte{k.hmac},
			PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey},
		})}}
	},
	"cert": func() *Config { return &Config{Strategies: []Strategy{ClientCert(trustDomain)}} },
	"xfcc": func() *Config { return &Config{Strategies: []Strategy{MeshXFCC(loopback, trustDomain)}} },
	"first": func() *Config {
		return &Config{Strategies: []Strategy{Header("", gateways), Subdomain("localhost"), Host()}}
	},
	"agree": func() *Config {
		return &Config{Mode: RequireAgreement, Strategies: []Strategy{Subdomain("localhost"), Header("", gateways), JWT(jwtConfig())}}
	},
}

type hostileCase struct {
	name   string
	config string
	req    request
	// lookupErr, if set, is what every Lookup call returns.
	lookupErr error

	status int
	code   string // "" for success
	// On success: the tenant, the strategy, and the path next sees.
	tenant, via, path string
	// echo, if set, must not appear in the response body.
	echo string
}

func hostileCases(t *testing.T) []hostileCase {
	k := testKeys()
	long := strings.Repeat("a", 63)
	bearer := func(tok string) http.Header { return hdr("Authorization", "Bearer "+tok) }
	spiffe := func(path string) string { return "spiffe://" + trustDomain + path }
	xfccFrom := func(addr, v string) request {
		return request{remoteAddr: addr, header: hdr("X-Forwarded-Client-Cert", v)}
	}
	valid := tenantToken(t, "acme")
	parts := strings.Split(valid, ".")
	globexPayload := strings.Split(tenantToken(t, "globex"), ".")[1]

	return []hostileCase{
		// Host.
		{name: "host exact custom domain", config: "host", req: request{host: "acme.example.org"}, status: 200, tenant: "acme", via: "host"},
		{name: "host with port", config: "host", req: request{host: "acme.example.org:8443"}, status: 200, tenant: "acme"},
		{name: "host with one trailing dot", config: "host", req: request{host: "acme.example.org."}, status: 200, tenant: "acme"},
		{name: "host upper case", config: "host", req: request{host: "ACME.Example.ORG"}, status: 200, tenant: "acme"},
		{name: "host two trailing dots", config: "host", req: request{host: "acme.example.org.."}, status: 400, code: CodeInvalid},
		{name: "host double dot", config: "host", req: request{host: "acme..example.org"}, status: 400, code: CodeInvalid},
		{name: "host leading dot", config: "host", req: request{host: ".acme.example.org"}, status: 400, code: CodeInvalid},
		{name: "host longer than 253", config: "host", req: request{host: long + "." + long + "." + long + "." + long}, status: 400, code: CodeInvalid, echo: long},
		{name: "host label longer than 63", config: "host", req: request{host: long + "a.example.org"}, status: 400, code: CodeInvalid, echo: long},
		{name: "host cyrillic look-alike", config: "host", req: request{host: "\u0430cme.example.org"}, status: 400, code: CodeInvalid, echo: "\u0430cme"},
		{name: "host punycode is a valid but unknown domain", config: "host", req: request{host: "xn--cme-8cd.example.org"}, status: 404, code: CodeUnknown},
		{name: "host suffix attack", config: "host", req: request{host: "acme.example.org.evil.com"}, status: 404, code: CodeUnknown, echo: "evil.com"},
		{name: "host IPv4", config: "host", req: request{host: "192.0.2.1:80"}, status: 400, code: CodeMissing},
		{name: "host IPv6 literal", config: "host", req: request{host: "[::1]:8080"}, status: 400, code: CodeMissing},
		{name: "host unterminated IPv6", config: "host", req: request{host: "[::1"}, status: 400, code: CodeInvalid},
		{name: "host unbracketed IPv6", config: "host", req: request{host: "2001:db8::1"}, status: 400, code: CodeInvalid},
		{name: "host non-numeric port", config: "host", req: request{host: "acme.example.org:http"}, status: 400, code: CodeInvalid},
		{name: "host port out of range", config: "host", req: request{host: "acme.example.org:70000"}, status: 400, code: CodeInvalid},
		{name: "host NUL", config: "host", req: request{host: "acme.example.org\x00.evil"}, status: 400, code: CodeInvalid},
		{name: "host CRLF", config: "host", req: request{host: "acme.example.org\r\nX-Evil: 1"}, status: 400, code: CodeInvalid, echo: "X-Evil"},
		{name: "host underscore", config: "host", req: request{host: "ac_me.example.org"}, status: 400, code: CodeInvalid},
		{name: "host percent-encoded dot", config: "host", req: request{host: "acme%2eexample.org"}, status: 400, code: CodeInvalid},
		{name: "host SQL", config: "host", req: request{host: "acme'; DROP TABLE x;--"}, status: 400, code: CodeInvalid, echo: "DROP TABLE"},
		{name: "host leading hyphen", config: "host", req: request{host: "-acme.example.org"}, status: 400, code: CodeInvalid},
		{name: "host empty", config: "host", req: request{host: ""}, status: 400, code: CodeMissing},

		// Subdomain.
		{name: "subdomain", config: "subdomain", req: request{host: "acme.localhost"}, status: 200, tenant: "acme", via: "subdomain"},
		{name: "subdomain upper case with port", config: "subdomain", req: request{host: "ACME.LocalHost:3000"}, status: 200, tenant: "acme"},
		{name: "subdomain trailing dot", config: "subdomain", req: request{host: "acme.localhost."}, status: 200, tenant: "acme"},
		{name: "subdomain second base", config: "subdomain", req: request{host: "globex.tenants.example.com"}, status: 200, tenant: "globex"},
		{name: "subdomain two labels deep", config: "subdomain", req: request{host: "a.acme.localhost"}, status: 400, code: CodeInvalid},
		{name: "subdomain punycode label", config: "subdomain", req: request{host: "xn--cme-8cd.localhost"}, status: 400, code: CodeInvalid, echo: "xn--cme-8cd"},
		{name: "subdomain cyrillic look-alike", config: "subdomain", req: request{host: "\u0430cme.localhost"}, status: 400, code: CodeInvalid},
		{name: "subdomain base as a prefix of an attacker domain", config: "subdomain", req: request{host: "acme.localhost.evil.com"}, status: 400, code: CodeMissing},
		{name: "subdomain reserved slug", config: "subdomain", req: request{host: "www.localhost"}, status: 400, code: CodeInvalid},
		{name: "subdomain double hyphen", config: "subdomain", req: request{host: "a--b.localhost"}, status: 400, code: CodeInvalid},
		{name: "subdomain starts with digit", config: "subdomain", req: request{host: "1acme.localhost"}, status: 400, code: CodeInvalid},
		{name: "subdomain label longer than a slug", config: "subdomain", req: request{host: strings.Repeat("a", tenant.MaxSlugLen+1) + ".localhost"}, status: 400, code: CodeInvalid},
		{name: "subdomain base itself", config: "subdomain", req: request{host: "localhost:8080"}, status: 400, code: CodeMissing},
		{name: "subdomain unknown tenant", config: "subdomain", req: request{host: "nosuch.localhost"}, status: 404, code: CodeUnknown},
		{name: "subdomain suspended", config: "subdomain", req: request{host: "initech.localhost"}, status: 423, code: CodeSuspended},
		{name: "subdomain deleting", config: "subdomain", req: request{host: "hooli.localhost"}, status: 410, code: CodeDeleting},
		{name: "subdomain unknown state", config: "subdomain", req: request{host: "oddball.localhost"}, status: 423, code: CodeSuspended},
		{name: "read-only GET", config: "subdomain", req: request{host: "umbrella.localhost"}, status: 200, tenant: "umbrella"},
		{name: "read-only OPTIONS", config: "subdomain", req: request{method: "OPTIONS", host: "umbrella.localhost"}, status: 200, tenant: "umbrella"},
		{name: "read-only POST", config: "subdomain", req: request{method: "POST", host: "umbrella.localhost"}, status: 423, code: CodeReadOnly},
		{name: "read-only PUT", config: "subdomain", req: request{method: "PUT", host: "umbrella.localhost"}, status: 423, code: CodeReadOnly},
		{name: "read-only PATCH", config: "subdomain", req: request{method: "PATCH", host: "umbrella.localhost"}, status: 423, code: CodeReadOnly},
		{name: "read-only DELETE", config: "subdomain", req: request{method: "DELETE", host: "umbrella.localhost"}, status: 423, code: CodeReadOnly},
		{name: "read-only unknown method", config: "subdomain", req: request{method: "PROPPATCH", host: "umbrella.localhost"}, status: 423, code: CodeReadOnly},

		// Header.
		{name: "header slug", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", "acme")}, status: 200, tenant: "acme", via: "header"},
		{name: "header UUID", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", acmeID)}, status: 200, tenant: "acme"},
		{name: "header IPv4-mapped trusted peer", config: "header", req: request{remoteAddr: "[::ffff:10.1.2.3]:4000", header: hdr("X-Tenant-Id", "acme")}, status: 200, tenant: "acme"},
		{name: "header from untrusted peer", config: "header", req: request{remoteAddr: untrusted, header: hdr("X-Tenant-Id", "acme")}, status: 403, code: CodeForbidden},
		{name: "header from unix socket peer", config: "header", req: request{remoteAddr: "@", header: hdr("X-Tenant-Id", "acme")}, status: 403, code: CodeForbidden},
		{name: "header repeated", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", "acme", "X-Tenant-Id", "globex")}, status: 400, code: CodeAmbiguous},
		{name: "header repeated same value", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", "acme", "X-Tenant-Id", "acme")}, status: 400, code: CodeAmbiguous},
		{name: "header repeated from untrusted peer", config: "header", req: request{header: hdr("X-Tenant-Id", "acme", "X-Tenant-Id", "globex")}, status: 403, code: CodeForbidden},
		{name: "header upper case", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", "ACME")}, status: 400, code: CodeInvalid},
		{name: "header upper-case UUID", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", strings.ToUpper(acmeID))}, status: 400, code: CodeInvalid},
		{name: "header SQL", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", "acme'; DROP TABLE x;--")}, status: 400, code: CodeInvalid, echo: "DROP TABLE"},
		{name: "header quoted", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", `"acme"`)}, status: 400, code: CodeInvalid},
		{name: "header semicolon", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", "acme;globex")}, status: 400, code: CodeInvalid},
		{name: "header comma list", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", "acme,globex")}, status: 400, code: CodeInvalid},
		{name: "header NUL", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", "acme\x00")}, status: 400, code: CodeInvalid},
		{name: "header CRLF", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", "acme\r\nX-Evil: 1")}, status: 400, code: CodeInvalid, echo: "X-Evil"},
		{name: "header invalid UTF-8", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", "\xff\xfeacme")}, status: 400, code: CodeInvalid},
		{name: "header cyrillic look-alike", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", "\u0430cme")}, status: 400, code: CodeInvalid},
		{name: "header percent-encoded", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", "%61cme")}, status: 400, code: CodeInvalid},
		{name: "header padded", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", " acme")}, status: 400, code: CodeInvalid},
		{name: "header overlong", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", strings.Repeat("a", 10000))}, status: 400, code: CodeInvalid, echo: long},
		{name: "header empty", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", "")}, status: 400, code: CodeInvalid},
		{name: "header path traversal", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", "../acme")}, status: 400, code: CodeInvalid},
		{name: "header unknown slug", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", "nosuch")}, status: 404, code: CodeUnknown},
		{name: "header unknown UUID", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", "0b9f5c1e-7a1d-4c2e-9f00-0000000000ff")}, status: 404, code: CodeUnknown},
		{name: "header absent", config: "header", req: request{remoteAddr: trustedIP}, status: 400, code: CodeMissing},

		// Path prefix.
		{name: "path", config: "path", req: request{target: "/t/acme/api/v1/notes?x=1"}, status: 200, tenant: "acme", via: "path", path: "/api/v1/notes"},
		{name: "path bare tenant", config: "path", req: request{target: "/t/acme"}, status: 200, tenant: "acme", path: "/"},
		{name: "path encoded slash after tenant", config: "path", req: request{target: "/t/acme/a%2Fb"}, status: 200, tenant: "acme", path: "/a/b"},
		{name: "path traversal as tenant", config: "path", req: request{target: "/t/../admin"}, status: 400, code: CodeInvalid},
		{name: "path encoded traversal as tenant", config: "path", req: request{target: "/t/%2e%2e/admin"}, status: 400, code: CodeInvalid},
		{name: "path traversal after tenant", config: "path", req: request{target: "/t/acme/../../admin"}, status: 400, code: CodeInvalid},
		{name: "path encoded traversal after tenant", config: "path", req: request{target: "/t/acme/%2e%2e/%2E%2E/admin"}, status: 400, code: CodeInvalid},
		{name: "path dot segment", config: "path", req: request{target: "/t/acme/./x"}, status: 400, code: CodeInvalid},
		{name: "path upper case", config: "path", req: request{target: "/t/ACME/x"}, status: 400, code: CodeInvalid},
		{name: "path percent-encoded slug", config: "path", req: request{target: "/t/%61cme/x"}, status: 400, code: CodeInvalid},
		{name: "path encoded slash in slug", config: "path", req: request{target: "/t/acme%2Fglobex/x"}, status: 400, code: CodeInvalid},
		{name: "path empty slug", config: "path", req: request{target: "/t//x"}, status: 400, code: CodeInvalid},
		{name: "path NUL", config: "path", req: request{target: "/t/acme%00/x"}, status: 400, code: CodeInvalid},
		{name: "path SQL", config: "path", req: request{target: "/t/acme'%3B%20DROP%20TABLE%20x%3B--/x"}, status: 400, code: CodeInvalid, echo: "DROP TABLE"},
		{name: "path cyrillic", config: "path", req: request{target: "/t/%D0%B0cme/x"}, status: 400, code: CodeInvalid},
		{name: "path other prefix", config: "path", req: request{target: "/tx/acme"}, status: 400, code: CodeMissing},
		{name: "path unknown tenant", config: "path", req: request{target: "/t/nosuch/x"}, status: 404, code: CodeUnknown},

		// JWT.
		{name: "jwt RS256", config: "jwt", req: request{header: bearer(valid)}, status: 200, tenant: "acme", via: "jwt"},
		{name: "jwt ES256", config: "jwt", req: request{header: bearer(signToken(t, tokenOpts{alg: jose.ES256, key: k.ec, expiry: time.Minute, claims: map[string]any{"tenant": "globex"}}))}, status: 200, tenant: "globex"},
		{name: "jwt UUID claim", config: "jwt", req: request{header: bearer(tenantToken(t, globexID))}, status: 200, tenant: "globex"},
		{name: "jwt lower-case scheme", config: "jwt", req: request{header: hdr("Authorization", "bearer "+valid)}, status: 200, tenant: "acme"},
		{name: "jwt HS256 with secret", config: "jwt-hmac", req: request{header: bearer(signToken(t, tokenOpts{alg: jose.HS256, key: k.hmac, expiry: time.Minute, claims: map[string]any{"tenant": "acme"}}))}, status: 200, tenant: "acme"},
		{name: "jwt expired within leeway", config: "jwt", req: request{header: bearer(signToken(t, tokenOpts{expiry: -10 * time.Second, claims: map[string]any{"tenant": "acme"}}))}, status: 200, tenant: "acme"},
		{name: "jwt alg none", config: "jwt", req: request{header: bearer(unsignedToken(map[string]any{"iss": jwtIssuer, "aud": jwtAudience, "exp": time.Now().Add(time.Hour).Unix(), "tenant": "acme"}))}, status: 403, code: CodeForbidden},
		{name: "jwt wrong key", config: "jwt", req: request{header: bearer(signToken(t, tokenOpts{alg: jose.RS256, key: k.otherRSA, expiry: time.Minute, claims: map[string]any{"tenant": "acme"}}))}, status: 403, code: CodeForbidden},
		{name: "jwt expired", config: "jwt", req: request{header: bearer(signToken(t, tokenOpts{expiry: -10 * time.Minute, claims: map[string]any{"tenant": "acme"}}))}, status: 403, code: CodeForbidden},
		{name: "jwt no expiry", config: "jwt", req: request{header: bearer(signToken(t, tokenOpts{claims: map[string]any{"tenant": "acme"}}))}, status: 403, code: CodeForbidden},
		{name: "jwt not yet valid", config: "jwt", req: request{header: bearer(signToken(t, tokenOpts{expiry: time.Hour, claims: map[string]any{"tenant": "acme", "nbf": time.Now().Add(10 * time.Minute).Unix()}}))}, status: 403, code: CodeForbidden},
		{name: "jwt wrong audience", config: "jwt", req: request{header: bearer(signToken(t, tokenOpts{audience: "billing", expiry: time.Minute, claims: map[string]any{"tenant": "acme"}}))}, status: 403, code: CodeForbidden},
		{name: "jwt wrong issuer", config: "jwt", req: request{header: bearer(signToken(t, tokenOpts{issuer: "https://evil.example", expiry: time.Minute, claims: map[string]any{"tenant": "acme"}}))}, status: 403, code: CodeForbidden},
		{name: "jwt HS256 signed with RS256 public key", config: "jwt", req: request{header: bearer(signToken(t, tokenOpts{alg: jose.HS256, key: rsaPublicPEM(), expiry: time.Minute, claims: map[string]any{"tenant": "acme"}}))}, status: 403, code: CodeForbidden},
		{name: "jwt HS256 signed with RS256 public key, HMAC configured", config: "jwt-hmac", req: request{header: bearer(signToken(t, tokenOpts{alg: jose.HS256, key: rsaPublicPEM(), expiry: time.Minute, claims: map[string]any{"tenant": "acme"}}))}, status: 403, code: CodeForbidden},
		{name: "jwt tampered payload", config: "jwt", req: request{header: bearer(parts[0] + "." + globexPayload + "." + parts[2])}, status: 403, code: CodeForbidden},
		{name: "jwt stripped signature", config: "jwt", req: request{header: bearer(parts[0] + "." + parts[1] + ".")}, status: 403, code: CodeForbidden},
		{name: "jwt claim upper case", config: "jwt", req: request{header: bearer(tenantToken(t, "ACME"))}, status: 400, code: CodeInvalid},
		{name: "jwt claim SQL", config: "jwt", req: request{header: bearer(tenantToken(t, "acme'; DROP TABLE x;--"))}, status: 400, code: CodeInvalid, echo: "DROP TABLE"},
		{name: "jwt claim not a string", config: "jwt", req: request{header: bearer(tenantToken(t, 42))}, status: 400, code: CodeInvalid},
		{name: "jwt claim array", config: "jwt", req: request{header: bearer(tenantToken(t, []string{"acme", "globex"}))}, status: 400, code: CodeInvalid},
		{name: "jwt claim unicode look-alike", config: "jwt", req: request{header: bearer(tenantToken(t, "\u0430cme"))}, status: 400, code: CodeInvalid},
		{name: "jwt without the claim", config: "jwt", req: request{header: bearer(signToken(t, tokenOpts{expiry: time.Minute}))}, status: 400, code: CodeMissing},
		{name: "jwt garbage", config: "jwt", req: request{header: bearer("not-a-jwt")}, status: 400, code: CodeInvalid, echo: "not-a-jwt"},
		{name: "jwt with spaces", config: "jwt", req: request{header: bearer(parts[0] + ". " + parts[1] + "." + parts[2])}, status: 400, code: CodeInvalid},
		{name: "jwt overlong", config: "jwt", req: request{header: bearer(strings.Repeat("a", maxTokenLen) + ".b.c")}, status: 400, code: CodeInvalid},
		{name: "jwt repeated Authorization", config: "jwt", req: request{header: hdr("Authorization", "Bearer "+valid, "Authorization", "Bearer "+valid)}, status: 400, code: CodeAmbiguous},
		{name: "jwt basic auth is not a token", config: "jwt", req: request{header: hdr("Authorization", "Basic YWNtZTpwdw==")}, status: 400, code: CodeMissing},

		// Client certificate.
		{name: "cert tenant SAN", config: "cert", req: request{tls: verifiedTLS(t, spiffe("/tenant/acme"))}, status: 200, tenant: "acme", via: "client-cert"},
		{name: "cert tenant SAN beside service SAN", config: "cert", req: request{tls: verifiedTLS(t, spiffe("/ns/prod/sa/web"), spiffe("/tenant/globex"), "https://example.org/x")}, status: 200, tenant: "globex"},
		{name: "cert wrong trust domain", config: "cert", req: request{tls: verifiedTLS(t, "spiffe://evil.org/tenant/acme")}, status: 403, code: CodeForbidden},
		{name: "cert two tenant SANs", config: "cert", req: request{tls: verifiedTLS(t, spiffe("/tenant/acme"), spiffe("/tenant/globex"))}, status: 400, code: CodeAmbiguous},
		{name: "cert same tenant SAN twice", config: "cert", req: request{tls: verifiedTLS(t, spiffe("/tenant/acme"), spiffe("/tenant/acme"))}, status: 400, code: CodeAmbiguous},
		{name: "cert unverified", config: "cert", req: request{tls: unverifiedTLS(t, spiffe("/tenant/acme"))}, status: 403, code: CodeForbidden},
		{name: "cert upper-case slug", config: "cert", req: request{tls: verifiedTLS(t, spiffe("/tenant/ACME"))}, status: 400, code: CodeInvalid},
		{name: "cert nested tenant path", config: "cert", req: request{tls: verifiedTLS(t, spiffe("/tenant/acme/admin"))}, status: 400, code: CodeInvalid},
		{name: "cert tenant path without slug", config: "cert", req: request{tls: verifiedTLS(t, spiffe("/tenant"))}, status: 400, code: CodeInvalid},
		{name: "cert upper-case trust domain", config: "cert", req: request{tls: verifiedTLS(t, "spiffe://EXAMPLE.org/tenant/acme")}, status: 400, code: CodeInvalid},
		{name: "cert traversal in SPIFFE path", config: "cert", req: request{tls: verifiedTLS(t, spiffe("/tenant/../tenant/acme"))}, status: 400, code: CodeInvalid},
		{name: "cert service identity only", config: "cert", req: request{tls: verifiedTLS(t, spiffe("/ns/prod/sa/web"))}, status: 400, code: CodeMissing},
		{name: "cert no TLS", config: "cert", req: request{}, status: 400, code: CodeMissing},

		// Mesh XFCC.
		{name: "xfcc from sidecar", config: "xfcc", req: xfccFrom(sidecarIP, `By=spiffe://example.org/sidecar;Hash=ab;URI=`+spiffe("/tenant/acme")), status: 200, tenant: "acme", via: "mesh-xfcc"},
		{name: "xfcc from IPv6 sidecar", config: "xfcc", req: xfccFrom("[::1]:15001", `URI=`+spiffe("/tenant/acme")), status: 200, tenant: "acme"},
		{name: "xfcc only the last element counts", config: "xfcc", req: xfccFrom(sidecarIP, `URI=`+spiffe("/tenant/globex")+`,By=spiffe://example.org/sidecar;URI=`+spiffe("/tenant/acme")), status: 200, tenant: "acme"},
		{name: "xfcc earlier tenant, last has none", config: "xfcc", req: xfccFrom(sidecarIP, `URI=`+spiffe("/tenant/acme")+`,URI=`+spiffe("/ns/prod/sa/web")), status: 400, code: CodeMissing},
		{name: "xfcc quoted comma does not start an element", config: "xfcc", req: xfccFrom(sidecarIP, `URI=`+spiffe("/tenant/globex")+`;Subject="CN=x,URI=`+spiffe("/tenant/acme")+`"`), status: 200, tenant: "globex"},
		{name: "xfcc forged from untrusted peer", config: "xfcc", req: xfccFrom(untrusted, `URI=`+spiffe("/tenant/acme")), status: 403, code: CodeForbidden},
		{name: "xfcc forged from gateway outside sidecar prefix", config: "xfcc", req: xfccFrom(trustedIP, `URI=`+spiffe("/tenant/acme")), status: 403, code: CodeForbidden},
		{name: "xfcc repeated header", config: "xfcc", req: request{remoteAddr: sidecarIP, header: hdr("X-Forwarded-Client-Cert", "URI="+spiffe("/tenant/acme"), "X-Forwarded-Client-Cert", "URI="+spiffe("/tenant/globex"))}, status: 400, code: CodeAmbiguous},
		{name: "xfcc unterminated quote", config: "xfcc", req: xfccFrom(sidecarIP, `Subject="x;URI=`+spiffe("/tenant/acme")), status: 400, code: CodeInvalid},
		{name: "xfcc CRLF", config: "xfcc", req: xfccFrom(sidecarIP, "URI="+spiffe("/tenant/acme")+"\r\nX-Evil: 1"), status: 400, code: CodeInvalid, echo: "X-Evil"},
		{name: "xfcc empty element", config: "xfcc", req: xfccFrom(sidecarIP, "URI="+spiffe("/tenant/acme")+","), status: 400, code: CodeInvalid},
		{name: "xfcc foreign trust domain", config: "xfcc", req: xfccFrom(sidecarIP, "URI=spiffe://evil.org/tenant/acme"), status: 403, code: CodeForbidden},
		{name: "xfcc two tenant URIs", config: "xfcc", req: xfccFrom(sidecarIP, "URI="+spiffe("/tenant/acme")+";URI="+spiffe("/tenant/globex")), status: 400, code: CodeAmbiguous},
		{name: "xfcc upper-case slug", config: "xfcc", req: xfccFrom(sidecarIP, "URI="+spiffe("/tenant/ACME")), status: 400, code: CodeInvalid},
		{name: "xfcc SQL in slug", config: "xfcc", req: xfccFrom(sidecarIP, `URI="`+spiffe("/tenant/acme';DROP TABLE x;--")+`"`), status: 400, code: CodeInvalid, echo: "DROP TABLE"},

		// Modes.
		{name: "first match: header wins over subdomain", config: "first", req: request{remoteAddr: trustedIP, host: "globex.localhost", header: hdr("X-Tenant-Id", "acme")}, status: 200, tenant: "acme", via: "header"},
		{name: "first match: unknown host falls through to subdomain", config: "first", req: request{host: "acme.localhost"}, status: 200, tenant: "acme", via: "subdomain"},
		{name: "first match: custom domain", config: "first", req: request{host: "shop.globex.test"}, status: 200, tenant: "globex", via: "host"},
		{name: "first match: unknown host and nothing else", config: "first", req: request{host: "evil.test"}, status: 404, code: CodeUnknown},
		{name: "first match: untrusted header does not fall through", config: "first", req: request{host: "acme.localhost", header: hdr("X-Tenant-Id", "acme")}, status: 403, code: CodeForbidden},
		{name: "first match: malformed header does not fall through", config: "first", req: request{remoteAddr: trustedIP, host: "acme.localhost", header: hdr("X-Tenant-Id", "Acme")}, status: 400, code: CodeInvalid},
		{name: "agreement: subdomain and header agree", config: "agree", req: request{remoteAddr: trustedIP, host: "acme.localhost", header: hdr("X-Tenant-Id", "acme")}, status: 200, tenant: "acme", via: "subdomain"},
		{name: "agreement: slug and ID agree", config: "agree", req: request{remoteAddr: trustedIP, host: "acme.localhost", header: hdr("X-Tenant-Id", acmeID)}, status: 200, tenant: "acme"},
		{name: "agreement: subdomain and header conflict", config: "agree", req: request{remoteAddr: trustedIP, host: "acme.localhost", header: hdr("X-Tenant-Id", "globex")}, status: 403, code: CodeConflict},
		{name: "agreement: subdomain and token conflict", config: "agree", req: request{host: "acme.localhost", header: bearer(tenantToken(t, "globex"))}, status: 403, code: CodeConflict},
		{name: "agreement: three sources agree", config: "agree", req: request{remoteAddr: trustedIP, host: "acme.localhost", header: hdr("X-Tenant-Id", "acme", "Authorization", "Bearer "+valid)}, status: 200, tenant: "acme"},
		{name: "agreement: malformed second source", config: "agree", req: request{remoteAddr: trustedIP, host: "acme.localhost", header: hdr("X-Tenant-Id", "acme;globex")}, status: 400, code: CodeInvalid},
		{name: "agreement: unknown second source", config: "agree", req: request{remoteAddr: trustedIP, host: "acme.localhost", header: hdr("X-Tenant-Id", "nosuch")}, status: 404, code: CodeUnknown},

		// Catalog failures.
		{name: "catalog unavailable", config: "subdomain", req: request{host: "acme.localhost"}, lookupErr: catalog.ErrUnavailable, status: 503, code: CodeCatalogUnavailable},
		{name: "catalog internal error is not echoed", config: "header", req: request{remoteAddr: trustedIP, header: hdr("X-Tenant-Id", "acme")}, lookupErr: errors.New("pq: password authentication failed for user root"), status: 503, code: CodeCatalogUnavailable, echo: "password"},
	}
}

func TestHostileInputs(t *testing.T) {
	t.Parallel()

	cases := hostileCases(t)
	if len(cases) < 40 {
		t.Fatalf("only %d cases", len(cases))
	}
	t.Logf("%d cases", len(cases))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			lookup := newLookup()
			lookup.err = tc.lookupErr
			mk, ok := configs[tc.config]
			if !ok {
				t.Fatalf("no config %q", tc.config)
			}
			res, err := New(lookup, mk())
			if err != nil {
				t.Fatal(err)
			}

			var got struct {
				tenant, via, path string
			}
			reached := false
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reached = true
				if tn, ok := tenant.FromContext(r.Context()); ok {
					got.tenant = tn.Slug
				}
				got.via = tenant.ResolvedVia(r.Context())
				got.path = r.URL.Path
				w.WriteHeader(http.StatusOK)
			})

			rec := httptest.NewRecorder()
			res.Middleware(next).ServeHTTP(rec, tc.req.build(t))

			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if tc.code == "" {
				if !reached {
					t.Fatal("handler not reached")
				}
				if got.tenant != tc.tenant {
					t.Errorf("tenant = %q, want %q", got.tenant, tc.tenant)
				}
				if tc.via != "" && got.via != tc.via {
					t.Errorf("via = %q, want %q", got.via, tc.via)
				}
				if tc.path != "" && got.path != tc.path {
					t.Errorf("path = %q, want %q", got.path, tc.path)
				}
				return
			}
			if reached {
				t.Fatal("refused request reached the handler")
			}
			checkProblem(t, rec, tc.status, tc.code)
			if tc.echo != "" && strings.Contains(rec.Body.String(), tc.echo) {
				t.Errorf("body echoes the input: %s", rec.Body)
			}
			if tc.status == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}

			// Resolve returns the same problem, matched by its sentinel.
			_, _, err = res.Resolve(tc.req.build(t))
			var p *Problem
			if !errors.As(err, &p) || p.Code != tc.code {
				t.Fatalf("Resolve error = %v, want code %s", err, tc.code)
			}
		})
	}
}

// checkProblem asserts a problem response of the given status and code.
func checkProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != problem.ContentType {
		t.Errorf("Content-Type = %q", ct)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, rec.Body)
	}
	for _, k := range []string{"type", "title", "status", "code", "detail"} {
		if _, ok := body[k]; !ok {
			t.Errorf("body lacks %q: %s", k, rec.Body)
		}
	}
	if body["code"] != code {
		t.Errorf("code = %v, want %s; body %s", body["code"], code, rec.Body)
	}
	if body["status"] != float64(status) {
		t.Errorf("status member = %v, want %d", body["status"], status)
	}
}
