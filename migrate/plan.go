package migrate

import (
	"context"

	"github.com/tenantry/tenantry/migrate/lint"
)

// Plan is a dry run: what Up would do now, computed from the catalog and
// its ledger without touching any target.
type Plan struct {
	Head  int     `json:"head"`
	Steps []*Step `json:"steps"`
	// Findings are the lint findings of every step, allowed ones included.
	Findings []lint.Finding `json:"findings"`
	// Blocking counts findings that would stop Up: unallowed ones in steps
	// some target still has to apply.
	Blocking int `json:"blocking"`
	// Targets are the targets Up would migrate, in wave order.
	Targets []PlannedTarget `json:"targets"`
	Waves   []PlannedWave   `json:"waves"`
	// AtHead counts targets already at head (left alone).
	AtHead int `json:"at_head"`
	// Unfinished is the run Up would refuse to start over, if any.
	Unfinished *RunStatus `json:"unfinished_run,omitempty"`
}

// PlannedTarget is a target of a plan.
type PlannedTarget struct {
	Target
	// Version is the target's version as the ledger last saw it, -1 when
	// no migrator has visited it yet (it may already be at head, if it was
	// provisioned from an up-to-date template: Up checks).
	Version int `json:"version"`
	// Pending are the versions to apply, as far as the ledger knows.
	Pending []int `json:"pending"`
	Wave    int   `json:"wave"`
}

// PlannedWave summarises a wave of a plan.
type PlannedWave struct {
	Wave      int            `json:"wave"`
	Targets   int            `json:"targets"`
	ByCluster map[string]int `json:"by_cluster"`
	ByKind    map[Kind]int   `json:"by_kind"`
}

// Plan returns what Up with opts would do now. It writes nothing.
func (e *Engine) Plan(ctx context.Context, opts RunOptions) (*Plan, error) {
	if opts.Actor == "" {
		opts.Actor = "plan"
	}
	opts, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	targets, _, err := e.discover(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := e.targetStatuses(ctx, "")
	if err != nil {
		return nil, err
	}
	known := map[string]TargetStatus{}
	for _, r := range rows {
		known[r.Key()] = r
	}
	p := &Plan{Head: e.src.Head(), Steps: e.src.Steps(), Findings: e.src.Lint()}
	if p.Unfinished, err = e.unfinishedRun(ctx); err != nil {
		return nil, err
	}
	var pending []Target
	minVersion := p.Head
	for _, t := range targets {
		r, ok := known[t.Key()]
		if ok && r.Version >= p.Head && !opts.All {
			p.AtHead++
			continue
		}
		pending = append(pending, t)
		if ok {
			minVersion = min(minVersion, r.Version)
		} else {
			minVersion = 0
		}
	}
	for _, f := range lint.Blocking(p.Findings) {
		if len(pending) > 0 && f.Version > minVersion {
			p.Blocking++
		}
	}
	for w, wave := range assignWaves(pending, opts) {
		pw := PlannedWave{Wave: w, Targets: len(wave), ByCluster: map[string]int{}, ByKind: map[Kind]int{}}
		for _, t := range wave {
			pw.ByCluster[t.Cluster]++
			pw.ByKind[t.Kind]++
			pt := PlannedTarget{Target: t, Version: -1, Wave: w}
			from := 0
			if r, ok := known[t.Key()]; ok && (r.Version > 0 || r.State != StatePending) {
				pt.Version, from = r.Version, r.Version
			}
			for _, s := range e.src.Steps() {
				if s.Version > from {
					pt.Pending = append(pt.Pending, s.Version)
				}
			}
			p.Targets = append(p.Targets, pt)
		}
		p.Waves = append(p.Waves, pw)
	}
	return p, nil
}
