package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tenantry/tenantry/admin"
	"github.com/tenantry/tenantry/tenant"
)

func (a *app) tenantCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "tenant",
		Aliases: []string{"tenants"},
		Short:   "Create, list, inspect, suspend, resume and delete tenants",
	}
	cmd.AddCommand(a.tenantCreate(), a.tenantList(), a.tenantGet(), a.tenantUpdate(), a.tenantProvision(),
		a.tenantState("suspend", "Suspend a tenant: its requests are answered 423 until it is resumed"),
		a.tenantState("resume", "Resume a suspended tenant"),
		a.tenantDelete(), a.domainCommand())
	return cmd
}

// parseLabels reads repeated --label key=value flags.
func parseLabels(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q must look like key=value", p)
		}
		out[k] = v
	}
	return out, nil
}

func (a *app) tenantCreate() *cobra.Command {
	var (
		req     admin.CreateTenantRequest
		model   string
		labels  []string
		state   string
		cluster string
	)
	cmd := &cobra.Command{
		Use:   "create SLUG",
		Short: "Create a tenant and provision its storage",
		Long: `Create a tenant and provision its storage. Without --model, the placement
policy chooses the model from the tier (free: shared, pro: schema,
enterprise: database) and the least-loaded cluster; the placement chosen is
printed. If provisioning fails, nothing is kept (see the admin API docs).`,
		Example: `  tenantry tenant create acme
  tenantry tenant create acme --tier enterprise
  tenantry tenant create acme --model schema --domain acme.example.com --tier pro`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if req.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			req.Slug = args[0]
			req.State = tenant.State(state)
			req.Placement = tenant.Placement{Model: tenant.Model(model), Cluster: cluster}
			t, err := c.CreateTenant(cmd.Context(), req)
			if err != nil {
				return err
			}
			return a.printTenant(t, "created"+placedOn(t))
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.DisplayName, "display-name", "", "human-readable name (default: the slug)")
	f.StringVar(&model, "model", "", "storage isolation model: shared, sharded, schema or database (default: chosen by the placement policy from the tier)")
	f.StringVar(&cluster, "cluster", "", "cluster to place the tenant on (default: chosen when provisioned)")
	f.StringVar(&req.Tier, "tier", "", "commercial tier (default free)")
	f.StringVar(&req.Region, "region", "", "data-residency region")
	f.StringVar(&state, "state", "", "initial state: active, suspended, read-only (default active)")
	f.StringArrayVar(&req.Domains, "domain", nil, "custom domain that resolves to the tenant (repeatable)")
	f.StringArrayVar(&labels, "label", nil, "label key=value (repeatable)")
	return cmd
}

func (a *app) tenantList() *cobra.Command {
	var (
		state string
		limit int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tenants",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var tenants []*tenant.Tenant
			if limit > 0 {
				page, err := c.Tenants(cmd.Context(), admin.ListOptions{State: tenant.State(state), Limit: limit})
				if err != nil {
					return err
				}
				tenants = page.Tenants
			} else if tenants, err = c.AllTenants(cmd.Context(), tenant.State(state)); err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.io.out, tenants)
			}
			return writeTenantTable(a.io.out, tenants)
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only tenants in this state")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many (default: all)")
	return cmd
}

func (a *app) tenantGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get SLUG",
		Short: "Show a tenant",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			t, err := c.Tenant(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printTenant(t, "")
		},
	}
}

func (a *app) tenantUpdate() *cobra.Command {
	var (
		displayName, tier, region string
		labels                    []string
	)
	cmd := &cobra.Command{
		Use:   "update SLUG",
		Short: "Change a tenant's display name, tier, region or labels",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			t, err := c.Tenant(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			req := admin.UpdateTenantRequest{Version: t.Version}
			f := cmd.Flags()
			if f.Changed("display-name") {
				req.DisplayName = &displayName
			}
			if f.Changed("tier") {
				req.Tier = &tier
			}
			if f.Changed("region") {
				req.Region = &region
			}
			if f.Changed("label") {
				if req.Labels, err = parseLabels(labels); err != nil {
					return err
				}
			}
			t, err = c.UpdateTenant(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return a.printTenant(t, "updated")
		},
	}
	f := cmd.Flags()
	f.StringVar(&displayName, "display-name", "", "human-readable name")
	f.StringVar(&tier, "tier", "", "commercial tier")
	f.StringVar(&region, "region", "", "data-residency region")
	f.StringArrayVar(&labels, "label", nil, "label key=value, replacing all labels (repeatable)")
	return cmd
}

func (a *app) tenantState(verb, short string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " SLUG",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			change := c.Suspend
			if verb == "resume" {
				change = c.Resume
			}
			t, err := change(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printTenant(t, map[string]string{"suspend": "suspended", "resume": "resumed"}[verb])
		},
	}
}

func (a *app) tenantDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete SLUG",
		Short: "Delete a tenant: drop its storage (database rows, schema or database, files), then its catalog record",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.DeleteTenant(cmd.Context(), args[0]); err != nil {
				return err
			}
			if a.output == "json" {
				return nil
			}
			_, err = fmt.Fprintf(a.io.out, "tenant %s deleted\n", args[0])
			return err
		},
	}
}

func (a *app) tenantProvision() *cobra.Command {
	return &cobra.Command{
		Use:   "provision SLUG",
		Short: "Create what is missing of a tenant's storage (retry a failed provisioning)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			t, err := c.Provision(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printTenant(t, "provisioned"+placedOn(t))
		},
	}
}

// placedOn describes where a provisioned tenant's data lives, for the
// line after "tenant acme created".
func placedOn(t *tenant.Tenant) string {
	p := t.Placement
	if p.Cluster == "" {
		return "" // a server that does not provision
	}
	return fmt.Sprintf(": model %s on cluster %s (database %s, schema %s)", p.Model, p.Cluster, p.Database, p.Schema)
}

func (a *app) domainCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "domain",
		Aliases: []string{"domains"},
		Short:   "Add or remove a tenant's custom domains",
	}
	for _, verb := range []string{"add", "remove"} {
		cmd.AddCommand(&cobra.Command{
			Use:     verb + " SLUG DOMAIN",
			Short:   map[string]string{"add": "Attach a custom domain to a tenant", "remove": "Detach a custom domain from a tenant"}[verb],
			Example: "  tenantry tenant domain " + verb + " acme acme.example.com",
			Args:    cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := a.client()
				if err != nil {
					return err
				}
				change, done := c.AddDomain, "domain added"
				if verb == "remove" {
					change, done = c.RemoveDomain, "domain removed"
				}
				t, err := change(cmd.Context(), args[0], args[1])
				if err != nil {
					return err
				}
				return a.printTenant(t, done)
			},
		})
	}
	return cmd
}

// printTenant prints one tenant as JSON or as a table row preceded by what
// happened to it.
func (a *app) printTenant(t *tenant.Tenant, what string) error {
	if a.output == "json" {
		return writeJSON(a.io.out, t)
	}
	if what != "" {
		if _, err := fmt.Fprintf(a.io.out, "tenant %s %s\n\n", t.Slug, what); err != nil {
			return err
		}
	}
	return writeTenantDetail(a.io.out, t)
}
