package caddymodule

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// In-process tests of the three receivers: the handler provisioned as
// Caddy would, the embedded store, a JWKS served by httptest, and
// requests through ServeHTTP. The end-to-end versions (real binary, real
// Redis, two replicas) are in integration/receivers_test.go.

const (
	rcvSecret = "receiver-test-secret-0123456789abcdef"
	rcvIssuer = "https://idp.example.com/realms/demo"
	idpIssuer = "https://login.example.org/"
)

var prefixSeq atomic.Int64

// idp is an identity provider whose keys the test holds.
type idp struct {
	key *ecdsa.PrivateKey
	kid string
	srv *httptest.Server
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &idp{key: key, kid: "k1"}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j, _ := revocation.JWKFromPublicKey(&p.key.PublicKey)
		j.Kid, j.Alg, j.Use = p.kid, "ES256", "sig"
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []revocation.JWK{j}})
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) sign(t *testing.T, typ string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = p.kid
	if typ != "" {
		tok.Header["typ"] = typ
	}
	s, err := tok.SignedString(p.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newReceiverHandler provisions a handler serving the three receivers:
// back-channel logout and RFC 7009 with the jwt block's HS256 secret and
// issuer, security events with the IdP's JWKS and issuer.
func newReceiverHandler(t *testing.T, p *idp) *Handler {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	h := &Handler{
		StoreConfig: StoreConfig{KeyPrefix: "rcv" + string(rune('a'+prefixSeq.Add(1)%26)) + time.Now().Format("150405.000000") + ":"},
		JWT:         &JWTConfig{HMACSecret: rcvSecret, Issuer: rcvIssuer},
		LogBlocked:  "off",
		LegacyEndpoints: LegacyEndpoints{
			Endpoints:         []string{"none"},
			BackchannelLogout: &BackchannelLogoutConfig{ClientID: []string{"web-app"}},
			TokenRevocation:   &TokenRevocationConfig{Clients: []RevocationClient{{ID: "web-app", Secret: "s3cret"}, {ID: "spa"}}},
			SecurityEvents:    &SecurityEventsConfig{Audience: []string{"https://api.example.com"}, Issuer: idpIssuer, JWKSURL: p.srv.URL, AuthToken: "push-token"},
		},
	}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	return h
}

func serveRecorded(t *testing.T, h *Handler, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	if err := h.ServeHTTP(w, asServed(r), next); err != nil {
		t.Fatal(err)
	}
	return w
}

// proxied is the status a proxied request with this access token gets.
func proxied(t *testing.T, h *Handler, token string) int {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/api/orders", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return serveRecorded(t, h, r).Code
}

// rcvTokens mints the receivers tests' HS256 tokens: the provider's
// issuer, sub alice, sid s1, a fresh jti, issued now, valid 10 minutes,
// signed with rcvSecret.
var rcvTokens = testtoken.Minter{Secret: rcvSecret, Defaults: func() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"iss": rcvIssuer, "sub": "alice", "sid": "s1", "jti": randomJTI(), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
}}

var jtiSeq atomic.Int64

func randomJTI() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b) + string(rune('a'+jtiSeq.Add(1)%26))
}

func logoutClaims(extra jwt.MapClaims) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"iss": rcvIssuer, "aud": "web-app", "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": randomJTI(), "sub": "alice", "sid": "s1",
		"events": map[string]any{revocation.BackchannelLogoutEvent: map[string]any{}},
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func postForm(path string, form url.Values, headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	return r
}

func bcl(token string) *http.Request {
	return postForm("/oidc/backchannel-logout", url.Values{"logout_token": {token}})
}

