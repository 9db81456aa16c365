// Package pgcluster starts and stops a local PostgreSQL cluster from the
// server binaries installed on the machine. It backs the test harness
// (package tenantrytest: throwaway clusters in temp dirs, fsync off) and the
// embedded default of `tenantry serve` (a durable cluster under ./.tenantry
// that persists across runs).
//
// A cluster is `postgres -D Dir/pgdata` run directly as a child process,
// never daemonised: it listens on 127.0.0.1 and on a unix socket in Dir, logs
// to Dir/postgres.log, and gets SIGQUIT (immediate shutdown) from the kernel
// if the process that started it dies without calling Stop.
//
// When the caller runs as root, initdb and postgres run as the "postgres" OS
// user, which must exist and be able to traverse every parent of Dir.
//
//	c, err := pgcluster.Start(ctx, &pgcluster.Config{Dir: ".tenantry", Durable: true})
//	if err != nil {
//		return err
//	}
//	defer c.Stop(context.Background())
//	pool, err := pgxpool.New(ctx, c.ConnString("postgres"))
package pgcluster
