package router

import "errors"

var (
	// ErrNoTenant is returned when the context carries no tenant. Nothing
	// has been sent to PostgreSQL.
	ErrNoTenant = errors.New("router: no tenant in context")
	// ErrUnknownTenant is returned when the tenant in the context is not in
	// the catalog (any more). It also wraps catalog.ErrNotFound.
	ErrUnknownTenant = errors.New("router: tenant not in catalog")
	// ErrSuspended is returned for a suspended tenant.
	ErrSuspended = errors.New("router: tenant is suspended")
	// ErrDeleting is returned for a tenant being deleted.
	ErrDeleting = errors.New("router: tenant is being deleted")
	// ErrReadOnly is returned by Tx for a read-only tenant; use ReadTx.
	ErrReadOnly = errors.New("router: tenant is read-only")
	// ErrPlacement is returned when the tenant's placement cannot be routed
	// (no cluster, database or schema, or an invalid name).
	ErrPlacement = errors.New("router: tenant placement is incomplete or invalid")
	// ErrScope is returned when the server did not confirm the tenant scope
	// the router set. The transaction is rolled back and its connection
	// closed.
	ErrScope = errors.New("router: tenant scope not confirmed by the server")
	// ErrTxDone is returned by a Tx used after its function returned.
	ErrTxDone = errors.New("router: transaction already finished")
)
