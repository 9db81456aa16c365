package tenantrytest_test

import (
	"testing"

	"github.com/tenantry/tenantry/tenantrytest"
)

// BenchmarkNew measures creating a test database and a test schema on the
// shared server. The drops run at the benchmark's cleanup, untimed.
//
//	go test -run '^$' -bench . ./tenantrytest/
func BenchmarkNew(b *testing.B) {
	pool := tenantrytest.Pool(b, tenantrytest.NewDatabase(b)) // starts the server untimed
	b.Run("Database", func(b *testing.B) {
		for b.Loop() {
			tenantrytest.NewDatabase(b)
		}
	})
	b.Run("Schema", func(b *testing.B) {
		for b.Loop() {
			tenantrytest.NewSchema(b, pool)
		}
	})
}
