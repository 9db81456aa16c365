// Package xfcc parses Envoy's x-forwarded-client-cert (XFCC) header: the
// certificate details that a TLS-terminating proxy (typically a service mesh
// sidecar) passes on about the client it authenticated.
//
// # Format
//
// The header value is a comma-separated list of elements; each proxy that
// handled the request may append one, so the last element is the one added
// by the proxy closest to this server. An element is a semicolon-separated
// list of key=value pairs. Keys are case-insensitive (By, Hash, Cert, Chain,
// Subject, URI, DNS); values are case-sensitive. A value that contains ',',
// ';', '=' or '"' is double-quoted, with each '"' in it written as '\"'.
// URI and DNS may repeat within an element, one pair per Subject Alternative
// Name; every other key may appear at most once. Example:
//
//	By=spiffe://example.org/sidecar;Hash=4a1b...;Subject="CN=acme,O=Example";URI=spiffe://example.org/tenant/acme
//
// # Trust
//
// Parsing says nothing about who wrote the header. Any client can send one;
// it carries meaning only when the request came straight from a proxy that
// is trusted to remove or overwrite the header it received from its own
// client (Envoy's forward_client_cert_details SANITIZE_SET, or
// APPEND_FORWARD, after which only the last element is the proxy's own).
// Deciding that is the caller's job: see resolve.MeshXFCC.
//
// # Strictness
//
// The parser accepts exactly the grammar above and refuses everything else
// with an error wrapping ErrMalformed: empty elements or pairs, a pair
// without '=', an empty or non-token key, a single-valued key repeated in an
// element, an unterminated quote, text after a closing quote, control bytes,
// invalid UTF-8, more than MaxElements elements or a header longer than
// MaxLen. Optional whitespace is allowed only around the commas that separate
// elements (where proxies that fold repeated headers put it). Unknown keys
// are checked for syntax and otherwise ignored, so that a proxy upgrade that
// adds a key does not break requests. Error messages give a byte offset and
// a reason, never the input.
package xfcc

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Header is the canonical name of the header.
const Header = "X-Forwarded-Client-Cert"

const (
	// MaxLen bounds the header value in bytes. A URL-encoded PEM chain of a
	// few certificates fits comfortably.
	MaxLen = 64 << 10
	// MaxElements bounds the number of elements (proxy hops).
	MaxElements = 32
)

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("malformed x-forwarded-client-cert header")

// SyntaxError reports where and why a header failed to parse. It never
// contains the input, so it is safe to log.
type SyntaxError struct {
	// Offset is the byte offset in the header value where parsing failed.
	Offset int
	// Reason says what was wrong.
	Reason string
}

func (e *SyntaxError) Error() string {
	return ErrMalformed.Error() + ": " + e.Reason + " at byte " + strconv.Itoa(e.Offset)
}

// Unwrap returns ErrMalformed.
func (e *SyntaxError) Unwrap() error { return ErrMalformed }

// Element is the certificate information added by one proxy. Values are as
// sent, unquoted; Cert and Chain stay URL-encoded (see Certificates).
type Element struct {
	// By is the URI SAN of the proxy's own certificate.
	By string
	// Hash is the hex SHA-256 digest of the client certificate.
	Hash string
	// Cert is the URL-encoded PEM client certificate.
	Cert string
	// Chain is the URL-encoded PEM client certificate chain, leaf first.
	Chain string
	// Subject is the client certificate's subject, as the proxy formats it.
	Subject string
	// URI holds the client certificate's URI SANs, in order.
	URI []string
	// DNS holds the client certificate's DNS SANs, in order.
	DNS []string
}

// Parse parses a whole header value into its elements, first to last.
func Parse(v string) ([]Element, error) {
	if err := checkHeader(v); err != nil {
		return nil, err
	}
	var out []Element
	p := parser{s: v}
	for {
		var e Element
		if err := p.element(&e); err != nil {
			return nil, err
		}
		out = append(out, e)
		if len(out) > MaxElements {
			return nil, &SyntaxError{Offset: p.i, Reason: "too many elements"}
		}
		if p.done() {
			return out, nil
		}
	}
}

// Last parses a whole header value and returns its last element, the one
// added by the proxy closest to this server. Every element is checked, so a
// malformed earlier element is an error, but only the last is kept.
func Last(v string) (Element, error) {
	if err := checkHeader(v); err != nil {
		return Element{}, err
	}
	p := parser{s: v}
	n := 0
	for {
		start := p.i
		if err := p.element(nil); err != nil {
			return Element{}, err
		}
		n++
		if n > MaxElements {
			return Element{}, &SyntaxError{Offset: p.i, Reason: "too many elements"}
		}
		if p.done() {
			var e Element
			q := parser{s: v, i: start}
			if err := q.element(&e); err != nil { // cannot fail: checked above
				return Element{}, err
			}
			return e, nil
		}
	}
}

func checkHeader(v string) error {
	switch {
	case v == "":
		return &SyntaxError{Reason: "empty header"}
	case len(v) > MaxLen:
		return &SyntaxError{Reason: "header longer than " + strconv.Itoa(MaxLen) + " bytes"}
	case !utf8.ValidString(v):
		return &SyntaxError{Reason: "invalid UTF-8"}
	}
	return nil
}

