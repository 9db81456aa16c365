// Package assertion carries the tenant between services: signed, short-lived
// tenant assertions, a client RoundTripper that attaches them, and server
// middleware that accepts them only from the service that signed them.
//
// # Model
//
// Who is calling and for which tenant are separate questions, answered by
// separate evidence. The transport answers the first: the peer's mTLS
// certificate (package mtls), or the identity a trusted mesh sidecar reports
// (Envoy's x-forwarded-client-cert, Linkerd's l5d-client-id). An assertion
// answers the second: a JWS (ES256, typ "tenantry-assertion+jwt") with
//
//	iss     the calling service          aud  the target service (one)
//	tenant  {"id": ..., "slug": ...}     sub  the end user, if any
//	iat, exp  exp - iat <= 60s           jti  unique; remembered until exp
//
// The middleware admits a request only if the signature verifies with a key
// of iss, aud is this service, the assertion is current and unused, and iss
// is the service the transport authenticated. A stolen assertion is useless
// to another service (its transport identity is not iss), to the same path
// twice (jti), and elsewhere (aud), and for long (exp).
//
// The tenant is then looked up in the catalog by ID (Lookup), so a deleted,
// suspended or read-only tenant is refused as at the edge, and put in the
// request context with tenant.NewContext(ctx, t, "assertion").
//
// W3C baggage may carry tenant.id for traces and logs: Transport sets it
// from the verified tenant, BaggageTenant reads it. It is never evidence:
// anyone upstream can set it, and Middleware does not read it.
//
// # Wiring
//
//	// Client side (orders calling billing):
//	signer, _ := assertion.NewSigner(&assertion.SignerConfig{Issuer: "orders", Key: key})
//	billing := &http.Client{Transport: &assertion.Transport{
//		Base: &http.Transport{TLSClientConfig: clientTLS}, Signer: signer, Audience: "billing"}}
//	resp, err := billing.Do(req.WithContext(r.Context())) // r's tenant flows on
//
//	// Server side (billing):
//	verifier, _ := assertion.NewVerifier(&assertion.VerifierConfig{Audience: "billing",
//		Keys: assertion.StaticKeys{"gateway": {gwPub}, "orders": {ordersPub}}})
//	handler = assertion.Middleware(&assertion.MiddlewareConfig{
//		Verifier: verifier, Peer: assertion.MTLSPeer(td), Lookup: catalogCache, Logger: logger,
//	})(handler)
//
// Behind a mesh, use EnvoyPeer or LinkerdPeer instead of MTLSPeer, with the
// sidecar's address as the only trusted proxy; docs/mesh.md has the Istio and
// Linkerd configuration.
//
// # Failures
//
// Every refusal is an application/problem+json response with a stable code
// (401 for a missing, invalid, expired, misaddressed or replayed assertion;
// 403 when the issuer is not the peer, the peer is not a service, or a mesh
// header came from an untrusted peer) and one log record at level Warn with
// the reason, which the client never sees.
//
// Several replicas of a service should share a ReplayCache (Redis: one SET NX
// PXAT per assertion); the default is in-memory per process.
package assertion
