// Package envelope encrypts personal data with per-tenant keys so that
// destroying one key erases a tenant's data everywhere (crypto-shredding, for
// GDPR Article 17 erasure).
//
// Each tenant has a key-encryption key (KEK) in a KMS (package
// envelope/kms). Data is encrypted with AES-256-GCM under a data key (DEK)
// that exists outside memory only wrapped by the tenant's KEK, inside every
// ciphertext. The tenant ID and caller-chosen additional data (table,
// column, primary key) are authenticated with it, so a ciphertext copied to
// another tenant's row, or to another row, fails to decrypt.
//
// Destroy deletes the tenant's KEK: every ciphertext of the tenant (in the
// database, replicas, WAL archives, backups, exports, object storage) is then
// unreadable, and Decrypt says so with ErrKeyDestroyed.
//
// What it does not cover: plaintext that escaped elsewhere (logs, search
// indexes, caches, analytics exports, trace baggage) must be inventoried
// separately; erasing one data subject rather than a whole tenant needs keys
// per subject.
//
//	k, _ := kms.NewLocal("/var/lib/tenantry/kek")
//	env, _ := envelope.New(k, nil)
//	aad := []byte("customers.email:" + customerID)
//	ct, err := env.Encrypt(ctx, tenantID, []byte("ada@example.org"), aad)
//	pt, err := env.Decrypt(ctx, tenantID, ct, aad)
//	err = env.Destroy(ctx, tenantID) // Decrypt now fails with ErrKeyDestroyed
package envelope
