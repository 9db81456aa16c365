package blob_test

import (
	"errors"
	"path"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tenantry/tenantry/blob"
	"github.com/tenantry/tenantry/blob/blobtest"
)

func TestValidateKeyAccepts(t *testing.T) {
	t.Parallel()
	for _, k := range []string{
		"a", "a/b/c.txt", ".hidden", "..a", "a..b", "...x", "a-b_c~d", "space in name",
		"caf\u00e9", "日本語/ファイル", "emoji\U0001F600", "a+b=c&d?e#f%20", "tenants/x", "C:x", "ab:/c",
		strings.Repeat("a", blob.MaxSegmentLen), strings.Repeat("a/", 511) + "ab",
	} {
		if err := blob.ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q) = %v", k, err)
		}
	}
}

func TestValidateKeyRefuses(t *testing.T) {
	t.Parallel()
	for _, hk := range blobtest.HostileKeys() {
		err := blob.ValidateKey(hk.Key)
		var ke *blob.KeyError
		if !errors.Is(err, blob.ErrInvalidKey) || !errors.As(err, &ke) {
			t.Errorf("%s: ValidateKey(%q) = %v", hk.Name, hk.Key, err)
			continue
		}
		// The message names the rule and never echoes the key.
		if len(hk.Key) > 3 && strings.Contains(err.Error(), hk.Key) {
			t.Errorf("%s: message %q contains the key", hk.Name, err)
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p  string
		ok bool
	}{
		{"", true}, {"a", true}, {"a/", true}, {"a/b/", true}, {"file.", true}, {"a/b ", true},
		{"/", false}, {"/a", false}, {"a//", false}, {"../", false}, {"a/../", false}, {"a/./", false},
		{"a./", false}, {"a\\", false}, {"a\x00", false}, {"\u202e", false}, {"..", false},
	} {
		if err := blob.ValidatePrefix(tc.p); (err == nil) != tc.ok {
			t.Errorf("ValidatePrefix(%q) = %v, want ok=%v", tc.p, err, tc.ok)
		}
	}
}

// FuzzValidateKey checks the properties every accepted key has: it is a
// clean relative path that stays inside its prefix when joined.
func FuzzValidateKey(f *testing.F) {
	for _, hk := range blobtest.HostileKeys() {
		f.Add(hk.Key)
	}
	f.Add("a/b/c")
	f.Fuzz(func(t *testing.T, k string) {
		if blob.ValidateKey(k) != nil {
			return
		}
		if !utf8.ValidString(k) || len(k) > blob.MaxKeyLen {
			t.Fatalf("accepted %q", k)
		}
		if path.Clean(k) != k || strings.HasPrefix(k, "/") || strings.ContainsAny(k, "\\\x00") {
			t.Fatalf("accepted unclean %q", k)
		}
		joined := path.Join("tenants/t/", k)
		if !strings.HasPrefix(joined, "tenants/t/") {
			t.Fatalf("%q escapes: %q", k, joined)
		}
		for _, seg := range strings.Split(k, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("accepted segment %q in %q", seg, k)
			}
		}
	})
}

func TestScope(t *testing.T) {
	t.Parallel()
	ctx, tn := blobtest.NewTenant(t, "free")
	_, p, err := blob.Scope(ctx)
	if err != nil || p != "tenants/"+tn.ID+"/" {
		t.Fatalf("Scope = %q, %v", p, err)
	}
	for _, id := range []string{"", "../x", strings.ToUpper(tn.ID), tn.ID + "/", "0000000000000000000000000000000000000"} {
		if blob.IsCanonicalUUID(id) {
			t.Errorf("IsCanonicalUUID(%q)", id)
		}
	}
}
