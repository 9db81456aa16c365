// Package sqlident is the one path by which Tenantry puts an identifier
// (schema, database, role, table name) into SQL text. Identifiers cannot be
// bind parameters, so every one is validated and quoted here, and nowhere
// else is an identifier formatted into SQL.
package sqlident

import (
	"errors"
	"fmt"
	"strings"
)

// MaxLen is PostgreSQL's identifier limit (NAMEDATALEN-1) in bytes. Longer
// names are silently truncated by the server, which could make two tenants'
// names collide, so they are refused instead.
const MaxLen = 63

// ErrInvalid is returned (wrapped) for an identifier that cannot be used.
var ErrInvalid = errors.New("invalid SQL identifier")

// Validate reports whether name may be used as an identifier: 1 to MaxLen
// bytes, no NUL, valid UTF-8 is not required by PostgreSQL but control bytes
// are refused.
func Validate(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalid)
	}
	if len(name) > MaxLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxLen)
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] == 0x7f {
			return fmt.Errorf("%w: contains a control byte", ErrInvalid)
		}
	}
	return nil
}

// Quote validates name and returns it as a double-quoted identifier, with
// embedded double quotes doubled.
func Quote(name string) (string, error) {
	if err := Validate(name); err != nil {
		return "", err
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`, nil
}

// MustQuote is Quote for names built by Tenantry itself from validated parts;
// it panics on an invalid name, which is a programming error.
func MustQuote(name string) string {
	q, err := Quote(name)
	if err != nil {
		panic(err)
	}
	return q
}

// Qualified quotes each part and joins them with dots: Qualified("s", "t")
// is "s"."t".
func Qualified(parts ...string) (string, error) {
	quoted := make([]string, len(parts))
	for i, p := range parts {
		q, err := Quote(p)
		if err != nil {
			return "", err
		}
		quoted[i] = q
	}
	return strings.Join(quoted, "."), nil
}

// Literal quotes s as a SQL string literal, for the few statements that take
// no bind parameters (CREATE ROLE ... PASSWORD, for example). It refuses NUL.
func Literal(s string) (string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", fmt.Errorf("%w: literal contains NUL", ErrInvalid)
	}
	return `'` + strings.ReplaceAll(s, `'`, `''`) + `'`, nil
}
