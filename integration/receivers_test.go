package integration

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

// The receivers of identity-provider logouts (SPEC section 7) end to end:
// two caddy replicas on one redis-server, a provider whose keys the test
// holds and whose JWKS is served over HTTPS (the replicas trust its
// certificate through SSL_CERT_FILE), and logout tokens, SETs and access
// tokens shaped like the examples in Keycloak's, Auth0's and Okta's
// documentation.

const (
	bclEvent         = "http://schemas.openid.net/event/backchannel-logout"
	caepSessionEvent = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	caepCredEvent    = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
	riscSessionsEvt  = "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked"
	ssfAudience      = "https://api.example.com"
	ssfPushToken     = "ssf-push-token-0123456789"
)

// provider is an identity provider: an RSA key under a kid, published as
// a JWKS over HTTPS; the key can be rotated.
type provider struct {
	issuer   string
	clientID string
	mu       sync.Mutex
	key      *rsa.PrivateKey
	kid      string
	jwks     *httptest.Server
	certFile string
}

func startProvider(t *testing.T, issuer, clientID string) *provider {
	t.Helper()
	p := &provider{issuer: issuer, clientID: clientID}
	p.rotate(t)
	p.jwks = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		pub, kid := &p.key.PublicKey, p.kid
		p.mu.Unlock()
		enc := base64.RawURLEncoding.EncodeToString
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
			"n": enc(pub.N.Bytes()), "e": enc(big.NewInt(int64(pub.E)).Bytes()),
		}}})
	}))
	t.Cleanup(p.jwks.Close)
	p.certFile = filepath.Join(t.TempDir(), "idp-ca.pem")
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.jwks.Certificate().Raw})
	if err := os.WriteFile(p.certFile, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// rotate replaces the signing key and its kid, as a provider's key
// rotation does.
func (p *provider) rotate(t *testing.T) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.key, p.kid = key, "kid-"+randomID()
	p.mu.Unlock()
}

// sign signs claims with the provider's current key; typ "" leaves the
// header without one.
func (p *provider) sign(t *testing.T, typ string, claims jwt.MapClaims) string {
	t.Helper()
	p.mu.Lock()
	key, kid := p.key, p.kid
	p.mu.Unlock()
	header := map[string]any{"kid": kid}
	if typ != "" {
		header["typ"] = typ
	}
	return testtoken.Sign(t, jwt.SigningMethodRS256, key, claims, header)
}

// forge signs with a key the provider never published, under its kid.
func (p *provider) forge(t *testing.T, typ string, claims jwt.MapClaims) string {
	t.Helper()
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	kid := p.kid
	p.mu.Unlock()
	return testtoken.Sign(t, jwt.SigningMethodRS256, other, claims, map[string]any{"kid": kid, "typ": typ})
}

// receiverEnv is a redis-server, an upstream, a provider and two caddy
// replicas serving the three receivers with the provider's keys.
type receiverEnv struct {
	redis *testredis.Server
	up    *Upstream
	p     *provider
	cs    []*Caddy
}

func startReceiverEnv(t *testing.T, p *provider) *receiverEnv {
	t.Helper()
	srv := testredis.Start(t)
	e := &receiverEnv{redis: srv, up: StartUpstream(t), p: p}
	config := guarded(fmt.Sprintf(`
		redis %s
		stale_after 10m
		endpoints none
		jwt {
			issuer %s
			jwks_url %s
		}
		backchannel_logout {
			client_id %s
		}
		token_revocation {
			client %s s3cret
			client public-spa
		}
		security_events {
			audience %s
			auth_token %s
		}`, srv.URL(), p.issuer, p.jwks.URL, p.clientID, p.clientID, ssfAudience, ssfPushToken), e.up.Addr())
	for range 2 {
		c := StartCaddy(t, config, "SSL_CERT_FILE="+p.certFile)
		c.WaitReady()
		e.cs = append(e.cs, c)
	}
	return e
}

func (e *receiverEnv) backchannel(t *testing.T, at int, token string) Response {
	t.Helper()
	return Do(t, "POST", e.cs[at].URL+"/oidc/backchannel-logout", "logout_token="+url.QueryEscape(token),
		"Content-Type", "application/x-www-form-urlencoded")
}

