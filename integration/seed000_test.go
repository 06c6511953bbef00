package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// Seed 000: POST /v1/session/revoke, the caller proving itself with the
// refresh cookie __Host-refresh_<app_id> (and a DPoP proof when the
// refresh token is DPoP-bound). 204; 400 bad_request; 401 unauthorized or
// invalid_dpop_proof; 500 internal. Errors are {"code":...,"type":...}.

var (
	seed000BadRequest   = map[string]string{"code": "bad_request", "type": "bad_request"}
	seed000Unauthorized = map[string]string{"code": "unauthorized", "type": "unauthorized"}
	seed000InvalidProof = map[string]string{"code": "invalid_dpop_proof", "type": "unauthorized"}
	seed000Internal     = map[string]string{"code": "internal", "type": "internal"}
)

// expectSeedClearedCookie checks the Set-Cookie that deletes the refresh
// cookie: same name, empty, Max-Age=0, and the attributes a __Host-
// cookie must have for the browser to accept it.
func expectSeedClearedCookie(t *testing.T, r Response) {
	t.Helper()
	lines := r.Header.Values("Set-Cookie")
	if len(lines) != 1 {
		t.Fatalf("Set-Cookie %q, want one", lines)
	}
	c, err := http.ParseSetCookie(lines[0])
	if err != nil {
		t.Fatalf("Set-Cookie %q: %v", lines[0], err)
	}
	if c.Name != seedCookieName || c.Value != "" || c.MaxAge >= 0 || c.Path != "/" || !c.Secure || !c.HttpOnly || c.Domain != "" {
		t.Fatalf("Set-Cookie %q does not clear %s (want empty, Max-Age=0, Path=/, Secure, HttpOnly, no Domain)", lines[0], seedCookieName)
	}
	if !strings.Contains(lines[0], "Max-Age=0") {
		t.Fatalf("Set-Cookie %q lacks Max-Age=0", lines[0])
	}
}

func TestSeed000_204_RevokesRefreshTokenAndItsSession(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	rt := seedRefresh(t, "alice", "web", nil)
	web, phone := seedSess(t, "alice", "web"), seedSess(t, "alice", "phone")
	bobWeb := seedSess(t, "bob", "web")
	e.cookiePasses(t, "refresh cookie before", rt)
	for _, tok := range []string{web, phone, bobWeb} {
		e.passes(t, "before", tok)
	}

	r := e.revokeRefresh(t, rt)
	expectSeedNoContent(t, "revoke", r)
	expectSeedClearedCookie(t, r)
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}

	hits := e.Up.Hits()
	e.cookieBlocked(t, "the revoked refresh cookie", rt)
	e.refreshBodyBlocked(t, "the revoked refresh token in a body", rt)
	e.blocked(t, "an access token of the refresh token's session", web)
	e.blocked(t, "an access token of that session minted later", seedSessLater(t, "alice", "web"))
	if e.Up.Hits() != hits {
		t.Fatal("a request with a revoked credential reached the upstream")
	}
	e.passes(t, "the same user's other session", phone)
	e.passes(t, "another user's session of the same id", bobWeb)
	e.cookiePasses(t, "another refresh token of the same user", seedRefresh(t, "alice", "tablet", nil))
}

func TestSeed000_204_OpaqueRefreshToken(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	rt := "opaque-refresh-" + randomID()
	other := "opaque-refresh-" + randomID()
	e.cookiePasses(t, "opaque refresh cookie before", rt)
	r := e.revokeRefresh(t, rt)
	expectSeedNoContent(t, "revoke an opaque refresh token", r)
	expectSeedClearedCookie(t, r)
	e.cookieBlocked(t, "the revoked opaque refresh cookie", rt)
	e.cookiePasses(t, "another opaque refresh token", other)
	// The same cookie twice (a stale copy) is one cookie.
	expectSeedNoContent(t, "the same cookie twice", e.revokeRefresh(t, "", "Cookie", seedCookieName+"="+other+"; "+seedCookieName+"="+other))
	e.cookieBlocked(t, "the cookie sent twice", other)
}

