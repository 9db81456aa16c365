package tenant_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/tenant"
)

func TestValidateSlug(t *testing.T) {
	t.Parallel()
	good := []string{"a", "acme", "acme-corp", "a1", "x-1-2", strings.Repeat("a", tenant.MaxSlugLen), "xn", "abc-def"}
	bad := []string{
		"", "A", "Acme", "1acme", "-acme", "acme-", "ac--me", "xn--acme", "acme_corp", "acme.corp", "acme corp",
		" acme", "acme\n", "acme\x00", "аcme", "acmé", "ａｃｍｅ", "acme'", `acme"`, "acme;", "acme'; DROP TABLE t;--",
		strings.Repeat("a", tenant.MaxSlugLen+1), "www", "admin", "api", "localhost", "public", "postgres",
		"abcdef12-3456-7890-abcd-ef1234567890", // UUID-shaped
	}
	for _, s := range good {
		if err := tenant.ValidateSlug(s); err != nil {
			t.Errorf("ValidateSlug(%q) = %v, want nil", s, err)
		}
		if !tenant.IsValidSlug(s) {
			t.Errorf("IsValidSlug(%q) = false, want true", s)
		}
	}
	for _, s := range bad {
		err := tenant.ValidateSlug(s)
		if !errors.Is(err, tenant.ErrInvalidSlug) {
			t.Errorf("ValidateSlug(%q) = %v, want ErrInvalidSlug", s, err)
		}
		if tenant.IsValidSlug(s) {
			t.Errorf("IsValidSlug(%q) = true, want false", s)
		}
	}
	if !tenant.IsReserved("www") || tenant.IsReserved("acme") {
		t.Error("IsReserved disagrees with the reserved list")
	}
}

// FuzzSlug checks that the predicate and the validator always agree, and that
// every valid slug is a safe DNS label.
func FuzzSlug(f *testing.F) {
	for _, s := range []string{"acme", "a--b", "Acme", "abcdef12-3456-7890-abcd-ef1234567890", "a'b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := tenant.ValidateSlug(s)
		if (err == nil) != tenant.IsValidSlug(s) {
			t.Fatalf("ValidateSlug(%q) = %v but IsValidSlug = %v", s, err, tenant.IsValidSlug(s))
		}
		if err == nil && strings.ContainsAny(s, "'\";\\ \x00.") {
			t.Fatalf("valid slug %q contains a dangerous byte", s)
		}
	})
}
