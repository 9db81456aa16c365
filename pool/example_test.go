package pool_test

import (
	"log"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/pool"
)

// A Manager for many tenant databases: each pool may take a quarter of its
// cluster's budget, and connections are replaced after 500 schemas.
func Example() {
	var cache *catalog.Cache // started on the catalog
	m, err := pool.New(&pool.Config{
		Catalog:         cache,
		MaxConnsPerPool: func(_ pool.Key, budget int) int { return max(1, budget/4) },
		MaxConnSchemas:  500,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	prometheus.MustRegister(m.Collector())
	for _, c := range m.Stats().Clusters {
		log.Printf("%s: %d of %d connections, %d pools", c.Cluster, c.Conns, c.Budget, c.Pools)
	}
}
