package kms_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tenantry/tenantry/envelope/kms"
)

const acme, globex = "0b6e2a0c-6a43-4c8e-9d5e-0a1c2b3d4e5f", "7d1f4b2e-1c3a-4e5f-8a9b-0c1d2e3f4a5b"

func newLocal(t *testing.T) (*kms.Local, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "kek")
	k, err := kms.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	return k, dir
}

func TestLocal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k, dir := newLocal(t)
	dek := bytes.Repeat([]byte{7}, 32)

	wrapped, err := k.Wrap(ctx, acme, dek)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(wrapped, dek) {
		t.Fatal("wrapped key contains the key")
	}
	got, err := k.Unwrap(ctx, acme, wrapped)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("unwrap: %x %v", got, err)
	}
	st, err := os.Stat(filepath.Join(dir, acme+".kek"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("KEK file: %v %v", st, err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v", st.Mode().Perm())
	}

	// Another tenant cannot unwrap it, even once it has a KEK of its own.
	if _, err := k.Unwrap(ctx, globex, wrapped); !errors.Is(err, kms.ErrKeyNotFound) {
		t.Fatalf("globex without KEK: %v", err)
	}
	if _, err := k.Wrap(ctx, globex, dek); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Unwrap(ctx, globex, wrapped); !errors.Is(err, kms.ErrUnwrap) {
		t.Fatalf("globex: %v", err)
	}
	// Altered bytes do not authenticate.
	for i := range wrapped {
		bad := bytes.Clone(wrapped)
		bad[i] ^= 0x80
		if _, err := k.Unwrap(ctx, acme, bad); !errors.Is(err, kms.ErrUnwrap) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	if _, err := k.Unwrap(ctx, acme, wrapped[:10]); !errors.Is(err, kms.ErrUnwrap) {
		t.Fatalf("truncated: %v", err)
	}

	// A second process on the same directory shares the KEKs.
	k2, err := kms.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k2.Unwrap(ctx, acme, wrapped); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("second process: %v", err)
	}

	// Destroy: gone for good, also for the other process; idempotent; the
	// KEK is not recreated by a later Wrap.
	if err := k.Destroy(ctx, acme); err != nil {
		t.Fatal(err)
	}
	if err := k.Destroy(ctx, acme); err != nil {
		t.Fatalf("second destroy: %v", err)
	}
	for _, kk := range []*kms.Local{k, k2} {
		if _, err := kk.Unwrap(ctx, acme, wrapped); !errors.Is(err, kms.ErrKeyDestroyed) {
			t.Fatalf("after destroy: %v", err)
		}
		if _, err := kk.Wrap(ctx, acme, dek); !errors.Is(err, kms.ErrKeyDestroyed) {
			t.Fatalf("wrap after destroy: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, acme+".kek")); !os.IsNotExist(err) {
		t.Fatalf("KEK file still there: %v", err)
	}
	if _, err := k.Wrap(ctx, globex, dek); err != nil {
		t.Fatalf("globex affected: %v", err)
	}
}

func TestLocalHostileTenantIDs(t *testing.T) {
	t.Parallel()
	k, dir := newLocal(t)
	ctx := context.Background()
	for _, id := range []string{"", ".", "..", "../x", "a/b", `a\b`, "a b", "a.kek", "x\x00y", "ü", string(make([]byte, 65))} {
		if _, err := k.Wrap(ctx, id, []byte("k")); !errors.Is(err, kms.ErrInvalidTenantID) {
			t.Errorf("Wrap(%q): %v", id, err)
		}
		if _, err := k.Unwrap(ctx, id, []byte("k")); !errors.Is(err, kms.ErrInvalidTenantID) {
			t.Errorf("Unwrap(%q): %v", id, err)
		}
		if err := k.Destroy(ctx, id); !errors.Is(err, kms.ErrInvalidTenantID) {
			t.Errorf("Destroy(%q): %v", id, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("files created: %v", entries)
	}
	if _, err := k.Wrap(ctx, acme, nil); err == nil {
		t.Error("empty key wrapped")
	}
}

func TestLocalRefusesOpenDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := kms.NewLocal(dir); err == nil {
		t.Fatal("accepted a world-readable key directory")
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := kms.NewLocal(f); err == nil {
		t.Fatal("accepted a file as directory")
	}
}

// TestLocalConcurrentCreate: processes racing to create a tenant's KEK
// agree on one.
func TestLocalConcurrentCreate(t *testing.T) {
	t.Parallel()
	_, dir := newLocal(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	wrapped := make([][]byte, 8)
	for i := range wrapped {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := kms.NewLocal(dir) // one "process" each
			if err != nil {
				t.Error(err)
				return
			}
			wrapped[i], err = k.Wrap(ctx, acme, []byte{byte(i)})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	k, _ := kms.NewLocal(dir)
	for i, w := range wrapped {
		got, err := k.Unwrap(ctx, acme, w)
		if err != nil || !bytes.Equal(got, []byte{byte(i)}) {
			t.Fatalf("wrap %d: %v", i, err)
		}
	}
}
