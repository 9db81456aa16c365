package assertion

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestMemoryReplayCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Unix(1_000_000, 0)
	c := NewMemoryReplayCache(3)
	c.now = func() time.Time { return now }

	claim := func(key string, ttl time.Duration) bool {
		t.Helper()
		ok, err := c.Claim(ctx, key, now.Add(ttl))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !claim("a", 10*time.Second) || claim("a", 10*time.Second) {
		t.Fatal("a: want fresh then replay")
	}
	claim("b", 20*time.Second)
	claim("c", 30*time.Second)
	// Full of unexpired IDs: fail closed.
	if ok, err := c.Claim(ctx, "d", now.Add(time.Second)); ok || !errors.Is(err, ErrReplayCacheFull) {
		t.Fatalf("full: ok=%v err=%v", ok, err)
	}
	// a expires; its slot is reused, and a is fresh again (its assertion
	// has expired, so the verifier refuses it on exp anyway).
	now = now.Add(11 * time.Second)
	if !claim("d", 10*time.Second) {
		t.Fatal("d after a expired")
	}
	if c.Len() != 3 {
		t.Fatalf("len %d", c.Len())
	}
	if claim("b", 20*time.Second) || claim("c", 20*time.Second) {
		t.Fatal("b, c must still be remembered")
	}
	// An already-expired claim is not stored.
	if !claim("old", -time.Second) || c.Len() != 3 {
		t.Fatal("expired claim")
	}
	now = now.Add(time.Hour)
	for i := range 3 {
		claim(fmt.Sprint("n", i), time.Second)
	}
	if c.Len() != 3 {
		t.Fatalf("len after expiry %d", c.Len())
	}
}
