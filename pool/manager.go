package pool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/singleflight"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/tenant"
)

// ErrClosed is returned by a Manager that has been closed.
var ErrClosed = errors.New("pool: manager closed")

// Manager keeps one pgx pool per Key, opened on first use and closed when
// unused, under a connection budget per cluster shared by all its pools.
type Manager struct {
	cfg    *Config
	logger *slog.Logger

	mu       sync.RWMutex
	pools    map[Key]*entry
	clusters map[string]*cluster

	sf          singleflight.Group
	unsubscribe func()
	closed      atomic.Bool
	reap        chan struct{}
	stop        chan struct{}
	done        chan struct{}
}

// entry is one pool and its reference count. A reference is held by every
// acquired connection, every Lease and every Acquire in progress; a retired
// entry is out of the map and is closed when its last reference goes.
type entry struct {
	key      Key
	m        *Manager
	c        *cluster
	pool     *pgxpool.Pool
	refs     atomic.Int64
	retired  atomic.Bool
	lastUsed atomic.Int64 // unix nanoseconds
	once     sync.Once
	closed   chan struct{}
}

// New returns a Manager. It opens no connection until the first Acquire, and
// follows cfg.Catalog's changes: a changed or removed cluster retires its
// pools, and so does a database-per-tenant tenant that moved, was deleted or
// is being deleted (its database's pool).
func New(cfg *Config) (*Manager, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:      cfg,
		logger:   cfg.Logger,
		pools:    map[Key]*entry{},
		clusters: map[string]*cluster{},
		reap:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	m.unsubscribe = cfg.Catalog.Subscribe(m.catalogChanged)
	go m.reaper()
	return m, nil
}

// Conn is a connection acquired from a Manager. It is not scoped to any
// tenant: it is for the router (package router) and operator tooling, never
// for tenant code.
type Conn struct {
	pc *pgxpool.Conn
	e  *entry
	st *connState
}

// connState is what the Manager remembers about one physical connection.
type connState struct {
	uses       int
	lastSchema string
	schemas    map[string]struct{}
	recycle    bool
}

const connStateKey = "tenantry/pool"

// Acquire returns a connection of the pool of k, opening the pool if needed.
// Release or Destroy it when done.
func (m *Manager) Acquire(ctx context.Context, k Key) (*Conn, error) {
	for attempt := 0; ; attempt++ {
		e, err := m.ref(ctx, k)
		if err != nil {
			return nil, err
		}
		pc, err := e.pool.Acquire(context.WithValue(ctx, acquirerKey{}, ctx))
		if err != nil {
			e.unref()
			if e.retired.Load() && ctx.Err() == nil && attempt < 3 {
				continue // closed under us by a catalog change: take its successor
			}
			return nil, fmt.Errorf("pool %s: %w", k, err)
		}
		cd := pc.Conn().PgConn().CustomData()
		st, _ := cd[connStateKey].(*connState)
		if st == nil {
			st = &connState{}
			cd[connStateKey] = st
		}
		return &Conn{pc: pc, e: e, st: st}, nil
	}
}

// Conn returns the underlying connection. It is valid until Release or
// Destroy.
func (c *Conn) Conn() *pgx.Conn { return c.pc.Conn() }

// Key returns the key of the connection's pool.
func (c *Conn) Key() Key { return c.e.key }

// UseSchema records that the current transaction runs in schema s. Once a
// connection has served more distinct schemas than Config.MaxConnSchemas it
// is replaced at Release, which bounds the catalog caches of its backend.
func (c *Conn) UseSchema(s string) {
	st := c.st
	if s == st.lastSchema {
		return
	}
	st.lastSchema = s
	limit := c.e.m.cfg.MaxConnSchemas
	if limit < 0 {
		return
	}
	if st.schemas == nil {
		st.schemas = map[string]struct{}{}
	}
	st.schemas[s] = struct{}{}
	if len(st.schemas) > limit {
		st.recycle = true
	}
}

// Release returns the connection to its pool. A connection that is closed,
// busy or inside a transaction is destroyed instead, and so is one due for
// recycling (Config.MaxConnSchemas, Config.MaxConnUses).
func (c *Conn) Release() {
	if c.pc == nil {
		return
	}
	e, st := c.e, c.st
	st.uses++
	if n := e.m.cfg.MaxConnUses; n > 0 && st.uses >= n {
		st.recycle = true
	}
	if st.recycle {
		e.c.recycled.Add(1)
		c.Destroy()
		return
	}
	c.pc.Release()
	c.pc = nil
	e.c.connIdle()
	e.unref()
}

