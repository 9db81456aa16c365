package router

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tenantry/tenantry/pool"
	"github.com/tenantry/tenantry/tenant"
)

// Tx is a transaction scoped to one tenant. Its methods are those of pgx.Tx
// that tenant code needs; it never exposes its connection. It is valid only
// inside the function it was passed to, and, like a pgx connection, not safe
// for concurrent use.
type Tx interface {
	// Exec runs a statement.
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	// Query runs a query; close the rows (or read them to the end).
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	// QueryRow runs a query that returns at most one row.
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	// SendBatch sends a batch of statements in one round trip; close the
	// results.
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	// CopyFrom copies rows into a table with COPY. As the first statement
	// of a transaction it costs one extra round trip (COPY cannot share
	// the round trip of BEGIN and the scope).
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
	// Tenant returns the tenant the transaction is scoped to, as the
	// catalog knew it when the transaction started.
	Tenant() *tenant.Tenant
}

const scopeSQL = "select set_config('tenantry.tenant_id', $1, true), set_config('search_path', $2, true), set_config('role', $3, true)"

// Transaction states.
const (
	txIdle   = iota // nothing sent yet
	txOpen          // BEGIN and scope confirmed
	txBroken        // BEGIN or scope failed: only a rollback may follow
	txDone          // fn returned
)

// txn implements Tx over one pooled connection.
type txn struct {
	r     *Router
	conn  *pool.Conn
	pg    *pgx.Conn
	s     *scope
	state int
	err   error // why the transaction is broken

	// pending is the open result of the last statement (rows or batch
	// results), closed before the next statement's turn at the end.
	pending interface{ finish() error }
}

func (t *txn) Tenant() *tenant.Tenant { return t.s.t }

// usable reports whether a statement may be sent now.
func (t *txn) usable() error {
	switch t.state {
	case txDone:
		return ErrTxDone
	case txBroken:
		return t.err
	}
	return nil
}

// maxPrepared bounds the statements the router prepares on one connection.
const maxPrepared = 256

// memoKey is the router's key in a connection's pgconn CustomData.
const memoKey = "tenantry/router"

// memo is what the router remembers about one connection.
type memo struct {
	// prepared holds the statements prepared on the connection inside a
	// tenant's scope (where their unqualified names resolve), so that they
	// can share the round trip of BEGIN and the scope.
	prepared map[string]struct{}
	// noPrepare is set when the connection's query mode prepares nothing
	// before a pipeline (exec, simple protocol).
	noPrepare bool
}

func (t *txn) memo() *memo {
	cd := t.pg.PgConn().CustomData()
	m, _ := cd[memoKey].(*memo)
	if m == nil {
		mode := t.pg.Config().DefaultQueryExecMode
		m = &memo{prepared: map[string]struct{}{}, noPrepare: mode == pgx.QueryExecModeExec || mode == pgx.QueryExecModeSimpleProtocol}
		cd[memoKey] = m
	}
	return m
}

// plain reports whether args carry no pgx query options (a QueryRewriter,
// a QueryExecMode, result formats), which a batch cannot take.
func plain(args []any) bool {
	if len(args) == 0 {
		return true
	}
	switch args[0].(type) {
	case pgx.QueryRewriter, pgx.QueryExecMode, pgx.QueryResultFormats, pgx.QueryResultFormatsByOID:
		return false
	}
	return true
}