func TestBackchannelLogoutRefusesInvalidTokens(t *testing.T) {
	h := newReceiverHandler(t, newIDP(t))
	other := func(c jwt.MapClaims) string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte("another-secret-0123456789abcdef0123"))
		return s
	}
	past := time.Now().Add(-time.Hour)
	cases := []struct {
		name string
		req  *http.Request
	}{
		{"bad signature", bcl(other(logoutClaims(nil)))},
		{"alg none", bcl(testtoken.Unsigned(t, logoutClaims(nil)))},
		{"wrong iss", bcl(rcvTokens.Sign(t, nil, logoutClaims(jwt.MapClaims{"iss": "https://evil.example"})))},
		{"wrong aud", bcl(rcvTokens.Sign(t, nil, logoutClaims(jwt.MapClaims{"aud": "other-app"})))},
		{"expired", bcl(rcvTokens.Sign(t, nil, logoutClaims(jwt.MapClaims{"iat": past.Unix(), "exp": past.Add(time.Minute).Unix()})))},
		{"no exp", bcl(rcvTokens.Sign(t, nil, logoutClaims(jwt.MapClaims{"exp": nil})))},
		{"no iat", bcl(rcvTokens.Sign(t, nil, logoutClaims(jwt.MapClaims{"iat": nil})))},
		{"iat in the future", bcl(rcvTokens.Sign(t, nil, logoutClaims(jwt.MapClaims{"iat": time.Now().Add(time.Hour).Unix()})))},
		{"missing events", bcl(rcvTokens.Sign(t, nil, logoutClaims(jwt.MapClaims{"events": nil})))},
		{"wrong event", bcl(rcvTokens.Sign(t, nil, logoutClaims(jwt.MapClaims{"events": map[string]any{"http://example.com/other": map[string]any{}}})))},
		{"event not an object", bcl(rcvTokens.Sign(t, nil, logoutClaims(jwt.MapClaims{"events": map[string]any{revocation.BackchannelLogoutEvent: "x"}})))},
		{"nonce present", bcl(rcvTokens.Sign(t, nil, logoutClaims(jwt.MapClaims{"nonce": "n-0S6_WzA2Mj"})))},
		{"neither sid nor sub", bcl(rcvTokens.Sign(t, nil, logoutClaims(jwt.MapClaims{"sub": nil, "sid": nil})))},
		{"no jti", bcl(rcvTokens.Sign(t, nil, logoutClaims(jwt.MapClaims{"jti": nil})))},
		{"sid not a string", bcl(rcvTokens.Sign(t, nil, logoutClaims(jwt.MapClaims{"sid": 7})))},
		{"typ of an access token", bcl(rcvTokens.Sign(t, map[string]any{"typ": "at+jwt"}, logoutClaims(nil)))},
		{"not a JWT", bcl("opaque-value")},
		{"no logout_token", postForm("/oidc/backchannel-logout", url.Values{"other": {"x"}})},
		{"logout_token twice", postForm("/oidc/backchannel-logout", url.Values{"logout_token": {rcvTokens.Sign(t, nil, logoutClaims(nil)), "x.y.z"}})},
		{"JSON instead of a form", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/oidc/backchannel-logout", strings.NewReader(`{"logout_token":"a.b.c"}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}()},
		{"oversized body", postForm("/oidc/backchannel-logout", url.Values{"logout_token": {rcvTokens.Sign(t, nil, logoutClaims(nil))}, "pad": {strings.Repeat("x", maxBody)}})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := serveRecorded(t, h, c.req)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", w.Code, w.Body)
			}
			var body map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body["error"] != "invalid_request" || body["error_description"] == "" {
				t.Fatalf("body %s, want invalid_request with a description", w.Body)
			}
			if n := h.store.Denylist().Total(); n != 0 {
				t.Fatalf("%d entries revoked by a refused logout token", n)
			}
		})
	}
}

