package xfcc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		in   string
		want []Element
	}{
		{
			name: "envoy docs: uri only",
			in:   `By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com`,
			want: []Element{{
				By:      "http://frontend.lyft.com",
				Hash:    "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688",
				Subject: "/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client",
				URI:     []string{"http://testclient.lyft.com"},
			}},
		},
		{
			name: "two elements",
			in:   `By=spiffe://td/a;URI=spiffe://td/tenant/one,By=spiffe://td/b;URI=spiffe://td/tenant/two`,
			want: []Element{
				{By: "spiffe://td/a", URI: []string{"spiffe://td/tenant/one"}},
				{By: "spiffe://td/b", URI: []string{"spiffe://td/tenant/two"}},
			},
		},
		{
			name: "whitespace around element comma",
			in:   "URI=spiffe://td/x , \tURI=spiffe://td/y",
			want: []Element{{URI: []string{"spiffe://td/x"}}, {URI: []string{"spiffe://td/y"}}},
		},
		{
			name: "keys are case-insensitive",
			in:   `by=spiffe://td/p;uri=spiffe://td/x;dNs=a.example;HASH=ab`,
			want: []Element{{By: "spiffe://td/p", Hash: "ab", URI: []string{"spiffe://td/x"}, DNS: []string{"a.example"}}},
		},
		{
			name: "repeated SANs",
			in:   `URI=spiffe://td/a;URI=spiffe://td/b;DNS=x.example;DNS=y.example`,
			want: []Element{{URI: []string{"spiffe://td/a", "spiffe://td/b"}, DNS: []string{"x.example", "y.example"}}},
		},
		{
			name: "quoted value with separators and escaped quote",
			in:   `Subject="CN=a\"b,O=c;d=e";URI=spiffe://td/x`,
			want: []Element{{Subject: `CN=a"b,O=c;d=e`, URI: []string{"spiffe://td/x"}}},
		},
		{
			name: "backslash other than before a quote is literal",
			in:   `Subject="CN=Acme\, Inc"`,
			want: []Element{{Subject: `CN=Acme\, Inc`}},
		},
		{
			name: "unknown key ignored",
			in:   `Future-Key=1;URI=spiffe://td/x`,
			want: []Element{{URI: []string{"spiffe://td/x"}}},
		},
		{
			name: "empty values",
			in:   `By=;Subject=""`,
			want: []Element{{}},
		},
		{
			name: "utf-8 in quoted subject",
			in:   `Subject="CN=Zürich"`,
			want: []Element{{Subject: "CN=Zürich"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse =\n%#v\nwant\n%#v", got, tt.want)
			}
			last, err := Last(tt.in)
			if err != nil {
				t.Fatalf("Last: %v", err)
			}
			if !reflect.DeepEqual(last, tt.want[len(tt.want)-1]) {
				t.Fatalf("Last = %#v, want %#v", last, tt.want[len(tt.want)-1])
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"only whitespace", "  "},
		{"no equals", "URI"},
		{"empty key", "=x"},
		{"leading comma", ",URI=a"},
		{"trailing comma", "URI=a,"},
		{"double comma", "URI=a,,URI=b"},
		{"trailing semicolon", "URI=a;"},
		{"double semicolon", "URI=a;;By=b"},
		{"leading semicolon", ";URI=a"},
		{"space before equals", "URI =a"},
		{"space after semicolon", "URI=a; By=b"},
		{"space inside value", "URI=a b"},
		{"equals in unquoted value", "URI=a=b"},
		{"quote in unquoted value", `URI=a"b`},
		{"unterminated quote", `Subject="abc`},
		{"escaped final quote leaves it unterminated", `Subject="abc\"`},
		{"text after closing quote", `Subject="a"b`},
		{"NUL", "URI=spiffe://td/a\x00"},
		{"CR LF", "URI=spiffe://td/a\r\nX-Evil: 1"},
		{"control in quoted", "Subject=\"a\x01\""},
		{"DEL", "URI=a\x7f"},
		{"invalid utf-8", "Subject=\"\xff\""},
		{"key with dot", "U.RI=a"},
		{"repeated By", "By=a;By=b"},
		{"repeated Hash differing case", "Hash=a;hash=b"},
		{"repeated Subject", `Subject="a";Subject="b"`},
		{"repeated Cert", "Cert=a;Cert=b"},
		{"repeated Chain", "Chain=a;CHAIN=b"},
		{"too long", "URI=" + strings.Repeat("a", MaxLen)},
		{"too many elements", strings.TrimSuffix(strings.Repeat("URI=a,", MaxElements+1), ",")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for fn, parse := range map[string]func(string) error{
				"Parse": func(s string) error { _, err := Parse(s); return err },
				"Last":  func(s string) error { _, err := Last(s); return err },
			} {
				err := parse(tt.in)
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("%s(%q) error = %v, want ErrMalformed", fn, tt.in, err)
				}
				var se *SyntaxError
				if !errors.As(err, &se) {
					t.Fatalf("%s error %T is not a *SyntaxError", fn, err)
				}
				if len(tt.in) > 3 && strings.Contains(err.Error(), tt.in) {
					t.Fatalf("%s error echoes the input: %v", fn, err)
				}
			}
		})
	}
}

