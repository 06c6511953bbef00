package caddymodule

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/revocation"
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
	// By value: the same id under any other name is found too.
	unconfigured := withHeader(httptest.NewRequest("GET", "/app", nil), "Cookie", "PHPSESSID="+sid)
	if st, reached := serve(t, h, unconfigured); st != http.StatusUnauthorized || reached {
		t.Fatalf("the revoked id in a cookie not configured: %d", st)
	}
}

// A short value is read only under a configured name: below extract.MinValueLen,
// a value found by value alone is not checked.
func TestCredentialShortValueOnlyByName(t *testing.T) {
	h := legacyHandler(t, nil)
	const short = "abc123" // revoked on the operator's word
	if _, err := h.revoker.RevokeToken(context.Background(), short); err != nil {
		t.Fatal(err)
	}
	named := withHeader(httptest.NewRequest("GET", "/app", nil), "Cookie", "JSESSIONID="+short)
	if st, reached := serve(t, h, named); st != http.StatusUnauthorized || reached {
		t.Fatalf("a short revoked id in a configured cookie: %d", st)
	}
	unnamed := withHeader(httptest.NewRequest("GET", "/app", nil), "Cookie", "other="+short)
	if st, reached := serve(t, h, unnamed); st != http.StatusOK || !reached {
		t.Fatalf("a short value under no credential name: %d", st)
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
		r := carry(guardTokens.Mint(t, jwt.MapClaims{"sub": "carol", "sid": sid}))
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
		"both":          {Handler{ReadConfig: ReadConfig{Credentials: []CredentialSource{{Cookie: "a", Header: "b"}}}}, "exactly one of cookie or header"},
		"neither":       {Handler{ReadConfig: ReadConfig{Credentials: []CredentialSource{{}}}}, "exactly one of cookie or header"},
		"bad cookie":    {Handler{ReadConfig: ReadConfig{Credentials: []CredentialSource{{Cookie: "a;b"}}}}, `credential cookie "a;b"`},
		"bad header":    {Handler{ReadConfig: ReadConfig{Credentials: []CredentialSource{{Header: "X Auth"}}}}, `credential header "X Auth"`},
		"relative path": {Handler{AppLogout: []string{"logout"}}, `app_logout "logout"`},
	}
	for name, c := range cases {
		err := c.h.checkCredentials()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to say %q", name, err, c.want)
		}
	}
}

// upstreamAnswering is a next handler that answers status, clearing the
// session cookie as an app's logout does, and counts its calls.
func upstreamAnswering(status int, calls *int) caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		*calls++
		w.Header().Add("Set-Cookie", "JSESSIONID=; Max-Age=0; Path=/")
		if status >= 300 && status < 400 {
			w.Header().Set("Location", "/login")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "logged out")
		return nil
	})
}

// failingStore is a store whose commits fail, as Redis down does.
type failingStore struct{ revocation.Store }

func (failingStore) Commit(context.Context, revocation.Change) (revocation.Result, error) {
	return revocation.Result{}, errors.New("store down")
}

