package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tenantry/tenantry/blob"
	"github.com/tenantry/tenantry/tenant"
)

// Harness describes a store under test.
type Harness struct {
	// NewStore returns a store for one test. Stores may be shared between
	// tests: every test works in tenants of its own.
	NewStore func(t *testing.T) blob.Store
	// RawNames, if set, lists every object name the backend holds for the
	// store returned by NewStore (full names, with the tenant prefix), read
	// around Tenantry (the directory, or the bucket with admin credentials).
	// The suite uses it to prove that refused or cross-tenant writes left
	// nothing behind.
	RawNames func(t *testing.T, s blob.Store) []string
	// NoKeyAndChild says the backend cannot hold the objects "a" and "a/b"
	// at once (S3 can; a POSIX-backed gateway such as versitygw cannot), so
	// the suite skips that test.
	NoKeyAndChild bool
	// LargeSize is the size of the "large object" tests, chosen to cross the
	// store's multipart threshold. Default 12 MiB.
	LargeSize int
}

// Run runs the conformance suite against h. Every subtest is parallel.
func Run(t *testing.T, h Harness) {
	if h.LargeSize == 0 {
		h.LargeSize = 12 << 20
	}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"PutGet", testPutGet},
		{"Overwrite", testOverwrite},
		{"EmptyObject", testEmpty},
		{"Missing", testMissing},
		{"KeyAndChildCoexist", testKeyAndChild},
		{"UnicodeKeys", testUnicodeKeys},
		{"List", testList},
		{"ListPages", testListPages},
		{"SizeMismatch", testSizeMismatch},
		{"FailedPutKeepsPrevious", testFailedPut},
		{"CancelledPutKeepsPrevious", testCancelledPut},
		{"LargeKnownSize", func(t *testing.T, h Harness) { testLarge(t, h, true) }},
		{"LargeUnknownSize", func(t *testing.T, h Harness) { testLarge(t, h, false) }},
		{"ConcurrentPutsSameKey", testConcurrentPuts},
		{"NoTenant", testNoTenant},
		{"ReadOnlyTenant", testReadOnly},
		{"HostileKeys", testHostileKeys},
		{"CrossTenant", testCrossTenant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, h)
		})
	}
}

