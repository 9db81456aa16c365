package resolve

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tenantry/tenantry/tenant"
)

func TestNewMisconfiguration(t *testing.T) {
	t.Parallel()

	k := testKeys()
	smallRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	withJWT := func(mod func(*JWTConfig)) *Config {
		c := jwtConfig()
		mod(&c)
		return &Config{Strategies: []Strategy{JWT(c)}}
	}

	tests := []struct {
		name string
		cfg  *Config
		want string // substring of the error
	}{
		{"nil config", nil, "no strategy"},
		{"no strategies", &Config{}, "no strategy"},
		{"nil strategy", &Config{Strategies: []Strategy{nil}}, "nil"},
		{"duplicate strategy", &Config{Strategies: []Strategy{Host(), Host()}}, "twice"},
		{"unknown mode", &Config{Mode: 7, Strategies: []Strategy{Host()}}, "mode"},
		{"subdomain without base", &Config{Strategies: []Strategy{Subdomain()}}, "no base domain"},
		{"subdomain base with port", &Config{Strategies: []Strategy{Subdomain("localhost:8080")}}, "not a host name"},
		{"subdomain base is an IP", &Config{Strategies: []Strategy{Subdomain("127.0.0.1")}}, "not a host name"},
		{"subdomain base malformed", &Config{Strategies: []Strategy{Subdomain("exa mple.com")}}, "not a host name"},
		{"header without trusted prefixes", &Config{Strategies: []Strategy{Header("", nil)}}, "no trusted prefix"},
		{"header invalid prefix", &Config{Strategies: []Strategy{Header("", []netip.Prefix{{}})}}, "invalid"},
		{"header mapped prefix", &Config{Strategies: []Strategy{Header("", []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")})}}, "IPv4-mapped"},
		{"header bad name", &Config{Strategies: []Strategy{Header("X Tenant", loopback)}}, "header name"},
		{"path prefix without slashes", &Config{Strategies: []Strategy{PathPrefix("t")}}, "start and end"},
		{"path prefix with dots", &Config{Strategies: []Strategy{PathPrefix("/../")}}, "dot segment"},
		{"path prefix with percent", &Config{Strategies: []Strategy{PathPrefix("/%74/")}}, "character"},
		{"jwt no keys", withJWT(func(c *JWTConfig) { c.PublicKeys = nil }), "no verification key"},
		{"jwt no issuer", withJWT(func(c *JWTConfig) { c.Issuer = "" }), "issuer"},
		{"jwt no audience", withJWT(func(c *JWTConfig) { c.Audience = "" }), "audience"},
		{"jwt short HMAC key", withJWT(func(c *JWTConfig) { c.HMACKeys = [][]byte{[]byte("short")} }), "32 bytes"},
		{"jwt small RSA key", withJWT(func(c *JWTConfig) { c.PublicKeys = []crypto.PublicKey{&smallRSA.PublicKey} }), "2048"},
		{"jwt P-384 key", withJWT(func(c *JWTConfig) { c.PublicKeys = []crypto.PublicKey{&p384.PublicKey} }), "P-256"},
		{"jwt private key", withJWT(func(c *JWTConfig) { c.PublicKeys = []crypto.PublicKey{k.rsa} }), "unsupported key type"},
		{"jwt leeway too large", withJWT(func(c *JWTConfig) { c.Leeway = time.Hour }), "leeway"},
		{"jwt missing JWKS file", withJWT(func(c *JWTConfig) { c.JWKSFile = filepath.Join(t.TempDir(), "none.json") }), "JWKS"},
		{"client cert bad trust domain", &Config{Strategies: []Strategy{ClientCert("Example.ORG")}}, "trust domain"},
		{"client cert SPIFFE ID as trust domain", &Config{Strategies: []Strategy{ClientCert("spiffe://example.org")}}, "bare name"},
		{"mesh without trusted prefixes", &Config{Strategies: []Strategy{MeshXFCC(nil, trustDomain)}}, "no trusted prefix"},
		{"mesh empty trust domain", &Config{Strategies: []Strategy{MeshXFCC(loopback, "")}}, "trust domain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(newLookup(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.want)
			}
		})
	}

	t.Run("nil lookup", func(t *testing.T) {
		t.Parallel()
		if _, err := New(nil, &Config{Strategies: []Strategy{Host()}}); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("strategy shared between resolvers", func(t *testing.T) {
		t.Parallel()
		s := Host()
		if _, err := New(newLookup(), &Config{Strategies: []Strategy{s}}); err != nil {
			t.Fatal(err)
		}
		if _, err := New(newLookup(), &Config{Strategies: []Strategy{s}}); err == nil || !strings.Contains(err.Error(), "already used") {
			t.Fatalf("second New error = %v", err)
		}
	})
	t.Run("MustNew panics", func(t *testing.T) {
		t.Parallel()
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		MustNew(newLookup(), &Config{})
	})
	t.Run("nil handler panics", func(t *testing.T) {
		t.Parallel()
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		MustNew(newLookup(), &Config{Strategies: []Strategy{Host()}}).Middleware(nil)
	})
}

func TestNormalizeHost(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in    string
		want  string
		class hostClass
	}{
		{"acme.example.com", "acme.example.com", hostName},
		{"Acme.Example.COM.:8443", "acme.example.com", hostName},
		{"localhost", "localhost", hostName},
		{"localhost:", "localhost", hostName},
		{"xn--80ak6aa92e.com", "xn--80ak6aa92e.com", hostName},
		{"a-b.c", "a-b.c", hostName},
		{"1a.example", "1a.example", hostName},
		{"", "", hostNone},
		{"192.0.2.1", "", hostIP},
		{"192.0.2.1:443", "", hostIP},
		{"[2001:db8::1]", "", hostIP},
		{"[2001:db8::1]:443", "", hostIP},
		{"example.123", "", hostIP},
		{"[192.0.2.1]", "", hostInvalid},
		{"[::1]x", "", hostInvalid},
		{"[::1]:x", "", hostInvalid},
		{".", "", hostInvalid},
		{"..", "", hostInvalid},
		{"a..b", "", hostInvalid},
		{"a.-b", "", hostInvalid},
		{"a-.b", "", hostInvalid},
		{"a b", "", hostInvalid},
		{"a\tb", "", hostInvalid},
		{"a/b", "", hostInvalid},
		{"a@b", "", hostInvalid},
		{"a:1:2", "", hostInvalid},
		{"a:123456", "", hostInvalid},
		{"a:65536", "", hostInvalid},
		{"é.example", "", hostInvalid},
		{"exa\u200bmple.com", "", hostInvalid},
		{strings.Repeat("a", 63) + ".b", strings.Repeat("a", 63) + ".b", hostName},
		{strings.Repeat("a", 64) + ".b", "", hostInvalid},
		{strings.Repeat("a.", 126) + "a", strings.Repeat("a.", 126) + "a", hostName}, // 253 bytes
		{strings.Repeat("a.", 126) + "ab", "", hostInvalid},                          // 254 bytes
	}
	for _, tt := range tests {
		got, class := normalizeHost(tt.in)
		if got != tt.want || class != tt.class {
			t.Errorf("normalizeHost(%q) = %q, %d; want %q, %d", tt.in, got, class, tt.want, tt.class)
		}
	}
}

func TestPathRewrite(t *testing.T) {
	t.Parallel()

	res := MustNew(newLookup(), &Config{Strategies: []Strategy{PathPrefix("/tenants/")}})
	req := request{target: "/tenants/acme/files/a%2Fb?q=1"}.build(t)
	var seen *http.Request
	res.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r })).ServeHTTP(httptest.NewRecorder(), req)
	if seen == nil {
		t.Fatal("handler not reached")
	}
	if seen.URL.Path != "/files/a/b" || seen.URL.RawPath != "/files/a%2Fb" || seen.URL.EscapedPath() != "/files/a%2Fb" {
		t.Errorf("rewritten URL: Path %q RawPath %q", seen.URL.Path, seen.URL.RawPath)
	}
	if seen.URL.RawQuery != "q=1" || seen.RequestURI != "/tenants/acme/files/a%2Fb?q=1" {
		t.Errorf("query %q, RequestURI %q", seen.URL.RawQuery, seen.RequestURI)
	}
	if req.URL.Path != "/tenants/acme/files/a/b" {
		t.Errorf("the caller's request was modified: %q", req.URL.Path)
	}

	// Resolve names the tenant without rewriting.
	tn, via, err := res.Resolve(req)
	if err != nil || tn.Slug != "acme" || via != StrategyPathPrefix || req.URL.Path != "/tenants/acme/files/a/b" {
		t.Errorf("Resolve = %v, %q, %v; path %q", tn, via, err, req.URL.Path)
	}
}