func TestAppLogout(t *testing.T) {
	cases := []struct {
		name       string
		path       string
		status     int
		storeDown  bool
		wantStatus int
		revoked    bool
	}{
		{"200 revokes", "/logout", 200, false, 200, true},
		{"302 revokes", "/logout", 302, false, 302, true},
		{"204 on the second path revokes", "/account/signout", 204, false, 204, true},
		{"403 revokes nothing", "/logout", 403, false, 403, false},
		{"500 revokes nothing", "/logout", 500, false, 500, false},
		{"a longer path revokes nothing", "/logout/now", 200, false, 200, false},
		{"a path with the same start revokes nothing", "/logoutx", 200, false, 200, false},
		{"store down: 503, nothing revoked", "/logout", 200, true, 503, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := legacyHandler(t, func(h *Handler) { h.AppLogout = []string{"/logout", "/account/signout"} })
			if c.storeDown {
				h.revoker = &revocation.Revoker{Store: failingStore{h.store}, Verifier: h.verifier, SessionTTL: time.Hour}
			}
			sid := "opaque-" + strings.ReplaceAll(c.name, " ", "-")
			bearer := guardTokens.Mint(t, jwt.MapClaims{"sub": "dave", "sid": "ds-" + sid, "jti": "dj-" + sid})
			other := guardTokens.Mint(t, jwt.MapClaims{"sub": "dave", "sid": "ds-" + sid, "jti": "other-" + sid})
			req := func(path string) *http.Request {
				r := httptest.NewRequest(http.MethodPost, path, nil)
				r.Header.Set("Cookie", "JSESSIONID="+sid)
				r.Header.Set("Authorization", "Bearer "+bearer)
				return r
			}
			calls := 0
			w := httptest.NewRecorder()
			if err := h.ServeHTTP(w, asServed(req(c.path)), upstreamAnswering(c.status, &calls)); err != nil {
				t.Fatal(err)
			}
			if w.Code != c.wantStatus || calls != 1 {
				t.Fatalf("status %d (want %d), upstream called %d times", w.Code, c.wantStatus, calls)
			}
			if c.storeDown {
				if w.Header().Get("Retry-After") == "" || w.Header().Get("Set-Cookie") != "" || !strings.Contains(w.Body.String(), "temporarily_unavailable") {
					t.Fatalf("store down: headers %v body %q", w.Header(), w.Body)
				}
			} else if w.Body.String() != "logged out" || w.Header().Get("Set-Cookie") == "" {
				t.Fatalf("the upstream's answer was not passed on: %v %q", w.Header(), w.Body)
			}
			for name, r := range map[string]*http.Request{
				"session cookie":              withHeader(httptest.NewRequest("GET", "/app", nil), "Cookie", "JSESSIONID="+sid),
				"bearer":                      withHeader(httptest.NewRequest("GET", "/app", nil), "Authorization", "Bearer "+bearer),
				"another token, same session": withHeader(httptest.NewRequest("GET", "/app", nil), "Authorization", "Bearer "+other),
			} {
				st, reached := serve(t, h, r)
				if c.revoked && (st != http.StatusUnauthorized || reached) {
					t.Errorf("%s not revoked: status %d", name, st)
				}
				if !c.revoked && (st != http.StatusOK || !reached) {
					t.Errorf("%s revoked: status %d", name, st)
				}
			}
		})
	}
}

// An unverified JWT and Basic credentials at the logout path: the forged
// token revokes only its own string, and a Basic user name nothing.
func TestAppLogoutRevokesOnlyWhatWasPresented(t *testing.T) {
	h := legacyHandler(t, func(h *Handler) { h.AppLogout = []string{"/logout"} })
	victim := guardTokens.Mint(t, jwt.MapClaims{"sub": "erin", "sid": "es", "jti": "ej"})
	forged := victim[:strings.LastIndexByte(victim, '.')] + ".Zm9yZ2Vk"
	r := httptest.NewRequest(http.MethodPost, "/logout", nil)
	r.Header.Set("Cookie", "JSESSIONID="+forged)
	r.Header.Add("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("erin:pw")))
	calls := 0
	if err := h.ServeHTTP(httptest.NewRecorder(), asServed(r), upstreamAnswering(200, &calls)); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*http.Request{
		"victim's token": withHeader(httptest.NewRequest("GET", "/app", nil), "Authorization", "Bearer "+victim),
		"basic user":     withHeader(httptest.NewRequest("GET", "/app", nil), "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("erin:pw"))),
	} {
		if st, reached := serve(t, h, r); st != http.StatusOK || !reached {
			t.Errorf("%s revoked by a logout that did not present it: %d", name, st)
		}
	}
	if st, _ := serve(t, h, withHeader(httptest.NewRequest("GET", "/app", nil), "Cookie", "JSESSIONID="+forged)); st != http.StatusUnauthorized {
		t.Errorf("the presented string itself was not revoked: %d", st)
	}
}
