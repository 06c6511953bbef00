package revocation

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

// reencode rewrites each segment of a compact JWS with f.
func reencode(tok string, f func(i int, seg string) string) string {
	parts := strings.Split(tok, ".")
	for i := range parts {
		parts[i] = f(i, parts[i])
	}
	return strings.Join(parts, ".")
}

func stdAlphabet(seg string) string {
	return strings.NewReplacer("-", "+", "_", "/").Replace(seg)
}

func padded(seg string) string {
	for len(seg)%4 != 0 {
		seg += "="
	}
	return seg
}

// Every re-encoding some mainstream library accepts must read as the same
// token: the same claims and the same exact-token key.
func TestLenientReadingOfReencodedTokens(t *testing.T) {
	k := newTestKeys(t)
	claims := jwt.MapClaims{"sub": "alice", "sid": "s1", "jti": "j1", "iat": 1700000000}
	tok := testtoken.Sign(t, jwt.SigningMethodHS256, k.hmac, claims, nil)
	for pad := "x"; len(strings.Split(tok, ".")[1])%4 == 0 || !strings.ContainsAny(tok, "-_"); pad += "?" {
		// A payload with unused bits in its last character, and a token
		// with characters that differ between the two alphabets.
		claims["pad"] = pad
		tok = testtoken.Sign(t, jwt.SigningMethodHS256, k.hmac, claims, nil)
	}
	variants := map[string]string{
		"padded signature":       reencode(tok, func(i int, s string) string { return map[bool]string{true: s + "=", false: s}[i == 2] }),
		"padded header, payload": reencode(tok, func(i int, s string) string { return map[bool]string{true: padded(s) + "=", false: s}[i < 2] }),
		"standard alphabet":      reencode(tok, func(_ int, s string) string { return stdAlphabet(s) }),
		"whitespace around":      " \t" + tok + "\n",
		"newline inside":         reencode(tok, func(i int, s string) string { return s[:len(s)/2] + "\n" + s[len(s)/2:] }),
		"trailing bits set": reencode(tok, func(i int, s string) string {
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			if i != 1 {
				return s
			}
			last := strings.IndexByte(alphabet, s[len(s)-1])
			return s[:len(s)-1] + string(alphabet[last^1])
		}),
	}
	want := HashToken(tok)
	for name, v := range variants {
		t.Run(name, func(t *testing.T) {
			if v == tok {
				t.Fatal("variant equals the original")
			}
			if HashToken(v) != want {
				t.Error("a re-encoding is another token to the denylist")
			}
			c, err := Decode(v, "sid")
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject != "alice" || c.Session != "s1" || c.JTI != "j1" || c.IssuedAt != 1700000000000 {
				t.Errorf("claims %+v", c)
			}
		})
	}
}

// A JWS and an opaque string never share a hash: knowing a stranger's
// header.payload gives no way to name their token as an opaque one.
func TestHashesAreDomainSeparated(t *testing.T) {
	k := newTestKeys(t)
	tok := testtoken.Sign(t, jwt.SigningMethodHS256, k.hmac, jwt.MapClaims{"sub": "alice"}, nil)
	signed := tok[:strings.LastIndexByte(tok, '.')]
	if HashToken(signed) == HashToken(tok) || RawHash(signed) == HashToken(tok) {
		t.Fatal("an opaque header.payload hashes like the JWS it comes from")
	}
	if RawHash(tok) == HashToken(tok) {
		t.Fatal("the exact string of a JWS hashes like its signed part")
	}
	if !IsJWS(tok) || IsJWS(signed) || IsJWS("opaque-token") {
		t.Fatal("IsJWS misreads")
	}
}

