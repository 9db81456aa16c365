package notes_test

import (
	"net/http"
	"testing"

	"github.com/tenantry/tenantry/notes"
	"github.com/tenantry/tenantry/router"
	"github.com/tenantry/tenantry/tenantrytest"
)

// TestIsolation runs the isolation conformance suite on the notes table,
// with the notes API behind the resolution middleware for hostile
// identifiers.
func TestIsolation(t *testing.T) {
	t.Parallel()
	tenantrytest.RunIsolation(t, &tenantrytest.IsolationConfig{
		DDL:          notes.DDL(),
		Table:        "notes",
		MarkerColumn: "title",
		Handler:      func(r *router.Router) http.Handler { return notes.Handler(r) },
		Probe:        "/api/v1/notes",
	})
}
