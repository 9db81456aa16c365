package peer_test

import (
	"net/netip"
	"testing"

	"github.com/tenantry/tenantry/internal/peer"
)

func TestTrusted(t *testing.T) {
	t.Parallel()
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for addr, want := range map[string]bool{
		"127.0.0.1:80":          true,
		"[::1]:80":              true,
		"[::ffff:127.0.0.6]:80": true,
		"[fe80::1%eth0]:80":     false,
		"10.0.0.1:80":           false,
		"127.0.0.1":             false,
		"@":                     false,
		"":                      false,
		"localhost:80":          false,
	} {
		if got := peer.Trusted(addr, loopback); got != want {
			t.Errorf("Trusted(%q) = %v, want %v", addr, got, want)
		}
	}
	if peer.Trusted("127.0.0.1:80", nil) {
		t.Error("trusted with no prefixes")
	}
}
