package pool

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// cluster is the shared state of one cluster: its connection budget and its
// counters. Every physical connection to the cluster, whatever its pool,
// holds one slot of the budget from before it is dialled until its socket is
// closed and the server has ended its backend (or CloseTimeout passed).
type cluster struct {
	name string
	m    *Manager

	mu         sync.Mutex
	budget     int
	used       int // slots held: connections being dialled or open
	peak       int // high-water mark of used
	waiting    int // goroutines waiting for a slot
	wake       chan struct{}
	connString string
	maxConns   int // catalog MaxConns the pools were sized for

	counters
}

// counters are a cluster's cumulative figures.
type counters struct {
	budgetWaits     atomic.Int64
	budgetWaitNanos atomic.Int64
	dials           atomic.Int64
	dialErrors      atomic.Int64
	connEvictions   atomic.Int64
	poolEvictions   atomic.Int64
	recycled        atomic.Int64
	poolsOpened     atomic.Int64
	poolsClosed     atomic.Int64

	// pgxpool figures of pools already closed.
	closedAcquires       atomic.Int64
	closedEmptyAcquires  atomic.Int64
	closedEmptyWaitNanos atomic.Int64
}

func newCluster(m *Manager, name, connString string, budget int) *cluster {
	return &cluster{name: name, m: m, budget: budget, maxConns: budget, connString: connString, wake: make(chan struct{})}
}

// acquireSlot takes one slot of the budget, waiting while there is none. A
// waiter tries to make room by closing an idle connection of another pool of
// the cluster, least recently used first; otherwise it waits until a slot is
// freed or a connection goes idle somewhere. It gives up when ctx or
// acquirer (the context of the Acquire that needs the connection; may be
// nil) is done.
func (c *cluster) acquireSlot(ctx, acquirer context.Context, self *entry) error {
	var start time.Time
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		if !start.IsZero() {
			c.budgetWaitNanos.Add(int64(time.Since(start)))
		}
	}()
	var acquirerDone <-chan struct{}
	if acquirer != nil {
		acquirerDone = acquirer.Done()
	}
	for {
		c.mu.Lock()
		if c.used < c.budget {
			c.used++
			c.peak = max(c.peak, c.used)
			c.mu.Unlock()
			return nil
		}
		if start.IsZero() {
			start = time.Now()
			c.budgetWaits.Add(1)
		}
		c.waiting++
		wake := c.wake
		c.mu.Unlock()

		evicted := c.m.makeRoom(c, self)
		if timer == nil {
			timer = time.NewTimer(50 * time.Millisecond)
		} else {
			timer.Reset(50 * time.Millisecond)
		}
		var err error
		if !evicted {
			select {
			case <-wake:
			case <-timer.C: // a safety net: look again for idle connections
			case <-ctx.Done():
				err = ctx.Err()
			case <-acquirerDone:
				err = acquirer.Err()
			}
		}
		c.mu.Lock()
		c.waiting--
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// releaseSlot gives a slot back and wakes the waiters.
func (c *cluster) releaseSlot() {
	c.mu.Lock()
	c.used--
	c.broadcastLocked()
	c.mu.Unlock()
}

// connIdle tells the waiters, if any, that a connection went idle: they may
// close it to make room.
func (c *cluster) connIdle() {
	c.mu.Lock()
	c.broadcastLocked()
	c.mu.Unlock()
}

func (c *cluster) broadcastLocked() {
	if c.waiting > 0 {
		close(c.wake)
		c.wake = make(chan struct{})
	}
}

// setBudget changes the budget and wakes the waiters.
func (c *cluster) setBudget(n int) {
	c.mu.Lock()
	c.budget = n
	close(c.wake)
	c.wake = make(chan struct{})
	c.mu.Unlock()
}

// dialer returns the DialFunc of one connection attempt of pool e: the first
// dial takes a slot; a dial made while that connection is open is a cancel
// request for it, which the server does not count as a connection, and goes
// through without one.
func (c *cluster) dialer(e *entry, base pgconn.DialFunc) pgconn.DialFunc {
	var primary atomic.Pointer[slotConn]
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if p := primary.Load(); p != nil && !p.closed.Load() {
			return base(ctx, network, addr)
		}
		acquirer, _ := ctx.Value(acquirerKey{}).(context.Context)
		if err := c.acquireSlot(ctx, acquirer, e); err != nil {
			return nil, err
		}
		c.dials.Add(1)
		conn, err := base(ctx, network, addr)
		if err != nil {
			c.dialErrors.Add(1)
			c.releaseSlot()
			return nil, err
		}
		sc := &slotConn{Conn: conn, c: c, timeout: c.m.cfg.CloseTimeout}
		primary.Store(sc)
		return sc, nil
	}
}

// acquirerKey carries the context of Manager.Acquire into the dialer, which
// pgxpool runs under a context of its own that only delegates values.
type acquirerKey struct{}

// slotConn is a connection's socket; closing it gives its budget slot back.
type slotConn struct {
	net.Conn
	c       *cluster
	timeout time.Duration
	once    sync.Once
	closed  atomic.Bool
	err     error
}

// Close half-closes the socket, waits (up to the timeout) for the server to
// close its side, which it does when the backend has exited and left
// pg_stat_activity, closes it, and gives the slot back. So the budget counts
// server backends, not just client sockets.
func (s *slotConn) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		if cw, ok := s.Conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_ = s.Conn.SetReadDeadline(time.Now().Add(s.timeout))
		_, _ = io.Copy(io.Discard, s.Conn)
		s.err = s.Conn.Close()
		s.c.releaseSlot()
	})
	return s.err
}
