package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"

	"github.com/tenantry/tenantry/resolve"
)

// newResolver builds the default resolution chain: with mutual TLS, the
// tenant identity of a verified client certificate; then the host as a
// custom domain, a subdomain of a base domain, the tenant header from
// trusted proxies, a path prefix. Every source that names a tenant must name the
// same one (resolve.RequireAgreement): a request whose host says acme and
// whose path says globex is refused with 403, never served as either,
// unless --resolve-mode first-match.
func newResolver(lookup resolve.Lookup, o *serveOptions, trusted []netip.Prefix, logger *slog.Logger) (func(http.Handler) http.Handler, error) {
	mode := resolve.RequireAgreement
	switch o.resolveMode {
	case "require-agreement", "":
	case "first-match":
		mode = resolve.FirstMatch
	default:
		return nil, fmt.Errorf("--resolve-mode must be require-agreement or first-match, not %q", o.resolveMode)
	}
	var strategies []resolve.Strategy
	if o.tls.mutual() {
		// A tenant certificate binds its requests to its tenant: with
		// RequireAgreement, acme's certificate on globex.localhost is 403.
		strategies = append(strategies, resolve.ClientCert(o.tls.trustDomain))
	}
	strategies = append(strategies,
		resolve.Host(),
		resolve.Subdomain(o.baseDomains...),
		resolve.Header(o.tenantHeader, trusted),
		resolve.PathPrefix(o.pathPrefix),
	)
	r, err := resolve.New(lookup, &resolve.Config{
		Strategies: strategies,
		Mode:       mode,
		Logger:     logger,
	})
	if err != nil {
		return nil, err
	}
	return r.Middleware, nil
}
