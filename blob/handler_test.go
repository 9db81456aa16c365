package blob_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tenantry/tenantry/blob"
	"github.com/tenantry/tenantry/blob/blobtest"
	"github.com/tenantry/tenantry/blob/fair"
	"github.com/tenantry/tenantry/blob/local"
	"github.com/tenantry/tenantry/internal/problem"
	"github.com/tenantry/tenantry/tenant"
)

// testServer serves a Handler behind a stand-in for the resolution
// middleware: the tenant is looked up by the X-Test-Tenant header among the
// tenants the test registered (the real middleware resolves it from the
// host, a token, ...). The handler itself never sees that header.
type testServer struct {
	*httptest.Server
	mu      sync.Mutex
	tenants map[string]*tenant.Tenant
}

func newServer(t *testing.T, store blob.Store, cfg *blob.HandlerConfig) *testServer {
	t.Helper()
	h, err := blob.NewHandler(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{tenants: map[string]*tenant.Tenant{}}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.mu.Lock()
		tn := ts.tenants[r.Header.Get("X-Test-Tenant")]
		ts.mu.Unlock()
		ctx := r.Context()
		if tn != nil {
			ctx = tenant.NewContext(ctx, tn, "test")
		}
		h.ServeHTTP(w, r.WithContext(ctx))
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *testServer) tenant(t *testing.T, name, tier string) *tenant.Tenant {
	_, tn := blobtest.NewTenant(t, tier)
	ts.mu.Lock()
	ts.tenants[name] = tn
	ts.mu.Unlock()
	return tn
}

type response struct {
	code   int
	header http.Header
	body   string
}

func (r response) problem(t *testing.T) problem.Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("status %d with Content-Type %q, body %q", r.code, ct, r.body)
	}
	var p problem.Problem
	if err := json.Unmarshal([]byte(r.body), &p); err != nil {
		t.Fatal(err)
	}
	if p.Status != r.code || p.Type == "" || p.Title == "" || p.Code == "" {
		t.Fatalf("malformed problem %+v", p)
	}
	return p
}

