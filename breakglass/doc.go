// Package breakglass is Tenantry's one path for an operator to read, or
// repair, one tenant's data: explicit, bounded and audited.
//
// Tenant data is otherwise reached only through the router, in the scope of
// the tenant a request resolved to. Support engineers and on-call operators
// sometimes need more: to look at a tenant's rows during an incident, or fix
// a record by hand. Doing that with a superuser psql session leaves no
// record of who looked at what, and sees every tenant at once. Access does
// it through the router instead, in the tenant's scope, and on the record:
//
//	err := breakglass.Access(ctx, store, r, breakglass.Request{
//		Actor:  "alice@example.org",
//		Tenant: "acme",
//		Reason: "INC-4711: customer reports missing invoices since Monday",
//		// Mode: breakglass.ReadWrite, for a repair; read-only by default
//		// TTL: 10 * time.Minute; 5 minutes by default, at most an hour
//	}, func(ctx context.Context, tx router.Tx) error {
//		return tx.QueryRow(ctx, "SELECT count(*) FROM invoices").Scan(&n)
//	})
//
// Who, which tenant, why, when, read-only or read-write and until when are
// appended to the catalog's append-only audit log (action
// "breakglass.begin") and committed before any tenant data is touched; the
// end of the session is appended as "breakglass.end" with its outcome,
// whether the function succeeded, failed, ran out of time or panicked. A
// request without a reason of at least MinReasonLength characters is
// refused before anything happens. `tenantry audit` and the admin API's
// audit endpoint list the entries.
//
// # What it does not do
//
// It does not authenticate the actor: the caller (an admin API handler
// behind an admin client certificate, a CLI run by a known operator)
// vouches for Request.Actor. It records the session, not each statement:
// for statement-level evidence, enable pgaudit on the cluster. The function
// is trusted code: one that runs COMMIT and carries on outside the
// transaction is detected (ErrScopeLost, recorded as "scope_lost") but what
// it did there is not undone; one that sets another tenant's scope itself
// is not detected, as with any application code. Suspended and deleting
// tenants cannot be accessed (the router refuses them). The audit log is
// append-only for every role but its owner and superusers; see
// docs/security.md.
package breakglass
