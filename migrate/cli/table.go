package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tenantry/tenantry/migrate"
	"github.com/tenantry/tenantry/migrate/lint"
)

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// cell makes s safe for one table cell: no tabs or line breaks, bounded.
func cell(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > n {
		s = s[:n-3] + "..."
	}
	if s == "" {
		return "-"
	}
	return s
}

// WriteFindings writes lint findings as a table.
func WriteFindings(w io.Writer, findings []lint.Finding) error {
	if len(findings) == 0 {
		_, err := fmt.Fprintln(w, "lint: no findings")
		return err
	}
	tw := table(w)
	fmt.Fprintln(tw, "FILE\tLINE\tRULE\tSTATUS\tMESSAGE")
	for _, f := range findings {
		status := "BLOCKING"
		if f.Allowed {
			status = "allowed: " + cell(f.Reason, 40)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", f.File, f.Line, f.Rule, status, cell(f.Message, 100))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range lint.Blocking(findings) {
		fmt.Fprintf(w, "\n%s:%d %s\n  %s\n  instead: %s\n", f.File, f.Line, f.Rule, f.Statement, f.Suggestion)
	}
	return nil
}

// WritePlan writes a plan: steps, lint findings, waves and the first
// targets.
func WritePlan(w io.Writer, p *migrate.Plan, maxTargets int) error {
	fmt.Fprintf(w, "head: version %d\n\n", p.Head)
	tw := table(w)
	fmt.Fprintln(tw, "VERSION\tNAME\tMODE\tSTATEMENTS\tALLOWS")
	for _, s := range p.Steps {
		var allows []string
		for rule := range s.Allow {
			allows = append(allows, rule)
		}
		slices.Sort(allows)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\n", s.Version, cell(s.Name, 40), s.Mode, len(s.Statements), cell(strings.Join(allows, ","), 60))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if err := WriteFindings(w, p.Findings); err != nil {
		return err
	}
	if p.Blocking > 0 {
		fmt.Fprintf(w, "\n%d blocking finding(s): `migrate up` will refuse to start\n", p.Blocking)
	}
	if p.Unfinished != nil {
		fmt.Fprintf(w, "\nan unfinished run exists (%s, %s): resume or abort it first\n", p.Unfinished.ID, p.Unfinished.State)
	}
	fmt.Fprintf(w, "\n%d target(s) to migrate, %d at head\n", len(p.Targets), p.AtHead)
	if len(p.Waves) == 0 {
		return nil
	}
	tw = table(w)
	fmt.Fprintln(tw, "WAVE\tTARGETS\tBY KIND\tBY CLUSTER")
	for _, wv := range p.Waves {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\n", wv.Wave, wv.Targets, joinCounts(wv.ByKind), joinCounts(wv.ByCluster))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if maxTargets <= 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = table(w)
	fmt.Fprintln(tw, "WAVE\tTARGET\tKIND\tTENANTS\tVERSION\tPENDING")
	for i, t := range p.Targets {
		if i == maxTargets {
			fmt.Fprintf(tw, "...\t%d more\t\t\t\t\n", len(p.Targets)-maxTargets)
			break
		}
		v := "?"
		if t.Version >= 0 {
			v = fmt.Sprint(t.Version)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", t.Wave, cell(t.Key(), 80), t.Kind, t.Tenants, v, ints(t.Pending))
	}
	return tw.Flush()
}

func joinCounts[K ~string](m map[K]int) string {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

func ints(v []int) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprint(x)
	}
	return cell(strings.Join(parts, ","), 40)
}

// WriteReport writes what a rollout did: totals, waves and failures.
func WriteReport(w io.Writer, r *migrate.Report) error {
	if r.RunID == "" {
		_, err := fmt.Fprintf(w, "every target is at version %d: nothing to do\n", r.Head)
		return err
	}
	fmt.Fprintf(w, "run %s: %s, version %d\n", r.RunID, r.State, r.Head)
	if r.HaltReason != "" {
		fmt.Fprintf(w, "halted: %s\n", r.HaltReason)
	}
	fmt.Fprintf(w, "targets %d: done %d, failed %d, blocked %d, untouched %d; steps applied %d, lock retries %d, indexes repaired %d; %s\n\n",
		r.Targets, r.Done, r.Failed, r.Blocked, max(r.Targets-r.Done-r.Failed-r.Blocked, 0), r.StepsApplied, r.LockRetries, r.IndexRepairs, round(r.Elapsed))
	tw := table(w)
	fmt.Fprintln(tw, "WAVE\tTARGETS\tDONE\tFAILED\tBLOCKED\tTIME")
	for _, wv := range r.Waves {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%s\n", wv.Wave, wv.Targets, wv.Done, wv.Failed, wv.Blocked, round(wv.Elapsed))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Failures) > 0 {
		fmt.Fprintln(w)
		return WriteTargets(w, r.Failures)
	}
	return nil
}

// WriteStatus writes the status summary: the newest run, its progress, and
// targets by state and version.
func WriteStatus(w io.Writer, s *migrate.Status) error {
	fmt.Fprintf(w, "head: version %d; %d target(s)\n", s.Head, s.Total)
	if s.Run != nil {
		r := s.Run
		fmt.Fprintf(w, "run %s: %s (by %s, started %s", r.ID, r.State, r.Actor, r.StartedAt.UTC().Format(time.DateTime))
		if r.FinishedAt != nil {
			fmt.Fprintf(w, ", finished %s", r.FinishedAt.UTC().Format(time.DateTime))
		}
		fmt.Fprintln(w, ")")
		if r.State == migrate.RunRunning && time.Since(r.HeartbeatAt) > 2*time.Minute {
			fmt.Fprintf(w, "  no heartbeat since %s: the engine died; run `migrate resume`\n", r.HeartbeatAt.UTC().Format(time.DateTime))
		}
		if r.HaltReason != "" {
			fmt.Fprintf(w, "  %s\n", r.HaltReason)
		}
		if p := s.Progress; p != nil {
			eta := "-"
			if p.ETA > 0 {
				eta = round(p.ETA).String()
			}
			fmt.Fprintf(w, "  wave %d of %d: done %d, failed %d, blocked %d, running %d, remaining %d of %d; %.1f/s, ETA %s\n",
				r.Wave, r.Waves, p.Done, p.Failed, p.Blocked, p.Running, p.Remaining, p.Total, p.Rate, eta)
		}
	}
	states := make([]string, 0, len(s.Counts))
	for st, n := range s.Counts {
		states = append(states, fmt.Sprintf("%s:%d", st, n))
	}
	slices.Sort(states)
	versions := make([]int, 0, len(s.Versions))
	for v := range s.Versions {
		versions = append(versions, v)
	}
	slices.Sort(versions)
	vs := make([]string, len(versions))
	for i, v := range versions {
		vs[i] = fmt.Sprintf("v%d:%d", v, s.Versions[v])
	}
	fmt.Fprintf(w, "targets by state: %s\ntargets by version: %s\n", strings.Join(states, " "), strings.Join(vs, " "))
	if len(s.Targets) > 0 {
		fmt.Fprintln(w)
		if err := WriteTargets(w, s.Targets); err != nil {
			return err
		}
		if s.Next != "" {
			fmt.Fprintf(w, "more: --after %s\n", s.Next)
		}
	}
	return nil
}

// WriteTargets writes the per-target status table.
func WriteTargets(w io.Writer, targets []migrate.TargetStatus) error {
	tw := table(w)
	fmt.Fprintln(tw, "TARGET\tKIND\tVERSION\tSTATE\tSTEP\tWAVE\tATTEMPTS\tLOCK RETRIES\tTIME\tERROR")
	for _, t := range targets {
		step, wave, dur := "-", "-", "-"
		if t.Step > 0 {
			step = fmt.Sprint(t.Step)
		}
		if t.Wave >= 0 {
			wave = fmt.Sprint(t.Wave)
		}
		if t.DurationMS > 0 {
			dur = round(time.Duration(t.DurationMS) * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", cell(t.Key(), 80), t.Kind, t.Version, t.State, step, wave,
			t.Attempts, t.LockRetries, dur, cell(t.LastError, 120))
	}
	return tw.Flush()
}