func (e *receiverEnv) push(t *testing.T, at int, set string, headers ...string) Response {
	t.Helper()
	h := []string{"Content-Type", "application/secevent+jwt", "Authorization", "Bearer " + ssfPushToken}
	for i := 0; i+1 < len(headers); i += 2 {
		h[slices.Index(h, headers[i])+1] = headers[i+1]
	}
	return Do(t, "POST", e.cs[at].URL+"/ssf/events", set, h...)
}

func (e *receiverEnv) revoke(t *testing.T, at int, form url.Values, headers ...string) Response {
	t.Helper()
	return Do(t, "POST", e.cs[at].URL+"/oauth2/revoke", form.Encode(),
		append([]string{"Content-Type", "application/x-www-form-urlencoded"}, headers...)...)
}

// expectError checks a receiver's error answer: status, and the code in
// the named member.
func expectError(t *testing.T, what string, r Response, status int, member, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.Status, status, r.Body)
	}
	if got := r.JSON(t)[member]; got != code {
		t.Fatalf("%s: %s %v, want %s; body %s", what, member, got, code, r.Body)
	}
}

// timeToBlock posts at replica 0 and returns the time from the start of
// that POST to the first 401 for token at replica 1, which polls the
// token from before the POST.
func (e *receiverEnv) timeToBlock(t *testing.T, token string, post func() Response, wantStatus int) time.Duration {
	t.Helper()
	p := newPoller(e.cs[1])
	if st, err := p.status(token); err != nil || st != http.StatusOK {
		t.Fatalf("before the event, replica 1 answers %d %v", st, err)
	}
	start := time.Now()
	var d time.Duration
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		d, err = p.untilBlocked(token, start)
	}()
	if r := post(); r.Status != wantStatus {
		t.Fatalf("provider's POST: %d %s", r.Status, r.Body)
	}
	<-done
	if err != nil {
		t.Fatalf("replica 1: %v", err)
	}
	return d
}

func reportPropagation(t *testing.T, receiver string, samples []time.Duration) {
	t.Helper()
	slices.Sort(samples)
	t.Logf("%s: time from the provider's POST at replica 0 to the first 401 at replica 1 over %d events: p50 %v, p99 %v, max %v",
		receiver, len(samples), percentile(samples, 0.5), percentile(samples, 0.99), samples[len(samples)-1])
}

