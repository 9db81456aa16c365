package local_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tenantry/tenantry/blob"
	"github.com/tenantry/tenantry/blob/blobtest"
	"github.com/tenantry/tenantry/blob/local"
)

// dirs remembers each store's directory for rawNames.
var dirs sync.Map // blob.Store -> string

func newStore(t *testing.T) (*local.Store, string) {
	dir := t.TempDir()
	s, err := local.New(dir, &local.Config{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

// rawNames lists object names in dir, decoding the on-disk layout
// independently of the store's own code.
func rawNames(t *testing.T, dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		segs := strings.Split(filepath.ToSlash(rel), "/")
		for i := 2; i < len(segs); i++ { // tenants/<id>/ are plain directories
			segs[i] = strings.TrimSuffix(strings.TrimSuffix(segs[i], ".dir"), ".obj")
		}
		out = append(out, strings.Join(segs, "/"))
		return nil
	})
	return out
}

func TestConformance(t *testing.T) {
	t.Parallel()
	blobtest.Run(t, blobtest.Harness{
		NewStore: func(t *testing.T) blob.Store {
			s, dir := newStore(t)
			dirs.Store(s, dir)
			return s
		},
		RawNames: func(t *testing.T, s blob.Store) []string {
			dir, _ := dirs.Load(s)
			return rawNames(t, dir.(string))
		},
	})
}

// TestSymlinkEscape plants symlinks inside a tenant's directory that point
// outside it (as an operator mistake or a compromised neighbour might) and
// checks that no request follows them.
func TestSymlinkEscape(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	ctx, tn := blobtest.NewTenant(t, "free")
	if _, err := s.Put(ctx, "seed", strings.NewReader("x"), blob.PutOptions{Size: 1}); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.obj")
	if err := os.WriteFile(secret, []byte("TNTBLOB1{}"+strings.Repeat("\x00", 600)), 0o600); err != nil {
		t.Fatal(err)
	}
	tdir := filepath.Join(dir, "tenants", tn.ID)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(outside, filepath.Join(tdir, "escape.dir")))
	must(os.Symlink(secret, filepath.Join(tdir, "link.obj")))
	must(os.Symlink("../../..", filepath.Join(tdir, "up.dir")))

	for _, key := range []string{"escape/secret", "link", "up/secret"} {
		if _, err := s.Get(ctx, key); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Get(%q) through a symlink: %v, want ErrNotFound", key, err)
		}
		if _, err := s.Put(ctx, key+"-new", strings.NewReader("pwn"), blob.PutOptions{Size: 3}); err == nil && strings.Contains(key, "/") {
			t.Errorf("Put(%q) through a symlink succeeded", key+"-new")
		}
		if err := s.Delete(ctx, key); err != nil && !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Delete(%q): %v", key, err)
		}
	}
	entries, _ := os.ReadDir(outside)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"secret.obj"}) {
		t.Errorf("directory outside the store now holds %q", names)
	}
	if b, _ := os.ReadFile(secret); !strings.HasPrefix(string(b), "TNTBLOB1") {
		t.Error("file outside the store was changed")
	}
	page, err := s.List(ctx, blob.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range page.Objects {
		if o.Key != "seed" && o.Key != "link-new" {
			t.Errorf("List shows %q through a symlink", o.Key)
		}
	}
}

// TestAtomicPut checks that a reader never sees a partly written object:
// while a slow Put streams, Get returns the previous version whole.
func TestAtomicPut(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx, _ := blobtest.NewTenant(t, "free")
	if _, err := s.Put(ctx, "k", strings.NewReader("old"), blob.PutOptions{Size: 3}); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	done := make(chan error)
	go func() {
		_, err := s.Put(ctx, "k", pr, blob.PutOptions{Size: -1})
		done <- err
	}()
	pw.Write([]byte("new-partial"))
	obj, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if string(b) != "old" {
		t.Fatalf("during Put, Get = %q", b)
	}
	pw.Write([]byte("-rest"))
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	obj, _ = s.Get(ctx, "k")
	b, _ = io.ReadAll(obj.Body)
	obj.Body.Close()
	if string(b) != "new-partial-rest" {
		t.Fatalf("after Put, Get = %q", b)
	}
}
