package fair_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tenantry/tenantry/blob"
	"github.com/tenantry/tenantry/blob/fair"
	"github.com/tenantry/tenantry/tenant"
)

func tn(id, tier string) *tenant.Tenant {
	return &tenant.Tenant{ID: id, Tier: tier, State: tenant.StateActive}
}

func newSched(t *testing.T, cfg *fair.SchedulerConfig) *fair.Scheduler {
	t.Helper()
	s, err := fair.NewScheduler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitFor polls until cond holds (a synchronisation point, not a timing
// assertion).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 5000 {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("condition not reached")
}

// grantOrder holds the only slot, queues the given requests, then releases
// and records the order in which tenants are served.
func grantOrder(t *testing.T, s *fair.Scheduler, reqs []*tenant.Tenant) []string {
	t.Helper()
	ctx := context.Background()
	block, err := s.Acquire(ctx, tn("blocker", "free"), 1)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	for _, r := range reqs {
		n := s.Stats().Waiting + 1
		wg.Go(func() {
			rel, err := s.Acquire(ctx, r, 1<<20)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, r.ID)
			mu.Unlock()
			rel()
		})
		// Queue one at a time so arrival order is fixed.
		waitFor(t, func() bool { return s.Stats().Waiting == n })
	}
	block()
	wg.Wait()
	return order
}

func TestSchedulerWeights(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		tierA, tierB string
		wantB        int // of the first 10 grants
	}{
		{"equal", "free", "free", 5},
		{"pro vs free", "free", "pro", 7},
		{"enterprise vs free", "free", "enterprise", 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSched(t, &fair.SchedulerConfig{Slots: 1})
			a, b := tn("a", tc.tierA), tn("b", tc.tierB)
			var reqs []*tenant.Tenant
			for range 20 {
				reqs = append(reqs, a) // a queues first: arrival order must not matter
			}
			for range 20 {
				reqs = append(reqs, b)
			}
			order := grantOrder(t, s, reqs)
			gotB := 0
			for _, id := range order[:10] {
				if id == "b" {
					gotB++
				}
			}
			if gotB < tc.wantB-1 || gotB > tc.wantB+1 {
				t.Errorf("b got %d of the first 10 slots, want about %d (order %v)", gotB, tc.wantB, order)
			}
		})
	}
}

// TestSchedulerNewcomerFirst: a tenant arriving behind a flood is served
// next, not after the flood.
func TestSchedulerNewcomerFirst(t *testing.T) {
	t.Parallel()
	s := newSched(t, &fair.SchedulerConfig{Slots: 1})
	var reqs []*tenant.Tenant
	for range 30 {
		reqs = append(reqs, tn("heavy", "enterprise"))
	}
	reqs = append(reqs, tn("light", "free"))
	order := grantOrder(t, s, reqs)
	for i, id := range order {
		if id == "light" {
			if i > 2 {
				t.Errorf("light served %dth after a flood", i+1)
			}
			return
		}
	}
	t.Fatal("light never served")
}

// TestSchedulerWorkConserving: a tenant alone gets every slot.
func TestSchedulerWorkConserving(t *testing.T) {
	t.Parallel()
	s := newSched(t, &fair.SchedulerConfig{Slots: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rels []func()
	for range 4 {
		rel, err := s.Acquire(ctx, tn("solo", "free"), 1)
		if err != nil {
			t.Fatal(err)
		}
		rels = append(rels, rel)
	}
	if st := s.Stats(); st.Used != 4 || st.Waiting != 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, r := range rels {
		r()
		r() // idempotent
	}
	if st := s.Stats(); st.Used != 0 || st.Waiting != 0 {
		t.Fatalf("after release: %+v", st)
	}
}

// TestSchedulerTenantCap: while another tenant is active, one tenant
// cannot take more than TenantSlots, and the headroom goes to the other at
// once.
func TestSchedulerTenantCap(t *testing.T) {
	t.Parallel()
	s := newSched(t, &fair.SchedulerConfig{Slots: 4, TenantSlots: 2, Linger: time.Hour})
	ctx := context.Background()
	l, h := tn("light", "free"), tn("heavy", "enterprise")
	rl1, _ := s.Acquire(ctx, l, 1) // light is active
	r1, _ := s.Acquire(ctx, h, 1)
	r2, _ := s.Acquire(ctx, h, 1)
	got := make(chan func())
	go func() {
		r, err := s.Acquire(ctx, h, 1)
		if err == nil {
			got <- r
		}
	}()
	waitFor(t, func() bool { return s.Stats().Waiting == 1 })
	if st := s.Stats(); st.Used != 3 {
		t.Fatalf("heavy went past its cap: %+v", st)
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rl2, err := s.Acquire(lctx, l, 1)
	if err != nil {
		t.Fatalf("light blocked by heavy: %v", err)
	}
	rl2()
	rl1()
	// light stays "active" for Linger: heavy's third request still waits.
	if s.Stats().Waiting != 1 {
		t.Fatal("heavy's third request ran past its cap while light lingers")
	}
	r1()
	(<-got)()
	r2()
}

func TestSchedulerCancelAndBusy(t *testing.T) {
	t.Parallel()
	s := newSched(t, &fair.SchedulerConfig{Slots: 1, MaxWaiters: 1})
	hold, _ := s.Acquire(context.Background(), tn("a", "free"), 1)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := s.Acquire(ctx, tn("b", "free"), 1)
		errc <- err
	}()
	waitFor(t, func() bool { return s.Stats().Waiting == 1 })
	if _, err := s.Acquire(context.Background(), tn("c", "free"), 1); !errors.Is(err, blob.ErrBusy) {
		t.Errorf("over MaxWaiters: %v, want ErrBusy", err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v", err)
	}
	hold()
	if st := s.Stats(); st.Used != 0 || st.Waiting != 0 {
		t.Fatalf("after cancel and release: %+v", st)
	}
}

func TestSchedulerConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []fair.SchedulerConfig{
		{Slots: -1},
		{Slots: 2, TenantSlots: 3},
		{Weights: map[string]int{"free": 0}},
	} {
		if _, err := fair.NewScheduler(&cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