// Keycloak: back-channel logout tokens (typ logout+jwt, sub and sid, a
// typ claim of Logout, revoke_offline_access in the event), sid-only and
// sub-only variants; every rejection case of section 2.6; key rotation.
func TestReceiverBackchannelLogoutKeycloak(t *testing.T) {
	t.Parallel()
	p := startProvider(t, "https://keycloak.example.com/realms/demo", "web-app")
	e := startReceiverEnv(t, p)
	access := func(sub, sid string, iat time.Time) string {
		return p.sign(t, "JWT", jwt.MapClaims{
			"exp": iat.Add(5 * time.Minute).Unix(), "iat": iat.Unix(), "auth_time": iat.Unix(), "jti": "onrtac:" + randomID(),
			"iss": p.issuer, "aud": "account", "sub": sub, "typ": "Bearer", "azp": "web-app", "sid": sid,
			"scope": "openid profile email", "preferred_username": "user-" + sub[:4],
		})
	}
	logout := func(sub, sid string) jwt.MapClaims {
		now := time.Now()
		c := jwt.MapClaims{
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": randomID() + "-" + randomID(),
			"iss": p.issuer, "aud": "web-app", "typ": "Logout",
			"events": map[string]any{bclEvent: map[string]any{"revoke_offline_access": true}},
		}
		if sub != "" {
			c["sub"] = sub
		}
		if sid != "" {
			c["sid"] = sid
		}
		return c
	}
	alice, bob := "6c1f2ab0-0d4e-4b36-9a3c-5f1b7a0c2e11", "b2d6e1f4-3a9c-4c8e-8f1d-2e7a9b3c4d55"
	now := time.Now().Add(-time.Second)
	aliceS1, aliceS2, bobS3 := access(alice, "kc-s1", now), access(alice, "kc-s2", now), access(bob, "kc-s3", now)
	for _, tok := range []string{aliceS1, aliceS2, bobS3} {
		expectAll(t, "before any logout", e.cs, tok, http.StatusOK)
	}

	// Every rejection: 400 invalid_request, nothing revoked, never proxied.
	hits := e.up.Hits()
	valid := logout(alice, "kc-s1")
	past := time.Now().Add(-time.Hour)
	rejections := []struct{ name, body, ctype string }{
		{"bad signature", p.forge(t, "logout+jwt", valid), ""},
		{"alg none", testtoken.Unsigned(t, valid, map[string]any{"typ": "logout+jwt"}), ""},
		{"wrong iss", p.sign(t, "logout+jwt", testtoken.With(valid, jwt.MapClaims{"iss": "https://keycloak.example.com/realms/other"})), ""},
		{"wrong aud", p.sign(t, "logout+jwt", testtoken.With(valid, jwt.MapClaims{"aud": "another-client"})), ""},
		{"expired", p.sign(t, "logout+jwt", testtoken.With(valid, jwt.MapClaims{"iat": past.Unix(), "exp": past.Add(time.Minute).Unix()})), ""},
		{"missing events", p.sign(t, "logout+jwt", testtoken.With(valid, jwt.MapClaims{"events": nil})), ""},
		{"nonce present", p.sign(t, "logout+jwt", testtoken.With(valid, jwt.MapClaims{"nonce": "n-0S6_WzA2Mj"})), ""},
		{"neither sid nor sub", p.sign(t, "logout+jwt", testtoken.With(valid, jwt.MapClaims{"sub": nil, "sid": nil})), ""},
		{"an ID token, not a logout token", p.sign(t, "JWT", testtoken.With(valid, jwt.MapClaims{"events": nil, "nonce": "n"})), ""},
		{"wrong content type", "logout_token=" + p.sign(t, "logout+jwt", valid), "application/json"},
	}
	for _, c := range rejections {
		var r Response
		if c.ctype != "" {
			r = Do(t, "POST", e.cs[0].URL+"/oidc/backchannel-logout", c.body, "Content-Type", c.ctype)
		} else {
			r = e.backchannel(t, 0, c.body)
		}
		expectError(t, c.name, r, http.StatusBadRequest, "error", "invalid_request")
		if r.JSON(t)["error_description"] == "" {
			t.Fatalf("%s: no error_description", c.name)
		}
	}
	expectAll(t, "after refused logout tokens", e.cs, aliceS1, http.StatusOK)
	if e.up.Hits() != hits+2 { // the two expectAll requests
		t.Fatalf("the upstream saw %d requests, want only the 2 proxied ones", e.up.Hits()-hits)
	}

	// sub and sid: that session, at every replica; the other session and
	// the other user pass. Timed from the POST to the first 401 at the
	// other replica.
	tok := p.sign(t, "logout+jwt", valid)
	var samples []time.Duration
	samples = append(samples, e.timeToBlock(t, aliceS1, func() Response { return e.backchannel(t, 0, tok) }, http.StatusOK))
	expectAll(t, "logged-out session", e.cs, aliceS1, http.StatusUnauthorized)
	expectAll(t, "alice's other session", e.cs, aliceS2, http.StatusOK)
	expectAll(t, "bob", e.cs, bobS3, http.StatusOK)

	// The same logout token at the other replica: a replayed jti.
	expectError(t, "replayed jti at the other replica", e.backchannel(t, 1, tok), http.StatusBadRequest, "error", "invalid_request")

	// sid only: that provider session, whatever its subject.
	r := e.backchannel(t, 1, p.sign(t, "logout+jwt", logout("", "kc-s3")))
	if r.Status != http.StatusOK || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("sid-only logout: %d %q %s", r.Status, r.Header.Get("Cache-Control"), r.Body)
	}
	eventuallyAll(t, "bob's session logged out by sid", e.cs, bobS3, http.StatusUnauthorized)
	bobS4 := access(bob, "kc-s4", now)
	expectAll(t, "bob's other session", e.cs, bobS4, http.StatusOK)

	// sub only: every session of alice issued until now.
	if r := e.backchannel(t, 0, p.sign(t, "logout+jwt", logout(alice, ""))); r.Status != http.StatusOK {
		t.Fatalf("sub-only logout: %d %s", r.Status, r.Body)
	}
	eventuallyAll(t, "alice's remaining session", e.cs, aliceS2, http.StatusUnauthorized)
	later := access(alice, "kc-s5", time.Now().Add(2*time.Second))
	expectAll(t, "alice's next login", e.cs, later, http.StatusOK)

	// The provider rotates its key: a logout token under the new kid makes
	// each replica fetch the JWKS again, and is accepted.
	p.rotate(t)
	carol := access("c3a1d2e4-5f60-4a7b-8c9d-0e1f2a3b4c5d", "kc-s6", time.Now().Add(-time.Second))
	expectAll(t, "carol, a token under the new key", e.cs, carol, http.StatusOK)
	if r := e.backchannel(t, 1, p.sign(t, "logout+jwt", logout("c3a1d2e4-5f60-4a7b-8c9d-0e1f2a3b4c5d", "kc-s6"))); r.Status != http.StatusOK {
		t.Fatalf("logout token under a rotated key: %d %s", r.Status, r.Body)
	}
	eventuallyAll(t, "carol logged out", e.cs, carol, http.StatusUnauthorized)

	// More samples of the propagation time.
	for i := range 19 {
		sid := fmt.Sprintf("kc-timed-%d", i)
		u := fmt.Sprintf("d%03d0000-0000-4000-8000-000000000000", i)
		at := access(u, sid, time.Now().Add(-time.Second))
		expectAll(t, "timed session", e.cs, at, http.StatusOK)
		lt := p.sign(t, "logout+jwt", logout(u, sid))
		samples = append(samples, e.timeToBlock(t, at, func() Response { return e.backchannel(t, 0, lt) }, http.StatusOK))
	}
	reportPropagation(t, "backchannel_logout", samples)
	if strings.Contains(e.cs[0].Logs(), tok) || strings.Contains(e.cs[1].Logs(), tok) {
		t.Fatal("a raw logout token was logged")
	}
}

