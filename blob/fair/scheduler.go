package fair

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/tenantry/tenantry/blob"
	"github.com/tenantry/tenantry/tenant"
)

// DefaultWeights are the tier weights used when Config.Weights is nil.
var DefaultWeights = map[string]int{"free": 1, "pro": 2, "enterprise": 4}

// Scheduler shares a fixed number of slots (units of concurrent upload work)
// among tenants by start-time fair queuing (SFQ): each request gets a
// virtual start tag max(V, the tenant's last finish tag) and a finish tag
// start + cost/weight; a free slot goes to the waiting request with the
// smallest start tag. Over time each busy tenant gets slots in proportion to
// its weight, a tenant that was idle is served next when it returns (its tag
// is the current virtual time, behind the queue of a flooding tenant), and
// the scheduler is work-conserving: a slot is never left idle while some
// tenant under its cap waits, so one tenant alone gets the whole capacity.
type Scheduler struct {
	slots, tenantSlots, maxWaiters int
	weights                        map[string]int
	defaultWeight                  int
	linger                         time.Duration
	now                            func() time.Time

	mu      sync.Mutex
	used    int
	waiting int
	vtime   float64
	flows   map[string]*flow
}

type flow struct {
	lastFinish float64
	inflight   int
	queue      []*waiter
	lastDone   time.Time // when a slot of this tenant was last released
}

type waiter struct {
	start float64
	ready chan struct{}
	done  bool // granted
}

// SchedulerConfig configures a Scheduler.
type SchedulerConfig struct {
	// Slots is the shared capacity: how many units of upload work run at
	// once across all tenants. Default GOMAXPROCS (at least 2).
	Slots int
	// TenantSlots caps the slots one tenant holds while another tenant is
	// active, keeping headroom (CPU, disk) for the others. A tenant alone
	// may use every slot, so the scheduler stays work-conserving. Default
	// max(1, Slots/2).
	TenantSlots int
	// Linger is how long a tenant still counts as active after its last
	// slot was released, so that a tenant making a request every few
	// milliseconds keeps its headroom between requests. Default 100ms.
	Linger time.Duration
	// Weights maps a tenant tier to its weight. Default DefaultWeights
	// (free 1, pro 2, enterprise 4).
	Weights map[string]int
	// DefaultWeight is the weight of a tier missing from Weights. Default 1.
	DefaultWeight int
	// MaxWaiters caps the requests queued across all tenants; beyond it
	// Acquire fails at once with blob.ErrBusy. Default 4096.
	MaxWaiters int
}

// WithDefaults returns a copy of c with defaults filled in.
func (c *SchedulerConfig) WithDefaults() *SchedulerConfig {
	out := SchedulerConfig{}
	if c != nil {
		out = *c
	}
	if out.Slots == 0 {
		out.Slots = max(2, runtime.GOMAXPROCS(0))
	}
	if out.TenantSlots == 0 {
		out.TenantSlots = max(1, out.Slots/2)
	}
	if out.Linger == 0 {
		out.Linger = 100 * time.Millisecond
	}
	if out.Weights == nil {
		out.Weights = DefaultWeights
	}
	if out.DefaultWeight == 0 {
		out.DefaultWeight = 1
	}
	if out.MaxWaiters == 0 {
		out.MaxWaiters = 4096
	}
	return &out
}

func (c *SchedulerConfig) validate() error {
	if c.Slots < 1 || c.TenantSlots < 1 || c.TenantSlots > c.Slots || c.MaxWaiters < 1 || c.DefaultWeight < 1 || c.Linger < 0 {
		return fmt.Errorf("fair: invalid scheduler config: need 1 <= TenantSlots <= Slots, MaxWaiters >= 1, DefaultWeight >= 1, Linger >= 0")
	}
	for tier, w := range c.Weights {
		if w < 1 {
			return fmt.Errorf("fair: invalid weight %d for tier %q", w, tier)
		}
	}
	return nil
}

// NewScheduler returns a Scheduler.
func NewScheduler(cfg *SchedulerConfig) (*Scheduler, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Scheduler{
		slots: cfg.Slots, tenantSlots: cfg.TenantSlots, maxWaiters: cfg.MaxWaiters,
		weights: cfg.Weights, defaultWeight: cfg.DefaultWeight,
		linger: cfg.Linger, now: time.Now,
		flows: map[string]*flow{},
	}, nil
}