func TestSeed000_204_DPoPBoundWithValidProof(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	k := newSeedDPoPKey(t)
	rt := k.boundRefresh(t, "alice", "web")
	web := seedSess(t, "alice", "web")
	e.cookiePasses(t, "bound refresh cookie before", rt)

	proof := k.proof(t, http.MethodPost, e.C.URL+"/v1/session/revoke", nil)
	r := e.revokeRefresh(t, rt, "DPoP", proof)
	expectSeedNoContent(t, "revoke with a valid proof", r)
	expectSeedClearedCookie(t, r)
	e.cookieBlocked(t, "the bound refresh token", rt)
	e.blocked(t, "its session", web)

	// htu is compared without query, with the default port removed.
	rt2 := k.boundRefresh(t, "alice", "tablet")
	proof = k.proof(t, http.MethodPost, e.C.URL+"/v1/session/revoke?from=menu", nil)
	expectSeedNoContent(t, "proof whose htu has a query", e.revokeRefresh(t, rt2, "DPoP", proof))
	e.cookieBlocked(t, "the second bound refresh token", rt2)
}

func TestSeed000_400_BadRequest(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	rt, other := seedRefresh(t, "alice", "web", nil), seedRefresh(t, "alice", "phone", nil)
	web := seedSess(t, "alice", "web")
	cases := []struct {
		name    string
		headers []string
	}{
		{"two different refresh cookies", []string{"Cookie", seedCookieName + "=" + rt + "; " + seedCookieName + "=" + other}},
		{"two different refresh cookies, two headers", []string{"Cookie", seedCookieName + "=" + rt, "Cookie", seedCookieName + "=" + other}},
		{"oversized refresh cookie", []string{"Cookie", seedCookieName + "=" + rt + strings.Repeat("A", 16<<10)}},
	}
	for _, c := range cases {
		r := e.revokeRefresh(t, "", c.headers...)
		expectSeedJSON(t, c.name, r, http.StatusBadRequest, seed000BadRequest)
		if r.Header.Get("Set-Cookie") != "" {
			t.Fatalf("%s: the cookie was cleared on an error", c.name)
		}
		// Nothing was revoked.
		e.cookiePasses(t, c.name+": first refresh token", rt)
		e.cookiePasses(t, c.name+": second refresh token", other)
		e.passes(t, c.name+": access token of the session", web)
	}
}

func TestSeed000_401_Unauthorized(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	victim := seedRefresh(t, "alice", "web", nil)
	web := seedSess(t, "alice", "web")
	cases := []struct {
		name    string
		headers []string
	}{
		{"no cookie", nil},
		{"empty cookie", []string{"Cookie", seedCookieName + "="}},
		{"cookie of another app", []string{"Cookie", "__Host-refresh_other=" + victim}},
		{"cookie without the __Host- prefix", []string{"Cookie", "refresh_demo=" + victim}},
		{"refresh token in the Authorization header", seedBearer(victim)},
		{"expired refresh token", []string{"Cookie", seedCookieName + "=" + seedExpired(t, "alice", "web")}},
		{"wrongly signed refresh token naming the victim's session", []string{"Cookie", seedCookieName + "=" + seedForged(t, "alice", "web")}},
		{"alg none refresh token", []string{"Cookie", seedCookieName + "=" + seedUnsigned(t, "alice", "web")}},
	}
	for _, c := range cases {
		r := e.revokeRefresh(t, "", c.headers...)
		expectSeedJSON(t, c.name, r, http.StatusUnauthorized, seed000Unauthorized)
		if r.Header.Get("Set-Cookie") != "" {
			t.Fatalf("%s: the cookie was cleared on an error", c.name)
		}
		e.cookiePasses(t, c.name+": the victim's refresh token", victim)
		e.passes(t, c.name+": the victim's session", web)
	}

	// Revoked: by this endpoint, by its session, by the whole subject.
	rt := seedRefresh(t, "carol", "web", nil)
	expectSeedNoContent(t, "first revocation", e.revokeRefresh(t, rt))
	expectSeedJSON(t, "already revoked refresh token", e.revokeRefresh(t, rt), http.StatusUnauthorized, seed000Unauthorized)

	rt = seedRefresh(t, "dave", "web", nil)
	expectSeedNoContent(t, "logout of dave's session", e.revokeSessions(t, seedSess(t, "dave", "web"), "target=mine"))
	expectSeedJSON(t, "refresh token of a revoked session", e.revokeRefresh(t, rt), http.StatusUnauthorized, seed000Unauthorized)

	rt = seedRefresh(t, "erin", "web", nil)
	expectSeedNoContent(t, "erin revokes everything", e.revokeSessions(t, seedSess(t, "erin", "phone"), "target=all"))
	expectSeedJSON(t, "refresh token issued before a subject revocation", e.revokeRefresh(t, rt), http.StatusUnauthorized, seed000Unauthorized)
}

