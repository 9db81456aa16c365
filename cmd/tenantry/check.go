package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/provision"
)

// checkSecurity runs provision.CheckSecurity before serving: with enforce,
// a finding stops the start; without, findings are logged as errors.
func checkSecurity(ctx context.Context, store *catalog.Store, enforce bool, logger *slog.Logger) error {
	began := time.Now()
	err := provision.CheckSecurity(ctx, store, nil)
	var se *provision.SecurityError
	switch {
	case err == nil:
		logger.InfoContext(ctx, "security check passed", "elapsed", time.Since(began))
		return nil
	case !errors.As(err, &se):
		return fmt.Errorf("security check: %w", err)
	}
	for _, f := range se.Findings {
		logger.ErrorContext(ctx, "security check finding", "code", f.Code, "where", f.Where(), "object", f.Object, "problem", f.Problem, "fix", f.Fix)
	}
	if !enforce {
		logger.WarnContext(ctx, "serving despite the security check's findings (--security-check=false)", "findings", len(se.Findings))
		return nil
	}
	return fmt.Errorf("%w\n(fix them, see `tenantry check`; --security-check=false serves anyway)", err)
}

// checkCommand is `tenantry check`: the security check of every cluster,
// tenant databases included, as a table of findings.
func (a *app) checkCommand() *cobra.Command {
	var dbURL string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check roles, privileges and row-level security on every cluster (exit 1 on a finding)",
		Long: `Check the PostgreSQL side of tenant isolation on every cluster of the
catalog, tenant databases included: the runtime role's attributes and
memberships, what it and the per-tenant roles own and may do, row-level
security on every shared and shard table. Each finding says what is wrong
and how to fix it. tenantry serve runs the same check (without the tenant
databases) before it serves.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger := slog.New(slog.DiscardHandler)
			store, err := a.openCatalog(cmd.Context(), dbURL, logger)
			if err != nil {
				return err
			}
			err = provision.CheckSecurity(cmd.Context(), store, &provision.CheckConfig{TenantDatabases: true})
			var se *provision.SecurityError
			switch {
			case err == nil:
				_, err := fmt.Fprintln(a.io.out, "no findings: roles, privileges and row-level security are as Tenantry needs them")
				return err
			case !errors.As(err, &se):
				return err
			}
			if a.output == "json" {
				if err := writeJSON(a.io.out, se.Findings); err != nil {
					return err
				}
			} else if err := writeFindings(a.io.out, se.Findings); err != nil {
				return err
			}
			return fmt.Errorf("%d finding(s)", len(se.Findings))
		},
	}
	cmd.Flags().StringVar(&dbURL, "database-url", "", "PostgreSQL URL of the catalog database ($"+envDatabaseURL+"); default: the embedded PostgreSQL under <data-dir>/pg")
	return cmd
}

func writeFindings(w io.Writer, findings []provision.Finding) error {
	tw := table(w)
	fmt.Fprintln(tw, "WHERE\tCODE\tOBJECT\tPROBLEM\tFIX")
	for _, f := range findings {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Where(), f.Code, orDash(f.Object), f.Problem, f.Fix)
	}
	return tw.Flush()
}