// Destroy closes the connection instead of returning it: for a connection
// whose state is uncertain (an interrupted commit, a failed rollback).
func (c *Conn) Destroy() {
	if c.pc == nil {
		return
	}
	raw := c.pc.Hijack()
	c.pc = nil
	e := c.e
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), e.m.cfg.CloseTimeout)
		defer cancel()
		_ = raw.Close(ctx)
	}()
	e.unref()
}

// Lease pins the pool of k open without taking a connection, for code that
// must hand the *pgxpool.Pool to another layer (the database/sql adapter).
type Lease struct {
	e    *entry
	once sync.Once
}

// Lease returns a Lease on the pool of k, opening it if needed. The pool
// stays open at least until Release.
func (m *Manager) Lease(ctx context.Context, k Key) (*Lease, error) {
	e, err := m.ref(ctx, k)
	if err != nil {
		return nil, err
	}
	return &Lease{e: e}, nil
}

// Pool returns the leased pool. Connections taken from it count against the
// cluster budget like any other.
func (l *Lease) Pool() *pgxpool.Pool { return l.e.pool }

// Release ends the lease.
func (l *Lease) Release() { l.once.Do(l.e.unref) }

// ref returns the live entry of k with one reference taken, opening the pool
// with single-flight if there is none: concurrent first users of a key
// share one pool, and no lock is held while it is set up.
func (m *Manager) ref(ctx context.Context, k Key) (*entry, error) {
	if err := k.validate(); err != nil {
		return nil, err
	}
	// A pool can be retired (evicted, or its cluster changed) between the
	// lookup and taking a reference; that is transient, so try again, with a
	// short pause after the first few tries, until ctx ends.
	for attempt := 0; ; attempt++ {
		if m.closed.Load() {
			return nil, ErrClosed
		}
		m.mu.RLock()
		e := m.pools[k]
		m.mu.RUnlock()
		if e == nil {
			v, err, _ := m.sf.Do(k.Cluster+"\x00"+k.Database+"\x00"+k.Role, func() (any, error) { return m.open(k) })
			if err != nil {
				return nil, err
			}
			e = v.(*entry)
		}
		if e.tryRef() {
			e.lastUsed.Store(time.Now().UnixNano())
			return e, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("pool %s: retired while opening: %w", k, err)
		}
		if attempt >= 5 {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("pool %s: retired while opening: %w", k, ctx.Err())
			case <-time.After(time.Millisecond):
			}
		}
	}
}

func (e *entry) tryRef() bool {
	e.refs.Add(1)
	if e.retired.Load() {
		e.unref()
		return false
	}
	return true
}

func (e *entry) unref() {
	if e.refs.Add(-1) == 0 && e.retired.Load() {
		e.close()
	}
}

// close closes the pool in the background; closing waits for each backend
// to exit.
func (e *entry) close() {
	e.once.Do(func() {
		go func() {
			defer close(e.closed)
			s := e.pool.Stat()
			e.pool.Close()
			c := e.c
			c.closedAcquires.Add(s.AcquireCount())
			c.closedEmptyAcquires.Add(s.EmptyAcquireCount())
			c.closedEmptyWaitNanos.Add(int64(s.EmptyAcquireWaitTime()))
			c.poolsClosed.Add(1)
		}()
	})
}

// open creates the pool of k. It does not dial: connections are made by
// the first Acquire, under the cluster budget.
func (m *Manager) open(k Key) (*entry, error) {
	m.mu.RLock()
	if e := m.pools[k]; e != nil && !e.retired.Load() {
		m.mu.RUnlock()
		return e, nil
	}
	m.mu.RUnlock()

	cl, err := m.cfg.Catalog.Cluster(k.Cluster)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", k, err)
	}
	c := m.cluster(cl)
	e := &entry{key: k, m: m, c: c, closed: make(chan struct{})}
	pcfg, err := m.poolConfig(e, cl)
	if err != nil {
		return nil, err
	}
	p, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", k, err)
	}
	e.pool = p
	e.lastUsed.Store(time.Now().UnixNano())

	m.mu.Lock()
	if m.closed.Load() {
		m.mu.Unlock()
		p.Close()
		return nil, ErrClosed
	}
	if old := m.pools[k]; old != nil && !old.retired.Load() {
		m.mu.Unlock()
		p.Close()
		return old, nil
	}
	m.pools[k] = e
	n := len(m.pools)
	m.mu.Unlock()
	c.poolsOpened.Add(1)
	m.logger.Debug("pool opened", "pool", k.String(), "max_conns", pcfg.MaxConns)
	if n > m.cfg.MaxPools {
		m.triggerReap()
	}
	return e, nil
}

