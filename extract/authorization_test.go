package extract

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

func TestASCIISpaceLike(t *testing.T) {
	for c := rune(0); c < utf8.RuneSelf; c++ {
		if asciiSpaceLike[c] != revocation.IsSpaceLike(c) {
			t.Errorf("%#x: table says %v, IsSpaceLike %v", c, asciiSpaceLike[c], revocation.IsSpaceLike(c))
		}
	}
}

// FuzzSpaceLikeFields: the guard splits an Authorization header exactly
// as strings.FieldsFunc with revocation.IsSpaceLike does, once every lone
// 0x85 and 0xA0 byte (latin-1 spaces) is read as a space.
func FuzzSpaceLikeFields(f *testing.F) {
	for _, s := range []string{"", " ", "Bearer a", " Bearer\u00a0b  c ", "a\x1cb\x85c\u2003d", "\xff \xc2", "x\u3000", "Bearer\xa0tok", "a\xc2\xa0\xa0b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b strings.Builder
		for i := 0; i < len(s); {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 && (s[i] == 0x85 || s[i] == 0xA0) {
				b.WriteByte(' ')
			} else {
				b.WriteString(s[i : i+size])
			}
			i += size
		}
		want := strings.FieldsFunc(b.String(), revocation.IsSpaceLike)
		got := slices.Collect(SpaceLikeFields(s))
		if !slices.Equal(got, want) && len(got)+len(want) > 0 {
			t.Fatalf("%q: got %q, want %q", s, got, want)
		}
	})
}

// FuzzPlainBearer: whenever plainBearer takes the fast path, the general
// reading of the same value finds exactly what the fast path records for
// the one token it returns (the token, and its unquoted reading when it
// is quoted: Extraction.add records both either way).
func FuzzPlainBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer a.b.c", "BEARER x", "Bearer  x", "Bearer x,", "Bearer Bearer",
		"Bearer Basic", "Bearer\tx", "Bearer x\x1c", "Bearer \u00a0x", "Token x", "Bearer x y", "Bearer ,x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tok, ok := plainBearer(v)
		if !ok {
			return
		}
		var fast, general Extraction
		fast.add(SourceAuthorization, Access, tok)
		authorizationReadings(&general, v)
		if !slices.Equal(fast.Creds, general.Creds) {
			t.Fatalf("%q: the fast path reads %+v, the general path %+v", v, fast.Creds, general.Creds)
		}
	})
}

func TestPlainBearerReadsAsTheGeneralPath(t *testing.T) {
	for _, v := range []string{"Bearer abc", "bearer a.b.c", "BEARER x", "Bearer Bearer", "Bearer Basic", "Bearer DPoP", "Bearer eyJ.eyJ.sig-_~+/="} {
		tok, ok := plainBearer(v)
		if !ok {
			t.Errorf("%q: not taken as a plain bearer token", v)
			continue
		}
		var x Extraction
		authorizationReadings(&x, v)
		if len(x.Creds) != 1 || x.Creds[0].Raw != tok || x.Creds[0].Kind != Access {
			t.Errorf("%q: the fast path reads %q, the general path %+v", v, tok, x.Creds)
		}
	}
	// Values the fast path must leave to the general one.
	for _, v := range []string{"Bearer  x", "Bearer x,", "Bearer\tx", "Bearer x\x1c", "Bearer \u00a0x", "Bearer x y",
		"Bearer ,x", "Token x", "Bearer ", "Bearer", " Bearer x", "Bearer x\x7f", "Bearer x\x00"} {
		if tok, ok := plainBearer(v); ok {
			t.Errorf("%q: taken as the plain bearer token %q", v, tok)
		}
	}
}

// FuzzAuthorization: every field Go's strings.Fields gives after a Bearer
// scheme is among the guard's findings.
func FuzzAuthorization(f *testing.F) {
	for _, s := range []string{"Bearer a", "bearer\u00a0b", "Bearer  c d", "DPoP e", "Basic Zjpn", "Bearer:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["Authorization"] = []string{v}
		x := testExtractor().Extract(r, nil, nil)
		fields := strings.Fields(v)
		if len(fields) < 2 || !strings.EqualFold(fields[0], "Bearer") {
			return
		}
		for _, fld := range fields[1:] {
			if len(fld) <= maxCandidateLen && !slices.ContainsFunc(x.Creds, func(c Credential) bool { return c.Raw == fld }) {
				t.Fatalf("%q: field %q not found in %q", v, fld, x.Creds)
			}
		}
	})
}

// bearerBytes, eight bytes at a time, answers as the table does for
// every byte at every position of a word and of the tail.
func TestBearerBytesAsTheTable(t *testing.T) {
	base := []byte("abcdefghijklmnopqrstuvwxyz0123456789-._~+/=ABCD") // 47 bytes: 5 words and a tail
	for pos := range base {
		for b := range 256 {
			tok := slices.Clone(base)
			tok[pos] = byte(b)
			want := bearerBytesByTable(string(tok))
			if got := bearerBytes(string(tok)); got != want {
				t.Fatalf("byte %#x at %d: %v, the table says %v", b, pos, got, want)
			}
		}
	}
}

// bearerBytesByTable is bearerBytes a byte at a time, as it was.
func bearerBytesByTable(tok string) bool {
	for i := 0; i < len(tok); i++ {
		if !bearerByte[tok[i]] {
			return false
		}
	}
	return true
}

// BenchmarkBearerBytes: the test of a JWT's bytes, eight at a time
// against one at a time, in the same run.
//
//	go test -run '^$' -bench BearerBytes ./extract/
func BenchmarkBearerBytes(b *testing.B) {
	tok := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + strings.Repeat("eyJzdWIiOiJ1c2VyLTEyMyIsInNpZCI6InMtMTIzIn0", 3) + ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	for _, c := range []struct {
		name string
		f    func(string) bool
	}{{"by-table", bearerBytesByTable}, {"by-word", bearerBytes}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if !c.f(tok) {
					b.Fatal("refused")
				}
			}
		})
	}
}
