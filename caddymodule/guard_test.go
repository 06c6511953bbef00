package caddymodule

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"
)

func TestBodyCredentialsFindsEveryForm(t *testing.T) {
	utf16le := func(s string) string {
		var b []byte
		for _, u := range utf16.Encode([]rune(s)) {
			b = append(b, byte(u), byte(u>>8))
		}
		return string(b)
	}
	cases := []struct {
		name, ctype, body string
		want              []string
	}{
		{"plain", "application/json", `{"refreshToken":"rt1"}`, []string{"rt1"}},
		{"escaped key", "application/json", `{"refresh\u0054oken":"rt1"}`, []string{"rt1"}},
		{"other case", "application/json", `{"RefreshToken":"rt1"}`, []string{"rt1"}},
		{"snake case", "application/json; charset=utf-8", `{"refresh_token":"rt1"}`, []string{"rt1"}},
		{"duplicates, all of them", "application/json", `{"refreshToken":"a","refreshToken":"b"}`, []string{"a", "b"}},
		{"nested", "application/vnd.api+json", `{"data":{"attributes":{"refreshToken":"deep"}},"list":[{"refreshToken":"in-array"}]}`, []string{"deep", "in-array"}},
		{"value named like the key is not a key", "application/json", `{"note":"refreshToken","x":"y"}`, nil},
		{"no content type", "", `{"refreshToken":"rt1"}`, []string{"rt1"}},
		{"declared as something else", "application/octet-stream", `{"refreshToken":"rt1"}`, []string{"rt1"}},
		{"UTF-8 byte-order mark", "application/json", "\xEF\xBB\xBF" + `{"refreshToken":"bom"}`, []string{"bom"}},
		{"UTF-16", "application/json", "\xFF\xFE" + utf16le(`{"refreshToken":"wide"}`), []string{"wide"}},
		{"NaN (Python accepts it)", "application/json", `{"a":NaN,"refreshToken":"after-nan"}`, []string{"after-nan"}},
		{"NaN and an escaped key", "application/json", `{"a":NaN,"refresh\u0074oken":"esc"}`, []string{"esc"}},
		{"OAuth refresh grant", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=rt2", []string{"rt2"}},
		{"form, camel case", "application/x-www-form-urlencoded", "refreshToken=rt3", []string{"rt3"}},
		{"form with a malformed pair", "application/x-www-form-urlencoded", "refresh_token=rt4&x=%zz", []string{"rt4"}},
		{"multipart field", "multipart/form-data; boundary=XX", "--XX\r\nContent-Disposition: form-data; name=\"refresh_token\"\r\n\r\nmp1\r\n--XX--\r\n", []string{"mp1"}},
		{"multipart file is not a field", "multipart/form-data; boundary=XX", "--XX\r\nContent-Disposition: form-data; name=\"refresh_token\"; filename=\"a.txt\"\r\n\r\nfile\r\n--XX--\r\n", nil},
		{"not JSON", "application/json", `hello`, nil},
		{"non-string value", "application/json", `{"refreshToken":42}`, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(c.body))
			if c.ctype != "" {
				r.Header.Set("Content-Type", c.ctype)
			}
			_, got, ok := bodyCredentials(r, defaultInspectBody)
			if !ok {
				t.Fatal("body not inspected")
			}
			slices.Sort(got)
			got = slices.Compact(got)
			if !slices.Equal(got, c.want) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
			rest, _ := io.ReadAll(r.Body)
			if string(rest) != c.body {
				t.Fatalf("body not put back: %q", rest)
			}
		})
	}
}

func TestBodyCredentialsDecodesContentEncoding(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"refreshToken":"zipped"}`))
	zw.Close()
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(gz.Bytes()))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Content-Encoding", "gzip")
	_, got, ok := bodyCredentials(r, defaultInspectBody)
	if !ok || !slices.Equal(got, []string{"zipped"}) {
		t.Fatalf("gzip body: %q, inspected %v", got, ok)
	}
	rest, _ := io.ReadAll(r.Body)
	if !bytes.Equal(rest, gz.Bytes()) {
		t.Fatal("the encoded body was not passed on as it came")
	}
	r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader("whatever"))
	r.Header.Set("Content-Encoding", "br")
	if _, _, ok := bodyCredentials(r, defaultInspectBody); ok {
		t.Fatal("a body in an encoding it cannot read counted as inspected")
	}
}

func TestBodyCredentialsAccessTokenForm(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("access_token=at1&x=1"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	access, _, ok := bodyCredentials(r, defaultInspectBody)
	if !ok || !slices.Equal(access, []string{"at1"}) {
		t.Fatalf("access_token form field: %q", access)
	}
}

func TestBodyCredentialsLeavesLargeBodiesWhole(t *testing.T) {
	body := `{"refreshToken":"rt","pad":"` + strings.Repeat("x", defaultInspectBody) + `"}`
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	r.ContentLength = -1 // chunked: the size is learned by reading
	r.Header.Set("Content-Type", "application/json")
	if _, got, ok := bodyCredentials(r, defaultInspectBody); ok || got != nil {
		t.Fatalf("a body over the limit counted as inspected: %q", got)
	}
	rest, _ := io.ReadAll(r.Body)
	if string(rest) != body {
		t.Fatal("a large body did not pass on whole")
	}
}

func TestAuthorizationFields(t *testing.T) {
	cases := map[string][]string{
		"Bearer abc":         {"abc"},
		"bearer\tabc":        {"abc"},
		"DPoP  abc ":         {"abc"},
		"Bearer a b":         {"a", "b"},
		" Bearer abc":        {"abc"},
		"Basic dXNlcjpwdw==": nil,
		"Bearer":             nil,
		"Bearerabc":          nil,
	}
	for in, want := range cases {
		var got []string
		for rest := bearerRest(in); rest != ""; {
			var f string
			f, rest = nextField(rest)
			got = append(got, f)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

func TestCookieValuesReadsLikeEveryParser(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Add("Cookie", "a=1; __Host-refresh_app=first")
	r.Header.Add("Cookie", `__Host-refresh_app="second"; __Host-refresh_app_other=x`)
	r.Header.Add("Cookie", "__Host-refresh_app =spaced;\t__Host-refresh_app=%72t")
	got := cookieValues(r, "__Host-refresh_app")
	for _, want := range []string{"first", "second", "spaced", "%72t", "rt"} {
		if !slices.Contains(got, want) {
			t.Errorf("%q not among %q", want, got)
		}
	}
	if slices.Contains(got, "x") {
		t.Error("another cookie's value was taken")
	}
}

func TestQueryCredentials(t *testing.T) {
	access, refresh := queryCredentials("access_token=at&refresh_token=rt&x=%zz")
	if !slices.Equal(access, []string{"at"}) || !slices.Equal(refresh, []string{"rt"}) {
		t.Fatalf("access %q, refresh %q", access, refresh)
	}
	if a, r := queryCredentials("page=2"); a != nil || r != nil {
		t.Fatal("a query without tokens yielded some")
	}
}

func FuzzJSONRefreshTokens(f *testing.F) {
	for _, s := range []string{`{"refreshToken":"a"}`, `[{"a":{"refresh_token":"b"}}]`, `{"a":[1,{"b":"c"}],"refreshToken":"d"}`, `{`, `}`, `[]]`, `{"a":NaN,"refreshToken":"e"}`, "\xFF\xFE{\x00}\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, tok := range jsonRefreshTokens([]byte(s)) {
			if tok == "" {
				t.Fatal("empty token returned")
			}
		}
	})
}
