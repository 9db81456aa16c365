package main

import (
	"github.com/spf13/cobra"

	"github.com/tenantry/tenantry/admin"
	"github.com/tenantry/tenantry/catalog"
)

func (a *app) clusterCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "cluster",
		Aliases: []string{"clusters"},
		Short:   "Register and list the PostgreSQL clusters that hold tenant data",
	}
	cmd.AddCommand(a.clusterAdd(), a.clusterList())
	return cmd
}

func (a *app) clusterAdd() *cobra.Command {
	var req admin.CreateClusterRequest
	cmd := &cobra.Command{
		Use:     "add NAME --conn-string URL",
		Short:   "Register a PostgreSQL cluster",
		Example: "  tenantry cluster add eu-1 --conn-string 'postgres://tenantry@db-eu-1:5432/postgres' --region eu",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			req.Name = args[0]
			cl, err := c.CreateCluster(cmd.Context(), req)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.io.out, cl)
			}
			return writeClusterTable(a.io.out, []catalog.Cluster{*cl})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.ConnString, "conn-string", "", "libpq URL or DSN of a maintenance database, for a role that may create databases and roles (keep passwords in a passfile)")
	f.StringVar(&req.Region, "region", "", "region the cluster runs in")
	f.StringVar(&req.Role, "role", "", "primary, shard or replica (default primary)")
	f.IntVar(&req.MaxConns, "max-conns", 0, "connection budget on the cluster (default 50)")
	f.IntVar(&req.MaxTenants, "max-tenants", 0, "cap on tenants placed on the cluster (default: no cap)")
	_ = cmd.MarkFlagRequired("conn-string")
	return cmd
}

func (a *app) clusterList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List clusters (connection strings redacted)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			clusters, err := c.Clusters(cmd.Context())
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.io.out, clusters)
			}
			return writeClusterTable(a.io.out, clusters)
		},
	}
}
