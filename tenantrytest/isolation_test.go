package tenantrytest_test

import (
	"testing"

	"github.com/tenantry/tenantry/tenantrytest"
)

// TestIsolation runs the conformance suite on its built-in probe table.
func TestIsolation(t *testing.T) {
	t.Parallel()
	tenantrytest.RunIsolation(t, nil)
}
