// Package sqlscan splits PostgreSQL SQL text into statements and statements
// into tokens, well enough for the migration runner (which must send
// statements that cannot run in a transaction one at a time) and the safety
// lint (which matches token sequences). It is a lexer, not a parser: it knows
// comments (nested /* */ too), string literals (”, E”, U&”), quoted
// identifiers and dollar quoting, so a semicolon or keyword inside any of
// them is never mistaken for SQL. SQL-standard function bodies (BEGIN ATOMIC
// ... END) are not recognised; write function bodies with dollar quoting.
package sqlscan

import (
	"strings"
	"unicode/utf8"
)

// Statement is one statement of a script.
type Statement struct {
	// Text is the statement without its terminating semicolon, trimmed of
	// surrounding whitespace. Comments inside it are kept.
	Text string
	// Line is the 1-based line of the script on which the statement starts
	// (its first token, comments before it excluded).
	Line int
}

// Kind is a token's kind.
type Kind int

const (
	// Word is a keyword or unquoted identifier; Token.Upper holds it in
	// upper case.
	Word Kind = iota
	// Ident is a double-quoted identifier; Token.Text is its value with the
	// quotes removed and doubled quotes undone.
	Ident
	// String is a string literal (any form, dollar-quoted included);
	// Token.Text is the literal as written.
	String
	// Number is a numeric literal.
	Number
	// Punct is an operator or punctuation: ( ) , . ; :: and the like.
	Punct
	// Param is a positional parameter ($1).
	Param
)

// Token is one lexical token.
type Token struct {
	Kind Kind
	// Text is the token as written (for Ident, the unquoted value).
	Text string
	// Upper is Text in upper case for a Word, "" otherwise.
	Upper string
	// Offset is the byte offset of the token in the scanned text.
	Offset int
}

// Is reports whether t is the keyword kw (given in upper case).
func (t Token) Is(kw string) bool { return t.Kind == Word && t.Upper == kw }

// Name returns the identifier t denotes: a quoted identifier's value, an
// unquoted one folded to lower case as PostgreSQL does, "" for anything else.
func (t Token) Name() string {
	switch t.Kind {
	case Ident:
		return t.Text
	case Word:
		return strings.ToLower(t.Text)
	}
	return ""
}

// Split returns the statements of script in order, without empty ones (a
// statement of only comments is empty).
func Split(script string) []Statement {
	var out []Statement
	s := scanner{src: script}
	firstTok := -1
	for {
		tok, ok := s.next()
		if !ok {
			break
		}
		if tok.Kind == Punct && tok.Text == ";" {
			if firstTok >= 0 {
				out = append(out, makeStatement(script, firstTok, tok.Offset))
			}
			firstTok = -1
			continue
		}
		if firstTok < 0 {
			firstTok = tok.Offset
		}
	}
	if firstTok >= 0 {
		out = append(out, makeStatement(script, firstTok, len(script)))
	}
	return out
}

func makeStatement(script string, from, to int) Statement {
	return Statement{
		Text: strings.TrimSpace(script[from:to]),
		Line: 1 + strings.Count(script[:from], "\n"),
	}
}

// Tokens returns the tokens of text, comments and whitespace dropped.
func Tokens(text string) []Token {
	var out []Token
	s := scanner{src: text}
	for {
		tok, ok := s.next()
		if !ok {
			return out
		}
		out = append(out, tok)
	}
}

type scanner struct {
	src string
	pos int
}

