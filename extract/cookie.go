package extract

import (
	"slices"
	"strings"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// namesCookie reports whether name is a configured cookie's, in any case
// (Tomcat reads ";jsessionid=" for a JSESSIONID cookie; PHP reads a
// PHPSESSID query parameter when use_only_cookies is off).
func (e *Extractor) namesCookie(name string) bool {
	if len(e.Cookies) == 0 || name == "" {
		return false
	}
	k := CookieNameKey(name)
	for _, c := range e.Cookies {
		if strings.EqualFold(k, c) {
			return true
		}
	}
	return false
}

// CookieNameKey normalises a cookie name as the most lenient framework
// reads it: percent-decoded, spaces around it dropped, and ' ', '.' and
// '[' read as '_' (PHP's rule for request variable names).
func CookieNameKey(name string) string {
	name = strings.TrimFunc(LenientUnescape(name, false), revocation.IsSpaceLike)
	name = strings.Trim(name, `"`)
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '.', '[':
			return '_'
		}
		return r
	}, name)
}

// cookieCredentials reads every value a Cookie header line may give a
// cookie, as any parser may read it: each occurrence; pairs separated by
// ';', ',' or whitespace (Python's http.cookies splits on whitespace, old
// parsers on commas); spaces around the name and the value ignored; the
// value up to the next ';', or up to the next ',' or space; quoted values
// with and without their quotes, with Python's backslash and octal
// escapes resolved; percent-decoded; an Express signed value
// ("s:value.signature") as its value, and an Express JSON cookie
// ("j:{...}") as every string in it. A cookie named like one of names is
// read as that credential; every other is read by value.
func cookieCredentials(x *Extraction, line string, names []string) {
	for i := 0; i < len(line); i++ {
		if line[i] != '=' {
			continue
		}
		// The name: back from '=' over spaces, then to a separator.
		end := i
		for end > 0 && (line[end-1] == ' ' || line[end-1] == '\t') {
			end--
		}
		start := end
		for start > 0 && !strings.ContainsRune(";, \t", rune(line[start-1])) {
			start--
		}
		kind := Value
		if matchesCookie(line[start:end], names) {
			kind = Refresh
		} else if len(line)-i-1 < MinValueLen {
			continue // every reading of the value is shorter
		}
		cookieValue(x, line[i+1:], kind)
	}
}

func matchesCookie(name string, names []string) bool {
	if name == "" {
		return false
	}
	k := CookieNameKey(name)
	for _, n := range names {
		if k == n {
			return true
		}
	}
	return false
}

// cookieValue adds the readings of a cookie value that starts at v.
func cookieValue(x *Extraction, v string, kind Kind) {
	semi := v
	if i := strings.IndexByte(v, ';'); i >= 0 {
		semi = v[:i]
	}
	if plainCookie(semi) {
		// Every reading below is the value itself.
		x.add(SourceCookie, kind, semi)
		return
	}
	var buf [16]string // at most 13 readings: no allocation
	readings := buf[:0]
	// Go leaves spaces after '=' in place, and trims those before ';'.
	readings = append(readings, semi, strings.TrimRight(semi, " \t"))
	v = strings.TrimLeft(v, " \t")
	if strings.HasPrefix(v, `"`) {
		if inner, ok := quotedCookie(v); ok {
			readings = append(readings, inner, pyUnquote(inner), `"`+inner+`"`)
		}
	}
	for _, trim := range []func(string) string{
		func(s string) string { return strings.Trim(s, " \t") },
		func(s string) string { return strings.TrimFunc(s, revocation.IsSpaceLike) }, // Python's str.strip
	} {
		t := trim(semi)
		readings = append(readings, t, strings.Trim(t, `"`))
	}
	t := strings.TrimLeft(semi, " \t")
	// Python's http.cookies ends an unquoted value at whitespace; older
	// parsers at a comma.
	for _, stops := range []string{" \t", ", \t"} {
		if i := strings.IndexAny(t, stops); i >= 0 {
			readings = append(readings, t[:i], strings.Trim(t[:i], `"`))
		}
	}
	for i, r := range readings {
		// Most readings of a plain value are the value itself: decode
		// each distinct one once.
		if !slices.Contains(readings[:i], r) {
			addCookieReading(x, r, kind)
		}
	}
}

// plainCookie reports whether every reading of a cookie value is the
// value itself: no space, quote, comma, backslash, escape or '+', no
// byte outside ASCII, and no Express prefix.
func plainCookie(v string) bool {
	if len(v) >= 2 && v[1] == ':' && (v[0] == 's' || v[0] == 'j') {
		return false
	}
	for i := 0; i < len(v); i++ {
		if !plainCookieByte[v[i]] {
			return false
		}
	}
	return true
}

// plainCookieByte holds the bytes plainCookie accepts.
var plainCookieByte = func() (t [256]bool) {
	for c := 0x21; c <= 0x7e; c++ {
		t[c] = !strings.ContainsRune(`"\,%+`, rune(c))
	}
	return t
}()

func addCookieReading(x *Extraction, v string, kind Kind) {
	for _, d := range []string{v, LenientUnescape(v, false), LenientUnescape(v, true)} {
		x.add(SourceCookie, kind, d)
		if rest, ok := strings.CutPrefix(d, "s:"); ok {
			if i := strings.LastIndexByte(rest, '.'); i > 0 {
				x.add(SourceCookie, kind, rest[:i])
			}
		}
		if rest, ok := strings.CutPrefix(d, "j:"); ok {
			for _, s := range jsonStrings([]byte(rest)) {
				x.add(SourceCookie, kind, s)
			}
		}
	}
}

// quotedCookie returns what is inside a quoted cookie value starting at
// v[0] == '"', backslash escapes kept, up to the closing quote.
func quotedCookie(v string) (string, bool) {
	for i := 1; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '"':
			return v[1:i], true
		}
	}
	return "", false
}

// pyUnquote resolves the escapes Python's http.cookies and Werkzeug
// resolve inside a quoted value: \ooo (three octal digits) as that byte,
// and a backslash before any other character as that character.
func pyUnquote(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		if i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
