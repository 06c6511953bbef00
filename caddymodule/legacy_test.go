package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// legacyHandler guards a cookie-session app: JSESSIONID, connect.sid and
// an X-Auth-Token header.
func legacyHandler(t testing.TB, configure func(h *Handler)) *Handler {
	t.Helper()
	return guardHandler(t, func(h *Handler) {
		h.Credentials = []CredentialSource{{Cookie: "JSESSIONID"}, {Cookie: "connect.sid"}, {Header: "X-Auth-Token"}}
		if configure != nil {
			configure(h)
		}
	})
}

func withHeader(r *http.Request, name, value string) *http.Request {
	r.Header.Add(name, value)
	return r
}

// An opaque session id revoked on the operator's word (the admin API's
// {"token": ...} and the CLI's --token - both call RevokeToken) stops
// every request that carries it in a configured cookie or header, in any
// framing a framework reads, and nothing else.
func TestCredentialOpaqueRevokedEverywhere(t *testing.T) {
	h := legacyHandler(t, nil)
	const sid = "8F3A2B1C9D0E7F6A5B4C3D2E1F0A9B8C"
	carriers := map[string]*http.Request{
		"cookie":                   withHeader(httptest.NewRequest("GET", "/app", nil), "Cookie", "lang=en; JSESSIONID="+sid),
		"cookie, quoted":           withHeader(httptest.NewRequest("GET", "/app", nil), "Cookie", `JSESSIONID="`+sid+`"`),
		"cookie, encoded name":     withHeader(httptest.NewRequest("GET", "/app", nil), "Cookie", "%4ASESSIONID="+sid),
		"cookie, second line":      withHeader(withHeader(httptest.NewRequest("GET", "/app", nil), "Cookie", "a=1"), "Cookie", "JSESSIONID="+sid),
		"cookie, PHP dot":          withHeader(httptest.NewRequest("GET", "/app", nil), "Cookie", "connect_sid="+sid),
		"cookie, Express signed":   withHeader(httptest.NewRequest("GET", "/app", nil), "Cookie", "connect.sid=s%3A"+sid+".c2lnbmF0dXJl"),
		"header":                   withHeader(httptest.NewRequest("GET", "/app", nil), "X-Auth-Token", sid),
		"header, underscore, case": withHeader(httptest.NewRequest("GET", "/app", nil), "x_auth_token", " "+sid+" "),
		"header, with a scheme":    withHeader(httptest.NewRequest("GET", "/app", nil), "X-Auth-Token", "Token "+sid),
	}
	for name, r := range carriers {
		if st, reached := serve(t, h, r.Clone(context.Background())); st != http.StatusOK || !reached {
			t.Fatalf("%s: before revocation: status %d", name, st)
		}
	}
	if _, err := h.revoker.RevokeToken(context.Background(), sid); err != nil {
		t.Fatal(err)
	}
	for name, r := range carriers {
		if st, reached := serve(t, h, r); st != http.StatusUnauthorized || reached {
			t.Errorf("%s: revoked session id: status %d, upstream reached %v", name, st, reached)
		}
	}
	other := withHeader(httptest.NewRequest("GET", "/app", nil), "Cookie", "JSESSIONID="+sid+"0")
	if st, reached := serve(t, h, other); st != http.StatusOK || !reached {
		t.Fatalf("another session id was blocked: %d", st)
	}
	unconfigured := withHeader(httptest.NewRequest("GET", "/app", nil), "Cookie", "PHPSESSID="+sid)
	if st, reached := serve(t, h, unconfigured); st != http.StatusOK || !reached {
		t.Fatalf("a cookie not configured was read: %d", st)
	}
}

// A JWT kept in a configured cookie or header is checked by its jti,
// session and subject too.
func TestCredentialJWTCheckedByClaims(t *testing.T) {
	h := legacyHandler(t, nil)
	for i, carry := range []func(tok string) *http.Request{
		func(tok string) *http.Request {
			return withHeader(httptest.NewRequest("GET", "/app", nil), "Cookie", "JSESSIONID="+tok)
		},
		func(tok string) *http.Request {
			return withHeader(httptest.NewRequest("GET", "/app", nil), "X-Auth-Token", tok)
		},
	} {
		sid := "cs" + string(rune('0'+i))
		r := carry(mintToken(t, jwt.MapClaims{"sub": "carol", "sid": sid}))
		if st, reached := serve(t, h, r.Clone(context.Background())); st != http.StatusOK || !reached {
			t.Fatalf("before revocation: status %d", st)
		}
		if _, err := h.revoker.RevokeSession(context.Background(), "carol", sid); err != nil {
			t.Fatal(err)
		}
		if st, reached := serve(t, h, r); st != http.StatusUnauthorized || reached {
			t.Errorf("session revoked: status %d, upstream reached %v", st, reached)
		}
	}
}

func TestProvisionCredentialErrors(t *testing.T) {
	cases := map[string]struct {
		h    Handler
		want string
	}{
		"both":          {Handler{Credentials: []CredentialSource{{Cookie: "a", Header: "b"}}}, "exactly one of cookie or header"},
		"neither":       {Handler{Credentials: []CredentialSource{{}}}, "exactly one of cookie or header"},
		"bad cookie":    {Handler{Credentials: []CredentialSource{{Cookie: "a;b"}}}, `credential cookie "a;b"`},
		"bad header":    {Handler{Credentials: []CredentialSource{{Header: "X Auth"}}}, `credential header "X Auth"`},
		"relative path": {Handler{AppLogout: []string{"logout"}}, `app_logout "logout"`},
	}
	for name, c := range cases {
		err := c.h.provisionCredentials()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to say %q", name, err, c.want)
		}
	}
}
