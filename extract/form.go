package extract

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// credentialName says what kind of credential a parameter or member name
// stands for: access_token (RFC 6750), refresh_token or refreshToken. The
// name is compared folded as Go's encoding/json folds (so "refreſh_token"
// with a long s matches) and with every character that is not a letter
// or digit dropped (PHP reads "refresh.token" and "refresh token" as
// refresh_token; a bracketed "refresh_token[]" is its array form).
func credentialName(name string) (Kind, bool) {
	if len(name) > 64 {
		return 0, false
	}
	var buf [64]byte
	b := buf[:0]
	for _, r := range name {
		if r == '[' {
			break
		}
		if r < utf8.RuneSelf {
			// FoldName's ASCII rule, without a string per character:
			// every query and form pair's name comes through here.
			switch {
			case r >= 'a' && r <= 'z':
				b = append(b, byte(r)-('a'-'A'))
			case r >= 'A' && r <= 'Z' || r >= '0' && r <= '9':
				b = append(b, byte(r))
			}
			continue
		}
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			continue
		}
		b = append(b, revocation.FoldName(string(r))...)
	}
	switch string(b) {
	case "ACCESSTOKEN":
		return Access, true
	case "REFRESHTOKEN":
		return Refresh, true
	}
	return 0, false
}

// formCredentials reads a query string or a url-encoded form: pairs split
// on '&' or ';', names and values percent-decoded leniently (a malformed
// escape is kept as it is, as Werkzeug keeps it, and the pair is not
// dropped; Go reads past a "#" in a request target), values read with '+'
// as a space and as itself. Every value is read by value, and so is
// every name (a bare "?<token>" is a name to most parsers); a name that
// means a credential (credentialName, or a configured cookie's name, as
// PHP reads a session id from the query) makes its value that
// credential, at any length.
func (e *Extractor) formCredentials(x *Extraction, source, s string) {
	for len(s) > 0 {
		var pair string
		if i := strings.IndexAny(s, "&;#"); i >= 0 {
			pair, s = s[:i], s[i+1:]
		} else {
			pair, s = s, ""
		}
		k, v, _ := strings.Cut(pair, "=")
		name := LenientUnescape(k, true)
		kind, ok := credentialName(name)
		if !ok && e.namesCookie(name) {
			kind, ok = Refresh, true
		}
		if !ok {
			kind = Value
			if len(pair) < MinValueLen {
				continue // every reading is shorter
			}
			x.add(source, Value, name)
			x.add(source, Value, LenientUnescape(k, false))
		}
		x.add(source, kind, LenientUnescape(v, true))
		x.add(source, kind, LenientUnescape(v, false))
	}
}

// LenientUnescape decodes %XX escapes, keeping malformed ones as they
// are, and with plus true reads '+' as a space.
func LenientUnescape(s string, plus bool) string {
	if strings.IndexByte(s, '%') < 0 && (!plus || strings.IndexByte(s, '+') < 0) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		case c == '+' && plus:
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func ishex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