func TestSeed000_401_InvalidDPoPProof(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	k := newSeedDPoPKey(t)
	other := newSeedDPoPKey(t)
	rt := k.boundRefresh(t, "alice", "web")
	web := seedSess(t, "alice", "web")
	htu := e.C.URL + "/v1/session/revoke"
	post := http.MethodPost

	cases := []struct {
		name    string
		headers []string
	}{
		{"missing proof", nil},
		{"empty proof", []string{"DPoP", ""}},
		{"wrong key", []string{"DPoP", other.proof(t, post, htu, nil)}},
		{"bound key's jwk, signed by another key", []string{"DPoP", other.proof(t, post, htu, func(h, _ map[string]any) { h["jwk"] = k.jwk })}},
		{"wrong htu path", []string{"DPoP", k.proof(t, post, e.C.URL+"/v1/auth/logout", nil)}},
		{"wrong htu host", []string{"DPoP", k.proof(t, post, strings.Replace(htu, "127.0.0.1", "localhost", 1), nil)}},
		{"wrong htu scheme", []string{"DPoP", k.proof(t, post, strings.Replace(htu, "http://", "https://", 1), nil)}},
		{"wrong htm", []string{"DPoP", k.proof(t, http.MethodGet, htu, nil)}},
		{"stale iat", []string{"DPoP", k.proof(t, post, htu, func(_, c map[string]any) { c["iat"] = time.Now().Add(-5 * time.Minute).Unix() })}},
		{"iat in the future", []string{"DPoP", k.proof(t, post, htu, func(_, c map[string]any) { c["iat"] = time.Now().Add(5 * time.Minute).Unix() })}},
		{"no jti", []string{"DPoP", k.proof(t, post, htu, func(_, c map[string]any) { delete(c, "jti") })}},
		{"typ JWT", []string{"DPoP", k.proof(t, post, htu, func(h, _ map[string]any) { h["typ"] = "JWT" })}},
		{"no jwk", []string{"DPoP", k.proof(t, post, htu, func(h, _ map[string]any) { delete(h, "jwk") })}},
		{"two proofs", []string{"DPoP", k.proof(t, post, htu, nil), "DPoP", k.proof(t, post, htu, nil)}},
		{"not a JWT", []string{"DPoP", "not.a.proof"}},
	}
	for _, c := range cases {
		r := e.revokeRefresh(t, rt, c.headers...)
		expectSeedJSON(t, c.name, r, http.StatusUnauthorized, seed000InvalidProof)
		if got := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `DPoP error="invalid_dpop_proof"`) {
			t.Fatalf("%s: WWW-Authenticate %q", c.name, got)
		}
		if r.Header.Get("Set-Cookie") != "" {
			t.Fatalf("%s: the cookie was cleared on an error", c.name)
		}
		e.cookiePasses(t, c.name+": the bound refresh token", rt)
		e.passes(t, c.name+": its session", web)
	}

	// A replayed proof: good once, for one request only. Two refresh
	// tokens bound to the same key, the proof of the first used again.
	rt2 := k.boundRefresh(t, "alice", "tablet")
	proof := k.proof(t, post, htu, nil)
	expectSeedNoContent(t, "first use of the proof", e.revokeRefresh(t, rt, "DPoP", proof))
	r := e.revokeRefresh(t, rt2, "DPoP", proof)
	expectSeedJSON(t, "replayed proof", r, http.StatusUnauthorized, seed000InvalidProof)
	e.cookiePasses(t, "the refresh token the replay tried to revoke", rt2)
	e.passes(t, "its session", seedSess(t, "alice", "tablet"))
	expectSeedNoContent(t, "a fresh proof", e.revokeRefresh(t, rt2, "DPoP", k.proof(t, post, htu, nil)))
	for _, secret := range []string{rt, rt2, proof} {
		if strings.Contains(e.C.Logs(), secret) {
			t.Fatal("a raw token or proof is in caddy's log")
		}
	}
}

