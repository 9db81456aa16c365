package migrate

import (
	"context"
	"fmt"
	"strings"

	"github.com/tenantry/tenantry/catalog"
)

// Status is the fleet's migration status, JSON-ready for the admin API.
type Status struct {
	// Head is the newest version of the engine's source.
	Head int `json:"head"`
	// Run is the newest run, if any; Progress its progress.
	Run      *RunStatus `json:"run,omitempty"`
	Progress *Progress  `json:"progress,omitempty"`
	// Counts are all targets by state; Versions all targets by version.
	Counts   map[TargetState]int `json:"counts"`
	Versions map[int]int         `json:"versions"`
	// Total is the number of targets in the ledger.
	Total int `json:"total"`
	// Targets are the ledger rows StatusOptions selected, in key order;
	// Next is the cursor of the next page ("" on the last).
	Targets []TargetStatus `json:"targets,omitempty"`
	Next    string         `json:"next,omitempty"`
}

// StatusOptions select the target rows of a Status.
type StatusOptions struct {
	// Targets asks for target rows at all. Default false: summary only.
	Targets bool
	// States, Kind, Cluster and RunID filter the rows. Default: all.
	States  []TargetState
	Kind    Kind
	Cluster string
	RunID   string
	// After is a cursor: rows whose key sorts after it.
	After string
	// Limit caps the rows. Default 100, at most 1000.
	Limit int
}

// Status returns the fleet's migration status from the catalog.
func (e *Engine) Status(ctx context.Context, opts StatusOptions) (*Status, error) {
	st := &Status{Head: e.src.Head(), Counts: map[TargetState]int{}, Versions: map[int]int{}}
	rows, err := e.pool.Query(ctx, `SELECT state, version, count(*) FROM tenantry.migration_target GROUP BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("migrate: status: %w", err)
	}
	for rows.Next() {
		var state string
		var version, n int
		if err := rows.Scan(&state, &version, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("migrate: status: %w", err)
		}
		st.Counts[TargetState(state)] += n
		st.Versions[version] += n
		st.Total += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate: status: %w", err)
	}
	runs, err := e.Runs(ctx, 1)
	if err != nil {
		return nil, err
	}
	if len(runs) > 0 {
		st.Run = runs[0]
		p, err := e.runProgress(ctx, st.Run)
		if err != nil {
			return nil, err
		}
		st.Progress = p
	}
	if !opts.Targets {
		return st, nil
	}
	if opts.Limit <= 0 {
		opts.Limit = 100
	}
	opts.Limit = min(opts.Limit, 1000)
	where := []string{"true"}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if len(opts.States) > 0 {
		states := make([]string, len(opts.States))
		for i, s := range opts.States {
			states[i] = string(s)
		}
		where = append(where, "state = ANY("+arg(states)+"::text[])")
	}
	if opts.Kind != "" {
		where = append(where, "kind = "+arg(string(opts.Kind)))
	}
	if opts.Cluster != "" {
		where = append(where, "cluster = "+arg(opts.Cluster))
	}
	if opts.RunID != "" {
		where = append(where, "run_id = "+arg(opts.RunID))
	}
	if opts.After != "" {
		parts := strings.SplitN(opts.After, "/", 3)
		if len(parts) != 3 {
			return nil, &catalog.ValidationError{Field: "after", Reason: "must be a target key cluster/database/schema"}
		}
		where = append(where, "(cluster, database, schema) > ("+arg(parts[0])+", "+arg(parts[1])+", "+arg(parts[2])+")")
	}
	targets, err := e.targetStatuses(ctx, strings.Join(where, " AND ")+" ORDER BY cluster, database, schema LIMIT "+arg(opts.Limit+1), args...)
	if err != nil {
		return nil, err
	}
	if len(targets) > opts.Limit {
		targets = targets[:opts.Limit]
		st.Next = targets[len(targets)-1].Key()
	}
	st.Targets = targets
	return st, nil
}

// runProgress computes a run's progress from its targets.
func (e *Engine) runProgress(ctx context.Context, run *RunStatus) (*Progress, error) {
	p := &Progress{}
	rows, err := e.pool.Query(ctx, `SELECT state, count(*) FROM tenantry.migration_target WHERE run_id = $1 GROUP BY 1`, run.ID)
	if err != nil {
		return nil, fmt.Errorf("migrate: run progress: %w", err)
	}
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			rows.Close()
			return nil, err
		}
		p.Total += n
		switch TargetState(state) {
		case StateDone:
			p.Done = n
		case StateFailed:
			p.Failed = n
		case StateBlocked:
			p.Blocked = n
		case StateRunning:
			p.Running = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	p.compute(run.StartedAt)
	if run.FinishedAt != nil {
		p.Elapsed = run.FinishedAt.Sub(run.StartedAt)
		p.ETA = 0
	}
	if run.State != RunRunning {
		p.ETA = 0
	}
	return p, nil
}