// Weight returns the weight of t's tier.
func (s *Scheduler) Weight(t *tenant.Tenant) int {
	if w, ok := s.weights[t.Tier]; ok {
		return w
	}
	return s.defaultWeight
}

// Acquire waits for a slot for a unit of work of the given cost (bytes) on
// behalf of t, and returns the function that gives it back. It fails with
// ctx's error if ctx ends first, or blob.ErrBusy if too many requests wait.
func (s *Scheduler) Acquire(ctx context.Context, t *tenant.Tenant, cost int64) (release func(), err error) {
	if cost < 1 {
		cost = 1
	}
	s.mu.Lock()
	f := s.flows[t.ID]
	if f == nil {
		f = &flow{lastFinish: s.vtime}
		s.flows[t.ID] = f
	}
	// Fast path: a free slot, nobody waiting, tenant under its cap.
	if s.waiting == 0 && s.used < s.slots && f.inflight < s.capLocked(f, s.now()) {
		start := max(s.vtime, f.lastFinish)
		f.lastFinish = start + float64(cost)/float64(s.Weight(t))
		s.vtime = start
		s.used++
		f.inflight++
		s.mu.Unlock()
		return s.releaser(t.ID), nil
	}
	if s.waiting >= s.maxWaiters {
		s.mu.Unlock()
		return nil, blob.ErrBusy
	}
	start := max(s.vtime, f.lastFinish)
	f.lastFinish = start + float64(cost)/float64(s.Weight(t))
	w := &waiter{start: start, ready: make(chan struct{})}
	f.queue = append(f.queue, w)
	s.waiting++
	s.dispatchLocked()
	s.mu.Unlock()

	select {
	case <-w.ready:
		return s.releaser(t.ID), nil
	case <-ctx.Done():
		s.mu.Lock()
		if w.done { // granted meanwhile: give it back
			s.mu.Unlock()
			s.releaser(t.ID)()
			return nil, ctx.Err()
		}
		for i, q := range f.queue {
			if q == w {
				f.queue = append(f.queue[:i], f.queue[i+1:]...)
				s.waiting--
				break
			}
		}
		s.dispatchLocked()
		s.mu.Unlock()
		return nil, ctx.Err()
	}
}

func (s *Scheduler) releaser(id string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.used--
			f := s.flows[id]
			f.inflight--
			f.lastDone = s.now()
			s.dispatchLocked()
			s.gcLocked()
		})
	}
}

// dispatchLocked hands free slots to the waiting heads with the smallest
// start tags, skipping tenants at their cap.
func (s *Scheduler) dispatchLocked() {
	now := s.now()
	for s.used < s.slots && s.waiting > 0 {
		var best *flow
		for _, f := range s.flows {
			if len(f.queue) == 0 || f.inflight >= s.capLocked(f, now) {
				continue
			}
			if best == nil || f.queue[0].start < best.queue[0].start {
				best = f
			}
		}
		if best == nil {
			return
		}
		w := best.queue[0]
		best.queue = best.queue[1:]
		s.waiting--
		s.used++
		best.inflight++
		s.vtime = max(s.vtime, w.start)
		w.done = true
		close(w.ready)
	}
}

// capLocked is the most slots f may hold now: TenantSlots while another
// tenant is active (running, waiting, or done within Linger), else all.
func (s *Scheduler) capLocked(f *flow, now time.Time) int {
	if s.tenantSlots == s.slots {
		return s.slots
	}
	for _, o := range s.flows {
		if o != f && (o.inflight > 0 || len(o.queue) > 0 || now.Sub(o.lastDone) < s.linger) {
			return s.tenantSlots
		}
	}
	return s.slots
}

// gcLocked forgets idle tenants. When nothing runs or waits, virtual time
// jumps past every finish tag and all state goes.
func (s *Scheduler) gcLocked() {
	now := s.now()
	for id, f := range s.flows {
		if f.inflight == 0 && len(f.queue) == 0 && now.Sub(f.lastDone) >= s.linger &&
			(f.lastFinish <= s.vtime || s.used == 0 && s.waiting == 0) {
			s.vtime = max(s.vtime, f.lastFinish)
			delete(s.flows, id)
		}
	}
}

// Stats is a snapshot of the scheduler.
type Stats struct {
	Used, Waiting, Tenants int
}

// Stats returns a snapshot of the scheduler.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Used: s.used, Waiting: s.waiting, Tenants: len(s.flows)}
}
