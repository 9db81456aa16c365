// Package migrate rolls one schema change out across every place that holds
// tenant tables — each shared database, each shard, each tenant schema, each
// tenant database, and the provisioning templates — without downtime:
// fast, resumable, visible and safe under load.
//
// # Migrations
//
// A migration is a file NNNN_name.sql in an fs.FS (usually embedded), loaded
// by Load. Its header declares how it runs:
//
//	-- migrate:mode tx         one transaction with its ledger row: applied exactly once
//	-- migrate:mode no-tx      statement by statement (CREATE INDEX CONCURRENTLY ...)
//	-- migrate:mode batch      one bounded UPDATE run until it touches no row (a backfill)
//
// and may set lock-timeout, statement-timeout, batch-pause, and opt out of a
// lint rule with a stated reason (allow). Names in migrations are
// unqualified: each runs with search_path set to its target's schema, its
// DDL as the owner role (SET ROLE tenantry_owner), its data changes as the
// cluster's administrative role (so they see every row of a shared table
// under forced row-level security).
//
// # Safety
//
// Before anything runs, the lint (package lint) refuses DDL that would block
// or rewrite a busy table, or break the release still running, and says
// what to write instead. Every statement runs under lock_timeout (default
// 500ms: the longest live traffic can queue behind it) and is retried with
// jittered exponential back-off on a lock timeout or deadlock. An INVALID
// index left by a failed or killed CREATE INDEX CONCURRENTLY is dropped and
// rebuilt.
//
// # Ledger and resume
//
// Each target records what it applied in its own table, tenantry_migration,
// in the same transaction as each transactional step (LedgerTable). The
// catalog mirrors it per target (version, state, attempts, lock retries,
// last error, timings) with the runs and their waves. A rollout killed at
// any point (kill -9 included) is continued by Resume: targets are checked
// against their own ledgers, so no step is applied twice; a no-tx step
// resumes at the statement it was on.
//
// # Rollout
//
// Up lints, plans waves (a canary of N targets, then cumulative
// percentages; templates in the canary, shared databases last), and
// migrates them with a concurrency limit overall and per cluster. An error
// budget halts the rollout, leaving untouched targets alone. Each target is
// held by a session advisory lock keyed per target in its own database
// (LockKey), and its tenants by leases in the catalog (Leases) that a tenant
// move honours too. Plan is the dry run; Status, Runs and Handler report
// progress; events (RunOptions.OnEvent) drive a live display (package
// migrate/cli renders one).
//
// Application code reads the schema version of its tenant's target with
// ReadVersion inside its scoped transaction (or TenantVersion from the
// catalog), to gate code on an expand step while old and new releases run.
//
// Example:
//
//	//go:embed migrations/*.sql
//	var migrations embed.FS
//
//	sub, _ := fs.Sub(migrations, "migrations")
//	src, err := migrate.Load(sub)
//	engine, err := migrate.New(store, &migrate.Config{Source: src})
//	report, err := engine.Up(ctx, migrate.RunOptions{
//		Actor:       "alice",
//		Canary:      5,
//		Waves:       []int{10, 50, 100},
//		Concurrency: 16,
//		PerCluster:  8,
//		OnEvent:     func(ev migrate.Event) { log.Println(ev.Kind, ev.Progress.Done) },
//	})
//	if errors.Is(err, migrate.ErrHalted) {
//		for _, f := range report.Failures {
//			log.Printf("%s: %s", f.Key(), f.LastError)
//		}
//		// fix, then: engine.Resume(ctx, migrate.RunOptions{Actor: "alice"})
//	}
package migrate
