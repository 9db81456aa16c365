package sqlident_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/internal/sqlident"
)

func TestQuote(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"acme":             `"acme"`,
		"t_acme":           `"t_acme"`,
		`we"ird`:           `"we""ird"`,
		`x"; DROP TABLE y`: `"x""; DROP TABLE y"`,
		"Upper":            `"Upper"`,
	}
	for in, want := range cases {
		got, err := sqlident.Quote(in)
		if err != nil || got != want {
			t.Errorf("Quote(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", strings.Repeat("a", 64), "a\x00b", "a\nb", "a\x7fb"} {
		if _, err := sqlident.Quote(bad); !errors.Is(err, sqlident.ErrInvalid) {
			t.Errorf("Quote(%q) accepted (err %v)", bad, err)
		}
	}
	q, err := sqlident.Qualified("app", "notes")
	if err != nil || q != `"app"."notes"` {
		t.Errorf("Qualified = %q, %v", q, err)
	}
	if _, err := sqlident.Qualified("app", ""); err == nil {
		t.Error("Qualified accepted an empty part")
	}
	l, err := sqlident.Literal("it's")
	if err != nil || l != `'it''s'` {
		t.Errorf("Literal = %q, %v", l, err)
	}
	if _, err := sqlident.Literal("a\x00"); err == nil {
		t.Error("Literal accepted NUL")
	}
}
