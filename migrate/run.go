package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/migrate/lint"
)

// RunOptions shape a rollout. The zero value of each field selects its
// default.
type RunOptions struct {
	// Actor is who starts the rollout, for the run record and the audit
	// log. Required by Up, Resume and Abort.
	Actor string `json:"actor"`
	// Reason is why, for the audit log. Optional.
	Reason string `json:"reason,omitempty"`
	// Canary is the number of targets of the first wave (wave 0), after
	// which the rest goes in Waves. Templates join the canary wave. Default
	// 5; negative: no canary wave.
	Canary int `json:"canary"`
	// Waves are cumulative percentages of the targets after the canary,
	// ascending, ending at 100: [10, 50, 100] runs 10% of them, then up to
	// 50%, then the rest. Default [10, 50, 100].
	Waves []int `json:"waves"`
	// Concurrency is the number of targets migrated at once overall.
	// Default 16.
	Concurrency int `json:"concurrency"`
	// PerCluster is the number of targets migrated at once on one cluster.
	// Default 4 (at most Concurrency): about the cores of a small database
	// server, past which the rollout takes CPU from live traffic faster
	// than it gains speed (see docs/benchmarks.md, fleet migrations).
	PerCluster int `json:"per_cluster"`
	// MaxFailures is the error budget: the rollout halts as soon as more
	// targets than this have failed, starting no other target. Default 0.
	MaxFailures int `json:"max_failures"`
	// Soak is a pause after each wave but the last, to watch the canary.
	// Default 0.
	Soak time.Duration `json:"soak"`
	// All makes the rollout visit every target, also those the ledger
	// shows at head (each is then checked against its own ledger).
	// Default false.
	All bool `json:"all"`
	// OnEvent receives the rollout's events (see Event). Default none.
	OnEvent func(Event) `json:"-"`
}

func (o RunOptions) normalize() (RunOptions, error) {
	if o.Actor == "" {
		return o, &catalog.ValidationError{Field: "actor", Reason: "a rollout needs an actor"}
	}
	if o.Canary == 0 {
		o.Canary = 5
	}
	if len(o.Waves) == 0 {
		o.Waves = []int{10, 50, 100}
	}
	prev := 0
	for _, p := range o.Waves {
		if p <= prev || p > 100 {
			return o, &catalog.ValidationError{Field: "waves", Reason: "must be ascending percentages in 1..100"}
		}
		prev = p
	}
	if prev != 100 {
		o.Waves = append(slices.Clone(o.Waves), 100)
	}
	if o.Concurrency == 0 {
		o.Concurrency = 16
	}
	if o.PerCluster == 0 {
		o.PerCluster = 4
	}
	if o.Concurrency < 0 || o.PerCluster < 0 || o.MaxFailures < 0 || o.Soak < 0 {
		return o, &catalog.ValidationError{Field: "options", Reason: "concurrency, per_cluster, max_failures and soak must not be negative"}
	}
	o.PerCluster = min(o.PerCluster, o.Concurrency)
	return o, nil
}

// merge returns stored options with the non-zero fields of o.
func (o RunOptions) merge(stored RunOptions) RunOptions {
	out := stored
	out.Actor, out.Reason, out.OnEvent = o.Actor, o.Reason, o.OnEvent
	if o.Concurrency != 0 {
		out.Concurrency = o.Concurrency
	}
	if o.PerCluster != 0 {
		out.PerCluster = o.PerCluster
	}
	if o.MaxFailures != 0 {
		out.MaxFailures = o.MaxFailures
	}
	if o.Soak != 0 {
		out.Soak = o.Soak
	}
	return out
}

