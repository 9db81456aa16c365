package assertion

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"time"
)

// ReplayCache remembers the IDs of used assertions until they expire.
//
// The in-memory implementation protects one process. Replicas of a service
// behind a load balancer need a shared one, or an assertion refused by one
// replica could be replayed to another. A Redis implementation is one
// command per call:
//
//	SET tenantry:jti:<key> 1 NX PXAT <until in Unix ms>
//
// which answers OK when the key was absent (fresh) and nil when it was
// present (a replay); keys expire on their own.
type ReplayCache interface {
	// Claim records key until the given time. It reports true if key was
	// not recorded (the assertion is fresh) and false if it was (a replay).
	// It must be atomic: of two concurrent claims of one key, one wins.
	Claim(ctx context.Context, key string, until time.Time) (bool, error)
}

// DefaultReplayCapacity is the capacity of the default replay cache. With
// assertions living at most 60s plus leeway, it sustains about 4,000
// assertions per second per verifying process.
const DefaultReplayCapacity = 1 << 18

// ErrReplayCacheFull is returned by MemoryReplayCache.Claim when it holds
// its capacity of unexpired IDs. The cache fails closed: it refuses the
// assertion rather than forget an ID that could then be replayed.
var ErrReplayCacheFull = errors.New("replay cache full")

// MemoryReplayCache is an in-process ReplayCache of bounded size. Expired IDs
// are dropped as new ones arrive.
type MemoryReplayCache struct {
	capacity int
	now      func() time.Time

	mu    sync.Mutex
	until map[string]time.Time
	queue expiryHeap
}

// NewMemoryReplayCache returns a cache for at most capacity unexpired IDs
// (DefaultReplayCapacity if capacity <= 0).
func NewMemoryReplayCache(capacity int) *MemoryReplayCache {
	if capacity <= 0 {
		capacity = DefaultReplayCapacity
	}
	return &MemoryReplayCache{capacity: capacity, now: time.Now, until: make(map[string]time.Time)}
}

// Claim implements ReplayCache.
func (c *MemoryReplayCache) Claim(_ context.Context, key string, until time.Time) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for len(c.queue) > 0 && !c.queue[0].until.After(now) {
		e := heap.Pop(&c.queue).(expiry)
		if u, ok := c.until[e.key]; ok && u.Equal(e.until) {
			delete(c.until, e.key)
		}
	}
	if u, ok := c.until[key]; ok && u.After(now) {
		return false, nil
	}
	if !until.After(now) {
		return true, nil // already expired: nothing to remember
	}
	if len(c.until) >= c.capacity {
		return false, ErrReplayCacheFull
	}
	c.until[key] = until
	heap.Push(&c.queue, expiry{key: key, until: until})
	return true, nil
}

// Len returns the number of IDs held.
func (c *MemoryReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.until)
}

type expiry struct {
	key   string
	until time.Time
}

type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