// Auth0: a back-channel logout token as its documentation shows (aud the
// client ID, sub auth0|..., sid, trace_id), and RFC 7009 with
// client_secret_post and client_secret_basic for tokens whose client_id
// claim names the client; every RFC 7009 rejection.
func TestReceiverAuth0LogoutAndTokenRevocation(t *testing.T) {
	t.Parallel()
	p := startProvider(t, "https://example-tenant.eu.auth0.com/", "mXKZ1cTq4PZSzwEzQAEkqzCfhdi8vNTS")
	e := startReceiverEnv(t, p)
	access := func(sub, sid, clientID string) string {
		now := time.Now().Add(-time.Second)
		return p.sign(t, "at+jwt", jwt.MapClaims{
			"iss": p.issuer, "sub": sub, "aud": []string{ssfAudience, p.issuer + "userinfo"},
			"iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix(), "scope": "openid profile read:orders",
			"client_id": clientID, "jti": randomID(), "sid": sid,
		})
	}
	user := "auth0|602e8f3fa2a1f60069fa0c2d"
	s1, s2 := access(user, "uEqhiG8rK0Tv", p.clientID), access(user, "Zm9vYmFyYmF6", p.clientID)
	expectAll(t, "before", e.cs, s1, http.StatusOK)
	expectAll(t, "before", e.cs, s2, http.StatusOK)

	now := time.Now()
	lt := p.sign(t, "logout+jwt", jwt.MapClaims{
		"iss": p.issuer, "sub": user, "aud": p.clientID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": "d0a8f6b1-" + randomID(), "events": map[string]any{bclEvent: map[string]any{}},
		"trace_id": "8f2b1c5d" + randomID(), "sid": "uEqhiG8rK0Tv",
	})
	d := e.timeToBlock(t, s1, func() Response { return e.backchannel(t, 0, lt) }, http.StatusOK)
	t.Logf("auth0 backchannel_logout: POST to first 401 at the other replica: %v", d)
	expectAll(t, "auth0 session logged out", e.cs, s1, http.StatusUnauthorized)
	expectAll(t, "auth0 other session", e.cs, s2, http.StatusOK)

	// RFC 7009 rejections: nothing revoked.
	mine := access("auth0|7a1b", "sess-a", p.clientID)
	theirs := access("auth0|7a1b", "sess-b", "SomeOtherClientId")
	basicAuth := func(id, secret string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
	}
	expectError(t, "no client authentication", e.revoke(t, 0, url.Values{"token": {mine}}), http.StatusUnauthorized, "error", "invalid_client")
	r := e.revoke(t, 0, url.Values{"token": {mine}}, "Authorization", basicAuth(p.clientID, "wrong"))
	expectError(t, "wrong secret", r, http.StatusUnauthorized, "error", "invalid_client")
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("invalid_client without WWW-Authenticate: Basic: %v", r.Header)
	}
	expectError(t, "two client authentication methods",
		e.revoke(t, 0, url.Values{"token": {mine}, "client_secret": {"s3cret"}}, "Authorization", basicAuth(p.clientID, "s3cret")),
		http.StatusBadRequest, "error", "invalid_request")
	expectError(t, "no token", e.revoke(t, 0, url.Values{"client_id": {p.clientID}, "client_secret": {"s3cret"}}), http.StatusBadRequest, "error", "invalid_request")
	wrongType := Do(t, "POST", e.cs[0].URL+"/oauth2/revoke", `{"token":"x"}`, "Content-Type", "application/json", "Authorization", basicAuth(p.clientID, "s3cret"))
	expectError(t, "wrong content type", wrongType, http.StatusBadRequest, "error", "invalid_request")
	// Another client's token, an invalid one, an unknown one: 200, nothing.
	for name, tk := range map[string]string{"another client's token": theirs, "a forged token": p.forge(t, "at+jwt", jwt.MapClaims{"sub": "auth0|7a1b", "client_id": p.clientID}), "an unknown opaque token": "8xLOxBtZp8"} {
		if r := e.revoke(t, 0, url.Values{"token": {tk}}, "Authorization", basicAuth(p.clientID, "s3cret")); r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s, want 200", name, r.Status, r.Body)
		}
	}
	expectAll(t, "another client's token after its refused revocation", e.cs, theirs, http.StatusOK)
	expectAll(t, "own token after refused calls", e.cs, mine, http.StatusOK)

	// client_secret_post: the access token stops everywhere; its session's
	// other tokens do not.
	d = e.timeToBlock(t, mine, func() Response {
		return e.revoke(t, 0, url.Values{"token": {mine}, "token_type_hint": {"access_token"}, "client_id": {p.clientID}, "client_secret": {"s3cret"}})
	}, http.StatusOK)
	samples := []time.Duration{d}
	expectAll(t, "revoked access token", e.cs, mine, http.StatusUnauthorized)
	expectAll(t, "other client's token", e.cs, theirs, http.StatusOK)

	// client_secret_basic, a refresh token (hint): its session stops too.
	for i := range 19 {
		sid := fmt.Sprintf("auth0-timed-%d", i)
		rt, at := access("auth0|timed", sid, p.clientID), access("auth0|timed", sid, p.clientID)
		expectAll(t, "timed session", e.cs, at, http.StatusOK)
		samples = append(samples, e.timeToBlock(t, at, func() Response {
			return e.revoke(t, 0, url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}}, "Authorization", basicAuth(p.clientID, "s3cret"))
		}, http.StatusOK))
	}
	reportPropagation(t, "token_revocation", samples)
}

