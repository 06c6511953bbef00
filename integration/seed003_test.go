package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

// Seed 003: POST /v1/auth/logout with a bearer access token and an
// optional body {"refreshToken": ...}, a non-empty string when present.
// 200 with the body true; 401 MISSING_AUTH and INVALID_AUTH; 400
// INVALID_INPUT. Errors are {"code":...,"message":...}. Beyond the seed's
// note, the access token and its session are revoked too, at once.

var (
	seed003MissingAuth  = map[string]string{"code": "MISSING_AUTH", "message": "Missing bearer access token."}
	seed003InvalidAuth  = map[string]string{"code": "INVALID_AUTH", "message": "Invalid or expired access token."}
	seed003InvalidInput = map[string]string{"code": "INVALID_INPUT", "message": "Invalid logout request payload."}
	seed003Internal     = map[string]string{"code": "INTERNAL_ERROR", "message": "Logout could not be completed; try again."}
)

// expectSeedTrue checks the seed's success: 200, a JSON body of exactly true.
func expectSeedTrue(t *testing.T, what string, r Response) {
	t.Helper()
	ExpectStatus(t, what, r, http.StatusOK)
	if r.Body != "true" {
		t.Fatalf("%s: body %q, want true", what, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: Content-Type %q, want application/json", what, ct)
	}
}

func seedRefreshBody(rt string) string { return fmt.Sprintf(`{"refreshToken":%q}`, rt) }

func TestSeed003_200_LogoutRevokesRefreshAccessAndSession(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	access := testtoken.HS256(t, jwt.MapClaims{"sub": "alice", "sid": "web", "jti": "access-jti-1"})
	rt := seedRefresh(t, "alice", "web", nil)
	phone, bobWeb := seedSess(t, "alice", "phone"), seedSess(t, "bob", "web")
	bobRefresh := seedRefresh(t, "bob", "web", nil)
	e.passes(t, "before", access)
	e.cookiePasses(t, "refresh cookie before", rt)

	// The seed's example request, as curl sends it.
	body := "{\n\"refreshToken\": \"" + rt + "\"\n}"
	hits := e.Up.Hits()
	expectSeedTrue(t, "logout", e.logout(t, access, body))
	if e.Up.Hits() != hits {
		t.Fatal("the logout reached the upstream")
	}

	e.blocked(t, "the access token", access)
	e.blocked(t, "another token carrying the access token's jti", testtoken.HS256(t, jwt.MapClaims{"sub": "alice", "sid": "web2", "jti": "access-jti-1"}))
	e.cookieBlocked(t, "the refresh token as a cookie", rt)
	e.refreshBodyBlocked(t, "the refresh token in a body", rt)
	e.blocked(t, "a later access token of the session", seedSessLater(t, "alice", "web"))
	e.cookieBlocked(t, "a later refresh token of the session", seedRefresh(t, "alice", "web", jwt.MapClaims{"iat": nextSecond()["iat"]}))
	e.passes(t, "the same user's other session", phone)
	e.passes(t, "bob's session of the same id", bobWeb)
	e.cookiePasses(t, "bob's refresh token of the same session id", bobRefresh)
	expectSeedJSON(t, "the logged-out token calls again", e.logout(t, access, ""), http.StatusUnauthorized, seed003InvalidAuth)
	for _, secret := range []string{access, rt} {
		if strings.Contains(e.C.Logs(), secret) {
			t.Fatal("a raw token is in caddy's log")
		}
	}
}

func TestSeed003_200_WithoutRefreshToken(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	for _, body := range []string{"", "{}", " \r\n", `{"other":"field","n":[1,2]}`} {
		t.Run(fmt.Sprintf("body %q", body), func(t *testing.T) {
			sub := "alice-" + randomID()
			access, rt, phone := seedSess(t, sub, "web"), seedRefresh(t, sub, "web", nil), seedSess(t, sub, "phone")
			expectSeedTrue(t, "logout", e.logout(t, access, body))
			e.blocked(t, "the access token", access)
			e.cookieBlocked(t, "the session's refresh token, through its session", rt)
			e.passes(t, "another session", phone)
		})
	}
	// No Content-Type at all: the seed's clients send one, but an empty
	// logout needs none.
	access := seedSess(t, "carol", "web")
	expectSeedTrue(t, "no Content-Type, no body", Do(t, http.MethodPost, e.C.URL+"/v1/auth/logout", "", "Authorization", "Bearer "+access))
	e.blocked(t, "carol's token", access)
}

func TestSeed003_200_AlreadyRevokedRefreshToken(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	rt := seedRefresh(t, "alice", "web", nil)
	expectSeedTrue(t, "first logout", e.logout(t, seedSess(t, "alice", "web"), seedRefreshBody(rt)))
	// The user logs in again and logs out, the client sending the old
	// refresh token it still had.
	again := seedSess(t, "alice", "second")
	expectSeedTrue(t, "logout with an already revoked refresh token", e.logout(t, again, seedRefreshBody(rt)))
	e.blocked(t, "the second session", again)
	opaque := "opaque-" + randomID()
	expectSeedTrue(t, "opaque refresh token", e.logout(t, seedSess(t, "alice", "third"), seedRefreshBody(opaque)))
	expectSeedTrue(t, "opaque refresh token again", e.logout(t, seedSess(t, "alice", "fourth"), seedRefreshBody(opaque)))
	e.cookieBlocked(t, "the opaque refresh token", opaque)
}

func TestSeed003_200_RefreshTokenOfAnotherSessionOrUser(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	// The refresh token of another session of the caller: that session
	// goes too.
	access, tvRefresh, tv := seedSess(t, "alice", "web"), seedRefresh(t, "alice", "tv", nil), seedSess(t, "alice", "tv")
	expectSeedTrue(t, "logout with the tv's refresh token", e.logout(t, access, seedRefreshBody(tvRefresh)))
	e.cookieBlocked(t, "the tv's refresh token", tvRefresh)
	e.blocked(t, "the tv session", tv)

	// Someone else's refresh token: that exact token goes (whoever holds
	// it may hand it in), but nothing else of its owner.
	bobRefresh, bobWeb := seedRefresh(t, "bob", "web", nil), seedSess(t, "bob", "web")
	expectSeedTrue(t, "logout with bob's refresh token", e.logout(t, seedSess(t, "alice", "phone"), seedRefreshBody(bobRefresh)))
	e.cookieBlocked(t, "bob's refresh token handed in", bobRefresh)
	e.passes(t, "bob's session", bobWeb)
	e.cookiePasses(t, "bob's next refresh token", seedRefresh(t, "bob", "web", nil))

	// A forged refresh token naming one of the caller's sessions revokes
	// only itself: its claims are not believed.
	laptop := seedSess(t, "alice", "laptop")
	expectSeedTrue(t, "logout with a forged refresh token", e.logout(t, seedSess(t, "alice", "tablet"), seedRefreshBody(seedForged(t, "alice", "laptop"))))
	e.passes(t, "the session the forged token names", laptop)
}

func TestSeed003_400_InvalidInput(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	access, rt := seedSess(t, "alice", "web"), seedRefresh(t, "alice", "phone", nil)
	phone := seedSess(t, "alice", "phone")
	for _, c := range append(seedMalformedBodies("refreshToken", rt),
		struct{ name, body string }{"refresh_token spelled otherwise, empty", `{"refreshToken":"","refresh_token":"x"}`}) {
		expectSeedJSON(t, c.name, e.logout(t, access, c.body), http.StatusBadRequest, seed003InvalidInput)
		// Nothing was revoked: not the caller, not its session, not the
		// refresh token in the body.
		e.passes(t, c.name+": the caller", access)
		e.cookiePasses(t, c.name+": the refresh token in the body", rt)
		e.passes(t, c.name+": the refresh token's session", phone)
	}
	r := doChunked(t, http.MethodPost, e.C.URL+"/v1/auth/logout", seedRefreshBody(rt+strings.Repeat("x", 20<<10)), "Authorization", "Bearer "+access)
	expectSeedJSON(t, "oversized chunked body", r, http.StatusBadRequest, seed003InvalidInput)
	e.passes(t, "the caller after a chunked body", access)
}

func TestSeed003_401_MissingAuth(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	victim, rt := seedSess(t, "alice", "web"), seedRefresh(t, "alice", "web", nil)
	check := func(name string, r Response) {
		t.Helper()
		expectSeedJSON(t, name, r, http.StatusUnauthorized, seed003MissingAuth)
		if got := r.Header.Get("WWW-Authenticate"); got != "Bearer" {
			t.Fatalf("%s: WWW-Authenticate %q", name, got)
		}
		e.passes(t, name+": alice's session", victim)
		e.cookiePasses(t, name+": the refresh token in the body", rt)
	}
	check("no Authorization header", e.logout(t, "", seedRefreshBody(rt)))
	check("no Authorization header, bad body too", e.logout(t, "", `{"refreshToken":""}`))
	for _, c := range seedBadBearers(t, "alice", "web") {
		check(c.name, Do(t, http.MethodPost, e.C.URL+"/v1/auth/logout", seedRefreshBody(rt), "Authorization", c.header, "Content-Type", "application/json"))
	}
	check("two Authorization headers", Do(t, http.MethodPost, e.C.URL+"/v1/auth/logout", seedRefreshBody(rt),
		"Authorization", "Bearer "+victim, "Authorization", "Bearer "+victim))
	check("refresh token as a cookie only", Do(t, http.MethodPost, e.C.URL+"/v1/auth/logout", "", "Cookie", seedCookieName+"="+rt))
}

func TestSeed003_401_InvalidAuth(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	victim, rt := seedSess(t, "alice", "web"), seedRefresh(t, "alice", "web", nil)
	check := func(name string, r Response) {
		t.Helper()
		expectSeedJSON(t, name, r, http.StatusUnauthorized, seed003InvalidAuth)
		if got := r.Header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
			t.Fatalf("%s: WWW-Authenticate %q", name, got)
		}
		e.passes(t, name+": alice's session", victim)
		e.cookiePasses(t, name+": the refresh token in the body", rt)
	}
	for _, c := range seedInvalidBearers(t, "alice", "web") {
		check(c.name, e.logout(t, c.token, seedRefreshBody(rt)))
	}
	// Revoked: by a logout, by its session, by its subject.
	carol := seedSess(t, "carol", "c1")
	expectSeedTrue(t, "carol logs out", e.logout(t, carol, ""))
	check("a logged-out token", e.logout(t, carol, seedRefreshBody(rt)))
	check("a later token of a logged-out session", e.logout(t, seedSess(t, "carol", "c1"), seedRefreshBody(rt)))
	dave := seedSess(t, "dave", "d1")
	expectSeedNoContent(t, "dave revokes all", e.revokeSessions(t, seedSess(t, "dave", "d2"), "target=all"))
	check("a token issued before its subject was revoked", e.logout(t, dave, seedRefreshBody(rt)))
}

