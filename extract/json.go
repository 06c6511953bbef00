package extract

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// A JSON-like scanner for the guard. Parsers disagree on what JSON is:
// Python's json takes NaN and Infinity, JSON5 readers take single quotes,
// comments and bare names, Go's encoding/json folds member names onto
// struct fields by Unicode case folding, duplicate members are read
// first-wins by some and last-wins by others. Rather than parse one
// dialect, the scanner tokenises any of them (strings in either quote,
// escapes resolved, bare words) and reports every member whose name
// stands for a credential (credentialName) with each string or bare value
// it is given, at any depth, every occurrence. For a document Go's parser
// accepts, that is every value Go (or Python, or Node) would bind to such
// a member, and more.

// jsonMembers calls f for every credential-named member's value in text,
// with that credential's kind, and for every other string or bare word
// of at least MinValueLen bytes, member names included, as Value:
// which member an app reads is the app's choice.
func jsonMembers(text []byte, f func(kind Kind, value string)) {
	var s scanner
	s.text = text
	var (
		keyKind Kind
		haveKey bool
	)
	for {
		tok, kind, ok := s.next()
		if !ok {
			return
		}
		switch kind {
		case tokString, tokWord:
			if len(tok) >= MinValueLen {
				f(Value, tok)
			}
			if s.peek() == ':' {
				s.pos++
				keyKind, haveKey = credentialName(tok)
				continue
			}
			if haveKey {
				f(keyKind, tok)
			}
		}
		haveKey = false
	}
}

// jsonStrings returns every string value in text (a string not used as a
// member name), for an Express JSON cookie: which member an app reads is
// the app's choice. Their number is bounded by the text's length only:
// each costs a hash, and a refusal for their number would let anyone who
// can plant one cookie lock its victim out.
func jsonStrings(text []byte) []string {
	var s scanner
	s.text = text
	var out []string
	for {
		tok, kind, ok := s.next()
		if !ok {
			break
		}
		if kind == tokString {
			if s.peek() == ':' {
				s.pos++
				continue
			}
			out = append(out, tok)
		}
	}
	return out
}

type tokKind uint8

const (
	tokString tokKind = iota
	tokWord
	tokPunct
)

type scanner struct {
	text []byte
	pos  int
}

// peek returns the next byte that is not whitespace or a comment, and
// moves to it.
func (s *scanner) peek() byte {
	s.skipSpace()
	if s.pos < len(s.text) {
		return s.text[s.pos]
	}
	return 0
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.text) {
		c := s.text[s.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v':
			s.pos++
		case c == '/' && s.pos+1 < len(s.text) && s.text[s.pos+1] == '/':
			for s.pos < len(s.text) && s.text[s.pos] != '\n' {
				s.pos++
			}
		case c == '/' && s.pos+1 < len(s.text) && s.text[s.pos+1] == '*':
			end := strings.Index(string(s.text[s.pos+2:]), "*/")
			if end < 0 {
				s.pos = len(s.text)
			} else {
				s.pos += end + 4
			}
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(s.text[s.pos:])
			if r != 0xA0 && r != 0xFEFF && r != 0x2028 && r != 0x2029 {
				return
			}
			s.pos += n
		default:
			return
		}
	}
}

// next returns the next token: a string (escapes resolved), a bare word
// (letters, digits, '_', '$', '-', '+', '.'), or one punctuation byte.
func (s *scanner) next() (string, tokKind, bool) {
	s.skipSpace()
	if s.pos >= len(s.text) {
		return "", 0, false
	}
	c := s.text[s.pos]
	switch {
	case c == '"' || c == '\'':
		return s.str(c), tokString, true
	case isWordByte(c):
		start := s.pos
		for s.pos < len(s.text) && isWordByte(s.text[s.pos]) {
			s.pos++
		}
		return string(s.text[start:s.pos]), tokWord, true
	}
	s.pos++
	return string(c), tokPunct, true
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '$' || c == '-' || c == '+' || c == '.' || c >= utf8.RuneSelf
}

// str reads a string literal quoted by q, resolving JSON's escapes (and
// keeping an unknown escape's character, as lenient readers do).
func (s *scanner) str(q byte) string {
	s.pos++ // the opening quote
	var b strings.Builder
	for s.pos < len(s.text) {
		c := s.text[s.pos]
		s.pos++
		switch {
		case c == q:
			return b.String()
		case c != '\\':
			b.WriteByte(c)
			continue
		}
		if s.pos >= len(s.text) {
			break
		}
		e := s.text[s.pos]
		s.pos++
		switch e {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				b.WriteString(`\u`)
				continue
			}
			if utf16.IsSurrogate(r) && s.pos+1 < len(s.text) && s.text[s.pos] == '\\' && s.text[s.pos+1] == 'u' {
				save := s.pos
				s.pos += 2
				if r2, ok := s.hex4(); ok {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						b.WriteRune(d)
						continue
					}
				}
				s.pos = save
			}
			b.WriteRune(r)
		default:
			b.WriteByte(e)
		}
	}
	return b.String()
}

func (s *scanner) hex4() (rune, bool) {
	if s.pos+4 > len(s.text) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(s.text[s.pos:s.pos+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	s.pos += 4
	return rune(n), true
}
