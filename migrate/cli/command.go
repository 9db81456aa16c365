package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantry/tenantry/migrate"
	"github.com/tenantry/tenantry/migrate/lint"
)

// Config wires the migrate command into a CLI.
type Config struct {
	// Engine returns the engine to run; called once by each subcommand that
	// needs the catalog (not by lint when Source is set, nor by --help).
	// Required.
	Engine func(ctx context.Context) (*migrate.Engine, error)
	// Source returns the migrations for `migrate lint`, which then needs no
	// database. Default: the engine's.
	Source func() (*migrate.Source, error)
	// Actor names who runs the command, for the run record and the audit
	// log. Default: $TENANTRY_ACTOR, else $USER, else "cli".
	Actor func() string
	// Output points at the CLI's global output format flag ("table" or
	// "json"). Default nil: the command defines its own --output/-o.
	Output *string
	// Reason points at the CLI's global --reason flag. Default nil: the
	// command defines its own --reason.
	Reason *string
	// Progress is where the live progress of up and resume goes. Default:
	// the command's error stream, as a live bar when it is a terminal.
	Progress io.Writer
}

// Command returns `migrate` with its subcommands plan, up, resume, status,
// abort and lint. Rollouts stop cleanly when the command's context is
// cancelled (wire SIGINT to it); `migrate resume` continues them.
func Command(cfg Config) *cobra.Command {
	c := &command{cfg: cfg}
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Roll schema migrations out to every tenant target",
		Long: `Roll the application's schema migrations out to every target — each shared
database, shard, tenant schema, tenant database and provisioning template —
in waves, under lock timeouts, resumably.

  migrate plan              what up would do: steps, lint findings, waves, targets
  migrate up                start a rollout (live progress; a halt exits non-zero)
  migrate status            the newest run's progress and the per-target table
  migrate resume            continue a halted, interrupted or crashed run
  migrate abort             give up the unfinished run
  migrate lint              the safety lint of the migrations alone`,
		SilenceUsage: true,
	}
	if cfg.Output == nil {
		c.output = new(string)
		cmd.PersistentFlags().StringVarP(c.output, "output", "o", "table", "output format: table or json")
	} else {
		c.output = cfg.Output
	}
	if cfg.Reason == nil {
		c.reason = new(string)
		cmd.PersistentFlags().StringVar(c.reason, "reason", "", "why: recorded in the audit log")
	} else {
		c.reason = cfg.Reason
	}
	cmd.AddCommand(c.plan(), c.up(), c.resume(), c.status(), c.abort(), c.lint())
	return cmd
}

type command struct {
	cfg    Config
	output *string
	reason *string
}

func (c *command) engine(ctx context.Context) (*migrate.Engine, error) {
	if *c.output != "table" && *c.output != "json" {
		return nil, fmt.Errorf("--output must be table or json, not %q", *c.output)
	}
	if c.cfg.Engine == nil {
		return nil, errors.New("migrate: no engine configured")
	}
	return c.cfg.Engine(ctx)
}

func (c *command) actor() string {
	if c.cfg.Actor != nil {
		if a := c.cfg.Actor(); a != "" {
			return a
		}
	}
	for _, env := range []string{"TENANTRY_ACTOR", "USER"} {
		if a := os.Getenv(env); a != "" {
			return a
		}
	}
	return "cli"
}

func (c *command) json() bool { return *c.output == "json" }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// waveFlags are the flags that shape a rollout.
type waveFlags struct {
	canary      int
	waves       string
	concurrency int
	perCluster  int
	maxFailures int
	soak        time.Duration
	all         bool
}

func (f *waveFlags) register(cmd *cobra.Command, layout bool) {
	fl := cmd.Flags()
	if layout {
		fl.IntVar(&f.canary, "canary", 0, "targets in the canary wave (default 5; -1: none)")
		fl.StringVar(&f.waves, "waves", "", "cumulative percentages of the waves after the canary (default 10,50,100)")
		fl.BoolVar(&f.all, "all", false, "visit every target, also those the ledger shows at head")
	}
	fl.IntVar(&f.concurrency, "concurrency", 0, "targets migrated at once overall (default 16)")
	fl.IntVar(&f.perCluster, "per-cluster", 0, "targets migrated at once per cluster (default 4)")
	fl.IntVar(&f.maxFailures, "max-failures", 0, "error budget: failed targets tolerated before the rollout halts (default 0)")
	fl.DurationVar(&f.soak, "soak", 0, "pause after each wave but the last")
}

func (f *waveFlags) options() (migrate.RunOptions, error) {
	o := migrate.RunOptions{Canary: f.canary, Concurrency: f.concurrency, PerCluster: f.perCluster,
		MaxFailures: f.maxFailures, Soak: f.soak, All: f.all}
	if f.waves != "" {
		for _, p := range strings.Split(f.waves, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(p), "%")))
			if err != nil {
				return o, fmt.Errorf("--waves: %q is not a percentage", p)
			}
			o.Waves = append(o.Waves, n)
		}
	}
	return o, nil
}