func TestRequireAgreementRewritesPath(t *testing.T) {
	t.Parallel()

	res := MustNew(newLookup(), &Config{Mode: RequireAgreement, Strategies: []Strategy{Subdomain("localhost"), PathPrefix("")}})
	var path string
	h := res.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { path = r.URL.Path }))
	h.ServeHTTP(httptest.NewRecorder(), request{host: "acme.localhost", target: "/t/acme/x"}.build(t))
	if path != "/x" {
		t.Errorf("path = %q, want /x", path)
	}
}

func TestJWKSFile(t *testing.T) {
	t.Parallel()

	k := testKeys()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &k.rsa.PublicKey, KeyID: "rsa-1", Algorithm: "RS256", Use: "sig"},
		{Key: k.ec, KeyID: "ec-1"}, // a private key: only its public half is used
		{Key: &k.otherRSA.PublicKey, KeyID: "enc-1", Use: "enc"},
	}}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	res := MustNew(newLookup(), &Config{Strategies: []Strategy{JWT(JWTConfig{Issuer: jwtIssuer, Audience: jwtAudience, JWKSFile: path})}})

	claims := map[string]any{"tenant": "acme"}
	tests := []struct {
		name string
		tok  string
		code string
	}{
		{"rsa with kid", signToken(t, tokenOpts{alg: jose.RS256, key: k.rsa, kid: "rsa-1", expiry: time.Minute, claims: claims}), ""},
		{"rsa without kid", signToken(t, tokenOpts{alg: jose.RS256, key: k.rsa, expiry: time.Minute, claims: claims}), ""},
		{"ec with kid", signToken(t, tokenOpts{alg: jose.ES256, key: k.ec, kid: "ec-1", expiry: time.Minute, claims: claims}), ""},
		{"rsa with the EC key's kid", signToken(t, tokenOpts{alg: jose.RS256, key: k.rsa, kid: "ec-1", expiry: time.Minute, claims: claims}), CodeForbidden},
		{"rsa with an unknown kid", signToken(t, tokenOpts{alg: jose.RS256, key: k.rsa, kid: "nope", expiry: time.Minute, claims: claims}), CodeForbidden},
		{"encryption key used to sign", signToken(t, tokenOpts{alg: jose.RS256, key: k.otherRSA, kid: "enc-1", expiry: time.Minute, claims: claims}), CodeForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := request{header: hdr("Authorization", "Bearer "+tt.tok)}.build(t)
			tn, _, err := res.Resolve(req)
			if tt.code == "" {
				if err != nil || tn.Slug != "acme" {
					t.Fatalf("Resolve = %v, %v", tn, err)
				}
				return
			}
			var p *Problem
			if !errors.As(err, &p) || p.Code != tt.code {
				t.Fatalf("Resolve error = %v, want %s", err, tt.code)
			}
		})
	}

	t.Run("alg that does not match the key", func(t *testing.T) {
		t.Parallel()
		bad, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.rsa.PublicKey, Algorithm: "HS256"}}})
		p := filepath.Join(t.TempDir(), "bad.json")
		if err := os.WriteFile(p, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := New(newLookup(), &Config{Strategies: []Strategy{JWT(JWTConfig{Issuer: jwtIssuer, Audience: jwtAudience, JWKSFile: p})}})
		if err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("New error = %v", err)
		}
	})
}

