// Package tenantrytest runs tests against real PostgreSQL, in the manner of
// river's riverdbtest.
//
// A test binary shares one server: the one named by TENANTRY_TEST_DATABASE_URL
// (a superuser or CREATEDB URL of an existing server) when set, otherwise a
// throwaway cluster started from the machine's PostgreSQL binaries on first
// use (temp dir, free port, fsync off). Tests take what they need from it:
// a database of their own (NewDatabase), a schema of their own (NewSchema),
// a pool (Pool) or a transaction rolled back at the end (TestTx). Tests that
// place tenants on several servers ask for extra named clusters (Cluster),
// each started once per test binary.
//
// Everything is dropped or closed by t.Cleanup, and every helper is safe for
// parallel tests. Call Main from TestMain so that the clusters are stopped and
// their directories removed when the tests end:
//
//	func TestMain(m *testing.M) { tenantrytest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		pool := tenantrytest.Pool(t, tenantrytest.NewDatabase(t))
//		tx := tenantrytest.TestTx(t, pool)
//		_, err := tx.Exec(t.Context(), "CREATE TABLE t (id int)")
//		...
//		eu := tenantrytest.Cluster(t, "eu")
//		euPool := tenantrytest.Pool(t, eu.NewDatabase(t))
//		...
//	}
//
// Without Main the servers still die with the test binary (the kernel sends
// them SIGQUIT), and their temp directories are removed by the next test
// binary that starts one.
package tenantrytest