// Okta: SETs pushed by its Shared Signals transmitter (typ secevent+jwt,
// CAEP session-revoked and credential-change with iss_sub subjects and
// event_timestamp, initiating_entity, reason_admin), RFC 7009 for a
// public client whose tokens carry Okta's cid claim; every SSF rejection.
func TestReceiverSecurityEventsOkta(t *testing.T) {
	t.Parallel()
	p := startProvider(t, "https://dev-123456.okta.com", "0oa1b2c3d4e5f6g7h8i9")
	e := startReceiverEnv(t, p)
	access := func(uid string, iat time.Time) string {
		return p.sign(t, "JWT", jwt.MapClaims{
			"ver": 1, "jti": "AT." + randomID(), "iss": p.issuer, "aud": "api://default",
			"iat": iat.Unix(), "exp": iat.Add(time.Hour).Unix(), "cid": "public-spa", "uid": uid,
			"scp": []string{"openid", "profile"}, "auth_time": iat.Unix(), "sub": uid, "sid": "idx" + randomID(),
		})
	}
	set := func(events map[string]any) jwt.MapClaims {
		return jwt.MapClaims{"iss": p.issuer, "jti": randomID(), "iat": time.Now().Unix(), "aud": ssfAudience, "events": events}
	}
	sessionRevoked := func(uid string, ts time.Time) map[string]any {
		return map[string]any{caepSessionEvent: map[string]any{
			"subject":           map[string]any{"format": "iss_sub", "iss": p.issuer, "sub": uid},
			"event_timestamp":   ts.Unix(),
			"initiating_entity": "admin",
			"reason_admin":      map[string]any{"en": "Suspicious activity"},
		}}
	}
	userA, userB := "00u1a2b3c4d5e6f7g8h9", "00u9z8y7x6w5v4u3t2s1"
	a1, b1 := access(userA, time.Now().Add(-time.Minute)), access(userB, time.Now().Add(-time.Minute))
	expectAll(t, "before", e.cs, a1, http.StatusOK)
	expectAll(t, "before", e.cs, b1, http.StatusOK)

	valid := set(sessionRevoked(userA, time.Now()))
	past := time.Now().Add(-time.Hour)
	rejections := []struct {
		name    string
		body    string
		headers []string
		status  int
		code    string
	}{
		{"no bearer token", p.sign(t, "secevent+jwt", valid), []string{"Authorization", "Basic eDp5"}, 400, "authentication_failed"},
		{"wrong bearer token", p.sign(t, "secevent+jwt", valid), []string{"Authorization", "Bearer nope"}, 400, "authentication_failed"},
		{"wrong content type", p.sign(t, "secevent+jwt", valid), []string{"Content-Type", "application/json"}, 400, "invalid_request"},
		{"bad signature", p.forge(t, "secevent+jwt", valid), nil, 400, "authentication_failed"},
		{"alg none", testtoken.Unsigned(t, valid, map[string]any{"typ": "secevent+jwt"}), nil, 400, "authentication_failed"},
		{"wrong iss", p.sign(t, "secevent+jwt", testtoken.With(valid, jwt.MapClaims{"iss": "https://evil.okta.com"})), nil, 400, "invalid_issuer"},
		{"wrong aud", p.sign(t, "secevent+jwt", testtoken.With(valid, jwt.MapClaims{"aud": "https://other.example"})), nil, 400, "invalid_audience"},
		{"expired", p.sign(t, "secevent+jwt", testtoken.With(valid, jwt.MapClaims{"iat": past.Unix(), "exp": past.Add(time.Minute).Unix()})), nil, 400, "invalid_request"},
		{"missing events", p.sign(t, "secevent+jwt", testtoken.With(valid, jwt.MapClaims{"events": nil})), nil, 400, "invalid_request"},
		{"a logout token, not a SET", p.sign(t, "logout+jwt", valid), nil, 400, "invalid_request"},
		{"unsupported subject format", p.sign(t, "secevent+jwt", set(map[string]any{caepSessionEvent: map[string]any{"subject": map[string]any{"format": "email", "email": "a@example.com"}}})), nil, 400, "invalid_request"},
	}
	for _, c := range rejections {
		expectError(t, c.name, e.push(t, 0, c.body, c.headers...), c.status, "err", c.code)
	}
	expectAll(t, "after refused SETs", e.cs, a1, http.StatusOK)

	// Unknown events: 202, ignored.
	r := e.push(t, 1, p.sign(t, "secevent+jwt", set(map[string]any{"https://schemas.openid.net/secevent/caep/event-type/assurance-level-change": map[string]any{
		"subject": map[string]any{"format": "iss_sub", "iss": p.issuer, "sub": userA}, "current_level": "nist-aal2", "previous_level": "nist-aal1", "change_direction": "increase",
	}})))
	if r.Status != http.StatusAccepted {
		t.Fatalf("unknown event: %d %s", r.Status, r.Body)
	}
	expectAll(t, "after an unknown event", e.cs, a1, http.StatusOK)

	// session-revoked: user A's tokens issued until event_timestamp stop
	// everywhere, timed; user B passes; A's next login passes.
	tok := p.sign(t, "secevent+jwt", valid)
	var samples []time.Duration
	samples = append(samples, e.timeToBlock(t, a1, func() Response { return e.push(t, 0, tok) }, http.StatusAccepted))
	expectAll(t, "user A after session-revoked", e.cs, a1, http.StatusUnauthorized)
	expectAll(t, "user B", e.cs, b1, http.StatusOK)
	expectAll(t, "user A's next login", e.cs, access(userA, time.Now().Add(2*time.Second)), http.StatusOK)
	expectError(t, "replayed jti at the other replica", e.push(t, 1, tok), http.StatusBadRequest, "err", "invalid_request")

	// credential-change (password reset), complex subject: user B.
	r = e.push(t, 1, p.sign(t, "secevent+jwt", set(map[string]any{caepCredEvent: map[string]any{
		"subject":         map[string]any{"format": "complex", "user": map[string]any{"format": "iss_sub", "iss": p.issuer, "sub": userB}},
		"credential_type": "password", "change_type": "update", "event_timestamp": time.Now().Unix(),
	}})))
	if r.Status != http.StatusAccepted {
		t.Fatalf("credential-change: %d %s", r.Status, r.Body)
	}
	eventuallyAll(t, "user B after credential-change", e.cs, b1, http.StatusUnauthorized)

	// RISC sessions-revoked with sub_id, and CAEP session-revoked of one
	// session (complex user+session): more timed samples.
	for i := range 19 {
		uid := fmt.Sprintf("00utimed%04d", i)
		at := access(uid, time.Now().Add(-time.Second))
		expectAll(t, "timed user", e.cs, at, http.StatusOK)
		var claims jwt.MapClaims
		if i%2 == 0 {
			claims = set(map[string]any{riscSessionsEvt: map[string]any{"event_timestamp": time.Now().Unix()}})
			claims["sub_id"] = map[string]any{"format": "iss_sub", "iss": p.issuer, "sub": uid}
		} else {
			parsed := jwt.MapClaims{}
			if _, _, err := jwt.NewParser().ParseUnverified(at, parsed); err != nil {
				t.Fatal(err)
			}
			claims = set(map[string]any{caepSessionEvent: map[string]any{
				"subject": map[string]any{"format": "complex",
					"user":    map[string]any{"format": "iss_sub", "iss": p.issuer, "sub": uid},
					"session": map[string]any{"format": "opaque", "id": parsed["sid"]}},
			}})
		}
		set := p.sign(t, "secevent+jwt", claims)
		samples = append(samples, e.timeToBlock(t, at, func() Response { return e.push(t, 0, set) }, http.StatusAccepted))
	}
	reportPropagation(t, "security_events", samples)

	// RFC 7009, a public client and Okta's cid claim.
	c1 := access("00upublic0001", time.Now().Add(-time.Second))
	expectAll(t, "public client's token", e.cs, c1, http.StatusOK)
	if r := e.revoke(t, 1, url.Values{"token": {c1}, "client_id": {"public-spa"}}); r.Status != http.StatusOK {
		t.Fatalf("public client revocation: %d %s", r.Status, r.Body)
	}
	eventuallyAll(t, "token revoked by its public client", e.cs, c1, http.StatusUnauthorized)
}