// Report is what a rollout did.
type Report struct {
	RunID string   `json:"run_id"`
	Head  int      `json:"head"`
	State RunState `json:"state"`
	// HaltReason says why a halted run stopped.
	HaltReason string `json:"halt_reason,omitempty"`
	// Targets counts the run's targets; Done, Failed, Blocked how they
	// ended (the rest were left untouched by a halt).
	Targets      int           `json:"targets"`
	Done         int           `json:"done"`
	Failed       int           `json:"failed"`
	Blocked      int           `json:"blocked"`
	StepsApplied int           `json:"steps_applied"`
	LockRetries  int           `json:"lock_retries"`
	IndexRepairs int           `json:"index_repairs"`
	Elapsed      time.Duration `json:"elapsed"`
	Waves        []WaveReport  `json:"waves"`
	// Failures are the failed and blocked targets, with their errors.
	Failures []TargetStatus `json:"failures,omitempty"`
}

// WaveReport is one wave of a rollout.
type WaveReport struct {
	Wave    int           `json:"wave"`
	Targets int           `json:"targets"`
	Done    int           `json:"done"`
	Failed  int           `json:"failed"`
	Blocked int           `json:"blocked"`
	Elapsed time.Duration `json:"elapsed"`
}

// Up starts a rollout of the source's head to every target not at head: it
// lints the pending steps, records the run and its waves in the catalog, and
// runs the waves. It returns an error wrapping ErrHalted when the error
// budget stopped it (the Report lists the failures; untouched targets stay
// pending for Resume). A crash or a cancelled ctx leaves the run to Resume.
func (e *Engine) Up(ctx context.Context, opts RunOptions) (*Report, error) {
	opts, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	lock, err := e.acquireRunLock(ctx, false)
	if err != nil {
		return nil, err
	}
	defer lock.release()
	if r, err := e.unfinishedRun(ctx); err != nil {
		return nil, err
	} else if r != nil {
		return nil, fmt.Errorf("%w (run %s, %s)", ErrUnfinishedRun, r.ID, r.State)
	}
	targets, clusters, err := e.discover(ctx)
	if err != nil {
		return nil, err
	}
	if err := e.syncTargets(ctx, targets, true); err != nil {
		return nil, err
	}
	pending, minVersion, err := e.pendingTargets(ctx, targets, opts.All)
	if err != nil {
		return nil, err
	}
	head := e.src.Head()
	if len(pending) == 0 {
		return &Report{Head: head, State: RunDone}, nil
	}
	if err := e.lintPending(minVersion); err != nil {
		return nil, err
	}
	waves := assignWaves(pending, opts)
	run := &RunStatus{ID: newRunID(), Head: head, State: RunRunning, Actor: opts.Actor, Opts: opts, Waves: len(waves), Total: len(pending)}
	if err := e.createRun(ctx, run, waves); err != nil {
		return nil, err
	}
	e.logger.InfoContext(ctx, "rollout started", "run", run.ID, "head", head, "targets", len(pending), "waves", len(waves), "actor", opts.Actor)
	return e.execute(ctx, lock, run, clusters, targets, opts)
}

// pendingTargets returns the targets to migrate and the lowest version
// among them.
func (e *Engine) pendingTargets(ctx context.Context, targets []Target, all bool) ([]Target, int, error) {
	rows, err := e.targetStatuses(ctx, "")
	if err != nil {
		return nil, 0, err
	}
	byKey := map[string]TargetStatus{}
	for _, r := range rows {
		byKey[r.Key()] = r
	}
	head := e.src.Head()
	minVersion := head
	var out []Target
	for _, t := range targets {
		r, ok := byKey[t.Key()]
		if ok && r.Version >= head && !all {
			continue
		}
		out = append(out, t)
		if ok {
			minVersion = min(minVersion, r.Version)
		} else {
			minVersion = 0
		}
	}
	return out, minVersion, nil
}

// lintPending refuses steps after version from with blocking findings.
func (e *Engine) lintPending(from int) error {
	var blocking []lint.Finding
	for _, f := range lint.Blocking(e.src.Lint()) {
		if f.Version > from {
			blocking = append(blocking, f)
		}
	}
	if len(blocking) > 0 {
		return &LintError{Findings: blocking}
	}
	return nil
}