func TestBackchannelLogoutRevokes(t *testing.T) {
	h := newReceiverHandler(t, newIDP(t))

	// sid only: any token of that provider session, whatever its subject.
	bobS7 := rcvTokens.Mint(t, jwt.MapClaims{"sub": "bob", "sid": "s7"})
	bobS8 := rcvTokens.Mint(t, jwt.MapClaims{"sub": "bob", "sid": "s8"})
	otherIssuerS7 := rcvTokens.Mint(t, jwt.MapClaims{"iss": nil, "sub": "bob", "sid": "s7"})
	if proxied(t, h, bobS7) != http.StatusOK {
		t.Fatal("token refused before any logout")
	}
	tok := rcvTokens.Sign(t, map[string]any{"typ": "logout+jwt"}, logoutClaims(jwt.MapClaims{"sub": nil, "sid": "s7"}))
	w := serveRecorded(t, h, bcl(tok))
	if w.Code != http.StatusOK || w.Header().Get("Cache-Control") != "no-store" || w.Body.Len() != 0 {
		t.Fatalf("sid-only logout: %d %q %s", w.Code, w.Header().Get("Cache-Control"), w.Body)
	}
	if proxied(t, h, bobS7) != http.StatusUnauthorized {
		t.Fatal("token of the logged-out provider session still passes")
	}
	if proxied(t, h, bobS8) != http.StatusOK {
		t.Fatal("another session of the same subject was blocked")
	}
	if proxied(t, h, otherIssuerS7) != http.StatusOK {
		t.Fatal("a token without that issuer was blocked by an issuer-scoped session")
	}

	// The same jti again: refused, at every replica (shared store).
	if w := serveRecorded(t, h, bcl(tok)); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "jti") {
		t.Fatalf("replayed logout token: %d %s", w.Code, w.Body)
	}

	// sub and sid: that session only.
	aliceS1, aliceS2 := rcvTokens.Mint(t, nil), rcvTokens.Mint(t, jwt.MapClaims{"sid": "s2"})
	if w := serveRecorded(t, h, bcl(rcvTokens.Sign(t, nil, logoutClaims(nil)))); w.Code != http.StatusOK {
		t.Fatalf("sub+sid logout: %d %s", w.Code, w.Body)
	}
	if proxied(t, h, aliceS1) != http.StatusUnauthorized || proxied(t, h, aliceS2) != http.StatusOK {
		t.Fatal("sub+sid logout did not revoke exactly that session")
	}

	// sub only: every session issued until the logout token's iat.
	carolOld := rcvTokens.Mint(t, jwt.MapClaims{"sub": "carol", "sid": "c1", "iat": time.Now().Add(-time.Minute).Unix()})
	if w := serveRecorded(t, h, bcl(rcvTokens.Sign(t, nil, logoutClaims(jwt.MapClaims{"sub": "carol", "sid": nil})))); w.Code != http.StatusOK {
		t.Fatalf("sub-only logout: %d %s", w.Code, w.Body)
	}
	carolNew := rcvTokens.Mint(t, jwt.MapClaims{"sub": "carol", "sid": "c2", "iat": time.Now().Add(2 * time.Second).Unix()})
	if proxied(t, h, carolOld) != http.StatusUnauthorized {
		t.Fatal("sub-only logout did not revoke the subject's earlier session")
	}
	if proxied(t, h, carolNew) != http.StatusOK {
		t.Fatal("sub-only logout revoked a token issued after it")
	}

	// Other methods on the receiver's path are answered, never proxied.
	if w := serveRecorded(t, h, httptest.NewRequest(http.MethodGet, "/oidc/backchannel-logout", nil)); w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET on the receiver: %d", w.Code)
	}
}

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

