package notes_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/notes"
	"github.com/tenantry/tenantry/resolve"
	"github.com/tenantry/tenantry/tenant"
	"github.com/tenantry/tenantry/tenantrytest"
)

type testBundle struct {
	dp      *tenantrytest.DataPlane
	handler http.Handler
	tenants map[tenant.Model]*tenant.Tenant
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	dp := tenantrytest.NewDataPlane(t, &tenantrytest.DataPlaneConfig{DDL: notes.DDL()})
	res, err := resolve.New(dp.Cache, &resolve.Config{Strategies: []resolve.Strategy{
		resolve.Header("", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}), // httptest's RemoteAddr
	}})
	if err != nil {
		t.Fatal(err)
	}
	api, err := notes.New(dp.Router, &notes.Config{Logger: slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		t.Fatal(err)
	}
	b := &testBundle{dp: dp, handler: res.Middleware(api), tenants: map[tenant.Model]*tenant.Tenant{}}
	for _, m := range tenant.Models {
		b.tenants[m] = dp.Tenant("notes", m, "")
	}
	return b
}

// tlog writes log records to the test's log.
type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (b *testBundle) do(t *testing.T, tn *tenant.Tenant, method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if tn != nil {
		req.Header.Set("X-Tenant-ID", tn.Slug)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	b.handler.ServeHTTP(w, req)
	return w
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %q: %v", w.Body.String(), err)
	}
	return v
}

type page struct {
	Notes []notes.Note `json:"notes"`
	Next  string       `json:"next"`
}

type problemBody struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

func TestCRUD(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for model, tn := range b.tenants {
		t.Run(string(model), func(t *testing.T) {
			t.Parallel()
			w := b.do(t, tn, "POST", "/api/v1/notes", `{"title":"first","body":"hello\nworld"}`)
			if w.Code != http.StatusCreated {
				t.Fatalf("create: %d %s", w.Code, w.Body)
			}
			n := decode[notes.Note](t, w)
			if w.Header().Get("Location") != "/api/v1/notes/"+n.ID || n.Version != 1 || n.Body != "hello\nworld" {
				t.Fatalf("created %+v, Location %q", n, w.Header().Get("Location"))
			}
			for i := range 4 {
				if w := b.do(t, tn, "POST", "/api/v1/notes", `{"title":"n`+string(rune('a'+i))+`"}`); w.Code != http.StatusCreated {
					t.Fatalf("create: %d %s", w.Code, w.Body)
				}
			}

			w = b.do(t, tn, "GET", "/api/v1/notes/"+n.ID, "")
			if got := decode[notes.Note](t, w); w.Code != 200 || got.Title != "first" {
				t.Fatalf("get: %d %+v", w.Code, got)
			}

			// Pages of 2 in creation order.
			var titles []string
			next := ""
			for range 5 {
				path := "/api/v1/notes?limit=2"
				if next != "" {
					path += "&after=" + next
				}
				w = b.do(t, tn, "GET", path, "")
				if w.Code != 200 {
					t.Fatalf("list: %d %s", w.Code, w.Body)
				}
				p := decode[page](t, w)
				for _, n := range p.Notes {
					titles = append(titles, n.Title)
				}
				if next = p.Next; next == "" {
					break
				}
			}
			if strings.Join(titles, ",") != "first,na,nb,nc,nd" {
				t.Fatalf("listed %v", titles)
			}

			w = b.do(t, tn, "PUT", "/api/v1/notes/"+n.ID, `{"title":"changed","version":1}`)
			if got := decode[notes.Note](t, w); w.Code != 200 || got.Title != "changed" || got.Version != 2 || got.Body != "" {
				t.Fatalf("update: %d %+v", w.Code, got)
			}
			w = b.do(t, tn, "PUT", "/api/v1/notes/"+n.ID, `{"title":"stale","version":1}`)
			if p := decode[problemBody](t, w); w.Code != http.StatusConflict || p.Code != "version_conflict" {
				t.Fatalf("stale update: %d %+v", w.Code, p)
			}
			if w = b.do(t, tn, "DELETE", "/api/v1/notes/"+n.ID, ""); w.Code != http.StatusNoContent {
				t.Fatalf("delete: %d %s", w.Code, w.Body)
			}
			for _, method := range []string{"GET", "DELETE"} {
				if w = b.do(t, tn, method, "/api/v1/notes/"+n.ID, ""); w.Code != http.StatusNotFound {
					t.Fatalf("%s after delete: %d %s", method, w.Code, w.Body)
				}
			}
		})
	}
}

