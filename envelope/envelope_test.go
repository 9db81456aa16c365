package envelope_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tenantry/tenantry/envelope"
	"github.com/tenantry/tenantry/envelope/kms"
)

const acme, globex = "0b6e2a0c-6a43-4c8e-9d5e-0a1c2b3d4e5f", "7d1f4b2e-1c3a-4e5f-8a9b-0c1d2e3f4a5b"

type testBundle struct {
	dir string
	kms *kms.Local
	env *envelope.Envelope
}

func setup(t testing.TB) *testBundle {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "kek")
	k, err := kms.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	env, err := envelope.New(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &testBundle{dir: dir, kms: k, env: env}
}

// process is another Tenantry process on the same key directory: cold caches.
func (b *testBundle) process(t *testing.T) *envelope.Envelope {
	t.Helper()
	k, err := kms.NewLocal(b.dir)
	if err != nil {
		t.Fatal(err)
	}
	env, err := envelope.New(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, pt := range [][]byte{nil, {}, []byte("ada@example.org"), bytes.Repeat([]byte("x"), 1<<20)} {
		aad := []byte("customers.email:42")
		ct, err := b.env.Encrypt(ctx, acme, pt, aad)
		if err != nil {
			t.Fatal(err)
		}
		if len(pt) > 4 && bytes.Contains(ct, pt) {
			t.Fatal("plaintext visible in ciphertext")
		}
		for _, env := range []*envelope.Envelope{b.env, b.process(t)} {
			got, err := env.Decrypt(ctx, acme, ct, aad)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("%d bytes: %v", len(pt), err)
			}
		}
	}
	a, _ := b.env.Encrypt(ctx, acme, []byte("same"), nil)
	c, _ := b.env.Encrypt(ctx, acme, []byte("same"), nil)
	if bytes.Equal(a, c) {
		t.Fatal("equal plaintexts give equal ciphertexts")
	}
}

func TestCrossTenantAndTampering(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	aad := []byte("customers.email:42")
	ct, err := b.env.Encrypt(ctx, acme, []byte("ada@example.org"), aad)
	if err != nil {
		t.Fatal(err)
	}
	// globex exists and has its own keys.
	if _, err := b.env.Encrypt(ctx, globex, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}

	for _, env := range []*envelope.Envelope{b.env, b.process(t)} {
		if _, err := env.Decrypt(ctx, globex, ct, aad); !errors.Is(err, envelope.ErrDecrypt) {
			t.Fatalf("as globex: %v", err)
		}
	}
	if _, err := b.env.Decrypt(ctx, "tenant-without-key", ct, aad); !errors.Is(err, envelope.ErrDecrypt) {
		t.Fatalf("as a tenant without a key: %v", err)
	}
	if _, err := b.env.Decrypt(ctx, acme, ct, []byte("customers.email:43")); !errors.Is(err, envelope.ErrDecrypt) {
		t.Fatalf("moved to another row: %v", err)
	}
	if _, err := b.env.Decrypt(ctx, acme, ct, nil); !errors.Is(err, envelope.ErrDecrypt) {
		t.Fatalf("without aad: %v", err)
	}
	// Every single-bit change is detected.
	for i := range ct {
		bad := bytes.Clone(ct)
		bad[i] ^= 1
		_, err := b.env.Decrypt(ctx, acme, bad, aad)
		if !errors.Is(err, envelope.ErrDecrypt) && !errors.Is(err, envelope.ErrFormat) {
			t.Fatalf("bit flip at %d: %v", i, err)
		}
	}
	for _, bad := range [][]byte{nil, {1}, {1, 0, 0}, {2, 0, 1, 0}, ct[:len(ct)-17], ct[:40]} {
		if _, err := b.env.Decrypt(ctx, acme, bad, aad); !errors.Is(err, envelope.ErrFormat) && !errors.Is(err, envelope.ErrDecrypt) {
			t.Fatalf("%x: %v", bad, err)
		}
	}
	// A ciphertext of acme spliced with globex's wrapped key fails too.
	g, _ := b.env.Encrypt(ctx, globex, []byte("ada@example.org"), aad)
	if len(g) == len(ct) {
		hdrLen := len(ct) - len("ada@example.org") - 16 - 12
		spliced := append(append([]byte{}, g[:hdrLen]...), ct[hdrLen:]...)
		if _, err := b.env.Decrypt(ctx, globex, spliced, aad); !errors.Is(err, envelope.ErrDecrypt) {
			t.Fatalf("spliced: %v", err)
		}
	}
	for _, id := range []string{"", "../x", "a/b"} {
		if _, err := b.env.Encrypt(ctx, id, []byte("x"), nil); !errors.Is(err, kms.ErrInvalidTenantID) {
			t.Fatalf("Encrypt(%q): %v", id, err)
		}
	}
}