// assignWaves orders targets by blast radius (templates, then one-tenant
// targets interleaved across clusters, then shared databases and shards)
// and cuts them into the canary and the percentage waves.
func assignWaves(targets []Target, opts RunOptions) [][]Target {
	var templates, single, multi []Target
	for _, t := range targets {
		switch t.Kind {
		case KindTemplate:
			templates = append(templates, t)
		case KindShared, KindSharded:
			multi = append(multi, t)
		default:
			single = append(single, t)
		}
	}
	sort.SliceStable(multi, func(i, j int) bool { return multi[i].Tenants < multi[j].Tenants })
	rest := append(interleave(single), multi...)
	var waves [][]Target
	if opts.Canary > 0 || len(templates) > 0 {
		n := min(max(opts.Canary, 0), len(rest))
		canary := append(templates, rest[:n]...)
		rest = rest[n:]
		if len(canary) > 0 {
			waves = append(waves, canary)
		}
	}
	start := 0
	for _, p := range opts.Waves {
		end := int(math.Ceil(float64(len(rest)) * float64(p) / 100))
		if end > start {
			waves = append(waves, rest[start:end])
			start = end
		}
	}
	return waves
}

// interleave orders targets round-robin across clusters, each cluster's in
// key order, so that every wave spreads over the clusters.
func interleave(targets []Target) []Target {
	byCluster := map[string][]Target{}
	var names []string
	for _, t := range targets {
		if _, ok := byCluster[t.Cluster]; !ok {
			names = append(names, t.Cluster)
		}
		byCluster[t.Cluster] = append(byCluster[t.Cluster], t)
	}
	sort.Strings(names)
	out := make([]Target, 0, len(targets))
	for i := 0; len(out) < len(targets); i++ {
		for _, n := range names {
			if i < len(byCluster[n]) {
				out = append(out, byCluster[n][i])
			}
		}
	}
	return out
}

