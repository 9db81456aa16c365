package assertion_test

import (
	"context"
	"testing"

	"github.com/tenantry/tenantry/assertion"
)

// BenchmarkSignVerify measures the per-hop cost: one Sign by the caller and
// one Verify (signature, claims, replay cache) by the receiver.
func BenchmarkSignVerify(b *testing.B) {
	key := newKey(b)
	s := newSigner(b, "orders", key, nil)
	v := newVerifier(b, "billing", assertion.StaticKeys{"orders": {&key.PublicKey}})
	ctx := context.Background()
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Sign("billing", acme, "user-42"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		toks := make([]string, b.N)
		for i := range toks {
			toks[i], _ = s.Sign("billing", acme, "user-42")
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := v.Verify(ctx, toks[i], "orders"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
