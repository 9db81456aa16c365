package assertion

import (
	"errors"
	"net/http"

	"github.com/tenantry/tenantry/tenant"
)

// ErrNoTenant is returned by Transport for a request whose context carries
// no tenant: tenant-scoped calls fail closed rather than go out unscoped.
var ErrNoTenant = errors.New("assertion: request context carries no tenant")

// Transport is an http.RoundTripper for calls to one service: it signs an
// assertion for the tenant in the request's context (tenant.FromContext)
// and sends it in the Tenantry-Assertion header, replacing any there. The
// subject is that of WithSubject, else that of the verified incoming
// assertion (so it flows down a chain), else none.
//
// It also sets the W3C baggage member tenant.id to the tenant's ID, for
// tracing only, replacing any tenant.id that came from upstream; receivers
// must never authorise on baggage, and Middleware does not read it.
//
// Use one Transport (and one http.Client) per target service; the
// underlying connection is typically mTLS (mtls.ClientTLS).
type Transport struct {
	// Base carries the request. Default http.DefaultTransport.
	Base http.RoundTripper
	// Signer signs for this service. Required.
	Signer *Signer
	// Audience is the target service's name. Required.
	Audience string
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	closeBody := func() {
		if req.Body != nil {
			req.Body.Close()
		}
	}
	if t.Signer == nil || t.Audience == "" {
		closeBody()
		return nil, errors.New("assertion: Transport needs a Signer and an Audience")
	}
	tn, ok := tenant.FromContext(req.Context())
	if !ok {
		closeBody()
		return nil, ErrNoTenant
	}
	tok, err := t.Signer.Sign(t.Audience, tn, subjectFrom(req.Context()))
	if err != nil {
		closeBody()
		return nil, err
	}
	out := req.Clone(req.Context()) // a RoundTripper must not modify req
	out.Header.Set(Header, tok)
	setBaggageMember(out.Header, BaggageTenantKey, tn.ID)
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(out)
}