// createRun records run and assigns its targets their waves, in one
// transaction with the audit entry.
func (e *Engine) createRun(ctx context.Context, run *RunStatus, waves [][]Target) error {
	opts, err := json.Marshal(run.Opts)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO tenantry.migration_run (id, head, actor, options, waves, total) VALUES ($1, $2, $3, $4, $5, $6)`,
			run.ID, run.Head, run.Actor, opts, run.Waves, run.Total)
		if err != nil {
			if isUniqueViolation(err) {
				return ErrUnfinishedRun
			}
			return fmt.Errorf("migrate: record run: %w", err)
		}
		if err := assignRunTargets(ctx, tx, run.ID, waves, 0); err != nil {
			return err
		}
		return e.audit(ctx, tx, run.Actor, run.Opts.Reason, "migrate.up", run.ID,
			map[string]any{"head": run.Head, "targets": run.Total, "waves": run.Waves, "options": run.Opts})
	})
}

// assignRunTargets puts waves (numbered from first) in run.
func assignRunTargets(ctx context.Context, tx pgx.Tx, runID string, waves [][]Target, first int) error {
	var clusters, databases, schemas []string
	var wave []int32
	for w, ts := range waves {
		for _, t := range ts {
			clusters, databases, schemas = append(clusters, t.Cluster), append(databases, t.Database), append(schemas, t.Schema)
			wave = append(wave, int32(first+w))
		}
	}
	_, err := tx.Exec(ctx, `UPDATE tenantry.migration_target m SET run_id = $1, wave = d.w, state = 'pending', attempts = 0,
    lock_retries = 0, last_error = '', step = NULL, started_at = NULL, finished_at = NULL, duration_ms = NULL, updated_at = now()
FROM unnest($2::text[], $3::text[], $4::text[], $5::int[]) AS d (c, db, s, w)
WHERE m.cluster = d.c AND m.database = d.db AND m.schema = d.s`, runID, clusters, databases, schemas, wave)
	if err != nil {
		return fmt.Errorf("migrate: assign waves: %w", err)
	}
	return nil
}

// Resume continues the unfinished run (one that crashed, was interrupted or
// halted): its failed and blocked targets are retried, targets it left
// running are checked against their own ledgers (no step runs twice), and
// the waves continue where they stopped. Targets provisioned since join the
// last wave. Non-zero fields of opts override the run's options, except
// the wave layout.
func (e *Engine) Resume(ctx context.Context, opts RunOptions) (*Report, error) {
	if opts.Actor == "" {
		return nil, &catalog.ValidationError{Field: "actor", Reason: "a rollout needs an actor"}
	}
	lock, err := e.acquireRunLock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer lock.release()
	run, err := e.unfinishedRun(ctx)
	if err != nil {
		return nil, err
	}
	if run == nil {
		return nil, ErrNoRun
	}
	if run.Head != e.src.Head() {
		return nil, fmt.Errorf("migrate: run %s rolls out version %d, this source's head is %d: resume it with the release that started it, or abort it", run.ID, run.Head, e.src.Head())
	}
	opts = opts.merge(run.Opts)
	targets, clusters, err := e.discover(ctx)
	if err != nil {
		return nil, err
	}
	if err := e.syncTargets(ctx, targets, false); err != nil {
		return nil, err
	}
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		// Targets provisioned since the run started, behind head, join its
		// last wave.
		newcomers, err := joinNewcomers(ctx, tx, run, targets, max(run.Waves-1, 0))
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE tenantry.migration_target SET state = 'pending', updated_at = now()
WHERE run_id = $1 AND state IN ('running', 'failed', 'blocked')`, run.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE tenantry.migration_run SET state = 'running', halt_reason = '', heartbeat_at = now(),
    total = (SELECT count(*) FROM tenantry.migration_target WHERE run_id = $1) WHERE id = $1`, run.ID); err != nil {
			return err
		}
		return e.audit(ctx, tx, opts.Actor, opts.Reason, "migrate.resume", run.ID, map[string]any{"newcomers": len(newcomers)})
	})
	if err != nil {
		return nil, fmt.Errorf("migrate: resume run %s: %w", run.ID, err)
	}
	e.logger.InfoContext(ctx, "rollout resumed", "run", run.ID, "head", run.Head, "actor", opts.Actor)
	return e.execute(ctx, lock, run, clusters, targets, opts)
}

// joinNewcomers puts the targets behind head that are not in run (provisioned
// since it started, from an older template or without one) in run's wave.
func joinNewcomers(ctx context.Context, tx pgx.Tx, run *RunStatus, targets []Target, wave int) ([]Target, error) {
	rows, err := tx.Query(ctx, `SELECT cluster, database, schema FROM tenantry.migration_target
WHERE (run_id IS DISTINCT FROM $1) AND version < $2`, run.ID, run.Head)
	if err != nil {
		return nil, err
	}
	behind := map[string]bool{}
	for rows.Next() {
		var t Target
		if err := rows.Scan(&t.Cluster, &t.Database, &t.Schema); err != nil {
			rows.Close()
			return nil, err
		}
		behind[t.Key()] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var newcomers []Target
	for _, t := range targets {
		if behind[t.Key()] {
			newcomers = append(newcomers, t)
		}
	}
	if len(newcomers) > 0 {
		if err := assignRunTargets(ctx, tx, run.ID, [][]Target{newcomers}, wave); err != nil {
			return nil, err
		}
	}
	return newcomers, nil
}

// catchNewcomers puts targets provisioned during the run, still behind head,
// in a wave after the last, and returns them.
func (e *Engine) catchNewcomers(ctx context.Context, run *RunStatus, wave int) ([]Target, map[string]*catalog.Cluster, error) {
	targets, clusters, err := e.discover(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := e.syncTargets(ctx, targets, false); err != nil {
		return nil, nil, err
	}
	var newcomers []Target
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		var err error
		if newcomers, err = joinNewcomers(ctx, tx, run, targets, wave); err != nil || len(newcomers) == 0 {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE tenantry.migration_run SET waves = $2, total = (SELECT count(*) FROM tenantry.migration_target WHERE run_id = $1) WHERE id = $1`,
			run.ID, wave+1)
		return err
	})
	return newcomers, clusters, err
}