// cluster returns the state of cl, creating it on first use.
func (m *Manager) cluster(cl *catalog.Cluster) *cluster {
	m.mu.RLock()
	c := m.clusters[cl.Name]
	m.mu.RUnlock()
	if c != nil {
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c = m.clusters[cl.Name]; c == nil {
		c = newCluster(m, cl.Name, cl.ConnString, budgetOf(cl))
		m.clusters[cl.Name] = c
	}
	return c
}

func budgetOf(cl *catalog.Cluster) int {
	if cl.MaxConns <= 0 {
		return 50
	}
	return cl.MaxConns
}

// poolConfig builds the configuration of e's pool from its cluster: the
// cluster's connection string with user and database replaced by the key's.
func (m *Manager) poolConfig(e *entry, cl *catalog.Cluster) (*pgxpool.Config, error) {
	k := e.key
	pcfg, err := pgxpool.ParseConfig(cl.ConnString)
	if err != nil {
		return nil, fmt.Errorf("pool %s: cluster connection string: %w", k, err)
	}
	cc := pcfg.ConnConfig
	cc.User = k.Role
	cc.Database = k.Database
	if m.cfg.Password != "" {
		cc.Password = m.cfg.Password
	}
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = "tenantry"
	}
	if m.cfg.ConfigureConn != nil {
		if err := m.cfg.ConfigureConn(k, cc); err != nil {
			return nil, fmt.Errorf("pool %s: configure connection: %w", k, err)
		}
	}
	budget := budgetOf(cl)
	pcfg.MaxConns = int32(min(max(m.cfg.MaxConnsPerPool(k, budget), 1), budget))
	pcfg.MinConns, pcfg.MinIdleConns = 0, 0
	pcfg.MaxConnLifetime = m.cfg.MaxConnLifetime
	pcfg.MaxConnLifetimeJitter = m.cfg.MaxConnLifetimeJitter
	pcfg.MaxConnIdleTime = m.cfg.MaxConnIdleTime
	pcfg.HealthCheckPeriod = min(time.Minute, max(m.cfg.MaxConnIdleTime/2, time.Second))
	base := cc.DialFunc
	c := e.c
	pcfg.BeforeConnect = func(_ context.Context, cc *pgx.ConnConfig) error {
		cc.DialFunc = c.dialer(e, base)
		return nil
	}
	return pcfg, nil
}

// makeRoom closes one idle connection of another pool of cluster c, least
// recently used pool first, and reports whether it did. It returns after the
// connection's slot is back.
func (m *Manager) makeRoom(c *cluster, self *entry) bool {
	var victims []*entry
	m.mu.RLock()
	for _, e := range m.pools {
		if e.c == c && e != self {
			victims = append(victims, e)
		}
	}
	m.mu.RUnlock()
	for _, e := range lruOrder(victims) {
		if e.pool.Stat().IdleConns() == 0 {
			continue
		}
		conns := e.pool.AcquireAllIdle(context.Background())
		if len(conns) == 0 {
			continue
		}
		for _, pc := range conns[1:] {
			pc.Release()
		}
		raw := conns[0].Hijack()
		c.connEvictions.Add(1)
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.CloseTimeout)
		_ = raw.Close(ctx)
		cancel()
		return true
	}
	return false
}

// retire takes e out of service: new users get a new pool, e's idle
// connections are closed now and its busy ones when they come back, and e
// is closed when its last reference goes.
func (m *Manager) retire(e *entry, why string) {
	if !e.retired.CompareAndSwap(false, true) {
		return
	}
	m.mu.Lock()
	if m.pools[e.key] == e {
		delete(m.pools, e.key)
	}
	m.mu.Unlock()
	m.logger.Debug("pool retired", "pool", e.key.String(), "reason", why)
	if e.refs.Load() == 0 {
		e.close()
	} else {
		e.pool.Reset()
	}
}

// retireWhere retires every pool whose key matches.
func (m *Manager) retireWhere(match func(Key) bool, why string) {
	var hit []*entry
	m.mu.RLock()
	for k, e := range m.pools {
		if match(k) {
			hit = append(hit, e)
		}
	}
	m.mu.RUnlock()
	for _, e := range hit {
		m.retire(e, why)
	}
}

