package resolve

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/tenant"
)

// mapLookup is a Lookup over maps, standing in for catalog.Cache (which is
// tested on its own). It is read-only after construction.
type mapLookup struct {
	bySlug, byID, byDomain map[string]*tenant.Tenant
	err                    error // returned by every call, if set
}

func (m *mapLookup) BySlug(s string) (*tenant.Tenant, error)   { return m.get(m.bySlug, s) }
func (m *mapLookup) ByID(s string) (*tenant.Tenant, error)     { return m.get(m.byID, s) }
func (m *mapLookup) ByDomain(s string) (*tenant.Tenant, error) { return m.get(m.byDomain, s) }

func (m *mapLookup) get(idx map[string]*tenant.Tenant, k string) (*tenant.Tenant, error) {
	if m.err != nil {
		return nil, m.err
	}
	if t, ok := idx[k]; ok {
		return t, nil
	}
	return nil, catalog.ErrNotFound
}

const (
	acmeID   = "0b9f5c1e-7a1d-4c2e-9f00-000000000001"
	globexID = "0b9f5c1e-7a1d-4c2e-9f00-000000000002"
)

func newLookup() *mapLookup {
	m := &mapLookup{bySlug: map[string]*tenant.Tenant{}, byID: map[string]*tenant.Tenant{}, byDomain: map[string]*tenant.Tenant{}}
	add := func(id, slug string, st tenant.State, domains ...string) {
		t := &tenant.Tenant{ID: id, Slug: slug, State: st, Domains: domains}
		m.bySlug[slug], m.byID[id] = t, t
		for _, d := range domains {
			m.byDomain[d] = t
		}
	}
	add(acmeID, "acme", tenant.StateActive, "acme.example.org")
	add(globexID, "globex", tenant.StateActive, "shop.globex.test")
	add("0b9f5c1e-7a1d-4c2e-9f00-000000000003", "initech", tenant.StateSuspended)
	add("0b9f5c1e-7a1d-4c2e-9f00-000000000004", "umbrella", tenant.StateReadOnly)
	add("0b9f5c1e-7a1d-4c2e-9f00-000000000005", "hooli", tenant.StateDeleting)
	add("0b9f5c1e-7a1d-4c2e-9f00-000000000006", "oddball", tenant.State("frozen"))
	return m
}

var (
	loopback  = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	gateways  = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	trustedIP = "10.1.2.3:40000"
	sidecarIP = "127.0.0.1:15001"
	untrusted = "203.0.113.9:51000"
)

const (
	jwtIssuer   = "https://issuer.example.org"
	jwtAudience = "tenantry"
	trustDomain = "example.org"
)

// keys are the signing keys of the tests, made once: RSA generation is slow.
type keys struct {
	rsa      *rsa.PrivateKey
	otherRSA *rsa.PrivateKey
	ec       *ecdsa.PrivateKey
	hmac     []byte
	ca       *x509.Certificate
	caKey    *ecdsa.PrivateKey
	roots    *x509.CertPool
	// otherCA signs certificates this server does not trust.
	otherCA    *x509.Certificate
	otherCAKey *ecdsa.PrivateKey
}

var testKeys = sync.OnceValue(func() *keys {
	k := &keys{hmac: []byte("0123456789abcdef0123456789abcdef")}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.otherRSA, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	k.ca, k.caKey = newCA("Tenantry Test CA")
	k.otherCA, k.otherCAKey = newCA("Someone Else's CA")
	k.roots = x509.NewCertPool()
	k.roots.AddCert(k.ca)
	return k
})

func newCA(name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return ca, key
}

var serial = struct {
	sync.Mutex
	n int64
}{n: 100}

