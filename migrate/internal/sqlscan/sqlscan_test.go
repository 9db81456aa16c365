package sqlscan_test

import (
	"slices"
	"testing"

	"github.com/tenantry/tenantry/migrate/internal/sqlscan"
)

func TestSplit(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in   string
		want []string
	}{
		"empty":            {"", nil},
		"only comments":    {"-- a\n/* b */ ;;", nil},
		"two":              {"SELECT 1; SELECT 2", []string{"SELECT 1", "SELECT 2"}},
		"semicolon string": {"SELECT ';'; SELECT 'it''s;'", []string{"SELECT ';'", "SELECT 'it''s;'"}},
		"escape string":    {`SELECT E'\';'; SELECT 1`, []string{`SELECT E'\';'`, "SELECT 1"}},
		"quoted ident":     {`CREATE TABLE "a;b" (x int); SELECT 1`, []string{`CREATE TABLE "a;b" (x int)`, "SELECT 1"}},
		"dollar":           {"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$; SELECT 2", []string{"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$", "SELECT 2"}},
		"dollar tag":       {"DO $x$ BEGIN PERFORM 1; END $x$; SELECT 2", []string{"DO $x$ BEGIN PERFORM 1; END $x$", "SELECT 2"}},
		"nested comment":   {"/* a /* b; */ c; */ SELECT 1; SELECT 2", []string{"SELECT 1", "SELECT 2"}},
		"line comment":     {"SELECT 1 -- x; y\n; SELECT 2", []string{"SELECT 1 -- x; y", "SELECT 2"}},
		"param":            {"SELECT $1; SELECT 2", []string{"SELECT $1", "SELECT 2"}},
		"unterminated":     {"SELECT 'abc; SELECT 2", []string{"SELECT 'abc; SELECT 2"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, s := range sqlscan.Split(tt.in) {
				got = append(got, s.Text)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Split(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSplitLines(t *testing.T) {
	t.Parallel()
	got := sqlscan.Split("-- header\n\nSELECT 1;\n/* c */\nSELECT\n2;")
	if len(got) != 2 || got[0].Line != 3 || got[1].Line != 5 {
		t.Fatalf("lines: %+v", got)
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	toks := sqlscan.Tokens(`create index concurrently if not exists "My Idx" on notes(x)::text -- c`)
	var words []string
	for _, tok := range toks {
		switch tok.Kind {
		case sqlscan.Word:
			words = append(words, tok.Upper)
		case sqlscan.Ident:
			words = append(words, "<"+tok.Text+">")
		default:
			words = append(words, tok.Text)
		}
	}
	want := []string{"CREATE", "INDEX", "CONCURRENTLY", "IF", "NOT", "EXISTS", "<My Idx>", "ON", "NOTES", "(", "X", ")", "::", "TEXT"}
	if !slices.Equal(words, want) {
		t.Fatalf("tokens = %q, want %q", words, want)
	}
	if toks[6].Name() != "My Idx" || toks[8].Name() != "notes" {
		t.Fatalf("names: %q %q", toks[6].Name(), toks[8].Name())
	}
}

func FuzzSplit(f *testing.F) {
	f.Add("SELECT 1; SELECT 'a;b'; $$;$$")
	f.Add("/* /* */ */ E'\\'' \"x\"\"y\"")
	f.Fuzz(func(t *testing.T, s string) {
		for _, st := range sqlscan.Split(s) {
			if st.Text == "" || st.Line < 1 {
				t.Fatalf("bad statement %+v", st)
			}
		}
		_ = sqlscan.Tokens(s)
	})
}