// TestClientCertOverTLS runs the strategy behind real TLS handshakes, so
// that VerifiedChains is what crypto/tls makes of it.
func TestClientCertOverTLS(t *testing.T) {
	t.Parallel()

	k := testKeys()
	newServer := func(auth tls.ClientAuthType) *httptest.Server {
		res := MustNew(newLookup(), &Config{Strategies: []Strategy{ClientCert(trustDomain)}})
		srv := httptest.NewUnstartedServer(res.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tn, _ := tenant.FromContext(r.Context())
			_, _ = io.WriteString(w, tn.Slug)
		})))
		srv.TLS = &tls.Config{ClientAuth: auth, ClientCAs: k.roots}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv
	}
	verifying := newServer(tls.VerifyClientCertIfGiven)
	// A server that asks for a certificate but does not verify it.
	requesting := newServer(tls.RequestClientCert)

	get := func(t *testing.T, srv *httptest.Server, leafURIs []string, foreign bool) (int, string) {
		t.Helper()
		tr := srv.Client().Transport.(*http.Transport).Clone()
		if leafURIs != nil {
			leaf, key := leafCert(t, foreign, leafURIs...)
			cert := &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
			// Present it even when the server does not list its CA.
			tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		t.Cleanup(tr.CloseIdleConnections)
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		resp, err := client.Get(srv.URL)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	tests := []struct {
		name    string
		srv     *httptest.Server
		uris    []string
		foreign bool
		status  int // 0: the handshake fails
		body    string
	}{
		{"tenant certificate", verifying, []string{"spiffe://example.org/tenant/globex"}, false, 200, "globex"},
		{"no certificate", verifying, nil, false, 400, CodeMissing},
		{"wrong trust domain", verifying, []string{"spiffe://evil.org/tenant/globex"}, false, 403, CodeForbidden},
		{"untrusted CA: handshake fails", verifying, []string{"spiffe://example.org/tenant/globex"}, true, 0, ""},
		{"untrusted CA, server does not verify", requesting, []string{"spiffe://example.org/tenant/globex"}, true, 403, CodeForbidden},
		{"trusted CA, server does not verify", requesting, []string{"spiffe://example.org/tenant/globex"}, false, 403, CodeForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, body := get(t, tt.srv, tt.uris, tt.foreign)
			if status != tt.status || !strings.Contains(body, tt.body) {
				t.Fatalf("got %d %q, want %d %q", status, body, tt.status, tt.body)
			}
		})
	}
}

