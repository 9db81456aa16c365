package blob_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/tenantry/tenantry/blob"
	"github.com/tenantry/tenantry/blob/local"
	"github.com/tenantry/tenantry/tenant"
)

// A local store served over HTTP. The tenant comes from the context, as the
// resolution middleware sets it; clients name keys below their own prefix.
func Example() {
	dir, _ := os.MkdirTemp("", "blob-example-")
	defer os.RemoveAll(dir)
	store, _ := local.New(dir, nil)
	defer store.Close()
	h, _ := blob.NewHandler(store, nil)

	acme := &tenant.Tenant{ID: "4d2c7a8e-1b3f-4c5d-9e6f-0a1b2c3d4e5f", Slug: "acme", State: tenant.StateActive}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(tenant.NewContext(r.Context(), acme, "example")))
	}))
	defer srv.Close()

	req, _ := http.NewRequest("PUT", srv.URL+"/api/v1/files/notes/hello.txt", strings.NewReader("hello"))
	resp, _ := http.DefaultClient.Do(req)
	resp.Body.Close()
	fmt.Println("PUT", resp.StatusCode)

	resp, _ = http.Get(srv.URL + "/api/v1/files/notes/hello.txt")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println("GET", resp.StatusCode, string(body))

	resp, _ = http.Get(srv.URL + "/api/v1/files/..%2Fother-tenant%2Fsecret")
	resp.Body.Close()
	fmt.Println("GET ../other-tenant/secret", resp.StatusCode, resp.Header.Get("Content-Type"))

	// The same object through the Store interface.
	info, _ := store.Stat(tenant.NewContext(context.Background(), acme, "example"), "notes/hello.txt")
	fmt.Println(info.Key, info.Size)
	// Output:
	// PUT 201
	// GET 200 hello
	// GET ../other-tenant/secret 400 application/problem+json
	// notes/hello.txt 5
}

func ExampleValidateKey() {
	for _, k := range []string{"photos/2024/cat.jpg", "../etc/passwd", "invoice\u202efdp.exe", "a//b"} {
		fmt.Printf("%q: %v\n", k, blob.ValidateKey(k))
	}
	// Output:
	// "photos/2024/cat.jpg": <nil>
	// "../etc/passwd": invalid object key: "." or ".." path segment
	// "invoice\u202efdp.exe": invalid object key: contains an invisible or bidirectional formatting character
	// "a//b": invalid object key: empty path segment
}