func put(ctx context.Context, t *testing.T, s blob.Store, key string, data []byte) blob.Info {
	t.Helper()
	info, err := s.Put(ctx, key, bytes.NewReader(data), blob.PutOptions{Size: int64(len(data)), ContentType: "text/plain"})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

func get(ctx context.Context, t *testing.T, s blob.Store, key string) ([]byte, blob.Info) {
	t.Helper()
	obj, err := s.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer obj.Body.Close()
	data, err := io.ReadAll(obj.Body)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", key, err)
	}
	return data, obj.Info
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func testPutGet(t *testing.T, h Harness) {
	s := h.NewStore(t)
	ctx, _ := NewTenant(t, "free")
	data := []byte("hello, tenant")
	info := put(ctx, t, s, "docs/hello.txt", data)
	if info.Key != "docs/hello.txt" || info.Size != int64(len(data)) || info.ETag == "" {
		t.Fatalf("Put info = %+v", info)
	}
	got, ginfo := get(ctx, t, s, "docs/hello.txt")
	if !bytes.Equal(got, data) {
		t.Fatalf("Get = %q, want %q", got, data)
	}
	if ginfo.Size != int64(len(data)) || ginfo.ContentType != "text/plain" || ginfo.ETag != info.ETag {
		t.Fatalf("Get info = %+v, put info %+v", ginfo, info)
	}
	st, err := s.Stat(ctx, "docs/hello.txt")
	if err != nil || st.Size != int64(len(data)) || st.ContentType != "text/plain" || st.ETag != info.ETag {
		t.Fatalf("Stat = %+v, %v", st, err)
	}
	if err := s.Delete(ctx, "docs/hello.txt"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Stat(ctx, "docs/hello.txt"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat after Delete: %v, want ErrNotFound", err)
	}
	// The default content type.
	if _, err := s.Put(ctx, "raw", strings.NewReader("x"), blob.PutOptions{Size: 1}); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Stat(ctx, "raw"); st.ContentType != blob.DefaultContentType {
		t.Fatalf("default content type = %q", st.ContentType)
	}
}

func testOverwrite(t *testing.T, h Harness) {
	s := h.NewStore(t)
	ctx, _ := NewTenant(t, "free")
	put(ctx, t, s, "k", []byte("first version"))
	put(ctx, t, s, "k", []byte("second"))
	if got, _ := get(ctx, t, s, "k"); string(got) != "second" {
		t.Fatalf("after overwrite: %q", got)
	}
}

func testEmpty(t *testing.T, h Harness) {
	s := h.NewStore(t)
	ctx, _ := NewTenant(t, "free")
	put(ctx, t, s, "empty", nil)
	got, info := get(ctx, t, s, "empty")
	if len(got) != 0 || info.Size != 0 {
		t.Fatalf("empty object: %d bytes, info %+v", len(got), info)
	}
}

func testMissing(t *testing.T, h Harness) {
	s := h.NewStore(t)
	ctx, _ := NewTenant(t, "free")
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Get missing: %v", err)
	}
	if _, err := s.Stat(ctx, "no/pe"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat missing: %v", err)
	}
	if err := s.Delete(ctx, "nope"); err != nil {
		t.Errorf("Delete missing: %v", err)
	}
	page, err := s.List(ctx, blob.ListOptions{})
	if err != nil || len(page.Objects) != 0 || page.Next != "" {
		t.Errorf("List of a new tenant: %+v, %v", page, err)
	}
}

func testKeyAndChild(t *testing.T, h Harness) {
	if h.NoKeyAndChild {
		t.Skip("the backend cannot hold both \"a\" and \"a/b\"")
	}
	s := h.NewStore(t)
	ctx, _ := NewTenant(t, "free")
	put(ctx, t, s, "a", []byte("parent"))
	put(ctx, t, s, "a/b", []byte("child"))
	put(ctx, t, s, "a.dir", []byte("suffix-looking"))
	put(ctx, t, s, "a.obj/c", []byte("suffix-looking dir"))
	for k, want := range map[string]string{"a": "parent", "a/b": "child", "a.dir": "suffix-looking", "a.obj/c": "suffix-looking dir"} {
		if got, _ := get(ctx, t, s, k); string(got) != want {
			t.Errorf("Get(%q) = %q, want %q", k, got, want)
		}
	}
	if err := s.Delete(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	if got, _ := get(ctx, t, s, "a"); string(got) != "parent" {
		t.Errorf("parent after deleting child: %q", got)
	}
}

func testUnicodeKeys(t *testing.T, h Harness) {
	s := h.NewStore(t)
	ctx, _ := NewTenant(t, "free")
	keys := []string{"caf\u00e9.txt", "日本語/ファイル.txt", "emoji-\U0001F600.png", "space in name.txt", "a+b=c&d?e#f%20.txt", ".hidden", "-dash", "tenants/x/y"}
	for _, k := range keys {
		if err := blob.ValidateKey(k); err != nil {
			t.Fatalf("ValidateKey(%q): %v", k, err)
		}
		put(ctx, t, s, k, []byte(k))
	}
	for _, k := range keys {
		if got, _ := get(ctx, t, s, k); string(got) != k {
			t.Errorf("Get(%q) = %q", k, got)
		}
	}
	page, err := s.List(ctx, blob.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, o := range page.Objects {
		listed = append(listed, o.Key)
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Errorf("List = %q, want %q", listed, want)
	}
}

func keysOf(p *blob.ListPage) []string {
	var out []string
	for _, o := range p.Objects {
		out = append(out, o.Key)
	}
	return out
}

func testList(t *testing.T, h Harness) {
	s := h.NewStore(t)
	ctx, _ := NewTenant(t, "free")
	for _, k := range []string{"photos/2024/b.jpg", "photos/2024/a.jpg", "photos/2025/c.jpg", "photo.jpg", "photos-old/d.jpg", "docs/x.txt"} {
		put(ctx, t, s, k, []byte(k))
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"docs/x.txt", "photo.jpg", "photos-old/d.jpg", "photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2025/c.jpg"}},
		{"photos/", []string{"photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2025/c.jpg"}},
		{"photos/2024/", []string{"photos/2024/a.jpg", "photos/2024/b.jpg"}},
		{"photo", []string{"photo.jpg", "photos-old/d.jpg", "photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2025/c.jpg"}},
		{"photos/202", []string{"photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2025/c.jpg"}},
		{"photos/2024/a", []string{"photos/2024/a.jpg"}},
		{"nothing/", nil},
		{"zzz", nil},
	} {
		page, err := s.List(ctx, blob.ListOptions{Prefix: tc.prefix})
		if err != nil {
			t.Fatalf("List(%q): %v", tc.prefix, err)
		}
		if got := keysOf(page); !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
		for _, o := range page.Objects {
			if o.Size != int64(len(o.Key)) {
				t.Errorf("List(%q): %s size %d", tc.prefix, o.Key, o.Size)
			}
		}
	}
}

func testListPages(t *testing.T, h Harness) {
	s := h.NewStore(t)
	ctx, _ := NewTenant(t, "free")
	var want []string
	for i := range 7 {
		k := fmt.Sprintf("p/%02d", i)
		want = append(want, k)
		put(ctx, t, s, k, []byte("x"))
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		page, err := s.List(ctx, blob.ListOptions{Prefix: "p/", Limit: 3, StartAfter: after})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Objects) > 3 {
			t.Fatalf("page of %d objects with limit 3", len(page.Objects))
		}
		got = append(got, keysOf(page)...)
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged listing = %q, want %q", got, want)
	}
}

