package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testbody"
	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// guardHandler provisions a handler with the embedded store and HS256
// tokens, as a Caddyfile with app_id app and a jwt block would.
func guardHandler(t testing.TB, configure func(h *Handler)) *Handler {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	h := &Handler{AppID: "app", StoreConfig: StoreConfig{KeyPrefix: "guard-test-" + t.Name() + ":"}, JWT: &JWTConfig{HMACSecret: testSecret}, LogBlocked: "off",
		LegacyEndpoints: LegacyEndpoints{Endpoints: []string{"revoke_refresh", "revoke_sessions", "invalidate_session", "logout"}}}
	if configure != nil {
		configure(h)
	}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	return h
}

const testSecret = "guard-test-secret-0123456789abcdef"

// guardTokens mints the guard tests' HS256 tokens: issued a minute ago,
// valid an hour, signed with testSecret.
var guardTokens = testtoken.Minter{Secret: testSecret, Defaults: func() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()}
}}

// asServed gives r what Caddy's server gives every request before its
// routes run: the replacer, which the endpoints' path matchers read.
func asServed(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
}

// serve runs the handler on r and reports the status and whether the next
// handler (the upstream) saw the request.
func serve(t testing.TB, h *Handler, r *http.Request) (int, bool) {
	t.Helper()
	reached := false
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		reached = true
		w.WriteHeader(http.StatusOK)
		return nil
	})
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, asServed(r), next); err != nil {
		t.Fatal(err)
	}
	if reached && w.Code != http.StatusOK {
		t.Fatalf("upstream reached and status %d", w.Code)
	}
	return w.Code, reached
}

// In-process: each kind of revocation stops the request in every place
// and encoding a token can travel, and the next handler never runs.
func TestGuardBlocksEveryRevocationEverywhere(t *testing.T) {
	h := guardHandler(t, nil)
	ctx := context.Background()
	revokers := map[string]func(tok string, claims jwt.MapClaims){
		"token": func(tok string, _ jwt.MapClaims) {
			if _, err := h.revoker.RevokeToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
		},
		"jti": func(_ string, c jwt.MapClaims) {
			if _, err := h.revoker.RevokeJTI(ctx, c["jti"].(string), 0); err != nil {
				t.Fatal(err)
			}
		},
		"session": func(_ string, c jwt.MapClaims) {
			if _, err := h.revoker.RevokeSession(ctx, c["sub"].(string), c["sid"].(string)); err != nil {
				t.Fatal(err)
			}
		},
		"subject": func(_ string, c jwt.MapClaims) {
			if _, err := h.revoker.RevokeSubject(ctx, c["sub"].(string)); err != nil {
				t.Fatal(err)
			}
		},
	}
	carriers := map[string]func(tok string) *http.Request{
		"bearer": func(tok string) *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/api", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			return r
		},
		"bearer, padded signature, standard alphabet": func(tok string) *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/api", nil)
			r.Header.Set("Authorization", "Bearer\u00a0"+strings.NewReplacer("-", "+", "_", "/").Replace(tok)+"=")
			return r
		},
		"query": func(tok string) *http.Request {
			return httptest.NewRequest(http.MethodGet, "/api?access_token="+tok, nil)
		},
		"cookie, octal escape": func(tok string) *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/api", nil)
			r.Header.Set("Cookie", `__Host-refresh_app="`+strings.Replace(tok, ".", `\056`, 1)+`"`)
			return r
		},
		"json, UTF-32, folded key": func(tok string) *http.Request {
			return httptest.NewRequest(http.MethodPost, "/api", strings.NewReader(testbody.UTF32(`{"refreſh_token":"`+tok+`"}`, false, false)))
		},
		"multipart declared, JSON sent": func(tok string) *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/api", strings.NewReader(`{"refreshToken":"`+tok+`"}`))
			r.Header.Set("Content-Type", "multipart/form-data")
			return r
		},
	}
	n := 0
	for kind, revoke := range revokers {
		for carrier, req := range carriers {
			n++
			claims := jwt.MapClaims{"sub": "user-" + kind + "-" + carrier, "sid": "s", "jti": "j-" + kind + "-" + carrier}
			tok := guardTokens.Mint(t, claims)
			if st, reached := serve(t, h, req(tok)); st != http.StatusOK || !reached {
				t.Fatalf("%s via %s: a valid token was refused (%d)", kind, carrier, st)
			}
			revoke(tok, claims)
			if st, reached := serve(t, h, req(tok)); st != http.StatusUnauthorized || reached {
				t.Errorf("%s revoked, sent via %s: status %d, upstream reached %v", kind, carrier, st, reached)
			}
		}
	}
	if n != 24 {
		t.Fatalf("%d combinations", n)
	}
}

