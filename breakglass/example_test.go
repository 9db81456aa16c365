package breakglass_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/tenantry/tenantry/breakglass"
	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/router"
)

// An operator reads one tenant's rows during an incident. The session is on
// the audit log before the first row is read.
func ExampleAccess() {
	var (
		store *catalog.Store // the catalog
		r     *router.Router // the data plane's router
		n     int
	)
	err := breakglass.Access(context.Background(), store, r, breakglass.Request{
		Actor:  "alice@example.org",
		Tenant: "acme",
		Reason: "INC-4711: customer reports missing invoices since Monday",
	}, func(ctx context.Context, tx router.Tx) error {
		return tx.QueryRow(ctx, "SELECT count(*) FROM invoices").Scan(&n)
	})
	if err != nil {
		log.Print(err)
	}
}

// Without a reason nothing happens, not even a catalog lookup.
func ExampleAccess_noReason() {
	err := breakglass.Access(context.Background(), nil, nil, breakglass.Request{
		Actor: "alice@example.org", Tenant: "acme", Reason: "looking",
	}, nil)
	fmt.Println(errors.Is(err, breakglass.ErrNoReason))
	// Output: true
}