func testSizeMismatch(t *testing.T, h Harness) {
	s := h.NewStore(t)
	ctx, _ := NewTenant(t, "free")
	put(ctx, t, s, "k", []byte("original"))
	for _, tc := range []struct {
		body string
		size int64
	}{{"short", 10}, {"longer than declared", 5}} {
		_, err := s.Put(ctx, "k", strings.NewReader(tc.body), blob.PutOptions{Size: tc.size})
		if !errors.Is(err, blob.ErrSizeMismatch) {
			t.Errorf("Put %d bytes declared %d: %v, want ErrSizeMismatch", len(tc.body), tc.size, err)
		}
		if got, _ := get(ctx, t, s, "k"); string(got) != "original" {
			t.Errorf("after mismatched Put: %q", got)
		}
	}
}

// failingReader yields n bytes, then fails.
type failingReader struct{ n int }

var errInjected = errors.New("injected read failure")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errInjected
	}
	m := min(len(p), r.n)
	clear(p[:m])
	r.n -= m
	return m, nil
}

func testFailedPut(t *testing.T, h Harness) {
	s := h.NewStore(t)
	ctx, _ := NewTenant(t, "free")
	put(ctx, t, s, "k", []byte("original"))
	for _, n := range []int{0, 1000, h.LargeSize} {
		_, err := s.Put(ctx, "k", &failingReader{n: n}, blob.PutOptions{Size: -1})
		if !errors.Is(err, errInjected) {
			t.Errorf("Put failing after %d bytes: %v, want the reader's error", n, err)
		}
		if got, _ := get(ctx, t, s, "k"); string(got) != "original" {
			t.Errorf("after failed Put: %d bytes", len(got))
		}
	}
	if _, err := s.Stat(ctx, "never"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "never", &failingReader{n: 10}, blob.PutOptions{Size: 100}); err == nil {
		t.Fatal("failing Put succeeded")
	}
	if _, err := s.Stat(ctx, "never"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("failed Put of a new key left an object: %v", err)
	}
	checkOnlyKeys(ctx, t, h, s, "k")
}

// cancellingReader cancels the request's context after n bytes.
type cancellingReader struct {
	n      int
	cancel context.CancelFunc
}

