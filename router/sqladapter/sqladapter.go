// Package sqladapter gives code written for database/sql a *sql.Tx scoped
// to the tenant of a context, with the same scope, checks and rollback
// rules as router.Tx.
//
// It is the slower way: database/sql cannot pipeline, so BEGIN and the
// scope take a round trip each before the first statement (router.Tx sends
// all three in one). Use it for code that needs database/sql (sqlc's
// database/sql output, an existing repository layer), and router.Tx for
// the rest.
//
//	a := sqladapter.New(r)
//	err := a.Tx(ctx, nil, func(ctx context.Context, tx *sql.Tx) error {
//		_, err := tx.ExecContext(ctx, "insert into notes (tenant_id, body) values ($1, $2)", id, body)
//		return err
//	})
package sqladapter

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/tenantry/tenantry/router"
	"github.com/tenantry/tenantry/router/internal/bridge"
)

// Adapter runs database/sql transactions through a Router.
type Adapter struct {
	r *router.Router
}

// New returns an Adapter over r.
func New(r *router.Router) *Adapter {
	if r == nil {
		panic("sqladapter: router is nil")
	}
	return &Adapter{r: r}
}

// Tx runs fn in a *sql.Tx scoped to the tenant of ctx (router.ErrNoTenant
// without one, before any SQL). opts may be nil; opts.ReadOnly serves
// read-only tenants, whose read-write transactions fail with
// router.ErrReadOnly. fn's error, a panic (re-raised) or a cancelled context
// rolls back; otherwise Tx commits. fn must not keep tx.
func (a *Adapter) Tx(ctx context.Context, opts *sql.TxOptions, fn func(context.Context, *sql.Tx) error) (err error) {
	readOnly := opts != nil && opts.ReadOnly
	s, err := bridge.Open(ctx, a.r, readOnly)
	if err != nil {
		return err
	}
	defer s.Release()
	db := stdlib.OpenDBFromPool(s.Pool)
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqladapter: tenant %s: %w", s.Tenant.Slug, err)
	}
	uncertain := true // until the transaction ends cleanly
	defer func() {
		if uncertain {
			destroy(conn)
		}
		_ = conn.Close()
	}()
	tx, err := conn.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("sqladapter: begin: %w", err)
	}
	var id, path, role string
	if err := tx.QueryRowContext(ctx, s.SQL, s.Args[0], s.Args[1], s.Args[2]).Scan(&id, &path, &role); err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("sqladapter: setting tenant scope: %w", err)
	}
	if [3]string{id, path, role} != s.Args {
		_ = tx.Rollback()
		return fmt.Errorf("%w: tenant %s", router.ErrScope, s.Tenant.Slug)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
	}()
	if err := fn(ctx, tx); err != nil {
		if rerr := tx.Rollback(); rerr == nil || errors.Is(rerr, sql.ErrTxDone) {
			uncertain = false
		}
		return err
	}
	if err := ctx.Err(); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqladapter: commit: %w", err)
	}
	uncertain = false
	return nil
}

// destroy closes the physical connection under conn, so that it goes back
// to its pool closed and is discarded.
func destroy(conn *sql.Conn) {
	_ = conn.Raw(func(dc any) error {
		if c, ok := dc.(*stdlib.Conn); ok {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return c.Conn().Close(ctx)
		}
		return nil
	})
}