// start begins the transaction. If every statement of b can be executed
// without being prepared first, it sends BEGIN, the scope and b in one
// round trip, checks the scope and returns b's results. Otherwise (a
// statement not yet prepared on this connection: pgx would prepare it in a
// round trip before BEGIN, where its unqualified names do not resolve) it
// sends BEGIN and the scope, checks them, prepares b's statements inside the
// scope so that later transactions take the one-round-trip way, and returns
// nil results: the caller then sends b itself.
func (t *txn) start(ctx context.Context, b *pgx.Batch) (pgx.BatchResults, error) {
	m := t.memo()
	fast := b.Len() > 0
	for _, q := range b.QueuedQueries {
		if !plain(q.Arguments) {
			fast = false
			break
		}
		if _, ok := m.prepared[q.SQL]; !ok && !m.noPrepare {
			fast = false
			break
		}
	}
	full := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, 2+b.Len())}
	full.Queue(t.s.begin)
	full.Queue(scopeSQL, t.s.args[:]...)
	if fast {
		full.QueuedQueries = append(full.QueuedQueries, b.QueuedQueries...)
	}
	br := t.pg.SendBatch(ctx, full)
	err := t.checkScope(br)
	if err != nil || !fast {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.state, t.err = txBroken, err
		return nil, err
	}
	t.state = txOpen
	if fast {
		return br, nil
	}
	for _, q := range b.QueuedQueries {
		if _, ok := m.prepared[q.SQL]; ok || m.noPrepare || !plain(q.Arguments) || len(m.prepared) >= maxPrepared {
			continue
		}
		// An error (a syntax error, a permission denied) aborts the
		// transaction: report it as it is, rather than the "current
		// transaction is aborted" that executing the statement would give.
		if _, err := t.pg.Prepare(ctx, q.SQL, q.SQL); err != nil {
			t.state, t.err = txBroken, err
			return nil, err
		}
		m.prepared[q.SQL] = struct{}{}
	}
	return nil, nil
}

func (t *txn) checkScope(br pgx.BatchResults) error {
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("router: begin: %w", err)
	}
	var id, path, role string
	if err := br.QueryRow().Scan(&id, &path, &role); err != nil {
		return fmt.Errorf("router: setting tenant scope: %w", err)
	}
	if id != t.s.args[0] || path != t.s.args[1] || role != t.s.args[2] {
		return fmt.Errorf("%w: tenant %s: got (%q, %q, %q)", ErrScope, t.s.t.Slug, id, path, role)
	}
	return nil
}

// settle closes the open result of the previous statement, if any.
func (t *txn) settle() {
	if t.pending != nil {
		_ = t.pending.finish()
		t.pending = nil
	}
}

func (t *txn) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.usable(); err != nil {
		return pgconn.CommandTag{}, err
	}
	t.settle()
	if t.state == txOpen {
		return t.pg.Exec(ctx, sql, args...)
	}
	var b pgx.Batch
	b.Queue(sql, args...)
	br, err := t.start(ctx, &b)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	if br == nil {
		return t.pg.Exec(ctx, sql, args...)
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (t *txn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	r, err := t.query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// query runs Query's statement. Its rows are t.pending: the transaction
// closes them before its next statement or its end if the caller does not.
func (t *txn) query(ctx context.Context, sql string, args ...any) (*txRows, error) {
	if err := t.usable(); err != nil {
		return nil, err
	}
	t.settle()
	var br pgx.BatchResults
	if t.state == txIdle {
		var b pgx.Batch
		b.Queue(sql, args...)
		var err error
		if br, err = t.start(ctx, &b); err != nil {
			return nil, err
		}
	}
	if br == nil {
		rows, err := t.pg.Query(ctx, sql, args...)
		if err != nil {
			return nil, err
		}
		r := &txRows{Rows: rows}
		t.pending = r
		return r, nil
	}
	rows, err := br.Query()
	if err != nil {
		rows.Close()
		_ = br.Close()
		return nil, err
	}
	r := &txRows{Rows: rows, br: br}
	t.pending = r
	return r, nil
}

func (t *txn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.query(ctx, sql, args...)
	if err != nil {
		return errRow{err}
	}
	// Scan closes the rows, as pgx's QueryRow does.
	return (*txRow)(rows)
}

func (t *txn) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := t.usable(); err != nil {
		return errBatch{err}
	}
	t.settle()
	var br pgx.BatchResults
	if t.state == txIdle {
		var err error
		if br, err = t.start(ctx, b); err != nil {
			return errBatch{err}
		}
	}
	if br == nil {
		br = t.pg.SendBatch(ctx, b)
	}
	tb := &txBatch{BatchResults: br}
	t.pending = tb
	return tb
}

func (t *txn) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.usable(); err != nil {
		return 0, err
	}
	t.settle()
	if t.state == txIdle {
		if _, err := t.start(ctx, &pgx.Batch{}); err != nil {
			return 0, err
		}
	}
	return t.pg.CopyFrom(ctx, table, columns, src)
}