func (r *cancellingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		r.cancel()
		return 0, context.Canceled
	}
	m := min(len(p), r.n)
	clear(p[:m])
	r.n -= m
	return m, nil
}

func testCancelledPut(t *testing.T, h Harness) {
	s := h.NewStore(t)
	ctx, _ := NewTenant(t, "free")
	put(ctx, t, s, "k", []byte("original"))
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, err := s.Put(cctx, "k", &cancellingReader{n: 100 << 10, cancel: cancel}, blob.PutOptions{Size: -1}); err == nil {
		t.Fatal("cancelled Put succeeded")
	}
	if got, _ := get(ctx, t, s, "k"); string(got) != "original" {
		t.Errorf("after cancelled Put: %d bytes", len(got))
	}
}

func testLarge(t *testing.T, h Harness, known bool) {
	s := h.NewStore(t)
	ctx, _ := NewTenant(t, "free")
	data := randomBytes(h.LargeSize + 12345)
	size := int64(-1)
	if known {
		size = int64(len(data))
	}
	// A reader that hands out odd-sized chunks, like a network body.
	r := io.MultiReader(bytes.NewReader(data[:7]), bytes.NewReader(data[7:1<<20+3]), bytes.NewReader(data[1<<20+3:]))
	info, err := s.Put(ctx, "big.bin", r, blob.PutOptions{Size: size})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if info.Size != int64(len(data)) {
		t.Fatalf("Put size %d, want %d", info.Size, len(data))
	}
	got, ginfo := get(ctx, t, s, "big.bin")
	if !bytes.Equal(got, data) {
		t.Fatalf("large object differs (%d vs %d bytes)", len(got), len(data))
	}
	if ginfo.Size != int64(len(data)) {
		t.Fatalf("Get size %d", ginfo.Size)
	}
}