func TestLastChecksEarlierElements(t *testing.T) {
	t.Parallel()

	// Only the last element is returned, but a malformed element before it
	// must not be skipped over: its quotes decide where the last one starts.
	_, err := Last(`Subject="unterminated,URI=spiffe://td/tenant/acme`)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("Last = %v, want ErrMalformed", err)
	}
	// A comma inside a quoted value does not start an element.
	e, err := Last(`URI=spiffe://td/tenant/evil;Subject="x,URI=spiffe://td/tenant/acme"`)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(e.URI, []string{"spiffe://td/tenant/evil"}) {
		t.Fatalf("URI = %q", e.URI)
	}
}

func TestCertificates(t *testing.T) {
	t.Parallel()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("spiffe://example.org/tenant/acme")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "acme"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		URIs:         []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	encoded := envoyEscape(pemText)

	e, err := Last(`Hash=00;Cert="` + encoded + `";URI=spiffe://example.org/tenant/acme`)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := e.Certificates()
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 1 || certs[0].URIs[0].String() != u.String() {
		t.Fatalf("certs = %v", certs)
	}

	// A '+' left unescaped is base64, not a space.
	if certs, err := (Element{Cert: url.PathEscape(pemText)}).Certificates(); err != nil || len(certs) != 1 {
		t.Fatalf("path-escaped cert: %d certs, %v", len(certs), err)
	}

	chain := Element{Chain: encoded + encoded}
	if certs, err := chain.Certificates(); err != nil || len(certs) != 2 {
		t.Fatalf("chain: %d certs, %v", len(certs), err)
	}
	if _, err := (Element{}).Certificates(); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("empty element: %v", err)
	}
	if _, err := (Element{Cert: "%zz"}).Certificates(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad encoding: %v", err)
	}
	if _, err := (Element{Cert: url.PathEscape("not pem")}).Certificates(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("not pem: %v", err)
	}
}

// envoyEscape percent-encodes everything but RFC 3986 unreserved bytes, as
// Envoy does for the Cert and Chain values.
func envoyEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`By=a;Hash=b;Subject="c,d";URI=spiffe://td/tenant/x`,
		`URI=a,URI=b`,
		`Subject="\"",DNS=x`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		all, err := Parse(s)
		last, lerr := Last(s)
		if (err == nil) != (lerr == nil) {
			t.Fatalf("Parse err %v, Last err %v", err, lerr)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if !reflect.DeepEqual(all[len(all)-1], last) {
			t.Fatalf("Last disagrees with Parse")
		}
	})
}

func BenchmarkLast(b *testing.B) {
	v := `By=spiffe://cluster.local/ns/a/sa/gw;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="CN=gw";URI=spiffe://cluster.local/ns/a/sa/gw,By=spiffe://cluster.local/ns/b/sa/api;Hash=568ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;URI=spiffe://example.org/tenant/acme`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Last(v); err != nil {
			b.Fatal(err)
		}
	}
}
