package certs_test

import (
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tenantry/tenantry/certs"
)

func Example() {
	ca, err := certs.NewCA("example.org", 0)
	if err != nil {
		panic(err)
	}
	leaf, err := certs.Issue(ca, certs.Request{Kind: certs.Tenant, Name: "acme"})
	if err != nil {
		panic(err)
	}
	id, err := certs.IdentityOf(leaf.Cert, spiffeid.RequireTrustDomainFromString("example.org"))
	if err != nil {
		panic(err)
	}
	fmt.Println(id.Kind, id.Name, id)
	// Output: tenant acme spiffe://example.org/tenant/acme
}
