package migrate_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/migrate"
	"github.com/tenantry/tenantry/tenant"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	f := newFleet(t, false)
	f.src = loadSource(t, nil)
	acme := f.addTenant("acme", tenant.ModelSchema, 1, 3)
	f.addTenant("beta", tenant.ModelSchema, 1, 3)
	e := f.engine(nil)
	if _, err := e.Up(context.Background(), migrate.RunOptions{Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/admin/v1/migrations", e.Handler(nil)))
	t.Cleanup(srv.Close)

	get := func(path string, status int, into any) {
		t.Helper()
		res, err := http.Get(srv.URL + "/admin/v1/migrations" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != status {
			t.Fatalf("GET %s: %d, want %d", path, res.StatusCode, status)
		}
		if ct := res.Header.Get("Content-Type"); status == 200 && ct != "application/json" || status != 200 && ct != "application/problem+json" {
			t.Fatalf("GET %s: content type %q", path, ct)
		}
		if into != nil {
			if err := json.NewDecoder(res.Body).Decode(into); err != nil {
				t.Fatal(err)
			}
		}
	}

	var st migrate.Status
	get("/", 200, &st)
	if st.Head != 4 || st.Total != 2 || st.Counts[migrate.StateDone] != 2 || st.Run == nil || st.Run.State != migrate.RunDone || st.Progress.Done != 2 {
		t.Fatalf("status: %+v", st)
	}
	var page struct {
		Targets []migrate.TargetStatus `json:"targets"`
		Next    string                 `json:"next"`
	}
	get("/targets?limit=1", 200, &page)
	if len(page.Targets) != 1 || page.Next == "" || page.Targets[0].Version != 4 {
		t.Fatalf("first page: %+v", page)
	}
	first := page.Targets[0].Schema
	after := page.Next
	page.Next = ""
	get("/targets?limit=1&after="+after, 200, &page)
	if len(page.Targets) != 1 || page.Next != "" || page.Targets[0].Schema == first {
		t.Fatalf("second page: %+v", page)
	}
	get("/targets?state=failed,blocked&kind=schema", 200, &page)
	if len(page.Targets) != 0 || page.Targets == nil {
		t.Fatalf("failed targets: %+v", page)
	}
	var runs struct {
		Runs []migrate.RunStatus `json:"runs"`
	}
	get("/runs", 200, &runs)
	if len(runs.Runs) != 1 || runs.Runs[0].Opts.Actor != "alice" {
		t.Fatalf("runs: %+v", runs)
	}
	var plan migrate.Plan
	get("/plan", 200, &plan)
	if plan.Head != 4 || plan.AtHead != 2 || len(plan.Targets) != 0 {
		t.Fatalf("plan: %+v", plan)
	}
	var v struct {
		Version int `json:"version"`
		Head    int `json:"head"`
	}
	get("/tenants/"+acme.ID+"/version", 200, &v)
	if v.Version != 4 || v.Head != 4 {
		t.Fatalf("version by id: %+v", v)
	}
	get("/tenants/beta/version", 200, &v)
	if v.Version != 4 {
		t.Fatalf("version by slug: %+v", v)
	}

	// Hostile and wrong input: a problem with a stable code, never internal text.
	for path, status := range map[string]int{
		"/tenants/nobody/version":                                    404,
		"/tenants/" + strings.Repeat("a", 100) + "/version":          404,
		"/targets?state=" + url.QueryEscape("done';DROP TABLE x;--"): 422,
		"/targets?kind=everything":                                   422,
		"/targets?limit=0":                                           422,
		"/targets?limit=abc":                                         422,
		"/targets?after=no-slashes":                                  422,
		"/targets?after=" + strings.Repeat("x/", 200):                422,
		"/runs?limit=-1":                                             422,
		"/nope":                                                      404,
	} {
		var p struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
		}
		get(path, status, &p)
		if p.Code == "" || strings.Contains(p.Detail, "SQLSTATE") || strings.Contains(p.Detail, "DROP") {
			t.Errorf("GET %s: problem %+v", path, p)
		}
	}
	res, err := http.Post(srv.URL+"/admin/v1/migrations/", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed && res.StatusCode != http.StatusNotFound {
		t.Fatalf("POST: %d", res.StatusCode)
	}
}
