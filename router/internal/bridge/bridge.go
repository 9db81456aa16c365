// Package bridge lets router/sqladapter reach what package router keeps
// unexported (the tenant scope and a pinned pool), without making it public
// API.
package bridge

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/tenant"
)

// Scope is what a database/sql transaction needs to scope itself.
type Scope struct {
	Tenant *tenant.Tenant
	// Pool is the tenant's pool, pinned open until Release.
	Pool    *pgxpool.Pool
	Release func()
	// SQL and Args set the scope; the server must answer Args.
	SQL  string
	Args [3]string
}

// Open is set by package router: it resolves the tenant of ctx on router r
// (a *router.Router) and pins its pool.
var Open func(ctx context.Context, r any, readOnly bool) (*Scope, error)
