// Package cli is the command line of fleet migrations: a ready-made
// `migrate` cobra command (plan, up, resume, status, abort, lint) over a
// migrate.Engine, and the renderers it uses, for CLIs that wire their own
// commands: a live progress bar (Progress: done / failed / remaining, rate,
// ETA, redrawn in place on a terminal, plain lines elsewhere) and tables for
// plans, reports, statuses and lint findings.
//
// Wiring it into a CLI:
//
//	root.AddCommand(cli.Command(cli.Config{
//		Engine: func(ctx context.Context) (*migrate.Engine, error) {
//			store, err := openCatalog(ctx)
//			if err != nil {
//				return nil, err
//			}
//			return migrate.New(store, &migrate.Config{Source: appMigrations})
//		},
//		Output: &globalOutputFlag, // "table" or "json"
//		Reason: &globalReasonFlag,
//	}))
//
// Using the renderers with an engine directly:
//
//	prog := cli.NewProgress(os.Stderr, cli.IsTerminal(os.Stderr))
//	report, err := engine.Up(ctx, migrate.RunOptions{Actor: "alice", OnEvent: prog.Handle})
//	prog.Close()
//	cli.WriteReport(os.Stdout, report)
package cli
