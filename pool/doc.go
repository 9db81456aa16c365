// Package pool keeps Tenantry's connections to tenant data: one pgx pool per
// (cluster, database, login role), opened on first use and closed when
// unused, under a connection budget per cluster that all the databases on
// the cluster share.
//
// A Manager serves many tenant databases with few connections:
//
//   - Pools open lazily with single-flight: a thundering herd on a new
//     tenant opens one pool, and no lock is held while connecting.
//   - Every physical connection holds a slot of its cluster's budget
//     (catalog.Cluster.MaxConns) from before it is dialled until the server
//     has ended its backend. When the budget is used up, a new connection
//     first closes an idle connection of another pool, least recently used
//     first, and otherwise waits.
//   - One pool may hold at most its share of the budget
//     (Config.MaxConnsPerPool), so one busy tenant database cannot take the
//     whole cluster.
//   - Pools are reference-counted: an unused pool is closed after
//     Config.PoolIdleTimeout or beyond Config.MaxPools, least recently used
//     first; a pool in use is never closed under its user. A retired pool
//     (catalog change, Evict) stops serving new users at once and closes
//     when its last connection comes back.
//   - Connections are replaced after Config.MaxConnLifetime and after
//     serving Config.MaxConnSchemas distinct schemas, which bounds the
//     catalog caches a PostgreSQL backend accumulates under
//     schema-per-tenant.
//   - The Manager follows the catalog: a changed or removed cluster retires
//     its pools; so does a database-per-tenant tenant that moves or goes.
//
// Connections from a Manager are not scoped to a tenant. Tenant code never
// sees a Manager: it runs in transactions of package router, which scope
// every transaction to its tenant.
//
// Figures are in Stats and, for Prometheus, Collector.
//
//	m, err := pool.New(&pool.Config{Catalog: cache})
//	if err != nil { ... }
//	defer m.Close()
//	prometheus.MustRegister(m.Collector())
//	r, err := router.New(cache, m, nil)
package pool