// leafCert issues a client certificate with the given URI SANs, signed by
// the trusted CA or, if foreignCA, by a CA the server does not trust.
func leafCert(t testing.TB, foreignCA bool, uris ...string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k := testKeys()
	ca, caKey := k.ca, k.caKey
	if foreignCA {
		ca, caKey = k.otherCA, k.otherCAKey
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial.Lock()
	serial.n++
	sn := serial.n
	serial.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(sn),
		Subject:      pkix.Name{CommonName: "client"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return leaf, key
}

// verifiedTLS is the connection state crypto/tls records for a client
// certificate it verified against the trusted CA.
func verifiedTLS(t testing.TB, uris ...string) *tls.ConnectionState {
	t.Helper()
	leaf, _ := leafCert(t, false, uris...)
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: testKeys().roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	return &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: chains}
}

// unverifiedTLS is the state for a certificate the server requested but did
// not verify (tls.RequestClientCert): here, one from an untrusted CA.
func unverifiedTLS(t testing.TB, uris ...string) *tls.ConnectionState {
	t.Helper()
	leaf, _ := leafCert(t, true, uris...)
	return &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{leaf}}
}

type tokenOpts struct {
	alg      jose.SignatureAlgorithm
	key      any
	kid      string
	issuer   string
	audience string
	expiry   time.Duration // from now; 0 means no exp claim
	claims   map[string]any
}

// signToken makes a JWT; zero fields of o get working defaults (RS256 with
// the trusted RSA key, right issuer and audience, 5 minute expiry).
func signToken(t testing.TB, o tokenOpts) string {
	t.Helper()
	k := testKeys()
	if o.alg == "" {
		o.alg, o.key = jose.RS256, k.rsa
	}
	if o.issuer == "" {
		o.issuer = jwtIssuer
	}
	if o.audience == "" {
		o.audience = jwtAudience
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if o.kid != "" {
		opts = opts.WithHeader("kid", o.kid)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: o.alg, Key: o.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	std := jwt.Claims{Issuer: o.issuer, Audience: jwt.Audience{o.audience}, IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute))}
	if o.expiry != 0 {
		std.Expiry = jwt.NewNumericDate(now.Add(o.expiry))
	}
	tok, err := jwt.Signed(sig).Claims(std).Claims(o.claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func tenantToken(t testing.TB, claim any) string {
	return signToken(t, tokenOpts{expiry: 5 * time.Minute, claims: map[string]any{"tenant": claim}})
}

// unsignedToken is an "alg":"none" token with valid claims.
func unsignedToken(claims map[string]any) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	p, _ := json.Marshal(claims)
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + "."
}

// rsaPublicPEM is the PEM of the trusted RSA public key: what an attacker
// uses as the HMAC secret in an algorithm confusion attack.
func rsaPublicPEM() []byte {
	der, err := x509.MarshalPKIXPublicKey(&testKeys().rsa.PublicKey)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func jwtConfig() JWTConfig {
	k := testKeys()
	return JWTConfig{
		Issuer:     jwtIssuer,
		Audience:   jwtAudience,
		PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey, &k.ec.PublicKey},
	}
}

// request builds a request from the given parts; hostile values are set
// directly, bypassing the parsing a real server would do, so that the
// middleware is tested against them even where net/http would refuse them.
type request struct {
	method     string
	host       string
	target     string // path, with query; default "/"
	remoteAddr string
	header     http.Header
	tls        *tls.ConnectionState
}

func (rq request) build(t testing.TB) *http.Request {
	t.Helper()
	if rq.method == "" {
		rq.method = http.MethodGet
	}
	if rq.target == "" {
		rq.target = "/"
	}
	if rq.remoteAddr == "" {
		rq.remoteAddr = untrusted
	}
	u, err := url.ParseRequestURI(rq.target)
	if err != nil {
		t.Fatalf("target %q: %v", rq.target, err)
	}
	r := &http.Request{
		Method:     rq.method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{},
		Host:       rq.host,
		RemoteAddr: rq.remoteAddr,
		RequestURI: rq.target,
		TLS:        rq.tls,
	}
	for k, vs := range rq.header {
		r.Header[k] = vs
	}
	return r.WithContext(t.Context())
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h[kv[i]] = append(h[kv[i]], kv[i+1])
	}
	return h
}