// next returns the next token, skipping whitespace and comments. An
// unterminated literal or comment runs to the end of the text.
func (s *scanner) next() (Token, bool) {
	s.skipSpaceAndComments()
	if s.pos >= len(s.src) {
		return Token{}, false
	}
	start := s.pos
	c := s.src[s.pos]
	switch {
	case c == '\'':
		s.quoted('\'', false)
		return Token{Kind: String, Text: s.src[start:s.pos], Offset: start}, true
	case (c == 'E' || c == 'e') && s.peek(1) == '\'':
		s.pos++
		s.quoted('\'', true)
		return Token{Kind: String, Text: s.src[start:s.pos], Offset: start}, true
	case (c == 'U' || c == 'u') && s.peek(1) == '&' && (s.peek(2) == '\'' || s.peek(2) == '"'):
		s.pos += 2
		q := s.src[s.pos]
		s.quoted(q, false)
		kind := String
		if q == '"' {
			kind = Ident
		}
		return Token{Kind: kind, Text: s.src[start:s.pos], Offset: start}, true
	case (c == 'B' || c == 'b' || c == 'X' || c == 'x' || c == 'N' || c == 'n') && s.peek(1) == '\'':
		s.pos++
		s.quoted('\'', false)
		return Token{Kind: String, Text: s.src[start:s.pos], Offset: start}, true
	case c == '"':
		s.quoted('"', false)
		raw := s.src[start+1 : s.pos]
		raw = strings.TrimSuffix(raw, `"`)
		return Token{Kind: Ident, Text: strings.ReplaceAll(raw, `""`, `"`), Offset: start}, true
	case c == '$':
		if tag, ok := s.dollarTag(); ok {
			s.pos += len(tag)
			if end := strings.Index(s.src[s.pos:], tag); end >= 0 {
				s.pos += end + len(tag)
			} else {
				s.pos = len(s.src)
			}
			return Token{Kind: String, Text: s.src[start:s.pos], Offset: start}, true
		}
		s.pos++
		for s.pos < len(s.src) && isDigit(s.src[s.pos]) {
			s.pos++
		}
		return Token{Kind: Param, Text: s.src[start:s.pos], Offset: start}, true
	case isIdentStart(c):
		for s.pos < len(s.src) && isIdentPart(s.src[s.pos]) {
			s.pos++
		}
		w := s.src[start:s.pos]
		return Token{Kind: Word, Text: w, Upper: strings.ToUpper(w), Offset: start}, true
	case isDigit(c) || c == '.' && isDigit(s.peek(1)):
		for s.pos < len(s.src) && (isDigit(s.src[s.pos]) || s.src[s.pos] == '.' || s.src[s.pos] == '_' ||
			s.src[s.pos] == 'e' || s.src[s.pos] == 'E' ||
			(s.src[s.pos] == '-' || s.src[s.pos] == '+') && (s.src[s.pos-1] == 'e' || s.src[s.pos-1] == 'E')) {
			s.pos++
		}
		return Token{Kind: Number, Text: s.src[start:s.pos], Offset: start}, true
	case c == ':' && s.peek(1) == ':':
		s.pos += 2
		return Token{Kind: Punct, Text: "::", Offset: start}, true
	case strings.IndexByte("+-*/<>=~!@#%^&|`?", c) >= 0:
		for s.pos < len(s.src) && strings.IndexByte("+-*/<>=~!@#%^&|`?", s.src[s.pos]) >= 0 {
			if s.src[s.pos] == '-' && s.peek(1) == '-' || s.src[s.pos] == '/' && s.peek(1) == '*' {
				break
			}
			s.pos++
		}
		if s.pos == start { // a comment start: cannot happen after skipSpaceAndComments
			s.pos++
		}
		return Token{Kind: Punct, Text: s.src[start:s.pos], Offset: start}, true
	default:
		_, size := utf8.DecodeRuneInString(s.src[s.pos:])
		s.pos += size
		return Token{Kind: Punct, Text: s.src[start:s.pos], Offset: start}, true
	}
}

// skipBlockComment consumes a /* */ comment at s.pos; they nest.
func (s *scanner) skipBlockComment() {
	depth := 0
	for s.pos < len(s.src) {
		switch {
		case s.src[s.pos] == '/' && s.peek(1) == '*':
			depth++
			s.pos += 2
		case s.src[s.pos] == '*' && s.peek(1) == '/':
			depth--
			s.pos += 2
			if depth == 0 {
				return
			}
		default:
			s.pos++
		}
	}
}

func (s *scanner) peek(n int) byte {
	if s.pos+n < len(s.src) {
		return s.src[s.pos+n]
	}
	return 0
}

func (s *scanner) skipSpaceAndComments() {
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			s.pos++
		case c == '-' && s.peek(1) == '-':
			if nl := strings.IndexByte(s.src[s.pos:], '\n'); nl >= 0 {
				s.pos += nl + 1
			} else {
				s.pos = len(s.src)
			}
		case c == '/' && s.peek(1) == '*':
			s.skipBlockComment()
		default:
			return
		}
	}
}

// quoted consumes a literal opened by the quote at s.pos; a doubled quote is
// an escaped quote, and with backslash a backslash escapes the next byte.
func (s *scanner) quoted(q byte, backslash bool) {
	s.pos++ // opening quote
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		switch {
		case backslash && c == '\\':
			s.pos += 2
		case c == q && s.peek(1) == q:
			s.pos += 2
		case c == q:
			s.pos++
			return
		default:
			s.pos++
		}
	}
	if s.pos > len(s.src) {
		s.pos = len(s.src)
	}
}

// dollarTag returns the dollar-quote opening tag ($$ or $tag$) at s.pos.
func (s *scanner) dollarTag() (string, bool) {
	i := s.pos + 1
	for i < len(s.src) && s.src[i] != '$' {
		c := s.src[i]
		if !(isIdentStart(c) || i > s.pos+1 && isDigit(c)) {
			return "", false
		}
		i++
	}
	if i >= len(s.src) {
		return "", false
	}
	return s.src[s.pos : i+1], true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isIdentPart(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }
