package migrate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TargetState is a target's state in the catalog's ledger.
type TargetState string

const (
	// StatePending: part of a run, not started yet (or to be retried).
	StatePending TargetState = "pending"
	// StateRunning: a migrator is working on it (or crashed while it did).
	StateRunning TargetState = "running"
	// StateDone: at the head of its run.
	StateDone TargetState = "done"
	// StateFailed: a step failed; LastError says why.
	StateFailed TargetState = "failed"
	// StateBlocked: a tenant of the target was leased by another operation
	// (a move).
	StateBlocked TargetState = "blocked"
)

// TargetStatus is a target's row in the catalog's ledger.
type TargetStatus struct {
	Target
	// Version is the newest version the target has applied, as last seen.
	Version int         `json:"version"`
	State   TargetState `json:"state"`
	// Step is the version being applied (running) or that failed (failed).
	Step        int    `json:"step,omitempty"`
	RunID       string `json:"run_id,omitempty"`
	Wave        int    `json:"wave"`
	Attempts    int    `json:"attempts"`
	LockRetries int    `json:"lock_retries"`
	LastError   string `json:"last_error,omitempty"`
	// StartedAt and FinishedAt are of the last attempt.
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	DurationMS int64      `json:"duration_ms,omitempty"`
	UpdatedAt  time.Time  `json:"updated_at"`
}

const targetColumns = `cluster, database, schema, kind, version, state, COALESCE(step, 0), COALESCE(run_id, ''),
COALESCE(wave, -1), attempts, lock_retries, last_error, started_at, finished_at, COALESCE(duration_ms, 0), updated_at`

func scanTargetStatus(row pgx.Row) (TargetStatus, error) {
	var t TargetStatus
	var kind, state string
	err := row.Scan(&t.Cluster, &t.Database, &t.Schema, &kind, &t.Version, &state, &t.Step, &t.RunID,
		&t.Wave, &t.Attempts, &t.LockRetries, &t.LastError, &t.StartedAt, &t.FinishedAt, &t.DurationMS, &t.UpdatedAt)
	t.Kind, t.State = Kind(kind), TargetState(state)
	return t, err
}

// syncTargets records discovered targets in the ledger; with prune it
// deletes rows of targets that no longer exist (deprovisioned tenants),
// unless a migrator is on them.
func (e *Engine) syncTargets(ctx context.Context, targets []Target, prune bool) error {
	clusters, databases, schemas, kinds := make([]string, len(targets)), make([]string, len(targets)), make([]string, len(targets)), make([]string, len(targets))
	for i, t := range targets {
		clusters[i], databases[i], schemas[i], kinds[i] = t.Cluster, t.Database, t.Schema, string(t.Kind)
	}
	return pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO tenantry.migration_target (cluster, database, schema, kind)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
ON CONFLICT (cluster, database, schema) DO UPDATE SET kind = EXCLUDED.kind, updated_at = now()
WHERE migration_target.kind <> EXCLUDED.kind`, clusters, databases, schemas, kinds)
		if err != nil {
			return fmt.Errorf("migrate: record targets: %w", err)
		}
		if !prune {
			return nil
		}
		_, err = tx.Exec(ctx, `DELETE FROM tenantry.migration_target m WHERE m.state <> 'running' AND NOT EXISTS (
SELECT FROM unnest($1::text[], $2::text[], $3::text[]) AS d (c, db, s) WHERE d.c = m.cluster AND d.db = m.database AND d.s = m.schema)`,
			clusters, databases, schemas)
		if err != nil {
			return fmt.Errorf("migrate: prune targets: %w", err)
		}
		return nil
	})
}

// targetStatuses returns ledger rows; where filters and may order them (a
// SQL condition with args, key order by default).
func (e *Engine) targetStatuses(ctx context.Context, where string, args ...any) ([]TargetStatus, error) {
	if where == "" {
		where = "true"
	}
	if !strings.Contains(where, "ORDER BY") {
		where += " ORDER BY cluster, database, schema"
	}
	rows, err := e.pool.Query(ctx, `SELECT `+targetColumns+` FROM tenantry.migration_target WHERE `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("migrate: read ledger: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (TargetStatus, error) { return scanTargetStatus(row) })
	if err != nil {
		return nil, fmt.Errorf("migrate: read ledger: %w", err)
	}
	return out, nil
}

// ledgerWrite runs a best-effort write to the ledger: retried briefly, then
// logged. The target's own ledger stays the truth, so a lost write costs a
// stale status row, never a step applied twice.
func (e *Engine) ledgerWrite(ctx context.Context, what string, t Target, sql string, args ...any) {
	ctx = context.WithoutCancel(ctx)
	var err error
	for attempt := range 3 {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = e.pool.Exec(cctx, sql, args...)
		cancel()
		if err == nil {
			return
		}
		_ = sleep(ctx, time.Duration(attempt+1)*100*time.Millisecond)
	}
	e.logger.ErrorContext(ctx, "could not update the migration ledger", "what", what, "target", t.Key(), "error", err)
}

const whereTarget = ` WHERE cluster = $1 AND database = $2 AND schema = $3`

func (e *Engine) markRunning(ctx context.Context, t Target, runID string) {
	e.ledgerWrite(ctx, "running", t, `UPDATE tenantry.migration_target SET state = 'running', attempts = attempts + 1,
    run_id = COALESCE(NULLIF($4, ''), run_id), started_at = now(), finished_at = NULL, duration_ms = NULL, last_error = '', step = NULL, updated_at = now()`+whereTarget,
		t.Cluster, t.Database, t.Schema, runID)
}

// mirrorStep records that t, at version, starts step: one write per step
// (the version after the last step is recorded when the target finishes).
func (e *Engine) mirrorStep(ctx context.Context, t Target, version, step int) {
	e.ledgerWrite(ctx, "step", t, `UPDATE tenantry.migration_target SET version = $4, step = $5, updated_at = now()`+whereTarget,
		t.Cluster, t.Database, t.Schema, version, step)
}

func (e *Engine) markFinished(ctx context.Context, t Target, state TargetState, version, step int, elapsed time.Duration, lockRetries int, lastErr string) {
	if len(lastErr) > 2000 {
		lastErr = lastErr[:2000] + "..."
	}
	e.ledgerWrite(ctx, string(state), t, `UPDATE tenantry.migration_target SET state = $4,
    version = CASE WHEN $5 >= 0 THEN $5 ELSE version END, step = NULLIF($6, 0),
    finished_at = now(), duration_ms = $7, lock_retries = lock_retries + $8, last_error = $9, updated_at = now()`+whereTarget,
		t.Cluster, t.Database, t.Schema, string(state), version, step, elapsed.Milliseconds(), lockRetries, lastErr)
}

// RunState is a run's state.
type RunState string

const (
	RunRunning RunState = "running"
	RunHalted  RunState = "halted"
	RunDone    RunState = "done"
	RunAborted RunState = "aborted"
)

// RunStatus is a rollout's record in the catalog.
type RunStatus struct {
	ID    string     `json:"id"`
	Head  int        `json:"head"`
	State RunState   `json:"state"`
	Actor string     `json:"actor"`
	Opts  RunOptions `json:"options"`
	// Waves is the number of waves; Wave the one last started.
	Waves      int        `json:"waves"`
	Wave       int        `json:"wave"`
	Total      int        `json:"total"`
	HaltReason string     `json:"halt_reason,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// HeartbeatAt is when the engine last renewed its leases; a running
	// run whose heartbeat is old was interrupted (resume it).
	HeartbeatAt time.Time `json:"heartbeat_at"`
}