func TestDestroyShredsEveryCopy(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	other := b.process(t)

	// Rows of the tenant, and a copy of them in a "backup".
	var rows [][]byte
	for i := range 5 {
		ct, err := b.env.Encrypt(ctx, acme, fmt.Appendf(nil, "row %d", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, ct)
	}
	backup := make([][]byte, len(rows))
	for i := range rows {
		backup[i] = bytes.Clone(rows[i])
	}
	g, _ := b.env.Encrypt(ctx, globex, []byte("globex row"), nil)
	// The other process has read acme's rows: their keys are in its cache.
	for _, ct := range rows {
		if _, err := other.Decrypt(ctx, acme, ct, nil); err != nil {
			t.Fatal(err)
		}
	}

	if err := b.env.Destroy(ctx, acme); err != nil {
		t.Fatal(err)
	}
	other.Forget(acme) // as on the catalog's tenant-deleted notification
	for _, env := range []*envelope.Envelope{b.env, other, b.process(t)} {
		for _, ct := range append(rows, backup...) {
			if _, err := env.Decrypt(ctx, acme, ct, nil); !errors.Is(err, envelope.ErrKeyDestroyed) {
				t.Fatalf("after destroy: %v", err)
			}
		}
		if _, err := env.Encrypt(ctx, acme, []byte("new"), nil); !errors.Is(err, envelope.ErrKeyDestroyed) {
			t.Fatalf("encrypt after destroy: %v", err)
		}
		if pt, err := env.Decrypt(ctx, globex, g, nil); err != nil || string(pt) != "globex row" {
			t.Fatalf("globex: %q %v", pt, err)
		}
	}
	if err := b.env.Destroy(ctx, acme); err != nil {
		t.Fatalf("second destroy: %v", err)
	}
}

// TestCacheTTL: a process that did not hear of the destruction stops
// decrypting once its cached key expires.
func TestCacheTTL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	k, _ := kms.NewLocal(b.dir)
	other, err := envelope.New(k, &envelope.Config{CacheTTL: time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := b.env.Encrypt(ctx, acme, []byte("x"), nil)
	if _, err := other.Decrypt(ctx, acme, ct, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.env.Destroy(ctx, acme); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Decrypt(ctx, acme, ct, nil); err != nil {
		t.Fatalf("within the TTL the cached key still works: %v", err)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if _, err := other.Decrypt(ctx, acme, ct, nil); !errors.Is(err, envelope.ErrKeyDestroyed) {
		t.Fatalf("after the TTL: %v", err)
	}
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	env, err := envelope.New(b.kms, &envelope.Config{MaxCached: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tenants := []string{acme, globex, "t3", "t4", "t5"}
			for i := range 50 {
				tn := tenants[(g+i)%len(tenants)]
				msg := fmt.Appendf(nil, "%s %d %d", tn, g, i)
				ct, err := env.Encrypt(ctx, tn, msg, []byte(tn))
				if err != nil {
					t.Error(err)
					return
				}
				pt, err := env.Decrypt(ctx, tn, ct, []byte(tn))
				if err != nil || !bytes.Equal(pt, msg) {
					t.Errorf("%s: %v", tn, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