func TestTokenRevocationClientAuthentication(t *testing.T) {
	h := newReceiverHandler(t, newIDP(t))
	tok := rcvTokens.Mint(t, jwt.MapClaims{"azp": "web-app"})
	cases := []struct {
		name    string
		form    url.Values
		headers []string
		status  int
		code    string
	}{
		{"no authentication", url.Values{"token": {tok}}, nil, 401, "invalid_client"},
		{"wrong basic secret", url.Values{"token": {tok}}, []string{"Authorization", basic("web-app", "nope")}, 401, "invalid_client"},
		{"unknown client", url.Values{"token": {tok}}, []string{"Authorization", basic("stranger", "s3cret")}, 401, "invalid_client"},
		{"confidential client without secret", url.Values{"token": {tok}, "client_id": {"web-app"}}, nil, 401, "invalid_client"},
		{"public client with a secret", url.Values{"token": {tok}, "client_id": {"spa"}, "client_secret": {"x"}}, nil, 401, "invalid_client"},
		{"wrong post secret", url.Values{"token": {tok}, "client_id": {"web-app"}, "client_secret": {"nope"}}, nil, 401, "invalid_client"},
		{"malformed basic", url.Values{"token": {tok}}, []string{"Authorization", "Basic !!!"}, 401, "invalid_client"},
		{"two methods", url.Values{"token": {tok}, "client_secret": {"s3cret"}}, []string{"Authorization", basic("web-app", "s3cret")}, 400, "invalid_request"},
		{"no token", url.Values{"client_id": {"spa"}}, nil, 400, "invalid_request"},
		{"token twice", url.Values{"client_id": {"spa"}, "token": {tok, tok}}, nil, 400, "invalid_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := serveRecorded(t, h, postForm("/oauth2/revoke", c.form, c.headers...))
			var body map[string]string
			_ = json.Unmarshal(w.Body.Bytes(), &body)
			if w.Code != c.status || body["error"] != c.code {
				t.Fatalf("got %d %s, want %d %s", w.Code, w.Body, c.status, c.code)
			}
			if c.status == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic") {
				t.Fatalf("401 without WWW-Authenticate: Basic")
			}
			if h.store.Denylist().Total() != 0 {
				t.Fatal("a refused call revoked something")
			}
		})
	}
}

func TestTokenRevocationRevokesOnlyOwnTokens(t *testing.T) {
	h := newReceiverHandler(t, newIDP(t))
	revoke := func(form url.Values, headers ...string) {
		t.Helper()
		w := serveRecorded(t, h, postForm("/oauth2/revoke", form, headers...))
		if w.Code != http.StatusOK || w.Body.Len() != 0 {
			t.Fatalf("revocation: %d %s", w.Code, w.Body)
		}
	}
	// Another client's token, an invalid one and an opaque one: 200, nothing.
	theirs := rcvTokens.Mint(t, jwt.MapClaims{"azp": "other-client"})
	revoke(url.Values{"token": {theirs}}, "Authorization", basic("web-app", "s3cret"))
	revoke(url.Values{"token": {"not-a-jwt"}, "client_id": {"spa"}})
	revoke(url.Values{"token": {rcvTokens.Mint(t, jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix(), "azp": "spa"})}, "client_id": {"spa"}})
	if n := h.store.Denylist().Total(); n != 0 || proxied(t, h, theirs) != http.StatusOK {
		t.Fatalf("%d entries revoked by calls that may revoke nothing", n)
	}

	// An access token of the client (client_secret_post): the token and its jti.
	access := rcvTokens.Mint(t, jwt.MapClaims{"client_id": "web-app", "sid": "s1"})
	sameSession := rcvTokens.Mint(t, jwt.MapClaims{"client_id": "web-app", "sid": "s1"})
	revoke(url.Values{"token": {access}, "client_id": {"web-app"}, "client_secret": {"s3cret"}})
	if proxied(t, h, access) != http.StatusUnauthorized || proxied(t, h, sameSession) != http.StatusOK {
		t.Fatal("access token revocation: the token must stop, its session must not")
	}

	// A refresh token of a public client (Okta's cid): also its session.
	refresh := rcvTokens.Mint(t, jwt.MapClaims{"cid": "spa", "sub": "dave", "sid": "d1"})
	daveS1 := rcvTokens.Mint(t, jwt.MapClaims{"sub": "dave", "sid": "d1"})
	revoke(url.Values{"token": {refresh}, "token_type_hint": {"refresh_token"}, "client_id": {"spa"}})
	if proxied(t, h, refresh) != http.StatusUnauthorized || proxied(t, h, daveS1) != http.StatusUnauthorized {
		t.Fatal("refresh token revocation did not revoke its session")
	}
}

