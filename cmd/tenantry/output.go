package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/tenant"
)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
}

// orDash shows an empty value as "-" so columns stay aligned and readable.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cell makes a value safe for one table cell: no tabs or line breaks (a
// display name is free text), bounded length.
func cell(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return orDash(s)
}

func writeTenantTable(w io.Writer, tenants []*tenant.Tenant) error {
	tw := table(w)
	fmt.Fprintln(tw, "SLUG\tSTATE\tTIER\tMODEL\tREGION\tDOMAINS\tVERSION\tCREATED")
	for _, t := range tenants {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", t.Slug, t.State, cell(t.Tier), orDash(string(t.Placement.Model)),
			cell(t.Region), cell(strings.Join(t.Domains, ",")), t.Version, t.CreatedAt.UTC().Format(time.DateTime))
	}
	return tw.Flush()
}

func writeTenantDetail(w io.Writer, t *tenant.Tenant) error {
	tw := table(w)
	labels := make([]string, 0, len(t.Labels))
	for _, k := range slices.Sorted(maps.Keys(t.Labels)) {
		labels = append(labels, k+"="+t.Labels[k])
	}
	rows := [][2]string{
		{"Slug", t.Slug},
		{"ID", t.ID},
		{"Display name", cell(t.DisplayName)},
		{"State", string(t.State)},
		{"Tier", cell(t.Tier)},
		{"Region", cell(t.Region)},
		{"Model", orDash(string(t.Placement.Model))},
		{"Cluster", cell(t.Placement.Cluster)},
		{"Database", cell(t.Placement.Database)},
		{"Schema", cell(t.Placement.Schema)},
		{"Domains", cell(strings.Join(t.Domains, ", "))},
		{"Labels", cell(strings.Join(labels, ", "))},
		{"Version", strconv.FormatInt(t.Version, 10)},
		{"Created", t.CreatedAt.UTC().Format(time.RFC3339)},
		{"Updated", t.UpdatedAt.UTC().Format(time.RFC3339)},
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
	}
	return tw.Flush()
}

func writeClusterTable(w io.Writer, clusters []catalog.Cluster) error {
	tw := table(w)
	fmt.Fprintln(tw, "NAME\tROLE\tREGION\tMAX CONNS\tMAX TENANTS\tCONNECTION")
	for _, c := range clusters {
		maxTenants := "-"
		if c.MaxTenants > 0 {
			maxTenants = strconv.Itoa(c.MaxTenants)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", c.Name, c.Role, cell(c.Region), c.MaxConns, maxTenants,
			catalog.RedactConnString(c.ConnString))
	}
	return tw.Flush()
}

func writeAuditTable(w io.Writer, entries []catalog.AuditEntry) error {
	tw := table(w)
	fmt.Fprintln(tw, "ID\tAT\tACTOR\tACTION\tTARGET\tREASON")
	for _, e := range entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.At.UTC().Format(time.DateTime), cell(e.Actor), e.Action, cell(e.Target), cell(e.Reason))
	}
	return tw.Flush()
}
