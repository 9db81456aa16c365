// Package blob is Tenantry's tenant-scoped object storage: the Store
// interface, the one validation of object keys (ValidateKey), the tenant
// scoping every store applies (Scope), and the HTTP API (Handler).
//
// Every object lives under "tenants/<tenant-id>/", where the tenant is the
// one the resolution middleware put in the request's context; a client names
// only the key below that prefix, and a key that could leave it (or hide
// what it is) is refused with a *KeyError before any backend is asked.
//
// Stores:
//
//   - blob/local: a directory, the embedded default (atomic writes,
//     os.Root confinement).
//   - blob/s3: S3-compatible storage (AWS SDK for Go v2), with optional
//     per-tenant credentials confined by a bucket policy, and dedicated
//     buckets per tenant.
//
// Wrappers, composed around a store:
//
//   - blob/quota: byte and object quotas kept in the catalog, enforced
//     before the bytes are accepted.
//   - blob/fair: per-tenant in-flight cap and byte rate, and a weighted fair
//     scheduler for shared upload capacity.
//
// A typical stack, mounted by the server under /api/v1/files/ behind the
// tenant-resolution middleware:
//
//	disk, _ := local.New("/var/lib/tenantry/blobs", nil)
//	sched, _ := fair.NewScheduler(nil)
//	limited, _ := fair.New(disk, &fair.Config{Scheduler: sched})
//	q, _ := quota.New(catalogPool, &quota.Config{Default: quota.Limits{MaxBytes: 10 << 30}})
//	h, _ := blob.NewHandler(quota.Wrap(limited, q), nil)
//	mux.Handle("/api/v1/files", resolveMiddleware(h))
//	mux.Handle("/api/v1/files/", resolveMiddleware(h))
//
// blob/blobtest holds the conformance suite every store passes, and the
// table of hostile keys.
package blob