func setClaims(extra jwt.MapClaims) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"iss": idpIssuer, "aud": "https://api.example.com", "iat": now.Unix(), "jti": randomJTI(),
		"events": map[string]any{revocation.CAEPSessionRevoked: map[string]any{
			"subject":         map[string]any{"format": "complex", "user": map[string]any{"format": "iss_sub", "iss": idpIssuer, "sub": "erin"}, "session": map[string]any{"format": "opaque", "id": "e1"}},
			"event_timestamp": now.Unix(),
		}},
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func push(body string, headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/ssf/events", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/secevent+jwt")
	r.Header.Set("Authorization", "Bearer push-token")
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	return r
}

func TestSecurityEventsRefusals(t *testing.T) {
	p := newIDP(t)
	h := newReceiverHandler(t, p)
	stranger := &idp{kid: "k1"}
	stranger.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	unknownKid := &idp{key: p.key, kid: "rotated-away"}
	cases := []struct {
		name   string
		req    *http.Request
		status int
		code   string
	}{
		{"no bearer token", func() *http.Request {
			r := push(p.sign(t, "secevent+jwt", setClaims(nil)))
			r.Header.Del("Authorization")
			return r
		}(), 400, "authentication_failed"},
		{"wrong bearer token", push(p.sign(t, "secevent+jwt", setClaims(nil)), "Authorization", "Bearer nope"), 400, "authentication_failed"},
		{"wrong content type", push(p.sign(t, "secevent+jwt", setClaims(nil)), "Content-Type", "application/jwt"), 400, "invalid_request"},
		{"bad signature", push(stranger.sign(t, "secevent+jwt", setClaims(nil))), 400, "authentication_failed"},
		{"unknown key", push(unknownKid.sign(t, "secevent+jwt", setClaims(nil))), 400, "invalid_key"},
		{"alg none", push(testtoken.Unsigned(t, setClaims(nil))), 400, "authentication_failed"},
		{"wrong iss", push(p.sign(t, "secevent+jwt", setClaims(jwt.MapClaims{"iss": "https://evil.example"}))), 400, "invalid_issuer"},
		{"wrong aud", push(p.sign(t, "secevent+jwt", setClaims(jwt.MapClaims{"aud": "https://other.example"}))), 400, "invalid_audience"},
		{"expired", push(p.sign(t, "secevent+jwt", setClaims(jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()}))), 400, "invalid_request"},
		{"missing events", push(p.sign(t, "secevent+jwt", setClaims(jwt.MapClaims{"events": nil}))), 400, "invalid_request"},
		{"no jti", push(p.sign(t, "secevent+jwt", setClaims(jwt.MapClaims{"jti": nil}))), 400, "invalid_request"},
		{"typ of a logout token", push(p.sign(t, "logout+jwt", setClaims(nil))), 400, "invalid_request"},
		{"unsupported subject format", push(p.sign(t, "secevent+jwt", setClaims(jwt.MapClaims{"events": map[string]any{revocation.RISCSessionsRevoked: map[string]any{"subject": map[string]any{"format": "email", "email": "a@example.com"}}}}))), 400, "invalid_request"},
		{"encrypted SET", push("a.b.c.d.e"), 400, "invalid_request"},
		{"empty body", push(""), 400, "invalid_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := serveRecorded(t, h, c.req)
			var body map[string]string
			_ = json.Unmarshal(w.Body.Bytes(), &body)
			if w.Code != c.status || body["err"] != c.code || body["description"] == "" {
				t.Fatalf("got %d %s, want %d %s", w.Code, w.Body, c.status, c.code)
			}
			if h.store.Denylist().Total() != 0 {
				t.Fatal("a refused SET revoked something")
			}
		})
	}
}

