package notes_test

import (
	"net/http"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/notes"
	"github.com/tenantry/tenantry/resolve"
	"github.com/tenantry/tenantry/router"
)

// The notes API behind tenant resolution: acme.localhost/api/v1/notes
// serves tenant acme, whatever its storage model.
func Example() {
	var cache *catalog.Cache // started catalog cache
	var r *router.Router     // router.New(cache, pools, nil)
	res := resolve.MustNew(cache, &resolve.Config{Strategies: []resolve.Strategy{resolve.Subdomain("localhost")}})
	api := res.Middleware(notes.Handler(r))
	mux := http.NewServeMux()
	mux.Handle("/api/v1/notes", api)
	mux.Handle("/api/v1/notes/", api)
	_ = http.ListenAndServe("127.0.0.1:8080", mux)
}
