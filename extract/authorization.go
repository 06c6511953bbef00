package extract

import (
	"encoding/base64"
	"iter"
	"strings"
	"unicode/utf8"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// basicValues reads a Basic credential found by value.
func basicValues(x *Extraction, source, b64 string) {
	dec, err := base64.StdEncoding.DecodeString(strings.Trim(b64, ","))
	if err != nil {
		if dec, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(strings.Trim(b64, ","), "=")); err != nil {
			return
		}
	}
	user, pass, _ := strings.Cut(string(dec), ":")
	x.add(source, Value, string(dec))
	x.add(source, Value, user)
	x.add(source, Value, pass)
}

// authorizationCredentials reads one Authorization header value. Apps
// split it in many ways: on a space (Go, Express), on any Unicode
// whitespace (Python's str.split, which also splits on NO-BREAK SPACE), by
// cutting a fixed-length prefix ("Bearer " is 7 characters), or by taking
// the whole value when no scheme is given. Every field but a scheme name
// is a candidate, with and without a trailing comma (servers join repeated
// headers with commas), and so is what follows "Bearer" and any one
// character. A Basic credential's user and password are candidates too:
// some APIs take a token as the user name. It reports whether v was a
// plain bearer token (plainBearer), whose one reading is then taken.
func authorizationCredentials(x *Extraction, v string) bool {
	if tok, ok := plainBearer(v); ok {
		// Every reading below gives this one token, and nothing else.
		x.add(SourceAuthorization, Access, tok)
		return true
	}
	authorizationReadings(x, v)
	return false
}

// authorizationReadings is authorizationCredentials without its fast
// path: every reading of any value.
func authorizationReadings(x *Extraction, v string) {
	authorizationFields(x, SpaceLikeFields(v))
	if goSplitsOtherwise(v) {
		authorizationFields(x, strings.FieldsSeq(v))
	}
	t := strings.TrimLeftFunc(v, revocation.IsSpaceLike)
	if len(t) > 7 && strings.EqualFold(t[:6], "Bearer") {
		_, size := utf8.DecodeRuneInString(t[6:])
		x.add(SourceAuthorization, Access, t[6+size:]) // as strings.CutPrefix leaves it
		x.add(SourceAuthorization, Access, strings.TrimFunc(t[6+size:], revocation.IsSpaceLike))
	}
}

// goSplitsOtherwise reports whether Go's strings.Fields may split v
// otherwise than SpaceLikeFields: where v holds an information separator
// (0x1C-0x1F: Python splits on them, Go does not) or any byte outside
// ASCII (a lone 0x85 or 0xA0 byte separates fields for a latin-1 reader,
// not for Go, which sees invalid UTF-8).
func goSplitsOtherwise(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c >= utf8.RuneSelf || (c >= 0x1c && c <= 0x1f) {
			return true
		}
	}
	return false
}

// plainBearer returns the token of the commonest Authorization value:
// "Bearer", one space, and a token of printable ASCII without a comma.
// Such a value has two fields, the scheme and the token, whatever the
// splitting, nothing to trim, and what follows "Bearer " is the token
// too: authorizationCredentials would read the token alone out of it,
// with one pass over it for each reading. Anything else (another
// scheme, other spacing, a comma, a byte outside 0x21-0x7E) takes the
// general path (TestPlainBearerReadsAsTheGeneralPath, FuzzPlainBearer).
func plainBearer(v string) (string, bool) {
	if len(v) < 8 || v[6] != ' ' || !strings.EqualFold(v[:6], "Bearer") {
		return "", false
	}
	tok := v[7:]
	if !bearerBytes(tok) {
		return "", false
	}
	return tok, true
}