// A credential that does not verify revokes nothing but its exact string:
// a stranger's header.payload with a made-up signature, or as an opaque
// string, leaves the stranger's token working.
func TestUnverifiedCredentialRevokesOnlyItself(t *testing.T) {
	h := guardHandler(t, nil)
	ctx := context.Background()
	victim := guardTokens.Mint(t, jwt.MapClaims{"sub": "victim", "sid": "vs", "jti": "vj"})
	signed := victim[:strings.LastIndexByte(victim, '.')]
	attacker, err := h.revoker.Authenticate(ctx, guardTokens.Mint(t, jwt.MapClaims{"sub": "victim", "sid": "other", "jti": "aj"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, forged := range []string{signed, signed + ".Zm9yZ2Vk", signed + ".!!"} {
		if _, err := h.revoker.Logout(ctx, attacker, h.revoker.Examine(ctx, forged)); err != nil {
			t.Fatal(err)
		}
		if _, err := h.revoker.RevokeRefresh(ctx, revocation.NewCredential(forged)); err != nil {
			t.Fatal(err)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/api", nil)
	r.Header.Set("Authorization", "Bearer "+victim)
	if st, reached := serve(t, h, r); st != http.StatusOK || !reached {
		t.Fatalf("the victim's token was revoked through a forgery: %d", st)
	}
	r = httptest.NewRequest(http.MethodGet, "/api", nil)
	r.Header.Set("Authorization", "Bearer "+signed+".Zm9yZ2Vk")
	if st, _ := serve(t, h, r); st != http.StatusUnauthorized {
		t.Fatalf("the forged string itself was not revoked: %d", st)
	}
}

// A request is never refused for how many values it carries: a planted
// cookie of many strings, or many pairs of a configured cookie, costs
// the victim nothing, and past the decoding budget a revoked token is
// still found by its exact string and, once decoded before, by its
// claims.
func TestGuardNeverRefusesForHowManyValues(t *testing.T) {
	h := guardHandler(t, func(h *Handler) {
		h.MaxCredentials = 4
		h.Credentials = []CredentialSource{{Cookie: "JSESSIONID"}}
	})
	victim := guardTokens.Mint(t, jwt.MapClaims{"sub": "victim", "sid": "v1", "jti": "v-1"})
	var planted []string
	for i := range 40 {
		planted = append(planted, `"`+guardTokens.Mint(t, jwt.MapClaims{"sub": "junk", "jti": fmt.Sprint("junk-", i)})+`"`)
	}
	jsonCookie := "JSESSIONID=" + url.QueryEscape("j:["+strings.Join(planted, ",")+"]")
	var pairs []string
	for i := range 33 {
		pairs = append(pairs, fmt.Sprintf("JSESSIONID=%032d", i))
	}
	for name, cookie := range map[string]string{"40 strings": jsonCookie, "33 pairs": strings.Join(pairs, "; ")} {
		r := httptest.NewRequest(http.MethodGet, "/api", nil)
		r.Header.Set("Authorization", "Bearer "+victim)
		r.Header.Set("Cookie", cookie)
		if st, reached := serve(t, h, r); st != http.StatusOK || !reached {
			t.Fatalf("%s: the victim got %d", name, st)
		}
	}

	// A revoked token behind more JWTs than the budget, in a place no
	// name marks: by its exact string, and by its jti once decoded.
	revoked := guardTokens.Mint(t, jwt.MapClaims{"sub": "attacker", "jti": "a-1"})
	if _, err := h.revoker.RevokeToken(context.Background(), revoked); err != nil {
		t.Fatal(err)
	}
	behind := func(tok string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/api", nil)
		r.Header.Set("Cookie", "pad="+url.QueryEscape("j:["+strings.Join(planted, ",")+"]")+"; x_"+"tok="+tok)
		return r
	}
	if st, reached := serve(t, h, behind(revoked)); st != http.StatusUnauthorized || reached {
		t.Fatalf("a revoked token past the budget: status %d", st)
	}
	byJTI := guardTokens.Mint(t, jwt.MapClaims{"sub": "attacker", "jti": "a-2"})
	r := httptest.NewRequest(http.MethodGet, "/api", nil)
	r.Header.Set("X-Anything", byJTI) // decoded: within the budget
	if st, _ := serve(t, h, r); st != http.StatusOK {
		t.Fatalf("before its revocation: %d", st)
	}
	if _, err := h.revoker.RevokeJTI(context.Background(), "a-2", 0); err != nil {
		t.Fatal(err)
	}
	if st, reached := serve(t, h, behind(byJTI)); st != http.StatusUnauthorized || reached {
		t.Fatalf("a token revoked by jti, met before, past the budget: status %d", st)
	}
}

func TestGuardOversizedBodyReject(t *testing.T) {
	h := guardHandler(t, func(h *Handler) { h.OversizedBody = "reject"; h.InspectBodyLimit = 64 })
	r := httptest.NewRequest(http.MethodPost, "/api", strings.NewReader(strings.Repeat("x", 65)))
	if st, reached := serve(t, h, r); st != http.StatusRequestEntityTooLarge || reached {
		t.Fatalf("status %d, upstream reached %v", st, reached)
	}
}

// TestGuardManyForgedAccessTokens sends more access tokens than the
// decoding budget in one Authorization header, none of them verifiable:
// the ones past the budget are checked by hash alone, and the request is
// passed on (no token demanded) or refused (require_token), never a
// panic.
func TestGuardManyForgedAccessTokens(t *testing.T) {
	forger := testtoken.Minter{Secret: "not-the-secret-0123456789abcdef", Defaults: guardTokens.Defaults}
	var toks []string
	for i := range 6 {
		toks = append(toks, forger.Mint(t, jwt.MapClaims{"sub": "forger", "jti": fmt.Sprint("f-", i)}))
	}
	for _, require := range []bool{false, true} {
		h := guardHandler(t, func(h *Handler) { h.MaxCredentials = 2; h.RequireToken = require })
		r := httptest.NewRequest(http.MethodGet, "/api", nil)
		r.Header.Set("Authorization", "Bearer "+strings.Join(toks, " "))
		st, reached := serve(t, h, r)
		if require && (st != http.StatusUnauthorized || reached) {
			t.Fatalf("require_token: forged tokens got %d, upstream reached %v", st, reached)
		}
		if !require && (st != http.StatusOK || !reached) {
			t.Fatalf("forged tokens, no require_token: got %d, upstream reached %v", st, reached)
		}
	}
}
