package blobtest

import "strings"

// HostileKey is a key every store must refuse with blob.ErrInvalidKey.
type HostileKey struct {
	Name string
	Key  string
}

// HostileKeys is the table of keys that try to leave the tenant's prefix,
// hide what they are, or alias another key. Every store refuses each of them
// before contacting its backend.
func HostileKeys() []HostileKey {
	return []HostileKey{
		{"empty", ""},
		{"dot", "."},
		{"dotdot", ".."},
		{"parent escape", "../x"},
		{"deep parent escape", "a/../../x"},
		{"parent to other tenant", "../00000000-0000-4000-8000-000000000000/secret"},
		{"parent up to tenants dir", "../../tenants/x"},
		{"trailing dotdot", "a/.."},
		{"dot segment", "a/./b"},
		{"leading dot segment", "./a"},
		{"absolute", "/etc/passwd"},
		{"absolute tenants", "/tenants/x/y"},
		{"double slash", "a//b"},
		{"trailing slash", "a/"},
		{"only slash", "/"},
		{"backslash", `a\b`},
		{"backslash parent", `..\x`},
		{"windows absolute", `C:\x`},
		{"drive letter", "C:/x"},
		{"NUL", "a\x00b"},
		{"NUL suffix", "a.txt\x00.jpg"},
		{"newline", "a\nb"},
		{"carriage return", "a\rb"},
		{"tab", "a\tb"},
		{"escape", "a\x1b[31mb"},
		{"DEL", "a\x7fb"},
		{"C1 control", "a\u0085b"},
		{"invalid UTF-8", "a\xffb"},
		{"overlong UTF-8 slash", "a\xc0\xafb"},
		{"UTF-16 surrogate bytes", "a\xed\xa0\x80b"},
		{"too long", strings.Repeat("a/", 512) + "a"},
		{"segment too long", strings.Repeat("a", 201)},
		{"not NFC", "cafe\u0301"},
		{"RLO bidi override", "invoice\u202Efdp.exe"},
		{"LRI bidi isolate", "a\u2066b"},
		{"RLM", "a\u200Fb"},
		{"zero width space", "a\u200Bb"},
		{"zero width joiner", "a\u200Db"},
		{"BOM", "\uFEFFa"},
		{"soft hyphen", "a\u00ADb"},
		{"tag character", "a\U000E0041b"},
		{"fullwidth solidus", "..\uFF0Fx"},
		{"fullwidth reverse solidus", "a\uFF3Cb"},
		{"division slash", "a\u2215b"},
		{"fraction slash", "a\u2044b"},
		{"big solidus", "a\u29F8b"},
		{"fullwidth full stop dotdot", "\uFF0E\uFF0E/x"},
		{"one dot leader", "\u2024\u2024/x"},
		{"two dot leader", "\u2025/x"},
		{"ideographic full stop", "a\u3002b"},
		{"non-breaking space", "a\u00A0b"},
		{"line separator", "a\u2028b"},
		{"ideographic space", "a\u3000b"},
		{"private use", "a\uE000b"},
		{"replacement char", "a\uFFFDb"},
		{"unassigned", "a\U0003FFFFb"},
		{"trailing dot", "a/b."},
		{"trailing space", "a /b"},
	}
}