func TestSecurityEventsRevoke(t *testing.T) {
	p := newIDP(t)
	h := newReceiverHandler(t, p)
	accepted := func(what, set string) {
		t.Helper()
		if w := serveRecorded(t, h, push(set)); w.Code != http.StatusAccepted {
			t.Fatalf("%s: %d %s", what, w.Code, w.Body)
		}
	}
	// Unknown events are accepted and ignored.
	accepted("unknown event", p.sign(t, "secevent+jwt", setClaims(jwt.MapClaims{"events": map[string]any{"https://schemas.openid.net/secevent/caep/event-type/token-claims-change": map[string]any{}}})))
	if h.store.Denylist().Total() != 0 {
		t.Fatal("an unknown event revoked something")
	}

	// CAEP session-revoked, complex subject: that session only.
	erinE1 := rcvTokens.Mint(t, jwt.MapClaims{"iss": idpIssuer, "sub": "erin", "sid": "e1"})
	erinE2 := rcvTokens.Mint(t, jwt.MapClaims{"iss": idpIssuer, "sub": "erin", "sid": "e2"})
	set := p.sign(t, "secevent+jwt", setClaims(nil))
	accepted("session-revoked", set)
	if proxied(t, h, erinE1) != http.StatusUnauthorized || proxied(t, h, erinE2) != http.StatusOK {
		t.Fatal("session-revoked must stop exactly the named session")
	}
	if w := serveRecorded(t, h, push(set)); w.Code != http.StatusBadRequest {
		t.Fatalf("replayed SET: %d %s", w.Code, w.Body)
	}

	// RISC sessions-revoked, iss_sub in sub_id, an event_timestamp in the
	// past: every session the subject has when the event arrives ends,
	// one begun after event_timestamp too, whether or not a request of it
	// was seen before; a login after the event is untouched.
	cut := time.Now().Add(-30 * time.Second)
	before := rcvTokens.Mint(t, jwt.MapClaims{"sub": "frank", "sid": "f1", "iat": cut.Add(-time.Minute).Unix()})
	began := rcvTokens.Mint(t, jwt.MapClaims{"sub": "frank", "sid": "f2", "iat": cut.Add(10 * time.Second).Unix()})
	unseen := rcvTokens.Mint(t, jwt.MapClaims{"sub": "frank", "sid": "f3", "iat": cut.Add(20 * time.Second).Unix()})
	if proxied(t, h, began) != http.StatusOK {
		t.Fatal("refused before the event")
	}
	accepted("sessions-revoked", p.sign(t, "secevent+jwt", setClaims(jwt.MapClaims{
		"sub_id": map[string]any{"format": "iss_sub", "iss": idpIssuer, "sub": "frank"},
		"events": map[string]any{revocation.RISCSessionsRevoked: map[string]any{"event_timestamp": cut.Unix()}},
	})))
	later := rcvTokens.Mint(t, jwt.MapClaims{"sub": "frank", "sid": "f4", "iat": time.Now().Add(2 * time.Second).Unix()})
	for name, tok := range map[string]string{"before event_timestamp": before, "begun after it, seen": began, "begun after it, never seen": unseen} {
		if proxied(t, h, tok) != http.StatusUnauthorized {
			t.Fatalf("sessions-revoked spared a session %s", name)
		}
	}
	if proxied(t, h, later) != http.StatusOK {
		t.Fatal("sessions-revoked stopped a login after the event")
	}

	// CAEP credential-change, opaque subject: every session of the user.
	grace := rcvTokens.Mint(t, jwt.MapClaims{"sub": "grace", "sid": "g1"})
	accepted("credential-change", p.sign(t, "", setClaims(jwt.MapClaims{
		"events": map[string]any{revocation.CAEPCredentialChange: map[string]any{
			"subject": map[string]any{"format": "opaque", "id": "grace"}, "credential_type": "password", "change_type": "update",
		}},
	})))
	if proxied(t, h, grace) != http.StatusUnauthorized {
		t.Fatal("credential-change must stop the user's sessions")
	}
}

func TestSeedEndpointsRefuseBodies(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{StoreConfig: StoreConfig{KeyPrefix: "seedbody" + time.Now().Format("150405.000000") + ":"}, AppID: "demo", LogBlocked: "off", JWT: &JWTConfig{HMACSecret: rcvSecret},
		LegacyEndpoints: LegacyEndpoints{Endpoints: []string{"revoke_refresh", "revoke_sessions", "invalidate_session", "logout"}}}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Cleanup() }()
	tok := rcvTokens.Mint(t, jwt.MapClaims{"iss": nil})
	big := strings.Repeat("x", maxIgnoredBody+1)

	r := httptest.NewRequest(http.MethodPost, "/v1/session/me/revoke?target=all", strings.NewReader(big))
	r.Header.Set("Authorization", "Bearer "+tok)
	if w := serveRecorded(t, h, r); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "bad_request") {
		t.Fatalf("seed 001 with a large body: %d %s", w.Code, w.Body)
	}
	r = httptest.NewRequest(http.MethodPost, "/v1/session/revoke", strings.NewReader(big))
	r.AddCookie(&http.Cookie{Name: "__Host-refresh_demo", Value: "opaque-refresh"})
	if w := serveRecorded(t, h, r); w.Code != http.StatusBadRequest {
		t.Fatalf("seed 000 with a large body: %d %s", w.Code, w.Body)
	}
	if n := h.store.Denylist().Total(); n != 0 {
		t.Fatalf("%d entries revoked by refused calls", n)
	}
	// A stray small body is ignored, as clients send "{}".
	r = httptest.NewRequest(http.MethodPost, "/v1/session/me/revoke?target=mine", strings.NewReader("{}"))
	r.Header.Set("Authorization", "Bearer "+tok)
	if w := serveRecorded(t, h, r); w.Code != http.StatusNoContent {
		t.Fatalf("seed 001 with {}: %d %s", w.Code, w.Body)
	}
}

func TestReceiverProvisionErrors(t *testing.T) {
	cases := map[string]struct {
		h    Handler
		want string
	}{
		"listed without its block": {Handler{JWT: &JWTConfig{HMACSecret: rcvSecret}, LegacyEndpoints: LegacyEndpoints{Endpoints: []string{"security_events"}}}, "add the block"},
		"no client_id":             {Handler{JWT: &JWTConfig{HMACSecret: rcvSecret, Issuer: rcvIssuer}, LegacyEndpoints: LegacyEndpoints{BackchannelLogout: &BackchannelLogoutConfig{}}}, "client_id is required"},
		"no issuer anywhere":       {Handler{JWT: &JWTConfig{HMACSecret: rcvSecret}, LegacyEndpoints: LegacyEndpoints{BackchannelLogout: &BackchannelLogoutConfig{ClientID: []string{"a"}}}}, "issuer is required"},
		"no keys anywhere":         {Handler{LegacyEndpoints: LegacyEndpoints{Endpoints: []string{"none"}, SecurityEvents: &SecurityEventsConfig{Audience: []string{"a"}, Issuer: "i"}}}, "no keys"},
		"no clients":               {Handler{JWT: &JWTConfig{HMACSecret: rcvSecret}, LegacyEndpoints: LegacyEndpoints{TokenRevocation: &TokenRevocationConfig{}}}, "at least one client"},
		"client twice":             {Handler{JWT: &JWTConfig{HMACSecret: rcvSecret}, LegacyEndpoints: LegacyEndpoints{TokenRevocation: &TokenRevocationConfig{Clients: []RevocationClient{{ID: "a"}, {ID: "a", Secret: "x"}}}}}, "given twice"},
		"token_revocation, no jwt": {Handler{LegacyEndpoints: LegacyEndpoints{Endpoints: []string{"none"}, TokenRevocation: &TokenRevocationConfig{Clients: []RevocationClient{{ID: "a"}}}}}, "no verification key"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			h := c.h
			h.KeyPrefix = "provision-errors:"
			err := h.Provision(ctx)
			if err == nil {
				_ = h.Cleanup()
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to say %q", err, c.want)
			}
		})
	}
}

