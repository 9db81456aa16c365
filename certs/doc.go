// Package certs is Tenantry's development certificate authority and its
// identity scheme.
//
// Every workload identity is a SPIFFE ID in one trust domain, carried as the
// only URI SAN of an ECDSA P-256 certificate:
//
//	spiffe://<trust-domain>/service/<name>   a service (server and client)
//	spiffe://<trust-domain>/tenant/<slug>    a client bound to one tenant
//	spiffe://<trust-domain>/admin/<name>     an operator of the admin API
//
// InitCA writes a CA into a directory (ca.pem, ca-key.pem); Issue signs
// short-lived leaf certificates (24h by default) and Leaf.WriteFiles stores
// them as <kind>-<name>.pem and <kind>-<name>-key.pem, which is the layout
// `tenantry certs init` and `tenantry certs issue` use. IdentityOf reads the
// identity back from a verified peer certificate.
//
// Production deployments bring their own CA or SPIFFE/SPIRE: any issuer works
// as long as its leaf certificates follow the scheme above. Package mtls
// builds TLS configurations over these certificates.
//
//	ca, err := certs.InitCA("/etc/tenantry/pki", "example.org")
//	if err != nil { ... }
//	leaf, err := certs.Issue(ca, certs.Request{Kind: certs.Service, Name: "billing",
//		DNSNames: []string{"billing.internal"}})
//	if err != nil { ... }
//	certPath, keyPath, err := leaf.WriteFiles("/etc/tenantry/pki")
package certs
