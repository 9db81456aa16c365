// Package resolve is the net/http middleware that finds the tenant of a
// request and puts it in the request's context, or refuses the request with
// a JSON problem.
//
//	lookup := cache // a *catalog.Cache, or anything that implements Lookup
//	res, err := resolve.New(lookup, &resolve.Config{
//		Strategies: []resolve.Strategy{
//			resolve.Subdomain("tenants.example.com"),
//			resolve.Host(), // custom domains
//		},
//	})
//	if err != nil {
//		return err // misconfiguration is reported here, never per request
//	}
//	http.ListenAndServe(addr, res.Middleware(mux))
//
// Handlers find the tenant with tenant.FromContext(r.Context()), and which
// strategy found it with tenant.ResolvedVia. LogAttr gives the "tenant"
// attribute that every log record of tenant work carries.
//
// # Strategies
//
// A Strategy reads one source of tenant identifiers:
//
//   - Host: the request host, looked up as a domain (custom domains).
//   - Subdomain: the first label under a base domain, as a slug.
//   - Header: a slug or tenant ID in a header set by a trusted gateway.
//   - PathPrefix: a slug in a path prefix such as /t/acme/..., stripped
//     before the request goes on.
//   - JWT: a claim of a verified bearer token.
//   - ClientCert: a SPIFFE ID in the verified mTLS client certificate.
//   - MeshXFCC: a SPIFFE ID in the x-forwarded-client-cert header of a
//     trusted service-mesh sidecar.
//
// Each strategy either finds nothing (the next one is asked), finds a
// well-formed identifier, or fails the request. A malformed identifier is
// always a failure, never "nothing found": a request that says
// "X-Tenant-ID: ACME" or "/t/../admin" is refused, not served as some other
// tenant or as no tenant. The Mode decides how several strategies combine:
// FirstMatch (the first identifier wins) or RequireAgreement (every
// identifier found must name the same tenant).
//
// # Trust
//
// Every identifier is client-controlled until proven otherwise. The rules,
// in full in each constructor's documentation:
//
//   - Host and Subdomain read Request.Host, which the client chooses; they
//     select among tenants that are reachable by name anyway, and grant no
//     more than a browser typing the name would. X-Forwarded-Host and
//     Forwarded are never read.
//   - PathPrefix reads the path, equally the client's choice, with the same
//     consequence.
//   - Header and MeshXFCC read headers any client can send, so they are
//     honoured only when the request's direct TCP peer (Request.RemoteAddr,
//     never X-Forwarded-For) is inside a trusted prefix: the gateway or
//     sidecar that sets the header and strips any copy sent by its own
//     client. The same header from any other peer is refused with
//     tenant_forbidden, not ignored, so forgery attempts and misrouted
//     traffic are visible. Do not rewrite RemoteAddr from forwarding
//     headers (chi's RealIP and similar) in front of this middleware.
//   - JWT trusts a token only after verifying its signature with a
//     configured key bound to one algorithm, and its issuer, audience and
//     expiry.
//   - ClientCert trusts a certificate only if crypto/tls verified it
//     (Request.TLS.VerifiedChains).
//
// Because any of these may name a tenant the caller has no rights in,
// resolution is not authorisation: it says which tenant a request is for,
// and the application still decides whether the caller may act there. A
// response that varies by a header-borne tenant must not be cached by a
// shared cache without that header in its key.
//
// # Hosts
//
// Host names are case-insensitive: the host is lower-cased, its port and
// one trailing dot are removed ("Acme.Example.COM.:8443" is
// "acme.example.com"). It must then be 1 to 253 bytes of labels of 1 to 63
// ASCII letters, digits and hyphens, not starting or ending with a hyphen.
// Anything else is tenant_invalid: a second trailing dot, empty labels,
// underscores, percent signs, control bytes and every non-ASCII byte, which
// includes look-alikes such as "аcme" with a Cyrillic "а". Internationalised
// domains arrive as punycode ("xn--" labels): valid in a host, never a
// valid slug. IP literals ("[::1]", "192.0.2.1") never name a tenant.
//
// # Identifiers
//
// Slugs are checked with tenant.IsValidSlug and never normalised; tenant
// IDs are accepted in canonical lower-case UUID form only, and a value of
// that form is always taken as an ID. Values are never trimmed, decoded or
// case-folded, so there is exactly one spelling of every identifier.
//
// # Failures
//
// A refused request gets an RFC 9457 problem, Content-Type
// application/problem+json, with a stable code:
//
//	code                 status  when
//	tenant_missing       400     no strategy found an identifier
//	tenant_invalid       400     an identifier is malformed
//	tenant_ambiguous     400     a header is repeated, a certificate has two tenant SANs
//	tenant_unknown       404     the identifier names no tenant
//	tenant_conflict      403     RequireAgreement: strategies name different tenants
//	tenant_forbidden     403     the identifier comes from an untrusted peer or an unverified token/certificate
//	tenant_suspended     423     the tenant is suspended
//	tenant_read_only     423     a method other than GET, HEAD, OPTIONS, TRACE on a read-only tenant
//	tenant_deleting      410     the tenant is being deleted
//	catalog_unavailable  503     the catalog cache cannot answer (with Retry-After)
//
// A tenant being deleted answers 410 Gone rather than 404: the name did
// exist, will not come back, and clients and caches may stop retrying. The
// detail names the source that failed ("header X-Tenant-ID: ...") and never
// repeats the request's value or an internal error; the cause goes to the
// Logger. Resolve returns the same problems as errors; match them with
// errors.Is against ErrMissing, ErrInvalid and the rest.
//
// # Performance
//
// Host, Subdomain and Header resolution parse without allocating (an
// upper-case host costs one allocation to lower-case it), so with a cached,
// non-blocking Lookup the middleware's only allocations are the request
// copy of Request.WithContext and the tenant context.
package resolve