// A logout token whose jti was already accepted from the same issuer is
// refused even when the rest of it differs, and revokes nothing; the
// same token retried after the store failed is not taken for a replay.
func TestBackchannelLogoutJTIReusedWithAnotherToken(t *testing.T) {
	h := newReceiverHandler(t, newIDP(t))
	jti := randomJTI()
	first := rcvTokens.Sign(t, nil, logoutClaims(jwt.MapClaims{"jti": jti, "sub": "ivan", "sid": "i1"}))
	if w := serveRecorded(t, h, bcl(first)); w.Code != http.StatusOK {
		t.Fatalf("first logout token: %d %s", w.Code, w.Body)
	}
	victim := rcvTokens.Mint(t, jwt.MapClaims{"sub": "judy", "sid": "j1"})
	entries := h.store.Denylist().Total()
	for name, claims := range map[string]jwt.MapClaims{
		"another session":       {"jti": jti, "sub": "judy", "sid": "j1"},
		"the subject whole":     {"jti": jti, "sub": "judy", "sid": nil},
		"another iat":           {"jti": jti, "sub": "ivan", "sid": "i1", "iat": time.Now().Add(-time.Second).Unix()},
		"sid only, another one": {"jti": jti, "sub": nil, "sid": "j1"},
		"one more claim":        {"jti": jti, "sub": "ivan", "sid": "i1", "extra": "x"},
	} {
		w := serveRecorded(t, h, bcl(rcvTokens.Sign(t, nil, logoutClaims(claims))))
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "jti") {
			t.Fatalf("%s: %d %s", name, w.Code, w.Body)
		}
		if n := h.store.Denylist().Total(); n != entries {
			t.Fatalf("%s: a refused token revoked %d entries", name, n-entries)
		}
	}
	if proxied(t, h, victim) != http.StatusOK {
		t.Fatal("a token reusing a jti revoked another user's session")
	}
	// The first token itself again: a replay.
	if w := serveRecorded(t, h, bcl(first)); w.Code != http.StatusBadRequest {
		t.Fatalf("the same token again: %d %s", w.Code, w.Body)
	}
}

// A subject-wide logout token ends every session the subject has when
// it arrives, one begun after the token's iat included; a login after
// its arrival is untouched.
func TestBackchannelLogoutSubjectCutsAtReceipt(t *testing.T) {
	h := newReceiverHandler(t, newIDP(t))
	iat := time.Now().Add(-30 * time.Second)
	began := rcvTokens.Mint(t, jwt.MapClaims{"sub": "kim", "sid": "k2", "iat": iat.Add(10 * time.Second).Unix()})
	unseen := rcvTokens.Mint(t, jwt.MapClaims{"sub": "kim", "sid": "k3", "iat": iat.Add(20 * time.Second).Unix()})
	if proxied(t, h, began) != http.StatusOK {
		t.Fatal("refused before the logout")
	}
	tok := rcvTokens.Sign(t, nil, logoutClaims(jwt.MapClaims{"sub": "kim", "sid": nil, "iat": iat.Unix()}))
	if w := serveRecorded(t, h, bcl(tok)); w.Code != http.StatusOK {
		t.Fatalf("sub-only logout: %d %s", w.Code, w.Body)
	}
	later := rcvTokens.Mint(t, jwt.MapClaims{"sub": "kim", "sid": "k4", "iat": time.Now().Add(2 * time.Second).Unix()})
	if proxied(t, h, began) != http.StatusUnauthorized || proxied(t, h, unseen) != http.StatusUnauthorized {
		t.Fatal("a session begun after the logout token's iat was spared")
	}
	if proxied(t, h, later) != http.StatusOK {
		t.Fatal("a login after the logout was stopped")
	}
}
