package assertion_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"

	"github.com/tenantry/tenantry/assertion"
	"github.com/tenantry/tenantry/tenant"
)

func Example() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := assertion.NewSigner(&assertion.SignerConfig{Issuer: "orders", Key: key})
	verifier, _ := assertion.NewVerifier(&assertion.VerifierConfig{
		Audience: "billing",
		Keys:     assertion.StaticKeys{"orders": {&key.PublicKey}},
	})

	t := &tenant.Tenant{ID: "6f1c9f3e-3b8e-4f7a-9a51-0c1d2e3f4a5b", Slug: "acme"}
	tok, _ := signer.Sign("billing", t, "user-42")

	// billing, having authenticated its peer as "orders":
	c, err := verifier.Verify(context.Background(), tok, "orders")
	fmt.Println(c.Issuer, "->", c.Audience, "for", c.TenantSlug, "on behalf of", c.Subject, err)

	// The same assertion again, or from another peer:
	_, err = verifier.Verify(context.Background(), tok, "orders")
	fmt.Println(err != nil)
	// Output:
	// orders -> billing for acme on behalf of user-42 <nil>
	// true
}
