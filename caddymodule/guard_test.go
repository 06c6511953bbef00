package caddymodule

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestPeekRefreshTokensFindsEveryForm(t *testing.T) {
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
		{"text/plain", "text/plain", `{"refreshToken":"rt1"}`, []string{"rt1"}},
		{"OAuth refresh grant", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=rt2", []string{"rt2"}},
		{"form, camel case", "application/x-www-form-urlencoded", "refreshToken=rt3", []string{"rt3"}},
		{"multipart is not read", "multipart/form-data; boundary=x", `{"refreshToken":"rt1"}`, nil},
		{"not JSON", "application/json", `refreshToken=rt1`, nil},
		{"non-string value", "application/json", `{"refreshToken":42}`, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(c.body))
			if c.ctype != "" {
				r.Header.Set("Content-Type", c.ctype)
			}
			got := peekRefreshTokens(r)
			slices.Sort(got)
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

func TestPeekRefreshTokensLeavesLargeBodiesWhole(t *testing.T) {
	body := `{"refreshToken":"rt","pad":"` + strings.Repeat("x", maxInspectBody) + `"}`
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	r.ContentLength = -1 // chunked: the size is learned by reading
	r.Header.Set("Content-Type", "application/json")
	if got := peekRefreshTokens(r); got != nil {
		t.Fatalf("a body over the limit was examined: %q", got)
	}
	rest, _ := io.ReadAll(r.Body)
	if string(rest) != body {
		t.Fatal("a large body did not pass on whole")
	}
}

func TestCookieValuesReturnsEveryCookie(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Add("Cookie", "a=1; __Host-refresh_app=first")
	r.Header.Add("Cookie", `__Host-refresh_app="second"; __Host-refresh_app_other=x`)
	got := cookieValues(r, "__Host-refresh_app")
	if !slices.Equal(got, []string{"first", "second"}) {
		t.Fatalf("got %q", got)
	}
}

func FuzzJSONRefreshTokens(f *testing.F) {
	for _, s := range []string{`{"refreshToken":"a"}`, `[{"a":{"refresh_token":"b"}}]`, `{"a":[1,{"b":"c"}],"refreshToken":"d"}`, `{`, `}`, `[]]`} {
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
