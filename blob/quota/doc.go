// Package quota enforces per-tenant storage quotas (bytes, objects, size of
// one object) kept in the catalog database, in the tables of catalog
// migration 0003_blob_usage: tenantry.blob_quota (per-tenant overrides),
// tenantry.blob_usage (what each tenant stores) and tenantry.blob_reservation
// (space held by uploads in flight).
//
// Wrap puts a Quota in front of a blob.Store. An upload with a declared size
// reserves it before its first byte is read, under a row lock on the
// tenant's usage, so concurrent uploads cannot together exceed the quota; an
// upload without one reserves as it goes and is cut at the limit. Refusals
// are *blob.LimitError, which the HTTP handler answers with 413 (the request
// alone is too large) or 507 (the tenant's space is used up) and a detail
// naming the limit and the figures.
//
//	q, err := quota.New(catalogPool, &quota.Config{
//		Default: quota.Limits{MaxBytes: 1 << 30, MaxObjects: 10_000},
//		Tiers:   map[string]quota.Limits{"enterprise": {MaxBytes: 1 << 40}},
//	})
//	if err != nil {
//		return err
//	}
//	store := quota.Wrap(inner, q)
//
// Reservations of a process that dies expire (Config.ReservationTTL).
// Usage can drift when a process dies between a write and its commit, or
// when objects are written around Tenantry (presigned PUTs): Reconcile
// recomputes it from a listing.
package quota