// Claims that are not strings are read as apps stringify them, so that
// revoking subject "12345" stops a token whose sub is the number 12345.
func TestNonStringClaims(t *testing.T) {
	payload := func(json string) string {
		return "eyJhbGciOiJIUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(json)) + ".c2ln"
	}
	cases := []struct {
		json string
		sub  []string // every reading, the primary first
		sid  string
		jti  string
	}{
		{`{"sub":12345,"sid":7,"jti":99}`, []string{"12345"}, "7", "99"},
		{`{"sub":12345.0}`, []string{"12345.0", "12345"}, "", ""},
		{`{"sub":12345678901234567890}`, []string{"12345678901234567890", "12345678901234567000", "1.2345678901234567e+19"}, "", ""},
		{`{"sub":["user-6"],"jti":true}`, []string{`["user-6"]`, "user-6"}, "", "true"},
		{`{"sub":"a","sub":"b"}`, []string{"b", "a"}, "", ""},
		{`{"sub":"a","SUB":"b","ſub":"c"}`, []string{"a", "b", "c"}, "", ""},
		{`{"sub":"a","x":NaN}`, []string{"a"}, "", ""},
	}
	for _, c := range cases {
		cl, err := Decode(payload(c.json), "sid")
		if err != nil {
			t.Errorf("%s: %v", c.json, err)
			continue
		}
		got := append([]string{cl.Subject}, cl.AltSubjects...)
		for _, want := range c.sub {
			if !slices.Contains(got, want) {
				t.Errorf("%s: sub readings %q lack %q", c.json, got, want)
			}
		}
		if got[0] != c.sub[0] {
			t.Errorf("%s: primary sub %q, want %q", c.json, got[0], c.sub[0])
		}
		if cl.Session != c.sid || cl.JTI != c.jti {
			t.Errorf("%s: sid %q jti %q", c.json, cl.Session, cl.JTI)
		}
	}
}

// Every reading of an ambiguous token blocks: a subject revoked under a
// name only a struct-based (case-folding) reader sees still stops it.
func TestAlternateReadingsBlock(t *testing.T) {
	tok := "eyJhbGciOiJIUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"a","SUB":"mallory","sid":"s","jti":"j","JTI":"j2","iat":1}`)) + ".c2ln"
	cl, err := Decode(tok, "sid")
	if err != nil {
		t.Fatal(err)
	}
	id := cl.Identity(HashToken(tok))
	dl := NewDenylist()
	if dl.Check(&id, 10) != NotBlocked {
		t.Fatal("blocked on an empty denylist")
	}
	dl.Apply(Entry{Key: SessionKey("mallory", "s"), Expires: 100})
	if got := dl.Check(&id, 10); got != BlockedSession {
		t.Fatalf("session of the folded subject: %v", got)
	}
	dl = NewDenylist()
	dl.Apply(Entry{Key: JTIKey("j2"), Expires: 100})
	if got := dl.Check(&id, 10); got != BlockedJTI {
		t.Fatalf("folded jti: %v", got)
	}
	dl = NewDenylist()
	dl.Apply(Entry{Key: SubjectKey("mallory"), Expires: 100, Cutoff: 5000})
	if got := dl.Check(&id, 10); got != BlockedSubject {
		t.Fatalf("folded subject: %v", got)
	}
}

func FuzzDecodeNeverPanics(f *testing.F) {
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln")
	f.Add("a.b.c")
	f.Add("==.==.==")
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30=e30.x")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Decode(s, "sid")
		if err == nil && c == nil {
			t.Fatal("nil claims without error")
		}
		_ = HashToken(s)
	})
}

// A '=' inside a segment is read both ways: up to it (as Python's base64
// stops) and past it (as a decoder that skips padding reads on), so that a
// revoked token written with one inside still counts as itself.
func TestPaddingInsideASegmentReadsBothWays(t *testing.T) {
	k := newTestKeys(t)
	tok := testtoken.Sign(t, jwt.SigningMethodHS256, k.hmac, jwt.MapClaims{"sub": "alice", "jti": "j-pad"}, nil)
	seg := strings.Split(tok, ".")
	odd := seg[0] + "." + seg[1][:8] + "=" + seg[1][8:] + "." + seg[2]
	store := NewMemoryStore(MemoryOptions{})
	t.Cleanup(func() { _ = store.Close() })
	in := NewInspector(InspectorConfig{Store: store})
	info := in.InspectAt(t.Context(), odd, 10, false)
	dl := NewDenylist()
	dl.Apply(Entry{Key: TokenKey(tok), Expires: 100})
	if got := dl.Check(&info.ID, 10); got != BlockedToken {
		t.Fatalf("the token read past its inner '=' is not the revoked one: %v", got)
	}
}
