package pool

import (
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats is a snapshot of a Manager's figures.
type Stats struct {
	// Pools is the number of open pools.
	Pools int
	// Clusters has one entry per cluster the Manager has connected to,
	// ordered by name.
	Clusters []ClusterStats
}

// ClusterStats are the figures of one cluster. Counters are cumulative since
// the Manager was created; the others are current values.
type ClusterStats struct {
	Cluster string
	// Budget is the cluster's connection budget (catalog MaxConns).
	Budget int
	// Conns is the number of budget slots held: connections open, being
	// dialled, or closing until their backend has exited.
	Conns int
	// PeakConns is the highest Conns seen.
	PeakConns int
	// Idle, InUse and Constructing count the connections of the open pools.
	Idle, InUse, Constructing int
	// Pools is the number of open pools on the cluster.
	Pools int
	// PoolsOpened and PoolsClosed count pools over time.
	PoolsOpened, PoolsClosed int64
	// Acquires counts connections acquired from pools.
	Acquires int64
	// AcquireWaits counts acquires that found no idle connection and had to
	// wait for one to be made or released; AcquireWaitTime is their total
	// wait. 1 - AcquireWaits/Acquires is the hit rate.
	AcquireWaits    int64
	AcquireWaitTime time.Duration
	// BudgetWaits counts dials that had to wait for a slot of the budget;
	// BudgetWaitTime is their total wait.
	BudgetWaits    int64
	BudgetWaitTime time.Duration
	// Dials counts connection attempts; DialErrors those that failed to
	// reach the server.
	Dials, DialErrors int64
	// ConnEvictions counts idle connections closed to make room for
	// another pool; PoolEvictions counts unused pools closed (idle timeout
	// or MaxPools).
	ConnEvictions, PoolEvictions int64
	// Recycled counts connections replaced after MaxConnSchemas or
	// MaxConnUses.
	Recycled int64
}

// Stats returns the Manager's current figures.
func (m *Manager) Stats() Stats {
	m.mu.RLock()
	entries := make([]*entry, 0, len(m.pools))
	for _, e := range m.pools {
		entries = append(entries, e)
	}
	clusters := make([]*cluster, 0, len(m.clusters))
	for _, c := range m.clusters {
		clusters = append(clusters, c)
	}
	m.mu.RUnlock()

	byName := make(map[string]*ClusterStats, len(clusters))
	out := Stats{Pools: len(entries), Clusters: make([]ClusterStats, len(clusters))}
	slices.SortFunc(clusters, func(a, b *cluster) int { return strings.Compare(a.name, b.name) })
	for i, c := range clusters {
		c.mu.Lock()
		cs := ClusterStats{Cluster: c.name, Budget: c.budget, Conns: c.used, PeakConns: c.peak}
		c.mu.Unlock()
		cs.PoolsOpened, cs.PoolsClosed = c.poolsOpened.Load(), c.poolsClosed.Load()
		cs.Acquires = c.closedAcquires.Load()
		cs.AcquireWaits = c.closedEmptyAcquires.Load()
		cs.AcquireWaitTime = time.Duration(c.closedEmptyWaitNanos.Load())
		cs.BudgetWaits, cs.BudgetWaitTime = c.budgetWaits.Load(), time.Duration(c.budgetWaitNanos.Load())
		cs.Dials, cs.DialErrors = c.dials.Load(), c.dialErrors.Load()
		cs.ConnEvictions, cs.PoolEvictions = c.connEvictions.Load(), c.poolEvictions.Load()
		cs.Recycled = c.recycled.Load()
		out.Clusters[i] = cs
		byName[c.name] = &out.Clusters[i]
	}
	for _, e := range entries {
		cs := byName[e.c.name]
		if cs == nil {
			continue
		}
		s := e.pool.Stat()
		cs.Pools++
		cs.Idle += int(s.IdleConns())
		cs.InUse += int(s.AcquiredConns())
		cs.Constructing += int(s.ConstructingConns())
		cs.Acquires += s.AcquireCount()
		cs.AcquireWaits += s.EmptyAcquireCount()
		cs.AcquireWaitTime += s.EmptyAcquireWaitTime()
	}
	return out
}

// Collector returns a Prometheus collector of the Manager's figures, labelled
// by cluster. Register it once: prometheus.MustRegister(m.Collector()).
func (m *Manager) Collector() prometheus.Collector { return collector{m} }

type collector struct{ m *Manager }

var (
	labels      = []string{"cluster"}
	descPools   = prometheus.NewDesc("tenantry_pool_pools", "Open pools.", labels, nil)
	descBudget  = prometheus.NewDesc("tenantry_pool_budget_connections", "Connection budget of the cluster.", labels, nil)
	descConns   = prometheus.NewDesc("tenantry_pool_connections", "Connections by state: slots = budget slots held (open, dialling or closing), idle, in_use, constructing.", []string{"cluster", "state"}, nil)
	descPeak    = prometheus.NewDesc("tenantry_pool_peak_connections", "Highest number of budget slots held.", labels, nil)
	descOpened  = prometheus.NewDesc("tenantry_pool_opened_total", "Pools opened.", labels, nil)
	descClosed  = prometheus.NewDesc("tenantry_pool_closed_total", "Pools closed.", labels, nil)
	descAcq     = prometheus.NewDesc("tenantry_pool_acquires_total", "Connections acquired.", labels, nil)
	descAcqW    = prometheus.NewDesc("tenantry_pool_acquire_waits_total", "Acquires that found no idle connection.", labels, nil)
	descAcqWT   = prometheus.NewDesc("tenantry_pool_acquire_wait_seconds_total", "Time acquires waited for a connection.", labels, nil)
	descBudW    = prometheus.NewDesc("tenantry_pool_budget_waits_total", "Dials that waited for a slot of the cluster budget.", labels, nil)
	descBudWT   = prometheus.NewDesc("tenantry_pool_budget_wait_seconds_total", "Time dials waited for a budget slot.", labels, nil)
	descDials   = prometheus.NewDesc("tenantry_pool_dials_total", "Connection attempts.", labels, nil)
	descDialErr = prometheus.NewDesc("tenantry_pool_dial_errors_total", "Connection attempts that failed to reach the server.", labels, nil)
	descEvict   = prometheus.NewDesc("tenantry_pool_evictions_total", "Evictions: kind=conn (idle connection closed to make room), kind=pool (unused pool closed).", []string{"cluster", "kind"}, nil)
	descRecycle = prometheus.NewDesc("tenantry_pool_recycled_total", "Connections replaced after MaxConnSchemas or MaxConnUses.", labels, nil)
)

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPools, descBudget, descConns, descPeak, descOpened, descClosed,
		descAcq, descAcqW, descAcqWT, descBudW, descBudWT, descDials, descDialErr, descEvict, descRecycle} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, lv...)
	}
	for _, s := range c.m.Stats().Clusters {
		n := s.Cluster
		gauge(descPools, float64(s.Pools), n)
		gauge(descBudget, float64(s.Budget), n)
		gauge(descConns, float64(s.Conns), n, "slots")
		gauge(descConns, float64(s.Idle), n, "idle")
		gauge(descConns, float64(s.InUse), n, "in_use")
		gauge(descConns, float64(s.Constructing), n, "constructing")
		gauge(descPeak, float64(s.PeakConns), n)
		counter(descOpened, float64(s.PoolsOpened), n)
		counter(descClosed, float64(s.PoolsClosed), n)
		counter(descAcq, float64(s.Acquires), n)
		counter(descAcqW, float64(s.AcquireWaits), n)
		counter(descAcqWT, s.AcquireWaitTime.Seconds(), n)
		counter(descBudW, float64(s.BudgetWaits), n)
		counter(descBudWT, s.BudgetWaitTime.Seconds(), n)
		counter(descDials, float64(s.Dials), n)
		counter(descDialErr, float64(s.DialErrors), n)
		counter(descEvict, float64(s.ConnEvictions), n, "conn")
		counter(descEvict, float64(s.PoolEvictions), n, "pool")
		counter(descRecycle, float64(s.Recycled), n)
	}
}