const runColumns = `id, head, state, actor, options, waves, wave, total, halt_reason, started_at, finished_at, heartbeat_at`

func scanRun(row pgx.Row) (*RunStatus, error) {
	var r RunStatus
	var state string
	var opts []byte
	if err := row.Scan(&r.ID, &r.Head, &state, &r.Actor, &opts, &r.Waves, &r.Wave, &r.Total, &r.HaltReason, &r.StartedAt, &r.FinishedAt, &r.HeartbeatAt); err != nil {
		return nil, err
	}
	r.State = RunState(state)
	if err := json.Unmarshal(opts, &r.Opts); err != nil {
		return nil, fmt.Errorf("migrate: run %s: options: %w", r.ID, err)
	}
	return &r, nil
}

// unfinishedRun returns the running or halted run, or nil.
func (e *Engine) unfinishedRun(ctx context.Context) (*RunStatus, error) {
	r, err := scanRun(e.pool.QueryRow(ctx, `SELECT `+runColumns+` FROM tenantry.migration_run WHERE state IN ('running', 'halted')`))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: read runs: %w", err)
	}
	return r, nil
}

// Runs returns the newest runs first, at most limit (default 20).
func (e *Engine) Runs(ctx context.Context, limit int) ([]*RunStatus, error) {
	if limit <= 0 || limit > 1000 {
		limit = 20
	}
	rows, err := e.pool.Query(ctx, `SELECT `+runColumns+` FROM tenantry.migration_run ORDER BY started_at DESC, id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("migrate: read runs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*RunStatus, error) { return scanRun(row) })
	if err != nil {
		return nil, fmt.Errorf("migrate: read runs: %w", err)
	}
	return out, nil
}

// newRunID returns a sortable, unique run id: UTC time and random hex.
func newRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// audit appends to the catalog's audit log.
func (e *Engine) audit(ctx context.Context, tx pgx.Tx, actor, reason, action, target string, after any) error {
	var a []byte
	if after != nil {
		var err error
		if a, err = json.Marshal(after); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO tenantry.audit_log (actor, action, target, reason, after) VALUES ($1, $2, $3, $4, $5)`,
		actor, action, target, reason, a)
	if err != nil {
		return fmt.Errorf("migrate: audit log: %w", err)
	}
	return nil
}