// TestOtherTenantsNotes checks, for every pair of models, that a note of
// one tenant is invisible to another by ID, by list and by write.
func TestOtherTenantsNotes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := map[tenant.Model]string{}
	for model, tn := range b.tenants {
		w := b.do(t, tn, "POST", "/api/v1/notes", `{"title":"owned by `+tn.Slug+`"}`)
		if w.Code != http.StatusCreated {
			t.Fatalf("create: %d %s", w.Code, w.Body)
		}
		ids[model] = decode[notes.Note](t, w).ID
	}
	for reader, tn := range b.tenants {
		w := b.do(t, tn, "GET", "/api/v1/notes?limit=100", "")
		for _, n := range decode[page](t, w).Notes {
			if n.Title != "owned by "+tn.Slug {
				t.Errorf("%s lists %q", tn.Slug, n.Title)
			}
		}
		for owner, id := range ids {
			if owner == reader {
				continue
			}
			for _, req := range [][2]string{{"GET", ""}, {"PUT", `{"title":"stolen"}`}, {"DELETE", ""}} {
				if w := b.do(t, tn, req[0], "/api/v1/notes/"+id, req[1]); w.Code != http.StatusNotFound {
					t.Errorf("%s %s of %s's note: %d", tn.Slug, req[0], owner, w.Code)
				}
			}
		}
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tn := b.tenants[tenant.ModelShared]
	long := strings.Repeat("x", notes.MaxTitleLen+1)
	for _, tt := range []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		code                     string
	}{
		{"NoTitle", "POST", "/api/v1/notes", `{"body":"x"}`, nil, 422, "invalid_note"},
		{"EmptyTitle", "POST", "/api/v1/notes", `{"title":""}`, nil, 422, "invalid_note"},
		{"LongTitle", "POST", "/api/v1/notes", `{"title":"` + long + `"}`, nil, 422, "invalid_note"},
		{"ControlInTitle", "POST", "/api/v1/notes", `{"title":"a\u0000b"}`, nil, 422, "invalid_note"},
		{"LongBody", "POST", "/api/v1/notes", `{"title":"t","body":"` + strings.Repeat("b", notes.MaxBodyLen+1) + `"}`, nil, 422, "invalid_note"},
		{"VersionOnCreate", "POST", "/api/v1/notes", `{"title":"t","version":1}`, nil, 422, "invalid_note"},
		{"NotJSON", "POST", "/api/v1/notes", `title=x`, nil, 400, "invalid_json"},
		{"UnknownField", "POST", "/api/v1/notes", `{"title":"t","tenant_id":"x"}`, nil, 400, "invalid_json"},
		{"TrailingData", "POST", "/api/v1/notes", `{"title":"t"}{}`, nil, 400, "invalid_json"},
		{"WrongType", "POST", "/api/v1/notes", `{"title":1}`, nil, 400, "invalid_json"},
		{"MediaType", "POST", "/api/v1/notes", `{"title":"t"}`, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
		{"TooLarge", "POST", "/api/v1/notes", `{"title":"t","body":"` + strings.Repeat("b", 70<<10) + `"}`, nil, 413, "body_too_large"},
		{"BadID", "GET", "/api/v1/notes/1;drop", "", nil, 400, "invalid_note_id"},
		{"UpperCaseID", "GET", "/api/v1/notes/0190A9F2-0000-7000-8000-000000000000", "", nil, 400, "invalid_note_id"},
		{"UnknownID", "GET", "/api/v1/notes/0190a9f2-0000-7000-8000-000000000000", "", nil, 404, "note_not_found"},
		{"BadLimit", "GET", "/api/v1/notes?limit=0", "", nil, 400, "invalid_query"},
		{"HugeLimit", "GET", "/api/v1/notes?limit=1000", "", nil, 400, "invalid_query"},
		{"BadAfter", "GET", "/api/v1/notes?after='or'1'='1", "", nil, 400, "invalid_query"},
		{"Method", "PATCH", "/api/v1/notes", "", nil, 405, "method_not_allowed"},
		{"NoRoute", "GET", "/api/v1/other", "", nil, 404, "not_found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			before := b.dp.Queries.Count()
			w := b.do(t, tn, tt.method, tt.path, tt.body, tt.hdr...)
			p := decode[problemBody](t, w)
			if w.Code != tt.status || p.Code != tt.code || p.Status != tt.status {
				t.Fatalf("%d %+v, want %d %s", w.Code, p, tt.status, tt.code)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q", ct)
			}
			_ = before
		})
	}
}

func TestNoResolution(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Mounted without the resolution middleware: a 500 that says nothing,
	// and no SQL.
	h := notes.Handler(b.dp.Router)
	before := b.dp.Queries.Count()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/api/v1/notes", nil))
	if p := decode[problemBody](t, w); w.Code != 500 || p.Code != "internal_error" || p.Detail != "" {
		t.Fatalf("%d %+v", w.Code, p)
	}
	if n := b.dp.Queries.Count() - before; n != 0 {
		t.Fatalf("%d queries without a tenant", n)
	}
}
