package xfcc

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/url"
)

// ErrNoCertificate is returned by Certificates for an element that carries
// neither Chain nor Cert.
var ErrNoCertificate = errors.New("x-forwarded-client-cert element carries no certificate")

// Certificates decodes the element's certificates: the Chain if present
// (leaf first), else the Cert. The values are URL-encoded PEM; '+' is taken
// literally (it is part of base64), not as a space. Decoding does not verify
// anything: the certificates are only as trustworthy as the proxy that wrote
// the header.
func (e Element) Certificates() ([]*x509.Certificate, error) {
	v := e.Chain
	if v == "" {
		v = e.Cert
	}
	if v == "" {
		return nil, ErrNoCertificate
	}
	raw, err := url.PathUnescape(v)
	if err != nil {
		return nil, &SyntaxError{Reason: "certificate is not URL-encoded"}
	}
	rest := []byte(raw)
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, &SyntaxError{Reason: "PEM block is not a certificate"}
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, &SyntaxError{Reason: "no PEM certificate"}
	}
	return certs, nil
}
