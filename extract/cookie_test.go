package extract

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

// FuzzCookieCredentials: every value Go's net/http gives a cookie of the
// name is among the guard's findings, whatever else the header holds.
func FuzzCookieCredentials(f *testing.F) {
	const name = "__Host-refresh_app"
	for _, s := range []string{name + "=a", "x=1; " + name + `="q"`, name + " = b ;" + name + "=c", "j=1," + name + "=d e", `a="b;` + name + `=c"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Cookie", line)
		x := testExtractor().Extract(r, nil, nil)
		for _, c := range r.CookiesNamed(name) {
			if c.Value != "" && !slices.ContainsFunc(x.Creds, func(cr Credential) bool { return cr.Raw == c.Value }) {
				t.Fatalf("%q: net/http reads %q; the guard found %q", line, c.Value, x.Creds)
			}
		}
	})
}
