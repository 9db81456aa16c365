// Package server runs Tenantry's two HTTP listeners: the public listener,
// where every application route sits behind tenant resolution, and the admin
// listener (loopback by default) that serves the admin API. Both answer
// /healthz (the process is alive) and /readyz (the catalog cache can vouch
// for its contents), set read, header, write and idle timeouts, and shut down
// gracefully when the context given to Run ends.
//
//	srv, err := server.New(server.Deps{
//		Catalog: cache,                  // *catalog.Cache, started
//		Resolve: resolver.Middleware,    // tenant resolution
//		Admin:   adminAPI,               // admin.Handler
//	}, &server.Config{
//		Logger: logger,
//		Routes: func(mux *http.ServeMux) {
//			mux.Handle("GET /api/v1/notes", notes) // behind resolution
//		},
//	})
//	if err != nil {
//		return err
//	}
//	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
//	defer stop()
//	return srv.Run(ctx) // returns once in-flight requests have drained
//
// Handlers behind resolution find their tenant with tenant.FromContext. Log
// through a logger built on NewLogHandler and every record logged with the
// request's context carries tenant=<slug>.
package server
