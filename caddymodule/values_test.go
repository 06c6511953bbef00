package caddymodule

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/extract"
)

// Every place a framework could hand a value to an app is read by value:
// a revoked credential is found whatever name it travels under, in each
// class an attacker tried from outside (issue 17), and in the places no
// name marks at all.
func TestGuardFindsCredentialsByValue(t *testing.T) {
	h := legacyHandler(t, nil)
	ctx := context.Background()
	byJTI := guardTokens.Mint(t, jwt.MapClaims{"sub": "mallory", "sid": "m1", "jti": "values-jti"})
	if _, err := h.revoker.RevokeJTI(ctx, "values-jti", 0); err != nil {
		t.Fatal(err)
	}
	const opaque = "0A1B2C3D4E5F60718293A4B5C6D7E8F9"
	if _, err := h.revoker.RevokeToken(ctx, opaque); err != nil {
		t.Fatal(err)
	}
	multipart := func(head, value string) (string, string) {
		return "multipart/form-data; boundary=XX", "--XX\r\n" + head + "\r\n\r\n" + value + "\r\n--XX--\r\n"
	}
	type carrier struct {
		target, ctype, body string
		headers             []string
	}
	for _, tok := range []string{byJTI, opaque} {
		q := url.QueryEscape(tok)
		cases := map[string]carrier{
			"query, percent-encoded name":     {target: "/api?access_%74oken=" + q},
			"query, PHP unmatched [":          {target: "/api?access[token=" + q},
			"query, PHP NUL ends the name":    {target: "/api?access_token%00x=" + q},
			"query, PHP dot and space":        {target: "/api?access.to+ken=" + q},
			"query, any name":                 {target: "/api?whatever=" + q},
			"query, bare":                     {target: "/api?" + q},
			"form, PHP [":                     {ctype: "application/x-www-form-urlencoded", body: "refresh[token=" + q},
			"form, any name":                  {ctype: "application/x-www-form-urlencoded", body: "a=1&x=" + q},
			"multipart, NAME in upper case":   {body: "", ctype: ""},
			"path parameter jsessionid":       {target: "/app;jsessionid=" + tok},
			"path parameter, inner segment":   {target: "/app;x=" + tok + "/page"},
			"path segment":                    {target: "/reset/" + tok},
			"cookie, any name":                {headers: []string{"Cookie", "lang=en; s=" + tok}},
			"cookie, planted JSON":            {headers: []string{"Cookie", "x=" + url.QueryEscape(`j:{"a":["`+tok+`"]}`)}},
			"header, any name":                {headers: []string{"X-Whatever", tok}},
			"header, structured parameter":    {headers: []string{"X-Session", `v1; id="` + tok + `"`}},
			"header, list member":             {headers: []string{"X-List", "a, " + tok + ", b"}},
			"header, byte sequence":           {headers: []string{"X-Bin", "k=:" + base64.StdEncoding.EncodeToString([]byte(tok)) + ":"}},
			"header, Basic elsewhere":         {headers: []string{"Proxy-Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+tok))}},
			"json, any member at any depth":   {ctype: "application/json", body: `{"a":{"b":[{"c":"` + tok + `"}]}}`},
			"json, as a member name":          {ctype: "application/json", body: `{"` + tok + `":true}`},
			"body, raw":                       {ctype: "text/plain", body: tok + "\n"},
			"configured cookie name in query": {target: "/api?jsessionid=" + q},
		}
		c := cases["multipart, NAME in upper case"]
		c.ctype, c.body = multipart(`Content-Disposition: form-data; NAME="access_token"`, tok)
		cases["multipart, NAME in upper case"] = c
		ct, b := multipart("Content-Disposition: form-data; name=\"a\"\r\nX-Broken-Line-Without-Colon", tok)
		cases["multipart, part header without a colon"] = carrier{ctype: ct, body: b}
		ct, b = multipart(`Content-Disposition: form-data; name="any"`, tok)
		cases["multipart, any name"] = carrier{ctype: ct, body: b}
		cases["multipart, undeclared boundary"] = carrier{ctype: "multipart/form-data; boundary=YY", body: b}
		for name, c := range cases {
			t.Run(name, func(t *testing.T) {
				target := c.target
				if target == "" {
					target = "/api"
				}
				method := http.MethodGet
				var body *strings.Reader
				if c.body != "" {
					method, body = http.MethodPost, strings.NewReader(c.body)
				}
				var r *http.Request
				if body != nil {
					r = httptest.NewRequest(method, target, body)
				} else {
					r = httptest.NewRequest(method, target, nil)
				}
				if c.ctype != "" {
					r.Header.Set("Content-Type", c.ctype)
				}
				for i := 0; i+1 < len(c.headers); i += 2 {
					r.Header.Add(c.headers[i], c.headers[i+1])
				}
				if st, reached := serve(t, h, r); st != http.StatusUnauthorized || reached {
					t.Fatalf("status %d, upstream reached %v", st, reached)
				}
			})
		}
	}
}

// A value found by value is never revoked by app_logout: only what the
// client presented under a credential's name is its own to revoke.
func TestValuesAreNotRevokedByAppLogout(t *testing.T) {
	h := legacyHandler(t, func(h *Handler) { h.AppLogout = []string{"/logout"} })
	ua := "Mozilla/5.0 (X11; Linux x86_64) SharedBrowser/1.0"
	sid := "7E6D5C4B3A29180716253443526170FF"
	r := httptest.NewRequest(http.MethodPost, "/logout", nil)
	r.Header.Set("User-Agent", ua)
	r.Header.Set("Cookie", "JSESSIONID="+sid+"; theme=a-long-shared-theme-value")
	if st, reached := serve(t, h, r); st != http.StatusOK || !reached {
		t.Fatalf("logout: %d", st)
	}
	r = httptest.NewRequest(http.MethodGet, "/app", nil)
	r.Header.Set("User-Agent", ua)
	r.Header.Set("Cookie", "theme=a-long-shared-theme-value")
	if st, reached := serve(t, h, r); st != http.StatusOK || !reached {
		t.Fatalf("another user with the same browser and theme: %d", st)
	}
	r = httptest.NewRequest(http.MethodGet, "/app", nil)
	r.Header.Set("Cookie", "JSESSIONID="+sid)
	if st, reached := serve(t, h, r); st != http.StatusUnauthorized || reached {
		t.Fatalf("the session logged out: %d", st)
	}
}

// app_logout paths are compared as apps route them.
func TestLogoutPathKey(t *testing.T) {
	for _, p := range []string{"/logout", "/logout/", "/LOGOUT", "/Logout;jsessionid=x", "//logout", "/./logout", "/a/../logout",
		"/logout;x=1/", "/%6Cogout", "///logout//"} {
		if got := normalizeLogoutPath(p); got != "/logout" {
			t.Errorf("%q: %q, want /logout", p, got)
		}
	}
	// The fast path agrees with the normalisation wherever it applies.
	for _, p := range []string{"/", "/a", "/a/b", "/a.b", "/a/.b", "/a/b/", "/A", "/a;b", "/a%20", "//a", "/./a", "/a/..", "/é"} {
		if plainPath(p) && normalizeLogoutPath(p) != p {
			t.Errorf("%q: taken as plain, normalised to %q", p, normalizeLogoutPath(p))
		}
	}
	for _, p := range []string{"/logout/now", "/logout-all", "/api/logout", "/logou"} {
		if got := normalizeLogoutPath(p); got == "/logout" {
			t.Errorf("%q reads as /logout", p)
		}
	}
}

// Every path variant an app routes to its logout revokes.
func TestAppLogoutPathVariants(t *testing.T) {
	h := legacyHandler(t, func(h *Handler) { h.AppLogout = []string{"/logout"} })
	for i, target := range []string{"/logout;x=1", "//logout", "/./logout", "/logout/", "/LOGOUT", "/app/../logout"} {
		sid := strings.Repeat(string(rune('A'+i)), 32)
		r := httptest.NewRequest(http.MethodPost, target, nil)
		r.Header.Set("Cookie", "JSESSIONID="+sid)
		if st, reached := serve(t, h, r); st != http.StatusOK || !reached {
			t.Fatalf("%s: %d", target, st)
		}
		r = httptest.NewRequest(http.MethodGet, "/app", nil)
		r.Header.Set("Cookie", "JSESSIONID="+sid)
		if st, reached := serve(t, h, r); st != http.StatusUnauthorized || reached {
			t.Fatalf("%s: the session still passes: %d", target, st)
		}
	}
}

// A header value whose every reading was found clean is not read again
// while the denylist is unchanged, and is read again, and blocked, once
// a revocation adds an entry: the cache of clean values never hides a
// revocation.
func TestGuardRemembersCleanHeaderValuesUntilARevocation(t *testing.T) {
	h := guardHandler(t, nil)
	const tok = "5F4E3D2C1B0A99887766554433221100"
	req := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/api", nil)
		r.Header.Set("X-Session-Info", `v1; id="`+tok+`"; other=1`)
		r.Header.Set("X-Plain", tok)
		return r
	}
	for range 3 {
		if st, reached := serve(t, h, req()); st != http.StatusOK || !reached {
			t.Fatalf("before revocation: %d", st)
		}
	}
	dl := h.store.Denylist()
	if !h.headerValues.Known(dl, `v1; id="`+tok+`"; other=1`) {
		t.Fatal("a clean header value was not remembered")
	}
	if _, err := h.revoker.RevokeToken(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if h.headerValues.Known(dl, `v1; id="`+tok+`"; other=1`) {
		t.Fatal("remembered clean across a revocation")
	}
	r := req()
	r.Header.Del("X-Plain")
	if st, reached := serve(t, h, r); st != http.StatusUnauthorized || reached {
		t.Fatalf("after revocation: %d", st)
	}
}

// A request with more values than are checked (extract.MaxValues) is not
// refused: the victim of a planted cookie jar gets through, and what is
// found by name is still checked in full.
func TestGuardManyValuesAreBoundedNotRefused(t *testing.T) {
	h := legacyHandler(t, nil)
	var b strings.Builder
	for i := range extract.MaxValues + 100 {
		fmt.Fprintf(&b, "c%d=%020d; ", i, i)
	}
	jar := b.String()
	victim := guardTokens.Mint(t, jwt.MapClaims{"sub": "victim", "sid": "v1"})
	r := httptest.NewRequest(http.MethodGet, "/api", nil)
	r.Header.Set("Authorization", "Bearer "+victim)
	r.Header.Set("Cookie", jar)
	if st, reached := serve(t, h, r); st != http.StatusOK || !reached {
		t.Fatalf("the victim of a planted jar: %d", st)
	}
	const sid = "0123456789ABCDEF0123456789ABCDEF"
	if _, err := h.revoker.RevokeToken(context.Background(), sid); err != nil {
		t.Fatal(err)
	}
	r = httptest.NewRequest(http.MethodGet, "/api", nil)
	r.Header.Set("Cookie", jar+"JSESSIONID="+sid)
	if st, reached := serve(t, h, r); st != http.StatusUnauthorized || reached {
		t.Fatalf("a revoked session cookie after the jar: %d", st)
	}
}

// FuzzLogoutPath: the fast path agrees with the normalisation, and the
// normalisation is idempotent.
func FuzzLogoutPath(f *testing.F) {
	for _, p := range []string{"/logout", "//a/./b/../c;x=1/", "/A%2F", "/"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		n := normalizeLogoutPath(p)
		if plainPath(p) && n != p {
			t.Fatalf("%q: plain, normalised to %q", p, n)
		}
		if strings.Contains(n, "%") {
			return // a decoded byte may form a new escape
		}
		if m := normalizeLogoutPath(n); m != n {
			t.Fatalf("%q: %q, then %q", p, n, m)
		}
	})
}

// The guard's logs never show a credential that sits in the path.
func TestLoggedPathHidesCredentials(t *testing.T) {
	for in, want := range map[string]string{
		"/orders/42": "/orders/42",
		"/app;jsessionid=0123456789ABCDEF0123/page": "/app/page",
		"/reset/eyJhbGciOiJIUzI1NiJ9.e30.signature": "/reset/*",
		"/logout;x=1": "/logout",
		"/":           "/",
		"/a/" + strings.Repeat("x", 40) + ";sid=abc": "/a/*",
	} {
		if got := loggedPath(in); got != want {
			t.Errorf("loggedPath(%q) = %q, want %q", in, got, want)
		}
	}
}
