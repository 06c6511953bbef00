package differential

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
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
	for _, l := range []string{"go", "py", "node", "php", "ruby", "java", "perl"} {
		if langs[l] == 0 {
			t.Errorf("no %s parser results in expected.json", l)
		}
	}
}

// TestEveryFamilyRanOnEveryCase checks that each framework family of issue
// 17 reported on every case: a generator that silently skipped cases would
// leave the guard untested against that framework there.
func TestEveryFamilyRanOnEveryCase(t *testing.T) {
	cases, err := Load(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	families := []string{
		"php-builtin", "php-symfony", "ruby-rack", "ruby-rails", "java-tomcat10", "java-jetty9", "java-spring-web",
		"py-starlette", "py-fastapi", "py-aiohttp", "py-tornado", "perl-plack", "perl-mojolicious", "go-gin",
	}
	for _, c := range cases {
		for _, p := range families {
			if _, ok := c.Expected[p]; !ok {
				t.Errorf("case %s: no result from %s", c.Name, p)
			}
		}
	}
}

// TestFamiliesReadTheIssueClasses pins what the families read in the
// classes issue 17 found from outside, so a regenerated expected.json that
// lost one is noticed here and not only as a guard that passes.
func TestFamiliesReadTheIssueClasses(t *testing.T) {
	cases, err := Load(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Case{}
	for _, c := range cases {
		byName[c.Name] = c
	}
	const at, rt, jsid = "at-revoked-2-0123456789abcdef", "rt-revoked-2-0123456789abcdef", "A1B2C3D4E5F60718293A4B5C6D7E8F90"
	for _, tc := range []struct{ name, parser, slot, want string }{
		{"query-percent-name-letter", "php-builtin", "query:access_token", at},
		{"query-percent-name-letter", "ruby-rack", "query:access_token", at},
		{"query-percent-name-letter", "java-tomcat10", "param:access_token", at},
		{"query-php-name-bracket", "php-builtin", "query:access_token", at},
		{"query-php-name-nul", "php-builtin", "query:access_token", at},
		{"form-php-name-bracket", "php-builtin", "form:refresh_token", rt},
		{"multipart-php-name-bracket", "php-builtin", "form:refresh_token", rt},
		{"multipart-php-name-nul", "php-builtin", "form:refresh_token", rt},
		{"multipart-header-no-colon", "php-builtin", "form:refresh_token", rt},
		{"multipart-header-no-colon", "ruby-rack", "form:refresh_token", rt},
		{"multipart-disposition-param-case", "php-builtin", "form:refresh_token", rt},
		{"path-jsessionid", "java-tomcat10", "session:JSESSIONID", jsid},
		{"path-jsessionid", "java-jetty9", "session:JSESSIONID", jsid},
		{"path-matrix-access-token", "java-spring-web", "path:access_token", at},
		{"auth-basic-password", "php-builtin", "basic:password", at},
		{"auth-rails-token", "ruby-rails", "bearer", at},
		{"cookie-php-name-dot", "php-builtin", "cookie:__Host-refresh_app", rt},
		{"cookie-percent-value-long", "go-gin", "cookie:token", at},
		{"query-padded-value", "py-tornado", "query:access_token", at},
		{"multipart-unterminated-tail", "perl-mojolicious", "form:refresh_token", rt},
	} {
		got := byName[tc.name].Expected[tc.parser].Values[tc.slot]
		if !slices.Contains(got, tc.want) {
			t.Errorf("case %s: %s reads %s = %q, want %q among them", tc.name, tc.parser, tc.slot, got, tc.want)
		}
	}
}

func TestOnlyAcrossJoin(t *testing.T) {
	cases, err := Load(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Case{}
	for _, c := range cases {
		byName[c.Name] = c
	}
	for _, tc := range []struct {
		name, field, v string
		want           bool
	}{
		// Cookie: session=s-1 and Cookie: __Host-refresh_app=rt-revoked-1
		{"cookie-two-headers", "Cookie", "s-1, __Host-refresh_app=rt-revoked-1", true},
		{"cookie-two-headers", "Cookie", "rt-revoked-1", false},
		{"cookie-two-headers", "cookie", "s-1,", true},
		// Authorization: Bearer at-first and Authorization: Bearer at-revoked-1
		{"auth-two-headers", "Authorization", "at-first,", true},
		{"auth-two-headers", "Authorization", "at-first", false},
		// one line: nothing was joined
		{"auth-comma-list", "Authorization", "at-revoked-1, Bearer at-other", false},
		{"cookie-plain", "Cookie", "x, y", false},
	} {
		if got := byName[tc.name].OnlyAcrossJoin(tc.field, tc.v); got != tc.want {
			t.Errorf("case %s: OnlyAcrossJoin(%q, %q) = %v, want %v", tc.name, tc.field, tc.v, got, tc.want)
		}
	}
	for slot, want := range map[string]string{
		"bearer": "Authorization", "basic:password": "Authorization", "cookie:token": "Cookie",
		"cookie:session/json:refreshToken": "Cookie", "header:X-Auth-Token": "X-Auth-Token",
		"query:access_token": "", "session:JSESSIONID": "", "json:refreshToken": "",
	} {
		if got := SlotField(slot); got != want {
			t.Errorf("SlotField(%q) = %q, want %q", slot, got, want)
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
