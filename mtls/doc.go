// Package mtls builds mutual-TLS configurations for Tenantry's listeners and
// clients over SPIFFE identities (see package certs), with certificates and
// trust anchors that rotate without a restart.
//
// A Source supplies the certificate and the trust bundle: FileSource reads PEM
// files, reloading them when they change (polled by Run) or when Reload is
// called (the server does so on SIGHUP); SPIFFESource takes them from the
// SPIFFE Workload API (a SPIRE agent) through go-spiffe, which pushes
// rotations.
//
// ServerTLS and ClientTLS return *tls.Config values that allow TLS 1.3 only,
// ask the source on every handshake (new connections get a rotated
// certificate, established ones keep theirs), verify the peer's chain
// against the current bundle, and require the peer's SPIFFE ID to be in the
// trust domain. Identity checks run in VerifyConnection, which Go also runs
// on resumed sessions, unlike VerifyPeerCertificate.
//
// Handlers call PeerIdentity on every request: a connection lives longer than
// a handshake, so a binding between the client's identity and the request
// (a tenant certificate to the tenant of the host, an admin certificate to
// the admin API) belongs there.
//
//	src, err := mtls.NewFileSource(&mtls.FileConfig{
//		CertFile: "service-billing.pem", KeyFile: "service-billing-key.pem",
//		CAFile: "ca.pem", TrustDomain: "example.org",
//	})
//	go src.Run(ctx) // poll for changed files
//	cfg, err := mtls.ServerTLS(src, &mtls.ServerConfig{Authorize: mtls.AuthorizeKind(certs.Admin)})
//	srv := &http.Server{TLSConfig: cfg, ...}
//	srv.ListenAndServeTLS("", "")
//
//	func handler(w http.ResponseWriter, r *http.Request) {
//		id, err := mtls.PeerIdentity(r, src.TrustDomain())
//		...
//	}
package mtls
