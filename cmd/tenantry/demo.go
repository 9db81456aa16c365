package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/provision"
	"github.com/tenantry/tenantry/tenant"
)

// demoMarkerName is <data-dir>/demo-provisioned: written once the demo
// tenants exist, so that later starts leave them (and their deletion) alone.
const demoMarkerName = "demo-provisioned"

var demoActor = catalog.Actor{Name: "tenantry serve", Reason: "demo tenants, one per storage model"}

// provisionDemo creates and provisions the demo tenants (acme, globex,
// initech, umbrella: one per storage model) unless the data directory says
// it was done before, and returns them. A start that fails half-way tries
// again at the next start; Demo is idempotent.
func provisionDemo(ctx context.Context, p *provision.Provisioner, store *catalog.Store, dataDir string) ([]*tenant.Tenant, error) {
	marker := filepath.Join(dataDir, demoMarkerName)
	if _, err := os.Stat(marker); err == nil {
		return existingDemoTenants(ctx, store)
	}
	tenants, err := provision.Demo(ctx, p, demoActor)
	if err != nil {
		return nil, fmt.Errorf("provisioning the demo tenants: %w", err)
	}
	if err := ensureDataDir(dataDir); err != nil {
		return nil, err
	}
	if err := os.WriteFile(marker, []byte("the demo tenants were created; delete this file to have missing ones created again\n"), 0o644); err != nil {
		return nil, fmt.Errorf("recording the demo tenants: %w", err)
	}
	return tenants, nil
}

// existingDemoTenants returns the demo tenants still in the catalog.
func existingDemoTenants(ctx context.Context, store *catalog.Store) ([]*tenant.Tenant, error) {
	var out []*tenant.Tenant
	for _, d := range provision.DemoTenants {
		t, err := store.Tenant(ctx, d.Slug)
		if err != nil {
			continue // deleted since: fine
		}
		if t.Labels["demo"] == "true" && provisioned(t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// writeDemo prints the demo tenants and the curl lines that try them on
// the public listener at hostPort: notes CRUD on each, a file upload and
// download, and a cross-tenant read that must fail.
func writeDemo(w io.Writer, tenants []*tenant.Tenant, baseDomain, hostPort string) {
	if len(tenants) == 0 {
		return
	}
	fmt.Fprintln(w, "\nDemo tenants, one per storage model:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range tenants {
		p := t.Placement
		fmt.Fprintf(tw, "  %s\t%s\ton %s\tdatabase %s, schema %s\n", t.Slug, p.Model, p.Cluster, p.Database, p.Schema)
	}
	_ = tw.Flush()

	fmt.Fprintln(w, "\nNotes, on each demo tenant (paste a block into a shell; each tenant sees only its own notes):")
	for _, t := range tenants {
		h := fmt.Sprintf("-H 'Host: %s.%s'", t.Slug, baseDomain)
		fmt.Fprintf(w, "\n  # %s (%s)\n", t.Slug, t.Placement.Model)
		for _, line := range notesLines(h, t.Slug, hostPort) {
			fmt.Fprintln(w, "  "+line)
		}
	}

	first, second := tenants[0], tenants[len(tenants)-1]
	fmt.Fprintln(w, "\nFiles (stored under the tenant's own prefix, with quotas and fair upload scheduling):")
	fmt.Fprintln(w)
	for _, line := range fileLines(first.Slug, second.Slug, baseDomain, hostPort) {
		fmt.Fprintln(w, "  "+line)
	}
	fmt.Fprintln(w)
}

// notesLines are the curl lines of notes CRUD for one tenant: create
// (keeping the new note's id in $id), read, update, list, delete.
func notesLines(host, slug, hostPort string) []string {
	base := hostPort + "/api/v1/notes"
	json := "-H 'Content-Type: application/json'"
	return []string{
		fmt.Sprintf(`id=$(curl -s %s %s -d '{"title":"hello","body":"a note of %s"}' %s | grep -o '"id":"[^"]*"' | cut -d'"' -f4)`, host, json, slug, base),
		fmt.Sprintf("curl %s %s/$id", host, base),
		fmt.Sprintf(`curl %s -X PUT %s -d '{"title":"hello again","body":"edited","version":1}' %s/$id`, host, json, base),
		fmt.Sprintf("curl %s %s", host, base),
		fmt.Sprintf("curl %s -X DELETE %s/$id", host, base),
	}
}

// fileLines are the curl lines of a file upload, download and listing on
// tenant a, and a read of the same key by tenant b, answered 404.
func fileLines(a, b, baseDomain, hostPort string) []string {
	ha := fmt.Sprintf("-H 'Host: %s.%s'", a, baseDomain)
	hb := fmt.Sprintf("-H 'Host: %s.%s'", b, baseDomain)
	obj := hostPort + "/api/v1/files/docs/hello.txt"
	return []string{
		fmt.Sprintf("curl %s -X PUT -H 'Content-Type: text/plain' --data-binary 'hello from %s' %s", ha, a, obj),
		fmt.Sprintf("curl %s %s", ha, obj),
		fmt.Sprintf("curl %s '%s/api/v1/files?prefix=docs/'", ha, hostPort),
		fmt.Sprintf("curl %s %s   # 404: %s has no such file", hb, obj, b),
	}
}
