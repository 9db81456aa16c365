package envelope_test

import (
	"context"
	"testing"
)

// BenchmarkEncryptDecrypt measures a 64-byte field (an e-mail address) with
// warm key caches, the steady state of a service encrypting PII columns.
func BenchmarkEncryptDecrypt(b *testing.B) {
	bundle := setup(b)
	ctx := context.Background()
	pt := make([]byte, 64)
	aad := []byte("customers.email:42")
	ct, err := bundle.env.Encrypt(ctx, acme, pt, aad)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encrypt", func(b *testing.B) {
		for b.Loop() {
			if _, err := bundle.env.Encrypt(ctx, acme, pt, aad); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decrypt", func(b *testing.B) {
		for b.Loop() {
			if _, err := bundle.env.Decrypt(ctx, acme, ct, aad); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Logf("ciphertext overhead: %d bytes for %d bytes of plaintext", len(ct)-len(pt), len(pt))
}