// Abort ends the unfinished run without migrating more: targets stay at the
// version they reached, and the run's leases are released. A later Up
// starts afresh.
func (e *Engine) Abort(ctx context.Context, actor, reason string) (*RunStatus, error) {
	if actor == "" {
		return nil, &catalog.ValidationError{Field: "actor", Reason: "aborting a rollout needs an actor"}
	}
	lock, err := e.acquireRunLock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer lock.release()
	run, err := e.unfinishedRun(ctx)
	if err != nil {
		return nil, err
	}
	if run == nil {
		return nil, ErrNoRun
	}
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE tenantry.migration_run SET state = 'aborted', finished_at = now(), halt_reason = $2 WHERE id = $1`,
			run.ID, "aborted by "+actor); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE tenantry.migration_target SET state = 'failed', last_error = 'run aborted', updated_at = now()
WHERE run_id = $1 AND state = 'running'`, run.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tenantry.tenant_lease WHERE starts_with(owner, $1)`, runOwnerPrefix+run.ID+"/"); err != nil {
			return err
		}
		return e.audit(ctx, tx, actor, reason, "migrate.abort", run.ID, nil)
	})
	if err != nil {
		return nil, fmt.Errorf("migrate: abort run %s: %w", run.ID, err)
	}
	run.State = RunAborted
	return run, nil
}

// execute runs the unfinished waves of run.
func (e *Engine) execute(ctx context.Context, lock *runLock, run *RunStatus, clusters map[string]*catalog.Cluster, discovered []Target, opts RunOptions) (*Report, error) {
	started := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	owner := runOwnerPrefix + run.ID + "/" + e.config.Identity
	rows, err := e.targetStatuses(ctx, "run_id = $1", run.ID)
	if err != nil {
		return nil, err
	}
	tenants := map[string]int{}
	for _, t := range discovered {
		tenants[t.Key()] = t.Tenants
	}
	ev := newEvents(run.ID, opts.OnEvent)
	report := &Report{RunID: run.ID, Head: run.Head, Targets: len(rows)}
	waves := 0
	for _, r := range rows {
		waves = max(waves, r.Wave+1)
	}
	ev.emit(Event{Kind: EventRunStarted}, func(p *Progress) {
		p.Total = len(rows)
		for _, r := range rows {
			if r.State == StateDone {
				p.Done++
			}
		}
	})
	stopHeartbeat := e.heartbeat(ctx, cancel, run.ID, owner, lock)
	defer stopHeartbeat()
	cn := newConnector(e, opts.PerCluster)
	defer cn.close()
	defer func() {
		if err := e.leases.Release(context.WithoutCancel(ctx), owner); err != nil {
			e.logger.ErrorContext(ctx, "could not release leases", "owner", owner, "error", err)
		}
	}()

	var failures atomic.Int64
	halt := func(reason string) (*Report, error) {
		report.State, report.HaltReason = RunHalted, reason
		e.finishReport(ctx, report, ev, started)
		e.ledgerWrite(ctx, "halt", Target{}, `UPDATE tenantry.migration_run SET state = 'halted', halt_reason = $2 WHERE id = $1`, run.ID, reason)
		ev.emit(Event{Kind: EventRunHalted, Err: reason}, nil)
		e.logger.WarnContext(ctx, "rollout halted", "run", run.ID, "reason", reason)
		return report, fmt.Errorf("%w: %s", ErrHalted, reason)
	}
	for w := 0; w < waves; w++ {
		var todo []Target
		for _, r := range rows {
			if r.Wave == w && r.State != StateDone {
				t := r.Target
				t.Tenants = tenants[t.Key()]
				todo = append(todo, t)
			}
		}
		if len(todo) == 0 {
			continue
		}
		e.ledgerWrite(ctx, "wave", Target{}, `UPDATE tenantry.migration_run SET wave = $2 WHERE id = $1`, run.ID, w)
		ev.emit(Event{Kind: EventWaveStarted, Wave: w}, nil)
		wr := e.runWave(ctx, run, w, todo, clusters, cn, ev, owner, opts, &failures)
		report.Waves = append(report.Waves, wr)
		ev.emit(Event{Kind: EventWaveDone, Wave: w, Elapsed: wr.Elapsed}, nil)
		if err := context.Cause(ctx); err != nil {
			report.State = RunRunning
			e.finishReport(ctx, report, ev, started)
			ev.emit(Event{Kind: EventRunInterrupted, Err: err.Error()}, nil)
			return report, fmt.Errorf("migrate: run %s interrupted (resume it): %w", run.ID, err)
		}
		if n := failures.Load(); n > int64(opts.MaxFailures) {
			return halt(fmt.Sprintf("error budget exceeded: %d target(s) failed, budget %d", n, opts.MaxFailures))
		}
		if w < waves-1 && opts.Soak > 0 {
			if err := sleep(ctx, opts.Soak); err != nil {
				return report, fmt.Errorf("migrate: run %s interrupted (resume it): %w", run.ID, err)
			}
		}
	}
	// Tenants provisioned while the waves ran may have come from a template
	// or DDL behind head: one more wave catches them.
	if newcomers, cl, err := e.catchNewcomers(ctx, run, waves); err != nil {
		e.logger.WarnContext(ctx, "could not look for targets provisioned during the rollout", "run", run.ID, "error", err)
	} else if len(newcomers) > 0 {
		e.logger.InfoContext(ctx, "targets provisioned during the rollout", "run", run.ID, "targets", len(newcomers))
		ev.emit(Event{Kind: EventWaveStarted, Wave: waves}, func(p *Progress) { p.Total += len(newcomers) })
		wr := e.runWave(ctx, run, waves, newcomers, cl, cn, ev, owner, opts, &failures)
		report.Waves = append(report.Waves, wr)
		report.Targets += len(newcomers)
		ev.emit(Event{Kind: EventWaveDone, Wave: waves, Elapsed: wr.Elapsed}, nil)
	}
	e.finishReport(ctx, report, ev, started)
	if report.Failed > 0 || report.Blocked > 0 {
		return halt(fmt.Sprintf("%d target(s) failed and %d blocked by leases; resume to retry them", report.Failed, report.Blocked))
	}
	report.State = RunDone
	e.ledgerWrite(ctx, "done", Target{}, `UPDATE tenantry.migration_run SET state = 'done', finished_at = now() WHERE id = $1`, run.ID)
	ev.emit(Event{Kind: EventRunDone, Elapsed: report.Elapsed}, nil)
	e.logger.InfoContext(ctx, "rollout done", "run", run.ID, "head", run.Head, "targets", report.Targets, "elapsed", report.Elapsed)
	return report, nil
}

// finishReport fills the report's totals from the events and the ledger.
func (e *Engine) finishReport(ctx context.Context, report *Report, ev *events, started time.Time) {
	ev.mu.Lock()
	report.StepsApplied, report.LockRetries, report.IndexRepairs = ev.stepsApplied, ev.lockRetries, ev.indexRepairs
	ev.mu.Unlock()
	report.Elapsed = time.Since(started)
	rows, err := e.targetStatuses(context.WithoutCancel(ctx), "run_id = $1", report.RunID)
	if err != nil {
		e.logger.ErrorContext(ctx, "could not read the run's targets", "run", report.RunID, "error", err)
		return
	}
	report.Done, report.Failed, report.Blocked, report.Failures = 0, 0, 0, nil
	for _, r := range rows {
		switch r.State {
		case StateDone:
			report.Done++
		case StateFailed:
			report.Failed++
			report.Failures = append(report.Failures, r)
		case StateBlocked:
			report.Blocked++
			report.Failures = append(report.Failures, r)
		}
	}
}

// runWave migrates the targets of one wave, at most opts.Concurrency at
// once and opts.PerCluster per cluster, each cluster's targets in order.
// Once more than opts.MaxFailures targets have failed, no other target
// starts; those running finish.
func (e *Engine) runWave(ctx context.Context, run *RunStatus, wave int, targets []Target, clusters map[string]*catalog.Cluster,
	cn *connector, ev *events, owner string, opts RunOptions, failures *atomic.Int64) WaveReport {
	started := time.Now()
	wr := WaveReport{Wave: wave, Targets: len(targets)}
	var mu sync.Mutex
	global := make(chan struct{}, opts.Concurrency)
	halted := make(chan struct{})
	var haltOnce sync.Once
	if failures.Load() > int64(opts.MaxFailures) {
		haltOnce.Do(func() { close(halted) })
	}
	byCluster := map[string][]Target{}
	for _, t := range targets {
		byCluster[t.Cluster] = append(byCluster[t.Cluster], t)
	}
	var wg sync.WaitGroup
	for _, list := range byCluster {
		wg.Go(func() {
			slots := make(chan struct{}, opts.PerCluster)
			var cw sync.WaitGroup
			defer cw.Wait()
			for _, t := range list {
				select {
				case slots <- struct{}{}:
				case <-halted:
					return
				case <-ctx.Done():
					return
				}
				select {
				case global <- struct{}{}:
				case <-halted:
					<-slots
					return
				case <-ctx.Done():
					<-slots
					return
				}
				select {
				case <-halted:
					<-global
					<-slots
					return
				default:
				}
				cw.Go(func() {
					defer func() { <-global; <-slots }()
					state := e.runTarget(ctx, run, wave, t, clusters[t.Cluster], cn, ev, owner)
					mu.Lock()
					defer mu.Unlock()
					switch state {
					case StateDone:
						wr.Done++
					case StateBlocked:
						wr.Blocked++
					case StateFailed:
						wr.Failed++
						if ctx.Err() == nil && failures.Add(1) > int64(opts.MaxFailures) {
							haltOnce.Do(func() { close(halted) })
						}
					}
				})
			}
		})
	}
	wg.Wait()
	wr.Elapsed = time.Since(started)
	return wr
}

// runTarget migrates one target of a run and records how it ended.
func (e *Engine) runTarget(ctx context.Context, run *RunStatus, wave int, t Target, cl *catalog.Cluster, cn *connector, ev *events, owner string) TargetState {
	started := time.Now()
	te := &targetEvents{ev: ev, wave: wave, target: t}
	e.markRunning(ctx, t, run.ID)
	ev.emit(Event{Kind: EventTargetStarted, Wave: wave, Target: &t}, func(p *Progress) { p.Running++ })
	finish := func(state TargetState, version int, err error) TargetState {
		elapsed := time.Since(started)
		msg, step := "", 0
		if err != nil {
			msg = err.Error()
			var se *StepError
			if errors.As(err, &se) {
				step = se.Version
			}
		}
		e.markFinished(ctx, t, state, version, step, elapsed, te.lockRetries, msg)
		kind := map[TargetState]EventKind{StateDone: EventTargetDone, StateFailed: EventTargetFailed, StateBlocked: EventTargetBlocked}[state]
		ev.emit(Event{Kind: kind, Wave: wave, Target: &t, Version: version, Err: msg, Elapsed: elapsed}, func(p *Progress) {
			p.Running--
			switch state {
			case StateDone:
				p.Done++
			case StateFailed:
				p.Failed++
			case StateBlocked:
				p.Blocked++
			}
		})
		log := e.logger.With("run", run.ID, "target", t.Key(), "kind", t.Kind, "elapsed", elapsed)
		if state == StateDone {
			log.DebugContext(ctx, "target migrated", "version", version)
		} else {
			log.WarnContext(ctx, "target not migrated", "state", state, "error", msg)
		}
		return state
	}
	if cl == nil {
		return finish(StateFailed, -1, fmt.Errorf("cluster %s is not in the catalog", t.Cluster))
	}
	if t.Tenants > 0 && t.Kind != KindTemplate {
		if err := e.leases.acquireTarget(ctx, owner, e.config.LeaseTTL, t); err != nil {
			if errors.Is(err, ErrLeased) {
				return finish(StateBlocked, -1, err)
			}
			return finish(StateFailed, -1, err)
		}
		defer func() {
			if err := e.leases.releaseTarget(context.WithoutCancel(ctx), owner, t); err != nil {
				e.logger.ErrorContext(ctx, "could not release leases", "target", t.Key(), "error", err)
			}
		}()
	}
	version, err := e.applyTarget(ctx, cn, cl, t, run.ID, te)
	if err != nil {
		return finish(StateFailed, version, err)
	}
	return finish(StateDone, version, nil)
}

// heartbeat renews the run's leases and heartbeat every LeaseTTL/3, and
// cancels ctx with ErrLeaseLost when it has not managed to for 2/3 of the
// TTL, or when the session holding the rollout lock is gone (another engine
// took over a run it believed dead). It returns the function that stops it.
func (e *Engine) heartbeat(ctx context.Context, cancel context.CancelCauseFunc, runID, owner string, lock *runLock) func() {
	ttl := e.config.LeaseTTL
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(ttl / 3)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			cctx, c := context.WithTimeout(ctx, ttl/3)
			if lock != nil {
				if _, err := lock.conn.Exec(cctx, `SELECT 1`); err != nil && ctx.Err() == nil {
					c()
					e.logger.ErrorContext(ctx, "rollout lock lost; stopping", "run", runID, "error", err)
					cancel(ErrLeaseLost)
					return
				}
			}
			_, err := e.leases.Renew(cctx, owner, ttl)
			if err == nil {
				_, err = e.pool.Exec(cctx, `UPDATE tenantry.migration_run SET heartbeat_at = now() WHERE id = $1`, runID)
			}
			c()
			if err == nil {
				last = time.Now()
				continue
			}
			e.logger.WarnContext(ctx, "lease renewal failed", "run", runID, "error", err)
			if time.Since(last) > ttl*2/3 {
				cancel(ErrLeaseLost)
				return
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// MigrateTarget brings one target to head outside any rollout: for a
// template before provisioning clones it, or a tenant provisioned at an old
// version. It takes the tenants' leases (owner "migrate/<identity>"), the
// target's advisory lock, and records the outcome in the ledger. It
// returns the version reached.
func (e *Engine) MigrateTarget(ctx context.Context, t Target) (int, error) {
	cl, err := e.store.Cluster(ctx, t.Cluster)
	if err != nil {
		return 0, err
	}
	if err := e.syncTargets(ctx, []Target{t}, false); err != nil {
		return 0, err
	}
	if t.Kind != KindTemplate && t.Tenants == 0 {
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM (`+targetTenants(1)+`) s`, t.Cluster, t.Database, t.Schema).Scan(&t.Tenants); err != nil {
			return 0, fmt.Errorf("migrate: count tenants: %w", err)
		}
	}
	owner := "migrate/" + e.config.Identity
	started := time.Now()
	e.markRunning(ctx, t, "")
	te := &targetEvents{target: t}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer e.heartbeat(ctx, cancel, "", owner, nil)()
	if t.Tenants > 0 && t.Kind != KindTemplate {
		if err := e.leases.acquire(ctx, owner, PurposeMigrate, e.config.LeaseTTL, "", targetTenants, t.Cluster, t.Database, t.Schema); err != nil {
			e.markFinished(ctx, t, StateBlocked, -1, 0, time.Since(started), 0, err.Error())
			return 0, err
		}
		defer func() { _ = e.leases.releaseTarget(context.WithoutCancel(ctx), owner, t) }()
	}
	cn := newConnector(e, 1)
	defer cn.close()
	v, err := e.applyTarget(ctx, cn, cl, t, "", te)
	if err != nil {
		step := 0
		var se *StepError
		if errors.As(err, &se) {
			step = se.Version
		}
		e.markFinished(ctx, t, StateFailed, v, step, time.Since(started), te.lockRetries, err.Error())
		return v, err
	}
	e.markFinished(ctx, t, StateDone, v, 0, time.Since(started), te.lockRetries, "")
	return v, nil
}