func TestSeed003_500_StoreDown(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	access, rt, tv := seedSess(t, "alice", "web"), seedRefresh(t, "alice", "tv", nil), seedSess(t, "alice", "tv")
	e.Redis.Stop()
	for _, body := range []string{"", seedRefreshBody(rt)} {
		expectSeedJSON(t, "body "+body, e.logout(t, access, body), http.StatusInternalServerError, seed003Internal)
	}
	// Nothing was half applied: not the access token, not its session,
	// not the refresh token or its session.
	e.passes(t, "the access token", access)
	e.passes(t, "a later token of its session", seedSess(t, "alice", "web"))
	e.cookiePasses(t, "the refresh token", rt)
	e.passes(t, "the refresh token's session", tv)
}

func TestSeed003_EndpointsOptionAndPath(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "endpoints {\n\t\t\tlogout /api/logout\n\t\t}")
	access := seedSess(t, "alice", "web")
	r := e.logout(t, access, "")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `"upstream":"reached"`) {
		t.Fatalf("default path with a custom one set: %d %s; want the upstream's answer", r.Status, r.Body)
	}
	e.passes(t, "nothing revoked by the default path", access)
	expectSeedTrue(t, "custom path", Do(t, http.MethodPost, e.C.URL+"/api/logout", "", "Authorization", "Bearer "+access))
	e.blocked(t, "after the custom path", access)
	// Only the listed dialects are served.
	for name, r := range map[string]Response{
		"001": e.revokeSessions(t, seedSess(t, "bob", "b1"), "target=all"),
		"002": e.invalidateSession(t, seedSess(t, "bob", "b1"), ""),
	} {
		if r.Status != http.StatusOK || !strings.Contains(r.Body, `"upstream":"reached"`) {
			t.Fatalf("seed %s not listed: %d %s; want the upstream's answer", name, r.Status, r.Body)
		}
	}
	e.passes(t, "bob, after calls to endpoints not served", seedSess(t, "bob", "b1"))
}