// parser walks a header value. After element returns without error, i is
// at the end of the input or just after an element-separating comma and its
// surrounding whitespace.
type parser struct {
	s string
	i int
}

func (p *parser) done() bool { return p.i >= len(p.s) }

func (p *parser) fail(reason string) error {
	return &SyntaxError{Offset: p.i, Reason: reason}
}

// key bits for duplicate detection of single-valued keys.
const (
	seenBy = 1 << iota
	seenHash
	seenCert
	seenChain
	seenSubject
)

// element parses one element into e (or only checks it, if e is nil).
func (p *parser) element(e *Element) error {
	p.skipOWS()
	var seen uint
	for {
		key, err := p.key()
		if err != nil {
			return err
		}
		val, err := p.value()
		if err != nil {
			return err
		}
		var bit uint
		var dst *string
		switch {
		case strings.EqualFold(key, "By"):
			bit = seenBy
			if e != nil {
				dst = &e.By
			}
		case strings.EqualFold(key, "Hash"):
			bit = seenHash
			if e != nil {
				dst = &e.Hash
			}
		case strings.EqualFold(key, "Cert"):
			bit = seenCert
			if e != nil {
				dst = &e.Cert
			}
		case strings.EqualFold(key, "Chain"):
			bit = seenChain
			if e != nil {
				dst = &e.Chain
			}
		case strings.EqualFold(key, "Subject"):
			bit = seenSubject
			if e != nil {
				dst = &e.Subject
			}
		case strings.EqualFold(key, "URI"):
			if e != nil {
				e.URI = append(e.URI, unquote(val))
			}
		case strings.EqualFold(key, "DNS"):
			if e != nil {
				e.DNS = append(e.DNS, unquote(val))
			}
		}
		if bit != 0 {
			if seen&bit != 0 {
				return p.fail("repeated key " + strings.ToLower(key))
			}
			seen |= bit
			if dst != nil {
				*dst = unquote(val)
			}
		}

		// Whitespace is allowed only before an element-separating comma
		// (and at the end of the header).
		ws := p.i
		p.skipOWS()
		if p.done() {
			return nil
		}
		switch c := p.s[p.i]; {
		case c == ',':
			p.i++
			p.skipOWS()
			if p.done() {
				return p.fail("empty element")
			}
			return nil
		case p.i != ws:
			return p.fail("unexpected whitespace")
		case c == ';':
			p.i++
			if p.done() {
				return p.fail("empty pair")
			}
		default:
			return p.fail("unexpected character after value")
		}
	}
}

func (p *parser) skipOWS() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// key reads a key and the '=' after it.
func (p *parser) key() (string, error) {
	start := p.i
	for p.i < len(p.s) && isKeyChar(p.s[p.i]) {
		p.i++
	}
	if p.i == start {
		switch {
		case p.done():
			return "", p.fail("empty element")
		case p.s[p.i] == ',':
			return "", p.fail("empty element")
		case p.s[p.i] == ';':
			return "", p.fail("empty pair")
		default:
			return "", p.fail("invalid key")
		}
	}
	if p.done() || p.s[p.i] != '=' {
		return "", p.fail("pair without '='")
	}
	key := p.s[start:p.i]
	p.i++
	return key, nil
}

// value reads a value, quoted or not, and returns it raw (quotes included).
func (p *parser) value() (string, error) {
	start := p.i
	if p.i < len(p.s) && p.s[p.i] == '"' {
		p.i++
		for {
			if p.done() {
				return "", p.fail("unterminated quoted value")
			}
			c := p.s[p.i]
			switch {
			case c == '\\' && p.i+1 < len(p.s) && p.s[p.i+1] == '"':
				p.i += 2
			case c == '"':
				p.i++
				if !p.done() && p.s[p.i] != ';' && p.s[p.i] != ',' && p.s[p.i] != ' ' && p.s[p.i] != '\t' {
					return "", p.fail("text after closing quote")
				}
				return p.s[start:p.i], nil
			case isControl(c):
				return "", p.fail("control byte in value")
			default:
				p.i++
			}
		}
	}
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == ';' || c == ',' || c == ' ' || c == '\t' {
			break
		}
		switch {
		case c == '=' || c == '"':
			return "", p.fail("unquoted value contains '" + string(c) + "'")
		case isControl(c):
			return "", p.fail("control byte in value")
		}
		p.i++
	}
	return p.s[start:p.i], nil
}

// unquote removes the quotes of a checked value and resolves its \"
// escapes. Other backslashes are kept: Envoy escapes only '"', and a
// certificate subject may hold RFC 4514 escapes such as "\,".
func unquote(v string) string {
	if len(v) < 2 || v[0] != '"' {
		return v
	}
	v = v[1 : len(v)-1]
	if !strings.Contains(v, `\"`) {
		return v
	}
	return strings.ReplaceAll(v, `\"`, `"`)
}

func isKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func isControl(c byte) bool { return c < 0x20 || c == 0x7f }
