package main

import (
	"github.com/spf13/cobra"

	"github.com/tenantry/tenantry/admin"
)

func (a *app) auditCommand() *cobra.Command {
	var opts admin.AuditOptions
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit log of administrative changes, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			entries, err := c.Audit(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.io.out, entries)
			}
			return writeAuditTable(a.io.out, entries)
		},
	}
	cmd.Flags().StringVar(&opts.Tenant, "tenant", "", "only entries of this tenant (slug or ID)")
	cmd.Flags().IntVar(&opts.Limit, "limit", 50, "at most this many entries (1-1000)")
	return cmd
}
