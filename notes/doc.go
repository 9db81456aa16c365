// Package notes is Tenantry's reference application: a small notes API
// written once against the router, served unchanged to tenants of every
// storage model.
//
//	GET    /api/v1/notes?limit=20&after=<id>  list, oldest first  200 {"notes": [...], "next": "<id>"}
//	POST   /api/v1/notes                      create              201 + Location
//	GET    /api/v1/notes/{id}                 read                200
//	PUT    /api/v1/notes/{id}                 replace             200 (409 if "version" is stale)
//	DELETE /api/v1/notes/{id}                 delete              204
//
// Bodies are JSON ({"title": "...", "body": "...", "version": 2});
// failures are RFC 9457 problems with a stable code: invalid_json (400),
// invalid_note_id (400), invalid_query (400), note_not_found (404),
// version_conflict (409), body_too_large (413), unsupported_media_type
// (415), invalid_note (422). The handler must run behind the tenant
// resolution middleware (package resolve): its SQL names no tenant and no
// schema, and the router scopes every transaction to the tenant of the
// request. Mounted without resolution, it answers 500 and sends no SQL.
//
// DDL returns the notes table for the provisioner; it follows the table
// contract of package provision.
//
//	p, _ := provision.New(store, &provision.Config{DDL: notes.DDL()})
//	res, _ := resolve.New(cache, &resolve.Config{Strategies: []resolve.Strategy{resolve.Subdomain("localhost")}})
//	mux.Handle("/api/v1/notes", res.Middleware(notes.Handler(r)))
//	mux.Handle("/api/v1/notes/", res.Middleware(notes.Handler(r)))
package notes
