package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tenantry/tenantry/migrate"
)

// Progress renders a rollout's events: on a terminal, a live bar redrawn in
// place (done / failed / remaining, rate, ETA) with failures and wave ends
// printed above it; elsewhere (a log, a CI job), plain lines at each wave,
// each failure and every few seconds. Pass Handle as RunOptions.OnEvent and
// call Close when the rollout returns.
type Progress struct {
	w   io.Writer
	tty bool
	// Width is the width of the bar in cells. Default 30.
	Width int
	// Every is the interval of plain progress lines (not on a terminal).
	// Default 5s.
	Every time.Duration

	mu        sync.Mutex
	last      migrate.Progress
	wave      int
	drawn     bool
	lastDraw  time.Time
	lastPlain time.Time
	clock     func() time.Time
}

// NewProgress returns a renderer writing to w; tty selects the live bar
// (IsTerminal tells).
func NewProgress(w io.Writer, tty bool) *Progress {
	return &Progress{w: w, tty: tty, Width: 30, Every: 5 * time.Second, clock: time.Now}
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Handle renders one event. It is safe for concurrent use, though the
// engine delivers events one at a time.
func (p *Progress) Handle(ev migrate.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = ev.Progress
	now := p.clock()
	switch ev.Kind {
	case migrate.EventRunStarted:
		p.line(fmt.Sprintf("rollout %s: %d targets", ev.RunID, ev.Progress.Total))
	case migrate.EventWaveStarted:
		p.wave = ev.Wave
		if !p.tty {
			p.line(fmt.Sprintf("wave %d started", ev.Wave))
		}
	case migrate.EventWaveDone:
		p.line(fmt.Sprintf("wave %d done in %s: %s", ev.Wave, round(ev.Elapsed), counts(ev.Progress)))
	case migrate.EventTargetFailed, migrate.EventTargetBlocked:
		what := "failed"
		if ev.Kind == migrate.EventTargetBlocked {
			what = "blocked"
		}
		p.line(fmt.Sprintf("✗ %s %s: %s", ev.Target.Key(), what, oneLine(ev.Err)))
	case migrate.EventIndexRepaired:
		p.line(fmt.Sprintf("! %s: dropped an INVALID index of step %d and rebuilt it", ev.Target.Key(), ev.Version))
	case migrate.EventRunHalted:
		p.line("halted: " + oneLine(ev.Err))
	case migrate.EventRunInterrupted:
		p.line("interrupted: " + oneLine(ev.Err) + " (run `migrate resume`)")
	case migrate.EventRunDone:
		p.line(fmt.Sprintf("done in %s: %s", round(ev.Elapsed), counts(ev.Progress)))
		return
	}
	if p.tty {
		if now.Sub(p.lastDraw) >= 100*time.Millisecond || ev.Kind == migrate.EventWaveDone || ev.Kind == migrate.EventRunStarted {
			p.draw(now)
		}
		return
	}
	if now.Sub(p.lastPlain) >= p.Every {
		p.lastPlain = now
		fmt.Fprintln(p.w, p.bar())
	}
}

// Close ends the live bar's line.
func (p *Progress) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

// line prints s on a line of its own, above the bar on a terminal.
func (p *Progress) line(s string) {
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
	fmt.Fprintln(p.w, s)
	if p.tty {
		p.draw(p.clock())
	}
}

func (p *Progress) draw(now time.Time) {
	fmt.Fprint(p.w, "\r\033[K"+p.bar())
	p.drawn, p.lastDraw = true, now
}

// bar renders the progress line.
func (p *Progress) bar() string {
	pr := p.last
	width := max(p.Width, 10)
	filled, failed := 0, 0
	if pr.Total > 0 {
		filled = pr.Done * width / pr.Total
		failed = (pr.Failed + pr.Blocked) * width / pr.Total
		if pr.Failed+pr.Blocked > 0 && failed == 0 {
			failed = 1
		}
		filled = min(filled, width-failed)
	}
	bar := strings.Repeat("█", filled) + strings.Repeat("▓", failed) + strings.Repeat("░", width-filled-failed)
	eta := "-"
	if pr.ETA > 0 {
		eta = round(pr.ETA).String()
	}
	return fmt.Sprintf("wave %d [%s] %d/%d  done %d  failed %d  remaining %d  %.1f/s  ETA %s",
		p.wave, bar, pr.Done+pr.Failed+pr.Blocked, pr.Total, pr.Done, pr.Failed+pr.Blocked, pr.Remaining, pr.Rate, eta)
}

func counts(p migrate.Progress) string {
	s := fmt.Sprintf("%d/%d done", p.Done, p.Total)
	if p.Failed > 0 {
		s += fmt.Sprintf(", %d failed", p.Failed)
	}
	if p.Blocked > 0 {
		s += fmt.Sprintf(", %d blocked", p.Blocked)
	}
	return s
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Millisecond)
	}
}

// oneLine makes an error fit one line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:197] + "..."
	}
	return s
}
