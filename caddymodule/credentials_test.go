package caddymodule

import (
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
		got := slices.Collect(spaceLikeFields(s))
		if !slices.Equal(got, want) && len(got)+len(want) > 0 {
			t.Fatalf("%q: got %q, want %q", s, got, want)
		}
	})
}