// While Redis is down, each receiver answers 503 with Retry-After and
// revokes nothing; the provider's retry of the same logout token, once
// Redis is back, is applied (not refused as a replay).
func TestReceiversStoreDown(t *testing.T) {
	t.Parallel()
	p := startProvider(t, "https://keycloak.example.com/realms/outage", "web-app")
	e := startReceiverEnv(t, p)
	now := time.Now().Add(-time.Second)
	at := p.sign(t, "JWT", jwt.MapClaims{
		"iss": p.issuer, "sub": "u-outage", "sid": "s-outage", "azp": "web-app", "jti": randomID(),
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	expectAll(t, "before the outage", e.cs, at, http.StatusOK)
	lt := p.sign(t, "logout+jwt", jwt.MapClaims{
		"iss": p.issuer, "aud": "web-app", "sub": "u-outage", "sid": "s-outage", "jti": randomID(),
		"iat": time.Now().Unix(), "exp": time.Now().Add(5 * time.Minute).Unix(),
		"events": map[string]any{bclEvent: map[string]any{}},
	})
	set := p.sign(t, "secevent+jwt", jwt.MapClaims{
		"iss": p.issuer, "aud": ssfAudience, "jti": randomID(), "iat": time.Now().Unix(),
		"events": map[string]any{caepSessionEvent: map[string]any{"subject": map[string]any{"format": "iss_sub", "iss": p.issuer, "sub": "u-outage"}}},
	})

	e.redis.Stop()
	for name, r := range map[string]Response{
		"backchannel_logout": e.backchannel(t, 0, lt),
		"security_events":    e.push(t, 0, set),
		"token_revocation":   e.revoke(t, 0, url.Values{"token": {at}, "client_id": {"web-app"}, "client_secret": {"s3cret"}}),
	} {
		if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
			t.Fatalf("%s with Redis down: %d (Retry-After %q) %s, want 503 with Retry-After", name, r.Status, r.Header.Get("Retry-After"), r.Body)
		}
	}
	expectAll(t, "after refused revocations", e.cs, at, http.StatusOK)

	e.redis.Restart()
	Eventually(t, "the provider's retry applied once Redis is back", func() bool {
		return e.backchannel(t, 1, lt).Status == http.StatusOK
	})
	eventuallyAll(t, "the logged-out session", e.cs, at, http.StatusUnauthorized)
}
