package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/tenant"
)

// notifyChannel is the LISTEN/NOTIFY channel the catalog's triggers publish on.
const notifyChannel = "tenantry_catalog"

// Change describes one change a Cache applied. For a tenant, Before is nil
// for a creation and After is nil for a deletion; for a cluster, Cluster
// names it and both tenants are nil.
type Change struct {
	Before, After *tenant.Tenant
	Cluster       string
}

// Cache is a process's in-memory read view of the catalog: every tenant by
// slug, ID and domain, and every cluster. Lookups never touch the database,
// so an unknown or hostile name costs a map lookup, not a query.
//
// A Cache keeps one connection LISTENing for the catalog's change
// notifications and reloads what changed, so several Tenantry processes agree
// on a change (a suspension, a new domain) within about one round trip after
// its commit. If that connection is lost it reconnects and reloads
// everything; if it stays lost longer than Config.StaleAfter, lookups fail
// with ErrUnavailable rather than serve a tenant whose suspension might have
// been missed.
type Cache struct {
	store  *Store
	config *Config
	logger *slog.Logger

	mu       sync.RWMutex
	bySlug   map[string]*tenant.Tenant
	byID     map[string]*tenant.Tenant
	byDomain map[string]*tenant.Tenant
	clusters map[string]*Cluster

	// applyMu serialises full reloads and single-record applies, so a
	// reload can never overwrite a newer record with an older one.
	applyMu sync.Mutex

	loaded     atomic.Bool
	stale      atomic.Bool
	staleTimer *time.Timer // guarded by mu

	subMu       sync.Mutex
	subscribers map[int]func(Change)
	nextSub     int

	started  atomic.Bool
	cancel   context.CancelFunc
	done     chan struct{}
	firstErr chan error
}