func TestLogging(t *testing.T) {
	t.Parallel()

	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	res := MustNew(newLookup(), &Config{Logger: logger, Strategies: []Strategy{Header("", gateways), Subdomain("localhost")}})
	h := res.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))

	h.ServeHTTP(httptest.NewRecorder(), request{host: "acme.localhost", header: hdr("X-Tenant-Id", "acme'; DROP")}.build(t))
	h.ServeHTTP(httptest.NewRecorder(), request{method: "POST", host: "umbrella.localhost"}.build(t))

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d records: %s", len(lines), buf.String())
	}
	var forbidden, readOnly map[string]any
	_ = json.Unmarshal([]byte(lines[0]), &forbidden)
	_ = json.Unmarshal([]byte(lines[1]), &readOnly)
	if forbidden["level"] != "WARN" || forbidden["code"] != CodeForbidden || forbidden["strategy"] != "header" {
		t.Errorf("forbidden record: %s", lines[0])
	}
	if strings.Contains(lines[0], "DROP") {
		t.Errorf("the log record carries the hostile value: %s", lines[0])
	}
	if readOnly["level"] != "DEBUG" || readOnly["code"] != CodeReadOnly || readOnly["tenant"] != "umbrella" {
		t.Errorf("read-only record: %s", lines[1])
	}
}

