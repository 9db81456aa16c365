package migrate

import (
	"sync"
	"time"
)

// EventKind names what happened.
type EventKind string

const (
	EventRunStarted     EventKind = "run-started"
	EventWaveStarted    EventKind = "wave-started"
	EventTargetStarted  EventKind = "target-started"
	EventStepStarted    EventKind = "step-started"
	EventStepDone       EventKind = "step-done"
	EventLockRetry      EventKind = "lock-retry"
	EventIndexRepaired  EventKind = "index-repaired"
	EventTargetDone     EventKind = "target-done"
	EventTargetFailed   EventKind = "target-failed"
	EventTargetBlocked  EventKind = "target-blocked"
	EventWaveDone       EventKind = "wave-done"
	EventRunHalted      EventKind = "run-halted"
	EventRunDone        EventKind = "run-done"
	EventRunInterrupted EventKind = "run-interrupted"
)

// Event is one thing a rollout reports. Events reach RunOptions.OnEvent one
// at a time, in order, from the engine's goroutines: a handler needs no
// locking of its own but must return quickly.
type Event struct {
	Kind  EventKind `json:"kind"`
	At    time.Time `json:"at"`
	RunID string    `json:"run_id"`
	// Wave is the wave, from 0 (the canary).
	Wave int `json:"wave"`
	// Target is set for target and step events.
	Target *Target `json:"target,omitempty"`
	// Version is the step, for step and lock events; for target-done the
	// version reached.
	Version int `json:"version,omitempty"`
	// Attempt counts lock retries (1 is the first retry).
	Attempt int `json:"attempt,omitempty"`
	// Err is the error of a failed target, a lock retry or a halt.
	Err string `json:"error,omitempty"`
	// Elapsed is the target's (or the wave's, or run's) duration, for done
	// and failed events.
	Elapsed time.Duration `json:"elapsed,omitempty"`
	// Progress is the run's progress after this event.
	Progress Progress `json:"progress"`
}

// Progress counts the targets of a run.
type Progress struct {
	Total   int `json:"total"`
	Done    int `json:"done"`
	Failed  int `json:"failed"`
	Blocked int `json:"blocked"`
	Running int `json:"running"`
	// Remaining is Total - Done - Failed - Blocked (running ones included).
	Remaining int `json:"remaining"`
	// Elapsed is the time since the run (or its resumption) started.
	Elapsed time.Duration `json:"elapsed"`
	// Rate is targets finished per second since then.
	Rate float64 `json:"rate"`
	// ETA is Remaining at Rate; 0 when unknown.
	ETA time.Duration `json:"eta"`
}

func (p *Progress) compute(started time.Time) {
	p.Remaining = p.Total - p.Done - p.Failed - p.Blocked
	if p.Remaining < 0 {
		p.Remaining = 0
	}
	p.Elapsed = time.Since(started)
	finished := p.Done + p.Failed + p.Blocked
	p.Rate, p.ETA = 0, 0
	if p.Elapsed > 0 && finished > 0 {
		p.Rate = float64(finished) / p.Elapsed.Seconds()
		p.ETA = time.Duration(float64(p.Remaining) / p.Rate * float64(time.Second))
	}
}

// events serialises a run's events and keeps its progress.
type events struct {
	mu       sync.Mutex
	runID    string
	started  time.Time
	progress Progress
	handler  func(Event)
	// Totals of the run, for its Report.
	lockRetries  int
	indexRepairs int
	stepsApplied int
}

func newEvents(runID string, handler func(Event)) *events {
	return &events{runID: runID, started: time.Now(), handler: handler}
}

// emit records ev, updating progress with delta first.
func (e *events) emit(ev Event, delta func(p *Progress)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if delta != nil {
		delta(&e.progress)
	}
	switch ev.Kind {
	case EventLockRetry:
		e.lockRetries++
	case EventIndexRepaired:
		e.indexRepairs++
	case EventStepDone:
		e.stepsApplied++
	}
	e.progress.compute(e.started)
	if e.handler == nil {
		return
	}
	ev.At = time.Now()
	ev.RunID = e.runID
	ev.Progress = e.progress
	e.handler(ev)
}

// targetEvents is the sink the per-target code reports through.
type targetEvents struct {
	ev     *events
	wave   int
	target Target
	// lockRetries counts this target's retries for the ledger.
	lockRetries int
}

func (t *targetEvents) emit(kind EventKind, version, attempt int, err error) {
	if t == nil || t.ev == nil {
		return
	}
	target := t.target
	ev := Event{Kind: kind, Wave: t.wave, Target: &target, Version: version, Attempt: attempt}
	if err != nil {
		ev.Err = err.Error()
	}
	if kind == EventLockRetry {
		t.lockRetries++
	}
	t.ev.emit(ev, nil)
}
