package blobtest

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/blob"
)

// testCrossTenant checks that no tenant reaches another's objects by any
// key: not by the same key, not by a key naming the other's prefix, not by
// listing.
func testCrossTenant(t *testing.T, h Harness) {
	s := h.NewStore(t)
	actx, a := NewTenant(t, "free")
	bctx, b := NewTenant(t, "free")
	put(actx, t, s, "shared-name.txt", []byte("a's data"))
	put(actx, t, s, "dir/private.txt", []byte("a's private"))

	// Keys b might try, all relative to b's own prefix.
	probes := []string{
		"shared-name.txt",
		"dir/private.txt",
		"tenants/" + a.ID + "/shared-name.txt",
		a.ID + "/shared-name.txt",
		"tenants/" + a.ID + "/dir/private.txt",
	}
	for _, k := range probes {
		if _, err := s.Get(bctx, k); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("b Get(%q): %v, want ErrNotFound", k, err)
		}
		if _, err := s.Stat(bctx, k); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("b Stat(%q): %v, want ErrNotFound", k, err)
		}
		if err := s.Delete(bctx, k); err != nil {
			t.Errorf("b Delete(%q): %v", k, err)
		}
	}
	for _, p := range []string{"", "dir/", "shared", "tenants/", "tenants/" + a.ID + "/", a.ID} {
		page, err := s.List(bctx, blob.ListOptions{Prefix: p})
		if err != nil {
			t.Fatalf("b List(%q): %v", p, err)
		}
		if len(page.Objects) != 0 {
			t.Errorf("b List(%q) = %q", p, keysOf(page))
		}
	}
	// b writes under the same names: a's objects stay a's.
	put(bctx, t, s, "shared-name.txt", []byte("b's data"))
	put(bctx, t, s, "dir/private.txt", []byte("b's own"))
	if got, _ := get(actx, t, s, "shared-name.txt"); string(got) != "a's data" {
		t.Errorf("a's object after b's Put: %q", got)
	}
	if got, _ := get(bctx, t, s, "shared-name.txt"); string(got) != "b's data" {
		t.Errorf("b's object: %q", got)
	}
	// b deletes its own: a's are untouched.
	if err := s.Delete(bctx, "shared-name.txt"); err != nil {
		t.Fatal(err)
	}
	if got, _ := get(actx, t, s, "shared-name.txt"); string(got) != "a's data" {
		t.Errorf("a's object after b's Delete: %q", got)
	}
	// Listing a shows exactly a's keys.
	page, err := s.List(actx, blob.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(page); !slices.Equal(got, []string{"dir/private.txt", "shared-name.txt"}) {
		t.Errorf("a lists %q", got)
	}
	checkOnlyKeys(actx, t, h, s, "dir/private.txt", "shared-name.txt")
	checkOnlyKeys(bctx, t, h, s, "dir/private.txt")
	if strings.HasPrefix(a.ID, b.ID) {
		t.Fatal("tenant IDs collide")
	}
}