// do sends a request with a raw (already escaped) path.
func (ts *testServer) do(t *testing.T, who, method, rawPath string, body io.Reader, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL, body)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = rawPath // sent byte for byte, no cleaning
	req.Header.Set("X-Test-Tenant", who)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if s, ok := body.(*strings.Reader); ok {
		req.ContentLength = int64(s.Len())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

// escapeAll percent-encodes every byte that is not unreserved, so that the
// server decodes exactly key.
func escapeAll(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func localStore(t *testing.T) blob.Store {
	s, err := local.New(t.TempDir(), &local.Config{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

const base = "/api/v1/files/"

func TestHandlerRoundTrip(t *testing.T) {
	t.Parallel()
	ts := newServer(t, localStore(t), nil)
	ts.tenant(t, "acme", "free")

	r := ts.do(t, "acme", "PUT", base+"docs/hello.txt", strings.NewReader("hello"), "Content-Type", "text/plain")
	if r.code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", r.code, r.body)
	}
	var info blob.Info
	json.Unmarshal([]byte(r.body), &info)
	if info.Key != "docs/hello.txt" || info.Size != 5 || info.ETag == "" || r.header.Get("ETag") != info.ETag {
		t.Fatalf("PUT info %+v, ETag header %q", info, r.header.Get("ETag"))
	}
	r = ts.do(t, "acme", "GET", base+"docs/hello.txt", nil)
	if r.code != 200 || r.body != "hello" || r.header.Get("Content-Type") != "text/plain" || r.header.Get("Content-Length") != "5" || r.header.Get("ETag") != info.ETag {
		t.Fatalf("GET: %d %q %v", r.code, r.body, r.header)
	}
	if r := ts.do(t, "acme", "GET", base+"docs/hello.txt", nil, "If-None-Match", info.ETag); r.code != http.StatusNotModified {
		t.Errorf("conditional GET: %d", r.code)
	}
	if r := ts.do(t, "acme", "HEAD", base+"docs/hello.txt", nil); r.code != 200 || r.header.Get("Content-Length") != "5" {
		t.Errorf("HEAD: %d %v", r.code, r.header)
	}
	// Percent-encoded keys decode once.
	if r := ts.do(t, "acme", "PUT", base+escapeAll("caf\u00e9 menu.txt"), strings.NewReader("x")); r.code != http.StatusCreated {
		t.Fatalf("PUT encoded key: %d %s", r.code, r.body)
	}
	r = ts.do(t, "acme", "GET", "/api/v1/files?prefix=docs/", nil)
	var page blob.ListPage
	if err := json.Unmarshal([]byte(r.body), &page); err != nil || r.code != 200 || len(page.Objects) != 1 || page.Objects[0].Key != "docs/hello.txt" {
		t.Fatalf("list: %d %s", r.code, r.body)
	}
	r = ts.do(t, "acme", "GET", "/api/v1/files/?limit=1", nil)
	json.Unmarshal([]byte(r.body), &page)
	if len(page.Objects) != 1 || page.Next == "" {
		t.Fatalf("paged list: %s", r.body)
	}
	if r := ts.do(t, "acme", "DELETE", base+"docs/hello.txt", nil); r.code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", r.code)
	}
	r = ts.do(t, "acme", "GET", base+"docs/hello.txt", nil)
	if p := r.problem(t); r.code != 404 || p.Code != "object_not_found" {
		t.Fatalf("GET deleted: %d %+v", r.code, p)
	}
}

// TestHandlerStreaming uploads without Content-Length (chunked) and reads
// back, through a pipe, more than any buffer in the path.
func TestHandlerStreaming(t *testing.T) {
	t.Parallel()
	ts := newServer(t, localStore(t), nil)
	ts.tenant(t, "acme", "free")
	pr, pw := io.Pipe()
	const n = 16 << 20
	go func() {
		chunk := strings.Repeat("0123456789abcdef", 4096)
		for written := 0; written < n; written += len(chunk) {
			pw.Write([]byte(chunk))
		}
		pw.Close()
	}()
	r := ts.do(t, "acme", "PUT", base+"big.bin", pr)
	if r.code != http.StatusCreated {
		t.Fatalf("chunked PUT: %d %s", r.code, r.body)
	}
	req, _ := http.NewRequest("GET", ts.URL+base+"big.bin", nil)
	req.Header.Set("X-Test-Tenant", "acme")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.Copy(io.Discard, resp.Body)
	if got != n || resp.ContentLength != n {
		t.Fatalf("streamed back %d bytes (Content-Length %d), want %d", got, resp.ContentLength, n)
	}
}

func TestHandlerHostileKeys(t *testing.T) {
	t.Parallel()
	ts := newServer(t, localStore(t), nil)
	ts.tenant(t, "acme", "free")
	for _, hk := range blobtest.HostileKeys() {
		if hk.Key == "" {
			continue // that is the listing endpoint
		}
		t.Run(hk.Name, func(t *testing.T) {
			t.Parallel()
			for _, path := range []string{base + escapeAll(hk.Key), base + hk.Key} {
				if strings.ContainsAny(path, "\x00\r\n\t \x1b\x7f\\") || !isASCII(path) {
					if path != base+escapeAll(hk.Key) {
						continue // not sendable raw; the escaped form covers it
					}
				}
				for _, method := range []string{"PUT", "GET", "HEAD", "DELETE"} {
					r := ts.do(t, "acme", method, path, strings.NewReader("pwned"))
					if r.code != http.StatusBadRequest {
						t.Errorf("%s %q: %d %s", method, path, r.code, r.body)
						continue
					}
					if method != "HEAD" {
						if p := r.problem(t); p.Code != "invalid_key" {
							t.Errorf("%s %q: code %s", method, path, p.Code)
						}
					}
				}
			}
		})
	}
	t.Cleanup(func() {
		r := ts.do(t, "acme", "GET", "/api/v1/files", nil)
		if !strings.Contains(r.body, `"objects":[]`) {
			t.Errorf("hostile keys left objects: %s", r.body)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func TestHandlerCrossTenant(t *testing.T) {
	t.Parallel()
	ts := newServer(t, localStore(t), nil)
	a := ts.tenant(t, "acme", "free")
	ts.tenant(t, "globex", "free")
	if r := ts.do(t, "acme", "PUT", base+"report.pdf", strings.NewReader("acme's")); r.code != http.StatusCreated {
		t.Fatal(r.body)
	}
	for _, path := range []string{base + "report.pdf", base + "tenants/" + a.ID + "/report.pdf", base + "..%2F" + a.ID + "%2Freport.pdf", base + "%2E%2E/" + a.ID + "/report.pdf"} {
		if r := ts.do(t, "globex", "GET", path, nil); r.code != 404 && r.code != 400 {
			t.Errorf("globex GET %s: %d %s", path, r.code, r.body)
		}
		ts.do(t, "globex", "DELETE", path, nil)
	}
	for _, q := range []string{"", "?prefix=report", "?prefix=tenants/", "?prefix=tenants/" + a.ID + "/"} {
		r := ts.do(t, "globex", "GET", "/api/v1/files"+q, nil)
		if r.code != 200 || !strings.Contains(r.body, `"objects":[]`) {
			t.Errorf("globex list %q: %d %s", q, r.code, r.body)
		}
	}
	if r := ts.do(t, "globex", "PUT", base+"report.pdf", strings.NewReader("globex's")); r.code != http.StatusCreated {
		t.Fatal(r.body)
	}
	if r := ts.do(t, "acme", "GET", base+"report.pdf", nil); r.body != "acme's" {
		t.Errorf("acme's object after globex's requests: %q", r.body)
	}
}

func TestHandlerErrors(t *testing.T) {
	t.Parallel()
	sched, _ := fair.NewScheduler(nil)
	fs, _ := fair.New(localStore(t), &fair.Config{Scheduler: sched, InFlight: 1})
	ts := newServer(t, fs, &blob.HandlerConfig{MaxUploadSize: 1000})
	ts.tenant(t, "acme", "free")
	ro := ts.tenant(t, "frozen", "free")
	ro.State = tenant.StateReadOnly

	check := func(r response, status int, code string) problem.Problem {
		t.Helper()
		if r.code != status {
			t.Fatalf("status %d, want %d: %s", r.code, status, r.body)
		}
		p := r.problem(t)
		if p.Code != code {
			t.Fatalf("code %s, want %s", p.Code, code)
		}
		return p
	}
	p := check(ts.do(t, "acme", "PUT", base+"big", strings.NewReader(strings.Repeat("x", 2000))), 413, "object_too_large")
	if !strings.Contains(p.Detail, "1000") {
		t.Errorf("413 detail does not name the limit: %q", p.Detail)
	}
	pr, pw := io.Pipe()
	go func() { pw.Write([]byte(strings.Repeat("x", 3000))); pw.Close() }()
	check(ts.do(t, "acme", "PUT", base+"big", pr), 413, "object_too_large")
	check(ts.do(t, "frozen", "PUT", base+"k", strings.NewReader("x")), 403, "tenant_read_only")
	check(ts.do(t, "nobody", "GET", base+"k", nil), 500, problem.CodeInternal)
	r := ts.do(t, "acme", "PATCH", base+"k", nil)
	check(r, 405, "method_not_allowed")
	if r.header.Get("Allow") == "" {
		t.Error("405 without Allow")
	}
	check(ts.do(t, "acme", "POST", base+"k?presign=get", nil), 501, "not_supported")
	check(ts.do(t, "acme", "GET", "/api/v1/files?limit=x", nil), 400, "invalid_parameter")
	check(ts.do(t, "acme", "GET", "/api/v1/filesystem", nil), 404, "not_found")

	// A slow upload holds acme's only in-flight slot: the next request is
	// refused with 429 and Retry-After, while another tenant is served.
	slowR, slowW := io.Pipe()
	done := make(chan response)
	go func() { done <- ts.do(t, "acme", "PUT", base+"slow", slowR) }()
	slowW.Write([]byte("first bytes"))
	var busy response
	for range 1000 {
		busy = ts.do(t, "acme", "GET", "/api/v1/files", nil)
		if busy.code == http.StatusTooManyRequests {
			break
		}
	}
	check(busy, 429, "too_many_requests")
	if busy.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	ts.tenant(t, "globex", "free")
	if r := ts.do(t, "globex", "GET", "/api/v1/files", nil); r.code != 200 {
		t.Errorf("other tenant during acme's flood: %d", r.code)
	}
	slowW.Close()
	if r := <-done; r.code != http.StatusCreated {
		t.Fatalf("slow PUT: %d %s", r.code, r.body)
	}
}

func TestNewHandlerConfig(t *testing.T) {
	t.Parallel()
	if _, err := blob.NewHandler(nil, nil); err == nil {
		t.Error("nil store accepted")
	}
	if _, err := blob.NewHandler(localStore(t), &blob.HandlerConfig{BasePath: "files"}); err == nil {
		t.Error("relative BasePath accepted")
	}
}