// end finishes the transaction, committing if commit is set, and returns the
// connection to its pool, or closes it if its state is uncertain.
func (t *txn) end(ctx context.Context, commit bool) error {
	defer func() { t.state = txDone }()
	t.settle()
	if t.state == txIdle {
		t.release()
		return nil
	}
	if commit && t.state == txOpen {
		tag, err := t.pg.Exec(ctx, "commit")
		t.release()
		if err != nil {
			return fmt.Errorf("router: commit: %w", err)
		}
		if tag.String() == "ROLLBACK" {
			return pgx.ErrTxCommitRollback
		}
		return nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.r.cfg.RollbackTimeout)
	defer cancel()
	if !t.pg.IsClosed() {
		_, _ = t.pg.Exec(rctx, "rollback")
	}
	t.release()
	if t.state == txBroken && t.err != nil && errors.Is(t.err, ErrScope) {
		return t.err
	}
	return nil
}

// abort rolls the transaction back after cause, which it returns. A broken
// scope is returned with it, unless cause already carries it (fn normally
// returns the error its first statement got).
func (t *txn) abort(ctx context.Context, cause error) error {
	if err := t.end(ctx, false); err != nil && !errors.Is(cause, err) {
		return errors.Join(cause, err)
	}
	return cause
}

// release returns the connection if it is idle and outside a transaction,
// and closes it otherwise. A broken scope always closes it.
func (t *txn) release() {
	pc := t.pg.PgConn()
	if pc.IsClosed() || pc.IsBusy() || pc.TxStatus() != 'I' || errors.Is(t.err, ErrScope) {
		t.conn.Destroy()
		return
	}
	t.conn.Release()
}

// txRows are rows of a scoped transaction: Conn returns nil, so that no
// connection leaves the transaction, and closing the rows of the first
// statement also reads the end of its round trip.
type txRows struct {
	pgx.Rows
	br   pgx.BatchResults
	err  error
	done bool
}

func (r *txRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	_ = r.finish()
	return false
}

func (r *txRows) Close() { _ = r.finish() }

func (r *txRows) finish() error {
	if r.done {
		return r.err
	}
	r.done = true
	r.Rows.Close()
	if r.br != nil {
		if err := r.br.Close(); err != nil && r.Rows.Err() == nil {
			r.err = err
		}
	}
	return r.err
}

func (r *txRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// Conn returns nil: a scoped transaction does not hand out its connection.
func (r *txRows) Conn() *pgx.Conn { return nil }

// txRow is the row of QueryRow, with pgx's semantics.
type txRow txRows

func (r *txRow) Scan(dest ...any) error {
	rows := (*txRows)(r)
	if err := rows.Err(); err != nil {
		rows.Close()
		return err
	}
	for _, d := range dest {
		if _, ok := d.(*pgtype.DriverBytes); ok {
			rows.Close()
			return errors.New("cannot scan into *pgtype.DriverBytes from QueryRow")
		}
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	_ = rows.Scan(dest...)
	rows.Close()
	return rows.Err()
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// txBatch are the results of SendBatch, remembered so that the transaction
// can close them if fn did not.
type txBatch struct {
	pgx.BatchResults
	closed bool
	err    error
}

func (b *txBatch) Close() error { return b.finish() }

func (b *txBatch) finish() error {
	if !b.closed {
		b.closed = true
		b.err = b.BatchResults.Close()
	}
	return b.err
}

type errBatch struct{ err error }

func (b errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, b.err }
func (b errBatch) Query() (pgx.Rows, error)         { return nil, b.err }
func (b errBatch) QueryRow() pgx.Row                { return errRow(b) }
func (b errBatch) Close() error                     { return b.err }

// Tx returns nil: a router transaction is not a pgx.Tx.
func (b errBatch) Tx() pgx.Tx { return nil }

// Tx returns nil: the router's transaction is not handed out as a pgx.Tx,
// which would expose its connection.
func (b *txBatch) Tx() pgx.Tx { return nil }