// bearerBytes reports whether every byte of tok is one plainBearer
// accepts (bearerByte): eight bytes at a time, as it runs over the
// token of nearly every request (a JWT is a few hundred bytes). Each
// test of a word tells exactly whether one of its bytes is out of range
// (below 0x21, above 0x7E, or a comma), not which.
func bearerBytes(tok string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(tok); i += 8 {
		w := uint64(tok[i]) | uint64(tok[i+1])<<8 | uint64(tok[i+2])<<16 | uint64(tok[i+3])<<24 |
			uint64(tok[i+4])<<32 | uint64(tok[i+5])<<40 | uint64(tok[i+6])<<48 | uint64(tok[i+7])<<56
		below := (w - ones*0x21) &^ w       // a byte below 0x21
		above := (w + ones*(0x7f-0x7e)) | w // a byte above 0x7E
		c := w ^ (ones * ',')
		comma := (c - ones) &^ c // a comma
		if (below|above|comma)&highs != 0 {
			return false
		}
	}
	for ; i < len(tok); i++ {
		if !bearerByte[tok[i]] {
			return false
		}
	}
	return true
}

// bearerByte holds the bytes plainBearer accepts in a token.
var bearerByte = func() (t [256]bool) {
	for c := 0x21; c <= 0x7e; c++ {
		t[c] = c != ','
	}
	return t
}()

// SpaceLikeFields splits s on whitespace as Python splits a header value
// that WSGI decoded as latin-1: any Unicode space of valid UTF-8 (see
// revocation.IsSpaceLike), and the lone bytes 0x85 and 0xA0. The test of
// an ASCII byte is made by table: it runs over every
// Authorization header, and deciding rune by rune through unicode.IsSpace
// was most of the guard's cost for a bearer token.
func SpaceLikeFields(s string) iter.Seq[string] {
	return func(yield func(string) bool) {
		start := -1
		for i := 0; i < len(s); {
			space, size := false, 1
			if c := s[i]; c < utf8.RuneSelf {
				space = asciiSpaceLike[c]
			} else {
				var r rune
				r, size = utf8.DecodeRuneInString(s[i:])
				// A lone 0x85 or 0xA0 byte is NEL or NO-BREAK SPACE to a
				// framework that decodes headers as latin-1 (WSGI).
				space = revocation.IsSpaceLike(r) || (r == utf8.RuneError && size == 1 && (c == 0x85 || c == 0xA0))
			}
			switch {
			case space && start >= 0:
				if !yield(s[start:i]) {
					return
				}
				start = -1
			case !space && start < 0:
				start = i
			}
			i += size
		}
		if start >= 0 {
			yield(s[start:])
		}
	}
}

// asciiSpaceLike is revocation.IsSpaceLike for ASCII (TestASCIISpaceLike).
var asciiSpaceLike = [utf8.RuneSelf]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true,
	0x1c: true, 0x1d: true, 0x1e: true, 0x1f: true}

// authorizationFields takes the fields as a sequence rather than a slice:
// the guard reads every request's Authorization header, and splitting it
// into a slice would allocate on every one.
func authorizationFields(x *Extraction, fields iter.Seq[string]) {
	afterBasic, first := false, true
	for f := range fields {
		// The field after "Basic" is still checked as an access token (an
		// app may take the whole value as one), but marked as Basic's, so
		// that app_logout, which never revokes a Basic credential, can
		// tell it apart by its source alone.
		source := SourceAuthorization
		if afterBasic {
			basicCredentials(x, f)
			source = SourceBasic
		}
		afterBasic = strings.EqualFold(f, "Basic")
		// A scheme name is skipped only where a scheme stands: a token
		// that spells "Bearer" after the scheme is still a candidate.
		scheme := first && (strings.EqualFold(f, "Bearer") || strings.EqualFold(f, "DPoP") || strings.EqualFold(f, "Token"))
		first = false
		if afterBasic || scheme {
			continue
		}
		x.add(source, Access, f)
		if t := strings.Trim(f, ","); t != f {
			x.add(source, Access, t)
		}
	}
}

func basicCredentials(x *Extraction, b64 string) {
	dec, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		if dec, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "=")); err != nil {
			return
		}
	}
	user, pass, _ := strings.Cut(string(dec), ":")
	x.add(SourceBasic, Refresh, user)
	x.add(SourceBasic, Refresh, pass)
}