func TestSeed000_500_StoreDown(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	rt := seedRefresh(t, "alice", "web", nil)
	k := newSeedDPoPKey(t)
	bound := k.boundRefresh(t, "alice", "tablet")
	web := seedSess(t, "alice", "web")
	e.passes(t, "before", web)
	e.Redis.Stop()

	for name, call := range map[string]func() Response{
		"plain refresh token": func() Response { return e.revokeRefresh(t, rt) },
		"DPoP-bound refresh token": func() Response {
			return e.revokeRefresh(t, bound, "DPoP", k.proof(t, http.MethodPost, e.C.URL+"/v1/session/revoke", nil))
		},
	} {
		r := call()
		expectSeedJSON(t, name, r, http.StatusInternalServerError, seed000Internal)
		if r.Header.Get("Set-Cookie") != "" {
			t.Fatalf("%s: the cookie was cleared though nothing was revoked", name)
		}
	}
	// Nothing was half applied: this replica still lets everything pass.
	e.cookiePasses(t, "the refresh token", rt)
	e.cookiePasses(t, "the bound refresh token", bound)
	e.passes(t, "the refresh token's session", web)
}

func TestSeed000_EndpointsOptionAndPath(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "endpoints {\n\t\t\trevoke_refresh /auth/revoke\n\t\t}")
	rt := seedRefresh(t, "alice", "web", nil)
	// The default path is no longer the endpoint: it goes to the app.
	r := Do(t, http.MethodPost, e.C.URL+"/v1/session/revoke", "", "Cookie", seedCookieName+"="+rt)
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `"upstream":"reached"`) {
		t.Fatalf("default path with a custom one set: %d %s; want the upstream's answer", r.Status, r.Body)
	}
	r = Do(t, http.MethodPost, e.C.URL+"/auth/revoke", "", "Cookie", seedCookieName+"="+rt)
	expectSeedNoContent(t, "custom path", r)
	expectSeedClearedCookie(t, r)
	e.cookieBlocked(t, "after the custom path", rt)
	// Another method on the endpoint's path is the app's.
	r = Do(t, http.MethodGet, e.C.URL+"/auth/revoke", "")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "upstream") {
		t.Fatalf("GET on the endpoint path: %d %s", r.Status, r.Body)
	}

	// Not listed: not served.
	e2 := startSeedEnv(t, "endpoints logout")
	rt = seedRefresh(t, "alice", "web", nil)
	r = Do(t, http.MethodPost, e2.C.URL+"/v1/session/revoke", "", "Cookie", seedCookieName+"="+rt)
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `"upstream":"reached"`) {
		t.Fatalf("revoke_refresh not listed: %d %s; want the upstream's answer", r.Status, r.Body)
	}
	e2.cookiePasses(t, "nothing revoked", rt)
}
