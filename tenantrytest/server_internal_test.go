package tenantrytest

import "testing"

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ base, db, want string }{
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "tt_1", "postgres://postgres@127.0.0.1:5432/tt_1?sslmode=disable"},
		{"postgresql://u:p%40ss@h/x", "y", "postgresql://u:p%40ss@h/y"},
		{"postgres://h", "d", "postgres://h/d"},
		{"postgres://h/x", "with space", "postgres://h/with%20space"},
		{"postgres://h/x", "a/b?c", "postgres://h/a%2Fb%3Fc"},
		{"host=h user=u dbname=x", "y", "host=h user=u dbname=x dbname='y'"},
		{"host=h", `it's\`, `host=h dbname='it\'s\\'`},
	} {
		if got := withDatabase(tc.base, tc.db); got != tc.want {
			t.Errorf("withDatabase(%q, %q) = %q, want %q", tc.base, tc.db, got, tc.want)
		}
	}
}

func TestValidClusterName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"shard-1": true, "eu": true, "a_b": true, "0": true,
		"": false, "-a": false, "_a": false, "A": false, "a b": false, "a/b": false, "..": false,
		"a\x00": false, "é": false, "a;drop": false, "abcdefghijabcdefghijabcdefghijab": true,
		"abcdefghijabcdefghijabcdefghijabc": false,
	} {
		if got := validClusterName(name); got != want {
			t.Errorf("validClusterName(%q) = %v, want %v", name, got, want)
		}
	}
}
