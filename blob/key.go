package blob

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Limits on keys. They hold for every backend, so that a key accepted by one
// store is accepted by all of them.
const (
	// MaxKeyLen is the longest key in bytes (S3's own limit is 1024 bytes
	// for the full name; the tenant prefix is not counted here).
	MaxKeyLen = 1024
	// MaxSegmentLen is the longest "/"-separated segment in bytes; it keeps
	// every segment a valid file name on the local backend.
	MaxSegmentLen = 200
)

// ValidateKey reports whether key may name an object. It is the one check
// every store applies before a key reaches a backend. A key is a relative,
// "/"-separated path of non-empty segments in valid, NFC-normalised UTF-8.
// It refuses, with a *KeyError naming the rule:
//
//   - the empty key, and keys longer than MaxKeyLen bytes or with a segment
//     longer than MaxSegmentLen;
//   - absolute paths ("/a", "C:/a"), empty segments ("a//b", "a/"), and the
//     segments "." and "..";
//   - segments ending in "." or " " (Windows and some SMB/NFS servers strip
//     them, making "a." and "a" the same file);
//   - backslashes, NUL and every other control character (C0, DEL, C1);
//   - invalid UTF-8 and text that is not in Unicode NFC (so that one name has
//     one spelling: "é" precomposed and "e"+U+0301 would otherwise be two
//     objects that look alike);
//   - invisible and direction-changing characters (Unicode category Cf:
//     bidi overrides and isolates, zero-width joiners, BOM, soft hyphen, tag
//     characters), line and paragraph separators, non-ASCII spaces,
//     unassigned code points, private-use characters and U+FFFD;
//   - characters that compatibility-fold to "/", "\" or "." (fullwidth
//     solidus U+FF0F, division slash U+2215, fraction slash U+2044, one-dot
//     leader U+2024, fullwidth full stop U+FF0E, ...), which some tools and
//     file systems turn into path syntax.
//
// It never rewrites a key: refusing is safer than normalising, which would
// let two spellings reach one object. Keys are case-sensitive.
func ValidateKey(key string) error {
	if key == "" {
		return &KeyError{Key: key, Reason: "empty"}
	}
	return validatePath(key, false)
}

// ValidatePrefix reports whether p may be used as a listing prefix: "" (all
// objects), or a key, optionally ending in "/", whose last segment may be
// partial (so the rules on trailing "." and " " do not apply to it).
func ValidatePrefix(p string) error {
	if p == "" {
		return nil
	}
	return validatePath(p, true)
}

func validatePath(s string, prefix bool) error {
	refuse := func(reason string) error { return &KeyError{Key: s, Reason: reason} }
	if len(s) > MaxKeyLen {
		return refuse("longer than 1024 bytes")
	}
	if !utf8.ValidString(s) {
		return refuse("not valid UTF-8")
	}
	if s[0] == '/' {
		return refuse("absolute path")
	}
	body := s
	if prefix && strings.HasSuffix(s, "/") {
		body = s[:len(s)-1]
		if body == "" {
			return refuse("absolute path")
		}
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= utf8.RuneSelf:
			ascii = false
		case c < 0x20 || c == 0x7f:
			if c == 0 {
				return refuse("contains a NUL byte")
			}
			return refuse("contains a control character")
		case c == '\\':
			return refuse("contains a backslash")
		}
	}
	if !ascii {
		if err := checkUnicode(s); err != "" {
			return refuse(err)
		}
	}
	segs := strings.Split(body, "/")
	if len(segs[0]) == 2 && segs[0][1] == ':' && isASCIILetter(segs[0][0]) {
		return refuse("absolute path (drive letter)")
	}
	for i, seg := range segs {
		last := i == len(segs)-1
		switch {
		case seg == "":
			return refuse("empty path segment")
		case seg == "." || seg == "..":
			return refuse(`"." or ".." path segment`)
		case len(seg) > MaxSegmentLen:
			return refuse("path segment longer than 200 bytes")
		case (!prefix || !last || strings.HasSuffix(s, "/")) &&
			(strings.HasSuffix(seg, ".") || strings.HasSuffix(seg, " ")):
			return refuse(`path segment ends in "." or " "`)
		}
	}
	return nil
}

func isASCIILetter(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }

// checkUnicode applies the rules on non-ASCII text; it returns the reason
// for a refusal, or "".
func checkUnicode(s string) string {
	if !norm.NFC.IsNormalString(s) {
		return "not in Unicode NFC"
	}
	for _, r := range s {
		if r < utf8.RuneSelf {
			continue
		}
		switch {
		case r == utf8.RuneError:
			return "contains U+FFFD"
		case unicode.Is(unicode.Cc, r):
			return "contains a control character"
		case unicode.Is(unicode.Cf, r):
			return "contains an invisible or bidirectional formatting character"
		case unicode.In(r, unicode.Zl, unicode.Zp, unicode.Zs):
			return "contains a non-ASCII space or separator"
		case unicode.Is(unicode.Co, r), unicode.Is(unicode.Cs, r):
			return "contains a private-use or surrogate code point"
		case !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S):
			return "contains an unassigned code point"
		case foldsToPathSyntax(r):
			return `contains a character that looks like "/", "\" or "."`
		}
	}
	return ""
}

// foldsToPathSyntax reports whether r's compatibility decomposition contains
// "/", "\" or ".", or r is one of the slash look-alikes that do not decompose.
func foldsToPathSyntax(r rune) bool {
	switch r {
	case '\u2215', '\u2044', '\u29F8', '\u29F9', '\u2571', '\u2572', '\u29F5', '\u2216', '\uFE68', '\u3002', '\uFF61':
		// division slash, fraction slash, big solidus, big reverse solidus,
		// box-drawing diagonals, reverse solidus operator, set minus, small
		// reverse solidus, ideographic and halfwidth ideographic full stops.
		return true
	}
	var buf [utf8.UTFMax]byte
	n := utf8.EncodeRune(buf[:], r)
	folded := norm.NFKC.Bytes(buf[:n])
	for _, c := range folded {
		if c == '/' || c == '\\' || c == '.' {
			return true
		}
	}
	return false
}
