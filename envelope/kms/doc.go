// Package kms is the key-encryption-key side of Tenantry's envelope
// encryption: a small interface over a key management service that holds one
// key-encryption key (KEK) per tenant, wraps and unwraps data keys with it,
// and destroys it on request, and a local-file implementation.
//
// Destroying a tenant's KEK is crypto-shredding: every data key it wrapped,
// and so every ciphertext under those keys, in the database, its replicas,
// WAL archives, backups and object storage, becomes unreadable.
//
// Production deployments put the KEKs in a real KMS (AWS KMS with
// ScheduleKeyDeletion, Vault Transit, Cloud KMS) behind the same interface:
// the local implementation keeps keys in files, and a file removed from a
// journaling file system or an SSD may survive on the medium, in snapshots
// and in backups of the key directory.
//
//	k, err := kms.NewLocal("/var/lib/tenantry/kek")
//	wrapped, err := k.Wrap(ctx, tenantID, dek)
//	dek, err = k.Unwrap(ctx, tenantID, wrapped)
//	err = k.Destroy(ctx, tenantID) // Unwrap now fails with ErrKeyDestroyed
package kms