func (c *command) plan() *cobra.Command {
	var wf waveFlags
	var show int
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what up would do, without doing it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := c.engine(cmd.Context())
			if err != nil {
				return err
			}
			opts, err := wf.options()
			if err != nil {
				return err
			}
			p, err := e.Plan(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if c.json() {
				return writeJSON(cmd.OutOrStdout(), p)
			}
			return WritePlan(cmd.OutOrStdout(), p, show)
		},
	}
	wf.register(cmd, true)
	cmd.Flags().IntVar(&show, "targets", 20, "list at most this many targets")
	return cmd
}

// rollout runs fn with a progress renderer and writes its report.
func (c *command) rollout(cmd *cobra.Command, fn func(ctx context.Context, e *migrate.Engine, onEvent func(migrate.Event)) (*migrate.Report, error)) error {
	e, err := c.engine(cmd.Context())
	if err != nil {
		return err
	}
	pw := c.cfg.Progress
	if pw == nil {
		pw = cmd.ErrOrStderr()
	}
	prog := NewProgress(pw, IsTerminal(pw))
	rep, err := fn(cmd.Context(), e, prog.Handle)
	prog.Close()
	if rep != nil {
		var werr error
		if c.json() {
			werr = writeJSON(cmd.OutOrStdout(), rep)
		} else {
			werr = WriteReport(cmd.OutOrStdout(), rep)
		}
		if err == nil {
			err = werr
		}
	}
	var le *migrate.LintError
	if errors.As(err, &le) && !c.json() {
		_ = WriteFindings(cmd.OutOrStdout(), le.Findings)
	}
	return err
}

func (c *command) up() *cobra.Command {
	var wf waveFlags
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Roll the newest migrations out to every target",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := wf.options()
			if err != nil {
				return err
			}
			return c.rollout(cmd, func(ctx context.Context, e *migrate.Engine, on func(migrate.Event)) (*migrate.Report, error) {
				opts.Actor, opts.Reason, opts.OnEvent = c.actor(), *c.reason, on
				return e.Up(ctx, opts)
			})
		},
	}
	wf.register(cmd, true)
	return cmd
}

func (c *command) resume() *cobra.Command {
	var wf waveFlags
	cmd := &cobra.Command{
		Use:   "resume",
		Short: "Continue the unfinished rollout (halted, interrupted or crashed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := wf.options()
			if err != nil {
				return err
			}
			return c.rollout(cmd, func(ctx context.Context, e *migrate.Engine, on func(migrate.Event)) (*migrate.Report, error) {
				opts.Actor, opts.Reason, opts.OnEvent = c.actor(), *c.reason, on
				return e.Resume(ctx, opts)
			})
		},
	}
	wf.register(cmd, false)
	return cmd
}

func (c *command) status() *cobra.Command {
	var states, kind, cluster, after string
	var limit int
	var all bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the newest rollout's progress and the per-target table",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := c.engine(cmd.Context())
			if err != nil {
				return err
			}
			opts := migrate.StatusOptions{Targets: true, Kind: migrate.Kind(kind), Cluster: cluster, After: after, Limit: limit}
			if states == "" && !all {
				states = "running,failed,blocked"
			}
			for _, s := range strings.Split(states, ",") {
				if s = strings.TrimSpace(s); s != "" {
					opts.States = append(opts.States, migrate.TargetState(s))
				}
			}
			st, err := e.Status(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if c.json() {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			return WriteStatus(cmd.OutOrStdout(), st)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&states, "state", "", "list targets in these states (default running,failed,blocked)")
	fl.BoolVar(&all, "all", false, "list targets in every state")
	fl.StringVar(&kind, "kind", "", "list targets of this kind: shared, sharded, schema, database, template")
	fl.StringVar(&cluster, "cluster", "", "list targets of this cluster")
	fl.StringVar(&after, "after", "", "list targets after this key (the cursor printed below a full page)")
	fl.IntVar(&limit, "limit", 100, "list at most this many targets")
	return cmd
}

func (c *command) abort() *cobra.Command {
	return &cobra.Command{
		Use:   "abort",
		Short: "Give up the unfinished rollout, leaving targets at the version they reached",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := c.engine(cmd.Context())
			if err != nil {
				return err
			}
			run, err := e.Abort(cmd.Context(), c.actor(), *c.reason)
			if err != nil {
				return err
			}
			if c.json() {
				return writeJSON(cmd.OutOrStdout(), run)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "run %s aborted\n", run.ID)
			return err
		},
	}
}

func (c *command) lint() *cobra.Command {
	return &cobra.Command{
		Use:   "lint",
		Short: "Run the safety lint over the migrations (exits non-zero on a blocking finding)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var src *migrate.Source
			var err error
			if c.cfg.Source != nil {
				src, err = c.cfg.Source()
			} else {
				var e *migrate.Engine
				if e, err = c.engine(cmd.Context()); err == nil {
					src = e.Source()
				}
			}
			if err != nil {
				return err
			}
			findings := src.Lint()
			if c.json() {
				err = writeJSON(cmd.OutOrStdout(), findings)
			} else {
				err = WriteFindings(cmd.OutOrStdout(), findings)
			}
			if err != nil {
				return err
			}
			if n := len(lint.Blocking(findings)); n > 0 {
				return fmt.Errorf("%w: %d blocking finding(s)", migrate.ErrLintFailed, n)
			}
			return nil
		},
	}
}
