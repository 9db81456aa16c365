// Package bench measures what Tenantry's data plane costs: the notes API
// (GET /api/v1/notes/{id}) served through tenant resolution, the router and
// the pool manager, per storage model, against a hand-written single-tenant
// net/http + pgx service that runs the same SQL with the same round trips
// (BEGIN READ ONLY and the SELECT in one, then COMMIT) and writes the same
// JSON.
//
// The baseline runs on the PostgreSQL server of the model's tenants (the
// first tenant's, for shards), in a database of its own. Both services
// listen on loopback and are driven at the same time by the same number of
// HTTP clients, so that their ratio does not depend on how
// fast the (shared, noisy) machine happens to be during a round; the ratio
// of a model is the median of its rounds' ratios. Shared, sharded and
// schema tenants are picked uniformly; database tenants with a zipf
// distribution, since one database per tenant is only viable when a working
// set of tenants keeps its connections warm under the cluster's connection
// budget.
//
// Run provisions the tenants (by default 1,000 per model: 1,000 schemas and
// 1,000 databases on the primary, shared and sharded tenants in their
// tables) under fixed names, so a second run against the same servers skips
// provisioning; Config.Drop removes everything at the end. Use servers of
// their own.
//
//	rep, err := bench.Run(ctx, &bench.Config{
//		PrimaryURL: "postgres://postgres@127.0.0.1:5432/postgres",
//		ShardURLs:  []string{"postgres://postgres@127.0.0.1:5433/postgres"},
//	})
//	if err != nil {
//		return err
//	}
//	rep.WriteMarkdown(os.Stdout)
//
// From the repository, on throwaway servers:
//
//	TENANTRY_BENCH=1 go test -run '^$' -bench DataPlane -benchtime 1x -timeout 60m ./bench/
package bench
