// Package admin is Tenantry's admin API v1: JSON over HTTP on the admin
// listener, over the catalog (tenants, their domains, clusters, the audit
// log). Client is its Go client, which the tenantry CLI uses.
//
// Every request is authenticated first (see Authenticator: a bearer token,
// an mTLS admin certificate); the authenticated identity, with the reason a
// caller may give in the X-Tenantry-Reason header or a "reason" field, is
// the actor the catalog's audit log records.
//
//	POST   /admin/v1/tenants                          create, and provision (201)
//	GET    /admin/v1/tenants?state=&after=&limit=     list, by slug
//	GET    /admin/v1/tenants/{slug}                   read (ETag: "<version>")
//	PATCH  /admin/v1/tenants/{slug}                   update; needs "version" or If-Match
//	DELETE /admin/v1/tenants/{slug}                   deprovision, then delete (204)
//	POST   /admin/v1/tenants/{slug}/suspend           suspend
//	POST   /admin/v1/tenants/{slug}/resume            resume
//	POST   /admin/v1/tenants/{slug}/provision         retry a failed provisioning
//	POST   /admin/v1/tenants/{slug}/domains           add a custom domain (201)
//	DELETE /admin/v1/tenants/{slug}/domains/{domain}  remove a custom domain
//	GET    /admin/v1/clusters                         list (connection strings redacted)
//	POST   /admin/v1/clusters                         register (201)
//	GET    /admin/v1/audit?tenant_id=&tenant=&limit=  audit log, newest first
//	GET    /admin/v1/migrations/...                   fleet migration status (Config.Migrations)
//
// # Provisioning
//
// With Config.Provisioner set, a tenant's storage follows its catalog
// record. Creating a tenant provisions it before answering 201: the
// placement policy chooses its model from its tier unless the request names
// one, and the answer carries the placement chosen. If provisioning fails,
// the creation is rolled back (storage dropped, catalog record deleted, both
// in the audit log) and the answer is 422 no_capacity or 503
// provisioning_failed: nothing half-written stays, and the same request can
// be sent again. Only if the rollback fails too is the tenant kept, labelled
// tenantry.io/provisioning=failed (LabelProvisioning), for POST
// .../provision to retry or DELETE to remove. Deleting a tenant first moves
// it to state deleting (its requests are answered 410), drops its storage,
// then removes it; if dropping fails (503 deprovisioning_failed) it stays
// deleting and DELETE can be repeated.
//
// Handlers return errors and one place (writeError) turns them into RFC 9457
// problem responses with a stable code and, for bad input, the field at
// fault: validation 422 validation_failed, malformed JSON 400 malformed_json,
// unknown field 400 unknown_field, duplicate 409 already_exists, stale
// version 409 version_conflict, missing 404 not_found, missing or wrong
// credentials 401 unauthenticated, no cluster for a new tenant 422
// no_capacity, storage that cannot be created 503 provisioning_failed or
// dropped 503 deprovisioning_failed, anything else 500 internal_error with
// no internal text.
//
//	auth, err := admin.BearerToken("admin", os.Getenv("TENANTRY_ADMIN_TOKEN"))
//	if err != nil {
//		return err
//	}
//	api, err := admin.New(store, &admin.Config{Authenticator: auth, Logger: logger})
//	if err != nil {
//		return err
//	}
//	mux.Handle("/admin/", api)
package admin