// Evict retires the pool of k, if open: new users get a new pool; the old
// one is closed once its connections in use have been released. It is what
// a catalog change does, exposed for operators and tests.
func (m *Manager) Evict(k Key) {
	m.retireWhere(func(x Key) bool { return x == k }, "evicted")
}

// catalogChanged follows the catalog: see New.
func (m *Manager) catalogChanged(ch catalog.Change) {
	if m.closed.Load() {
		return
	}
	if ch.Cluster != "" {
		m.clusterChanged(ch.Cluster)
		return
	}
	b := ch.Before
	if b == nil || b.Placement.Model != tenant.ModelDatabase {
		return
	}
	if a := ch.After; a != nil && a.State != tenant.StateDeleting &&
		a.Placement.Cluster == b.Placement.Cluster && a.Placement.Database == b.Placement.Database {
		return
	}
	cl, db := b.Placement.Cluster, b.Placement.Database
	m.retireWhere(func(k Key) bool { return k.Cluster == cl && k.Database == db }, "tenant database moved or removed")
}

func (m *Manager) clusterChanged(name string) {
	m.mu.RLock()
	c := m.clusters[name]
	m.mu.RUnlock()
	if c == nil {
		return
	}
	cl, err := m.cfg.Catalog.Cluster(name)
	onCluster := func(k Key) bool { return k.Cluster == name }
	if err != nil {
		m.retireWhere(onCluster, "cluster removed")
		return
	}
	c.mu.Lock()
	changed := c.connString != cl.ConnString || c.maxConns != budgetOf(cl)
	c.connString, c.maxConns = cl.ConnString, budgetOf(cl)
	c.mu.Unlock()
	if changed {
		c.setBudget(budgetOf(cl))
		m.retireWhere(onCluster, "cluster changed")
	}
}

// lruOrder sorts entries least recently used first, on a snapshot of their
// use times (which change while sorting).
func lruOrder(es []*entry) []*entry {
	type used struct {
		e  *entry
		at int64
	}
	s := make([]used, len(es))
	for i, e := range es {
		s[i] = used{e, e.lastUsed.Load()}
	}
	slices.SortFunc(s, func(a, b used) int { return cmp.Compare(a.at, b.at) })
	for i := range s {
		es[i] = s[i].e
	}
	return es
}

func (m *Manager) triggerReap() {
	select {
	case m.reap <- struct{}{}:
	default:
	}
}

// reaper closes pools unused for PoolIdleTimeout, and the least recently
// used unused pools beyond MaxPools.
func (m *Manager) reaper() {
	defer close(m.done)
	t := time.NewTicker(m.cfg.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		case <-m.reap:
		}
		m.reapOnce()
	}
}

func (m *Manager) reapOnce() {
	m.mu.RLock()
	all := make([]*entry, 0, len(m.pools))
	for _, e := range m.pools {
		all = append(all, e)
	}
	m.mu.RUnlock()
	all = lruOrder(all)
	excess := len(all) - m.cfg.MaxPools
	idleBefore := time.Now().Add(-m.cfg.PoolIdleTimeout).UnixNano()
	for _, e := range all {
		if e.refs.Load() != 0 {
			continue
		}
		switch {
		case excess > 0:
			excess--
		case e.lastUsed.Load() < idleBefore:
		default:
			continue
		}
		e.c.poolEvictions.Add(1)
		m.retire(e, "unused")
	}
}

// Close closes every pool and waits until the connections in use have been
// released and every connection is closed (each up to CloseTimeout).
func (m *Manager) Close() {
	if !m.closed.CompareAndSwap(false, true) {
		return
	}
	m.unsubscribe()
	close(m.stop)
	<-m.done
	m.mu.RLock()
	all := make([]*entry, 0, len(m.pools))
	for _, e := range m.pools {
		all = append(all, e)
	}
	clusters := make([]*cluster, 0, len(m.clusters))
	for _, c := range m.clusters {
		clusters = append(clusters, c)
	}
	m.mu.RUnlock()
	for _, e := range all {
		m.retire(e, "manager closed")
	}
	for _, e := range all {
		<-e.closed
	}
	// Connections destroyed in the background and pools retired earlier
	// close on their own; wait for their slots, within reason.
	deadline := time.Now().Add(2 * m.cfg.CloseTimeout)
	for _, c := range clusters {
		c.mu.Lock()
		for c.used > 0 && time.Now().Before(deadline) {
			c.waiting++
			wake := c.wake
			c.mu.Unlock()
			select {
			case <-wake:
			case <-time.After(100 * time.Millisecond):
			}
			c.mu.Lock()
			c.waiting--
		}
		c.mu.Unlock()
	}
}