// NewCache returns a Cache over store. Call Start before using it.
func NewCache(store *Store, cfg *Config) (*Cache, error) {
	if store == nil {
		return nil, errors.New("catalog: store is nil")
	}
	if cfg == nil {
		cfg = store.config
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Cache{
		store:    store,
		config:   cfg,
		logger:   cfg.Logger,
		bySlug:   map[string]*tenant.Tenant{},
		byID:     map[string]*tenant.Tenant{},
		byDomain: map[string]*tenant.Tenant{},
		clusters: map[string]*Cluster{},
		done:     make(chan struct{}),
		firstErr: make(chan error, 1),
	}, nil
}

// Start loads the catalog and starts following its changes. It returns once
// the first load has succeeded, or with the error that stopped it (after
// which the Cache keeps retrying in the background until Stop).
func (c *Cache) Start(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("catalog: cache already started")
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	go c.run(runCtx)
	go c.resyncLoop(runCtx)
	select {
	case err := <-c.firstErr:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop stops following changes and waits for the background work to end.
// Lookups keep answering from the last state until StaleAfter.
func (c *Cache) Stop() {
	if c.cancel == nil {
		return
	}
	c.cancel()
	<-c.done
}

// Subscribe registers fn to be called, from the Cache's goroutine, after
// every change it applies, and returns a function that unregisters it. fn
// must not block.
func (c *Cache) Subscribe(fn func(Change)) (unsubscribe func()) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	if c.subscribers == nil {
		c.subscribers = map[int]func(Change){}
	}
	id := c.nextSub
	c.nextSub++
	c.subscribers[id] = fn
	return func() {
		c.subMu.Lock()
		delete(c.subscribers, id)
		c.subMu.Unlock()
	}
}

// Ready returns nil when the Cache can vouch for its contents.
func (c *Cache) Ready() error {
	if !c.loaded.Load() || c.stale.Load() {
		return ErrUnavailable
	}
	return nil
}

// BySlug returns the tenant with slug s.
func (c *Cache) BySlug(s string) (*tenant.Tenant, error) {
	if err := c.Ready(); err != nil {
		return nil, err
	}
	c.mu.RLock()
	t := c.bySlug[s]
	c.mu.RUnlock()
	if t == nil {
		return nil, ErrNotFound
	}
	return t, nil
}

// ByID returns the tenant with ID id.
func (c *Cache) ByID(id string) (*tenant.Tenant, error) {
	if err := c.Ready(); err != nil {
		return nil, err
	}
	c.mu.RLock()
	t := c.byID[id]
	c.mu.RUnlock()
	if t == nil {
		return nil, ErrNotFound
	}
	return t, nil
}

// ByDomain returns the tenant owning custom domain host, which must already
// be normalised (lower case, no port, no trailing dot).
func (c *Cache) ByDomain(host string) (*tenant.Tenant, error) {
	if err := c.Ready(); err != nil {
		return nil, err
	}
	c.mu.RLock()
	t := c.byDomain[host]
	c.mu.RUnlock()
	if t == nil {
		return nil, ErrNotFound
	}
	return t, nil
}

// Cluster returns the cluster named name.
func (c *Cache) Cluster(name string) (*Cluster, error) {
	if err := c.Ready(); err != nil {
		return nil, err
	}
	c.mu.RLock()
	cl := c.clusters[name]
	c.mu.RUnlock()
	if cl == nil {
		return nil, fmt.Errorf("cluster %q: %w", truncate(name, 64), ErrNotFound)
	}
	return cl, nil
}

// Tenants returns every cached tenant ordered by slug.
func (c *Cache) Tenants() []*tenant.Tenant {
	c.mu.RLock()
	out := make([]*tenant.Tenant, 0, len(c.bySlug))
	for _, t := range c.bySlug {
		out = append(out, t)
	}
	c.mu.RUnlock()
	slices.SortFunc(out, func(a, b *tenant.Tenant) int { return strings.Compare(a.Slug, b.Slug) })
	return out
}

// Clusters returns every cached cluster ordered by name.
func (c *Cache) Clusters() []*Cluster {
	c.mu.RLock()
	out := make([]*Cluster, 0, len(c.clusters))
	for _, cl := range c.clusters {
		out = append(out, cl)
	}
	c.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Cluster) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (c *Cache) run(ctx context.Context) {
	defer close(c.done)
	delay := c.config.ReconnectDelay
	first := true
	for ctx.Err() == nil {
		err := c.listen(ctx, &first)
		if ctx.Err() != nil {
			return
		}
		c.markDisconnected()
		if first {
			select {
			case c.firstErr <- fmt.Errorf("load catalog: %w", err):
			default:
			}
			first = false
		}
		c.logger.Warn("catalog notification connection lost; reconnecting", "error", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// listen connects, LISTENs, reloads everything, then applies notifications
// until the connection fails. LISTEN comes before the reload so that no
// change committed in between is missed.
func (c *Cache) listen(ctx context.Context, first *bool) error {
	conn, err := pgx.ConnectConfig(ctx, c.store.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	if err := c.reload(ctx); err != nil {
		return err
	}
	c.markConnected()
	if *first {
		*first = false
		c.firstErr <- nil
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if err := c.apply(ctx, n.Payload); err != nil {
			return fmt.Errorf("apply catalog change %q: %w", n.Payload, err)
		}
	}
}

func (c *Cache) resyncLoop(ctx context.Context) {
	t := time.NewTicker(c.config.ResyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !c.loaded.Load() {
				continue
			}
			if err := c.reload(ctx); err != nil && ctx.Err() == nil {
				c.logger.Warn("catalog resync failed", "error", err)
			}
		}
	}
}

func (c *Cache) markConnected() {
	c.mu.Lock()
	if c.staleTimer != nil {
		c.staleTimer.Stop()
		c.staleTimer = nil
	}
	c.mu.Unlock()
	c.stale.Store(false)
}

func (c *Cache) markDisconnected() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.staleTimer == nil {
		c.staleTimer = time.AfterFunc(c.config.StaleAfter, func() {
			c.stale.Store(true)
			c.logger.Error("catalog cache is stale: tenant lookups answer unavailable until the catalog is reachable again", "stale_after", c.config.StaleAfter)
		})
	}
}

// reload replaces the whole cache with the catalog's current contents.
func (c *Cache) reload(ctx context.Context) error {
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	tenants, err := c.store.allTenants(ctx)
	if err != nil {
		return err
	}
	clusters, err := c.store.Clusters(ctx)
	if err != nil {
		return err
	}
	bySlug := make(map[string]*tenant.Tenant, len(tenants))
	byID := make(map[string]*tenant.Tenant, len(tenants))
	byDomain := make(map[string]*tenant.Tenant, len(tenants))
	for _, t := range tenants {
		bySlug[t.Slug], byID[t.ID] = t, t
		for _, d := range t.Domains {
			byDomain[d] = t
		}
	}
	cl := make(map[string]*Cluster, len(clusters))
	for _, x := range clusters {
		cl[x.Name] = x
	}
	c.mu.Lock()
	old, oldClusters := c.byID, c.clusters
	c.bySlug, c.byID, c.byDomain, c.clusters = bySlug, byID, byDomain, cl
	c.mu.Unlock()
	c.loaded.Store(true)

	// Publish what differs from before, clusters included, so a change
	// missed while the notification connection was down still reaches
	// subscribers (the pool manager retires pools of a changed cluster).
	var changes []Change
	for name, x := range cl {
		if prev := oldClusters[name]; prev == nil || prev.Version != x.Version {
			changes = append(changes, Change{Cluster: name})
		}
	}
	for name := range oldClusters {
		if cl[name] == nil {
			changes = append(changes, Change{Cluster: name})
		}
	}
	for id, t := range byID {
		if prev := old[id]; prev == nil || prev.Version != t.Version {
			changes = append(changes, Change{Before: prev, After: t})
		}
	}
	for id, prev := range old {
		if byID[id] == nil {
			changes = append(changes, Change{Before: prev})
		}
	}
	c.publish(changes...)
	c.logger.Debug("catalog cache reloaded", "tenants", len(tenants), "clusters", len(clusters))
	return nil
}

// apply reloads the one record a notification names.
func (c *Cache) apply(ctx context.Context, payload string) error {
	kind, key, ok := strings.Cut(payload, ":")
	if !ok {
		return nil // not ours
	}
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	switch kind {
	case "tenant":
		t, err := c.store.Tenant(ctx, key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		c.mu.Lock()
		prev := c.byID[key]
		if prev != nil {
			delete(c.bySlug, prev.Slug)
			delete(c.byID, prev.ID)
			for _, d := range prev.Domains {
				if c.byDomain[d] == prev {
					delete(c.byDomain, d)
				}
			}
		}
		if t != nil {
			c.bySlug[t.Slug], c.byID[t.ID] = t, t
			for _, d := range t.Domains {
				c.byDomain[d] = t
			}
		}
		c.mu.Unlock()
		c.publish(Change{Before: prev, After: t})
		if t != nil {
			c.logger.Debug("catalog cache applied tenant change", "tenant", t.Slug, "state", t.State, "version", t.Version)
		}
	case "cluster":
		cl, err := c.store.Cluster(ctx, key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		c.mu.Lock()
		if cl == nil {
			delete(c.clusters, key)
		} else {
			c.clusters[key] = cl
		}
		c.mu.Unlock()
		c.publish(Change{Cluster: key})
	}
	return nil
}

func (c *Cache) publish(changes ...Change) {
	if len(changes) == 0 {
		return
	}
	c.subMu.Lock()
	subs := make([]func(Change), 0, len(c.subscribers))
	for _, fn := range c.subscribers {
		subs = append(subs, fn)
	}
	c.subMu.Unlock()
	for _, ch := range changes {
		for _, fn := range subs {
			fn(ch)
		}
	}
}