func testConcurrentPuts(t *testing.T, h Harness) {
	s := h.NewStore(t)
	ctx, _ := NewTenant(t, "free")
	const n = 6
	versions := make([][]byte, n)
	for i := range versions {
		versions[i] = bytes.Repeat([]byte{byte('a' + i)}, 256<<10)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := s.Put(ctx, "race", bytes.NewReader(versions[i]), blob.PutOptions{Size: int64(len(versions[i]))}); err != nil {
				t.Errorf("Put %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	got, _ := get(ctx, t, s, "race")
	if !slices.ContainsFunc(versions, func(v []byte) bool { return bytes.Equal(v, got) }) {
		t.Fatalf("object after concurrent Puts is none of the versions (%d bytes)", len(got))
	}
	checkOnlyKeys(ctx, t, h, s, "race")
}

func testNoTenant(t *testing.T, h Harness) {
	s := h.NewStore(t)
	for name, ctx := range map[string]context.Context{
		"none":           context.Background(),
		"without tenant": tenant.WithoutTenant(context.Background()),
		"path in id":     WithTenant(context.Background(), &tenant.Tenant{ID: "../../etc", State: tenant.StateActive}),
		"upper-case id":  WithTenant(context.Background(), &tenant.Tenant{ID: strings.ToUpper(NewUUID()), State: tenant.StateActive}),
		"empty id":       WithTenant(context.Background(), &tenant.Tenant{State: tenant.StateActive}),
	} {
		if _, err := s.Put(ctx, "k", strings.NewReader("x"), blob.PutOptions{Size: 1}); !errors.Is(err, blob.ErrNoTenant) {
			t.Errorf("%s: Put: %v", name, err)
		}
		if _, err := s.Get(ctx, "k"); !errors.Is(err, blob.ErrNoTenant) {
			t.Errorf("%s: Get: %v", name, err)
		}
		if _, err := s.Stat(ctx, "k"); !errors.Is(err, blob.ErrNoTenant) {
			t.Errorf("%s: Stat: %v", name, err)
		}
		if err := s.Delete(ctx, "k"); !errors.Is(err, blob.ErrNoTenant) {
			t.Errorf("%s: Delete: %v", name, err)
		}
		if _, err := s.List(ctx, blob.ListOptions{}); !errors.Is(err, blob.ErrNoTenant) {
			t.Errorf("%s: List: %v", name, err)
		}
	}
}

func testReadOnly(t *testing.T, h Harness) {
	s := h.NewStore(t)
	ctx, tn := NewTenant(t, "free")
	put(ctx, t, s, "k", []byte("kept"))
	ro := *tn
	ro.State = tenant.StateReadOnly
	rctx := WithTenant(context.Background(), &ro)
	if _, err := s.Put(rctx, "k", strings.NewReader("x"), blob.PutOptions{Size: 1}); !errors.Is(err, blob.ErrReadOnly) {
		t.Errorf("Put: %v", err)
	}
	if err := s.Delete(rctx, "k"); !errors.Is(err, blob.ErrReadOnly) {
		t.Errorf("Delete: %v", err)
	}
	if got, _ := get(rctx, t, s, "k"); string(got) != "kept" {
		t.Errorf("read-only tenant cannot read: %q", got)
	}
}

func testHostileKeys(t *testing.T, h Harness) {
	s := h.NewStore(t)
	ctx, tn := NewTenant(t, "free")
	// A victim object in another tenant, which the hostile keys aim at.
	vctx, victim := NewTenant(t, "free")
	put(vctx, t, s, "secret", []byte("victim's"))
	for _, hk := range HostileKeys() {
		t.Run(hk.Name, func(t *testing.T) {
			t.Parallel()
			key := strings.ReplaceAll(hk.Key, "00000000-0000-4000-8000-000000000000", victim.ID)
			if err := blob.ValidateKey(key); !errors.Is(err, blob.ErrInvalidKey) {
				t.Fatalf("ValidateKey(%q) = %v", key, err)
			}
			if _, err := s.Put(ctx, key, strings.NewReader("pwned"), blob.PutOptions{Size: 5}); !errors.Is(err, blob.ErrInvalidKey) {
				t.Errorf("Put(%q): %v", key, err)
			}
			if _, err := s.Get(ctx, key); !errors.Is(err, blob.ErrInvalidKey) {
				t.Errorf("Get(%q): %v", key, err)
			}
			if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrInvalidKey) {
				t.Errorf("Stat(%q): %v", key, err)
			}
			if err := s.Delete(ctx, key); !errors.Is(err, blob.ErrInvalidKey) {
				t.Errorf("Delete(%q): %v", key, err)
			}
			if blob.ValidatePrefix(key) != nil {
				if _, err := s.List(ctx, blob.ListOptions{Prefix: key}); !errors.Is(err, blob.ErrInvalidKey) {
					t.Errorf("List(prefix %q): %v", key, err)
				}
			}
		})
	}
	t.Cleanup(func() {
		if got, _ := get(vctx, t, s, "secret"); string(got) != "victim's" {
			t.Errorf("victim's object changed: %q", got)
		}
		checkOnlyKeys(ctx, t, h, s)
		_ = tn
	})
}

// checkOnlyKeys checks that the tenant of ctx holds exactly keys, through
// List and, when the harness can, in the raw backend.
func checkOnlyKeys(ctx context.Context, t *testing.T, h Harness, s blob.Store, keys ...string) {
	t.Helper()
	page, err := s.List(ctx, blob.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(page); !slices.Equal(got, keys) {
		t.Errorf("tenant holds %q, want %q", got, keys)
	}
	if h.RawNames == nil {
		return
	}
	tn, _ := tenant.FromContext(ctx)
	prefix := blob.TenantsDir + "/" + tn.ID + "/"
	var raw []string
	for _, n := range h.RawNames(t, s) {
		if strings.HasPrefix(n, prefix) {
			raw = append(raw, strings.TrimPrefix(n, prefix))
		}
		if !strings.HasPrefix(n, blob.TenantsDir+"/") {
			t.Errorf("backend holds %q, outside every tenant's prefix", n)
		}
	}
	slices.Sort(raw)
	if !slices.Equal(raw, keys) {
		t.Errorf("backend holds %q under the tenant's prefix, want %q", raw, keys)
	}
}