func TestErrorHandler(t *testing.T) {
	t.Parallel()

	var got *Problem
	res := MustNew(newLookup(), &Config{
		Strategies: []Strategy{Subdomain("localhost")},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, p *Problem) {
			got = p
			w.WriteHeader(http.StatusTeapot)
		},
	})
	rec := httptest.NewRecorder()
	res.Middleware(http.NotFoundHandler()).ServeHTTP(rec, request{host: "nosuch.localhost"}.build(t))
	if rec.Code != http.StatusTeapot || !errors.Is(got, ErrUnknown) {
		t.Fatalf("status %d, problem %v", rec.Code, got)
	}
}

func TestLogAttr(t *testing.T) {
	t.Parallel()

	if a := LogAttr(context.Background()); !a.Equal(slog.Attr{}) {
		t.Errorf("LogAttr without tenant = %v", a)
	}
	ctx := tenant.NewContext(context.Background(), &tenant.Tenant{Slug: "acme"}, StrategyHost)
	if a := LogAttr(ctx); a.Key != "tenant" || a.Value.String() != "acme" {
		t.Errorf("LogAttr = %v", a)
	}
}

func TestStrategyNames(t *testing.T) {
	t.Parallel()

	for s, want := range map[Strategy]string{
		Host(): StrategyHost, Subdomain("x"): StrategySubdomain, Header("", nil): StrategyHeader,
		PathPrefix(""): StrategyPathPrefix, JWT(JWTConfig{}): StrategyJWT,
		ClientCert(""): StrategyClientCert, MeshXFCC(nil, ""): StrategyMeshXFCC,
	} {
		if s.Name() != want {
			t.Errorf("Name() = %q, want %q", s.Name(), want)
		}
	}
	if FirstMatch.String() != "first-match" || RequireAgreement.String() != "require-agreement" {
		t.Error("Mode.String")
	}
}

// The service's own host names no tenant: a request to the bare host or to a
// base domain is tenant_missing (400), and another strategy may still match.
func TestServiceHostIsNoIdentifier(t *testing.T) {
	t.Parallel()
	res := MustNew(newLookup(), &Config{Strategies: []Strategy{
		Host(), Subdomain("localhost", "tenants.example.org"), Header(DefaultHeader, loopback),
	}})
	for _, tc := range []struct {
		host, tenantHeader string
		wantStatus         int
		wantVia            string
	}{
		{"localhost:8080", "", http.StatusBadRequest, ""},
		{"localhost", "", http.StatusBadRequest, ""},
		{"tenants.example.org", "", http.StatusBadRequest, ""},
		{"TENANTS.example.org.", "", http.StatusBadRequest, ""},
		{"localhost:8080", "acme", http.StatusOK, StrategyHeader},
		{"tenants.example.org", "acme", http.StatusOK, StrategyHeader},
		{"acme.example.org", "", http.StatusOK, StrategyHost},
		{"unknown.example.org", "", http.StatusNotFound, ""},
	} {
		h := http.Header{}
		if tc.tenantHeader != "" {
			h.Set(DefaultHeader, tc.tenantHeader)
		}
		var via string
		rec := httptest.NewRecorder()
		res.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			via = tenant.ResolvedVia(r.Context())
		})).ServeHTTP(rec, request{host: tc.host, header: h, remoteAddr: "127.0.0.1:5000"}.build(t))
		if rec.Code != tc.wantStatus || via != tc.wantVia {
			t.Errorf("host %q header %q: status %d via %q, want %d via %q (body %s)", tc.host, tc.tenantHeader, rec.Code, via, tc.wantStatus, tc.wantVia, rec.Body)
		}
		if tc.wantStatus == http.StatusBadRequest && !strings.Contains(rec.Body.String(), CodeMissing) {
			t.Errorf("host %q: body %s, want code %s", tc.host, rec.Body, CodeMissing)
		}
	}
}
