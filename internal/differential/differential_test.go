package differential

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

var corpusDir = filepath.Join("..", "..", "testdata", "differential")

func TestLoadCorpus(t *testing.T) {
	cases, err := Load(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 60 {
		t.Fatalf("corpus has %d cases, want at least 60", len(cases))
	}
	langs := map[string]int{}
	for _, c := range cases {
		if len(c.Expected) == 0 {
			t.Errorf("case %s: no parser result", c.Name)
		}
		for p := range c.Expected {
			langs[strings.SplitN(p, "-", 2)[0]]++
		}
		r, err := c.Request()
		if err != nil {
			t.Errorf("case %s: %v", c.Name, err)
			continue
		}
		if _, err := io.ReadAll(r.Body); err != nil {
			t.Errorf("case %s: body: %v", c.Name, err)
		}
	}
	for _, l := range []string{"go", "py", "node"} {
		if langs[l] == 0 {
			t.Errorf("no %s parser results in expected.json", l)
		}
	}
}

// TestRequestIsTheWire checks that Request hands the Go side exactly the
// bytes the Python and Node parsers were sent, for cases whose point is in
// those bytes.
func TestRequestIsTheWire(t *testing.T) {
	cases, err := Load(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Case{}
	for _, c := range cases {
		byName[c.Name] = c
	}
	for _, tc := range []struct {
		name   string
		check  func(*http.Request) string
		expect string
	}{
		{"auth-nbsp", func(r *http.Request) string { return r.Header.Get("Authorization") }, "Bearer\u00a0at-revoked-1"},
		{"auth-nbsp-byte", func(r *http.Request) string { return r.Header.Get("Authorization") }, "Bearer\xa0at-revoked-1"},
		{"auth-two-headers", func(r *http.Request) string { return strings.Join(r.Header.Values("Authorization"), "|") }, "Bearer at-first|Bearer at-revoked-1"},
		{"cookie-two-headers", func(r *http.Request) string { return strings.Join(r.Header.Values("Cookie"), "|") }, "session=s-1|__Host-refresh_app=rt-revoked-1"},
		{"query-semicolon", func(r *http.Request) string { return r.URL.RawQuery }, "x=1;access_token=at-revoked-1;refresh_token=rt-revoked-1"},
		{"json-utf16le-nobom", func(r *http.Request) string {
			b, _ := io.ReadAll(r.Body)
			return string(b[:4])
		}, "{\x00\"\x00"},
	} {
		c, ok := byName[tc.name]
		if !ok {
			t.Errorf("case %s missing from the corpus", tc.name)
			continue
		}
		r, err := c.Request()
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := tc.check(r); got != tc.expect {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.expect)
		}
	}
}

// TestExpectedRecordsKnownDisagreements pins a few extractions from
// issue 8 that the corpus exists to capture, so a regenerated
// expected.json that lost them is noticed.
func TestExpectedRecordsKnownDisagreements(t *testing.T) {
	cases, err := Load(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Case{}
	for _, c := range cases {
		byName[c.Name] = c
	}
	for _, tc := range []struct{ name, parser, slot, want string }{
		{"cookie-octal-escape", "py-simplecookie", "cookie:__Host-refresh_app", "rt-revoked-1"},
		{"cookie-express-j-json", "node-express4", "cookie:session/json:refreshToken", "rt-revoked-1"},
		{"auth-nbsp-byte", "py-werkzeug", "bearer", "at-revoked-1"},
		{"json-utf32le-nobom", "py-werkzeug", "json:refreshToken", "rt-revoked-1"},
		{"json-long-s", "go-json-struct", "json:refresh_token", "rt-revoked-1"},
		{"json-kelvin", "go-json-struct", "json:refresh_token", "rt-revoked-1"},
		{"json-gzip", "node-express4", "json:refreshToken", "rt-revoked-1"},
		{"multipart-json-body", "go-json-struct", "json:refreshToken", "rt-revoked-1"},
		{"multipart-base64-cte", "py-django", "form:refresh_token", "rt-revoked-1"},
		{"auth-nbsp", "go-bearer-fields", "bearer", "at-revoked-1"},
	} {
		e, ok := byName[tc.name].Expected[tc.parser]
		if !ok {
			t.Errorf("%s: parser %s missing", tc.name, tc.parser)
			continue
		}
		if !contains(e.Values[tc.slot], tc.want) {
			t.Errorf("%s: %s %s = %q, want it to hold %q", tc.name, tc.parser, tc.slot, e.Values[tc.slot], tc.want)
		}
	}
	for _, tc := range []struct{ name, parser, jti string }{
		{"jwt-sig-padded", "node-jose-verify", "jti-1"},
		{"jwt-sig-std-alphabet", "node-jose5-verify", "jti-2"},
		{"jwt-sig-std-alphabet", "py-pyjwt", "jti-2"},
		{"jwt-payload-padded", "go-jose-v3", "jti-1"},
		{"jwt-sig-padded", "go-golang-jwt-padding", "jti-1"},
	} {
		found := false
		for _, cl := range byName[tc.name].Expected[tc.parser].JWT {
			found = found || cl["jti"] == tc.jti
		}
		if !found {
			t.Errorf("%s: %s accepted no token with jti %s", tc.name, tc.parser, tc.jti)
		}
	}
}

func contains(vs []string, want string) bool {
	for _, v := range vs {
		if v == want {
			return true
		}
	}
	return false
}

func TestValuesAndClaims(t *testing.T) {
	cases, err := Load(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Case{}
	for _, c := range cases {
		byName[c.Name] = c
	}
	mixed := byName["mixed-everywhere"]
	if got := mixed.Values(func(s string) bool { return strings.HasPrefix(s, PrefixQuery) }); strings.Join(got, ",") != "at-q,rt-q" {
		t.Errorf("mixed-everywhere query values = %q, want [at-q rt-q]", got)
	}
	for _, want := range []string{"at-f", "at-h", "at-q", "at-x", "rt-c", "rt-f", "rt-q", "s-c"} {
		if !contains(mixed.Strings(), want) {
			t.Errorf("mixed-everywhere: Strings() = %q, want it to hold %q", mixed.Strings(), want)
		}
	}
	// A padded header segment verifies only for go-jose v3; decoders that
	// skip verification read it too.
	hp := byName["jwt-header-padded"]
	if got := hp.Claims(false); len(got) != 1 || got[0]["sid"] != "sess-4" {
		t.Errorf("jwt-header-padded verified claims = %v, want one set with sid sess-4", got)
	}
	numeric := byName["jwt-numeric-claims"].Claims(false)
	if len(numeric) != 1 || numeric[0]["sub"] != json.Number("12345") {
		t.Errorf("jwt-numeric-claims claims = %v, want sub as the number 12345", numeric)
	}
	if got := byName["auth-plain"].Claims(true); len(got) != 0 {
		t.Errorf("auth-plain: an opaque token has claims %v", got)
	}
}
