package fair_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/blob"
	"github.com/tenantry/tenantry/blob/blobtest"
	"github.com/tenantry/tenantry/blob/fair"
	"github.com/tenantry/tenantry/blob/local"
)

func newStore(t *testing.T, cfg *fair.Config) *fair.Store {
	t.Helper()
	inner, err := local.New(t.TempDir(), &local.Config{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	s, err := fair.New(inner, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConformance: the wrapper is transparent.
func TestConformance(t *testing.T) {
	t.Parallel()
	blobtest.Run(t, blobtest.Harness{NewStore: func(t *testing.T) blob.Store {
		sched, _ := fair.NewScheduler(&fair.SchedulerConfig{Slots: 2})
		return newStore(t, &fair.Config{Scheduler: sched, ChunkSize: 64 << 10})
	}})
}

func TestInFlightCap(t *testing.T) {
	t.Parallel()
	s := newStore(t, &fair.Config{InFlight: 2, TierInFlight: map[string]int{"enterprise": 3}})
	ctx, _ := blobtest.NewTenant(t, "free")
	if _, err := s.Put(ctx, "k", strings.NewReader("x"), blob.PutOptions{Size: 1}); err != nil {
		t.Fatal(err)
	}
	o1, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	o2, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, blob.ErrBusy) {
		t.Fatalf("third request in flight: %v, want ErrBusy", err)
	}
	if _, err := s.Stat(ctx, "k"); !errors.Is(err, blob.ErrBusy) {
		t.Fatalf("Stat over the cap: %v, want ErrBusy", err)
	}
	// Another tenant is not affected.
	octx, _ := blobtest.NewTenant(t, "free")
	if _, err := s.List(octx, blob.ListOptions{}); err != nil {
		t.Fatalf("other tenant: %v", err)
	}
	o1.Body.Close()
	if _, err := s.Stat(ctx, "k"); err != nil {
		t.Fatalf("after a body closed: %v", err)
	}
	o2.Body.Close()
	// The enterprise tier has its own cap.
	ectx, _ := blobtest.NewTenant(t, "enterprise")
	s.Put(ectx, "k", strings.NewReader("x"), blob.PutOptions{Size: 1})
	var open []io.Closer
	for i := range 4 {
		o, err := s.Get(ectx, "k")
		if i < 3 && err != nil || i == 3 && !errors.Is(err, blob.ErrBusy) {
			t.Fatalf("enterprise request %d: %v", i+1, err)
		}
		if err == nil {
			open = append(open, o.Body)
		}
	}
	for _, c := range open {
		c.Close()
	}
}

// TestRateLimit: a tenant over its byte rate is held back; with a deadline
// shorter than the rate allows, the upload fails and stores nothing.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	s := newStore(t, &fair.Config{TierRate: map[string]float64{"free": 64 << 10}, ChunkSize: 16 << 10, Burst: 64 << 10})
	ctx, _ := blobtest.NewTenant(t, "free")
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	data := bytes.Repeat([]byte("x"), 1<<20) // 16 s at 64 KiB/s
	if _, err := s.Put(dctx, "slow", bytes.NewReader(data), blob.PutOptions{Size: int64(len(data))}); err == nil {
		t.Fatal("1 MiB at 64 KiB/s finished within 200 ms")
	}
	if _, err := s.Stat(ctx, "slow"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("rate-limited, failed upload left an object: %v", err)
	}
	// A pro tenant has no cap here.
	pctx, _ := blobtest.NewTenant(t, "pro")
	if _, err := s.Put(pctx, "fast", bytes.NewReader(data), blob.PutOptions{Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
}
