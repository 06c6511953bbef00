package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

// Seed 002: DELETE /v1/auth/session with a bearer access token and an
// optional body {"session_id": ...}, the current session when omitted.
// 200 {"message":"Session invalidated successfully.","session_id":...};
// 401 unauthorized; 401 and 404 invalid_session. Errors are
// {"error":...,"message":...}; the seed names no 400 or 500, which keep
// that shape.

const seed002Success = "Session invalidated successfully."

var (
	seed002Unauthorized   = map[string]string{"error": "unauthorized", "message": "Missing or invalid access token."}
	seed002InvalidSession = map[string]string{"error": "invalid_session", "message": "Session not found or already invalidated."}
	seed002InvalidRequest = map[string]string{"error": "invalid_request", "message": "Invalid request body."}
	seed002Internal       = map[string]string{"error": "internal_error", "message": "The session could not be invalidated; try again."}
)

func seed002OK(sid string) map[string]string {
	return map[string]string{"message": seed002Success, "session_id": sid}
}

func TestSeed002_200_CurrentSession(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	for _, body := range []string{"", "{}", "  \n", `{"unrelated":[1,{"x":null}]}`} {
		t.Run(fmt.Sprintf("body %q", body), func(t *testing.T) {
			sub := "alice-" + randomID()
			cur, phone, bob := seedSess(t, sub, "cur"), seedSess(t, sub, "phone"), seedSess(t, "bob", "cur")
			expectSeedJSON(t, "invalidate", e.invalidateSession(t, cur, body), http.StatusOK, seed002OK("cur"))
			e.blocked(t, "the caller's token", cur)
			e.passes(t, "the caller's other session", phone)
			e.passes(t, "bob's session of the same id", bob)
			e.blocked(t, "a later token of the session", seedSessLater(t, sub, "cur"))
		})
	}
	// The seed's example request, as curl sends it.
	cur := seedSess(t, "carol", "1234567890")
	r := Do(t, http.MethodDelete, e.C.URL+"/v1/auth/session", "{\n    \"session_id\": \"1234567890\"\n  }",
		"Content-Type", "application/json", "Authorization", "Bearer "+cur)
	expectSeedJSON(t, "the seed's example", r, http.StatusOK, seed002OK("1234567890"))
	e.blocked(t, "the example's session", cur)
}

func TestSeed002_200_NamedSession(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	cur, phone, tv := seedSess(t, "alice", "cur"), seedSess(t, "alice", "phone"), seedSess(t, "alice", "tv")
	bobPhone, bobOnly := seedSess(t, "bob", "phone"), seedSess(t, "bob", "bob-only")
	// A caller may name a session of theirs that the proxy has seen in use.
	for sid, tok := range map[string]string{"phone": phone, "tv": tv} {
		e.passes(t, sid+" in use", tok)
		e.waitSeen(t, "alice", sid)
	}

	expectSeedJSON(t, "named session", e.invalidateSession(t, cur, `{"session_id":"phone"}`), http.StatusOK, seed002OK("phone"))
	e.blocked(t, "the named session", phone)
	e.passes(t, "the caller's own session", cur)
	e.passes(t, "another session", tv)
	e.passes(t, "bob's session of the same id", bobPhone)
	e.blocked(t, "a later token of the named session", seedSessLater(t, "alice", "phone"))

	// Another user's session ID names a session of the caller's own, which
	// does not exist: not found, and bob is untouched.
	e.passes(t, "bob's session in use", bobOnly)
	e.waitSeen(t, "bob", "bob-only")
	expectSeedJSON(t, "bob's session id", e.invalidateSession(t, cur, `{"session_id":"bob-only"}`), http.StatusNotFound, seed002InvalidSession)
	e.passes(t, "bob's session named by alice", bobOnly)
	e.passes(t, "bob's new token", seedSess(t, "bob", "bob-only"))

	// Unknown fields are ignored.
	expectSeedJSON(t, "with an unknown field", e.invalidateSession(t, cur, `{"session_id":"tv","all":true}`), http.StatusOK, seed002OK("tv"))
	e.blocked(t, "tv", tv)
	e.passes(t, "the caller, still", cur)

	// A token without a session claim is its own session.
	lone := testtoken.HS256(t, jwt.MapClaims{"sub": "dave", "sid": nil})
	expectSeedJSON(t, "sessionless token", e.invalidateSession(t, lone, ""), http.StatusOK, map[string]string{"message": seed002Success})
	e.blocked(t, "the sessionless token", lone)
}

func TestSeed002_404_AlreadyInvalidated(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	cur := seedSess(t, "alice", "cur")
	for _, sid := range []string{"phone", "tv"} {
		e.passes(t, sid+" in use", seedSess(t, "alice", sid))
		e.waitSeen(t, "alice", sid)
	}
	expectSeedJSON(t, "first", e.invalidateSession(t, cur, `{"session_id":"phone"}`), http.StatusOK, seed002OK("phone"))
	expectSeedJSON(t, "again", e.invalidateSession(t, cur, `{"session_id":"phone"}`), http.StatusNotFound, seed002InvalidSession)
	e.passes(t, "the caller", cur)

	// Revoked by another endpoint: already invalid all the same.
	expectSeedNoContent(t, "revoke tv through seed 001", e.revokeSessions(t, cur, "target=session&session_id=tv"))
	expectSeedJSON(t, "a session revoked by another endpoint", e.invalidateSession(t, cur, `{"session_id":"tv"}`), http.StatusNotFound, seed002InvalidSession)

	// A session nobody has seen in use: not found, and nothing stored.
	expectSeedJSON(t, "a made-up session", e.invalidateSession(t, cur, `{"session_id":"made-up"}`), http.StatusNotFound, seed002InvalidSession)
}

func TestSeed002_401_InvalidSession(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	cur := seedSess(t, "alice", "cur")
	expectSeedJSON(t, "first", e.invalidateSession(t, cur, ""), http.StatusOK, seed002OK("cur"))
	for name, r := range map[string]Response{
		"the same token again":           e.invalidateSession(t, cur, ""),
		"the same token, naming another": e.invalidateSession(t, cur, `{"session_id":"phone"}`),
		"a later token of the session":   e.invalidateSession(t, seedSess(t, "alice", "cur"), ""),
		"a token of a session revoked by 001": func() Response {
			tv := seedSess(t, "alice", "tv")
			expectSeedNoContent(t, "revoke tv", e.revokeSessions(t, tv, "target=mine"))
			return e.invalidateSession(t, seedSess(t, "alice", "tv"), "")
		}(),
	} {
		expectSeedJSON(t, name, r, http.StatusUnauthorized, seed002InvalidSession)
		if got := r.Header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
			t.Fatalf("%s: WWW-Authenticate %q", name, got)
		}
	}
	e.passes(t, "phone, named by a revoked token", seedSess(t, "alice", "phone"))
}

func TestSeed002_401_Unauthorized(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	victim := seedSess(t, "alice", "cur")
	check := func(name string, r Response, challenge string) {
		t.Helper()
		expectSeedJSON(t, name, r, http.StatusUnauthorized, seed002Unauthorized)
		if got := r.Header.Get("WWW-Authenticate"); got != challenge {
			t.Fatalf("%s: WWW-Authenticate %q, want %q", name, got, challenge)
		}
		e.passes(t, name+": alice's session", victim)
	}
	check("no Authorization header", e.invalidateSession(t, "", `{"session_id":"cur"}`), "Bearer")
	check("no token, bad body too", e.invalidateSession(t, "", `{`), "Bearer")
	for _, c := range seedBadBearers(t, "alice", "cur") {
		check(c.name, Do(t, http.MethodDelete, e.C.URL+"/v1/auth/session", "", "Authorization", c.header), "Bearer")
	}
	check("two Authorization headers", Do(t, http.MethodDelete, e.C.URL+"/v1/auth/session", "",
		"Authorization", "Bearer "+victim, "Authorization", "Bearer "+victim), "Bearer")
	for _, c := range seedInvalidBearers(t, "alice", "cur") {
		check(c.name, e.invalidateSession(t, c.token, ""), `Bearer error="invalid_token"`)
	}
	// Revoked otherwise than by its session: the token itself, its jti,
	// its subject.
	tok := seedSess(t, "carol", "c1")
	if st, body := e.C.AdminDo("POST", "/revocation/revoke", fmt.Sprintf(`{"token":%q}`, tok)); st != http.StatusOK {
		t.Fatalf("admin revoke token: %d %s", st, body)
	}
	check("a revoked token", e.invalidateSession(t, tok, ""), `Bearer error="invalid_token"`)
	withJTI := testtoken.HS256(t, jwt.MapClaims{"sub": "dave", "sid": "d1", "jti": "jti-dave"})
	if st, body := e.C.AdminDo("POST", "/revocation/revoke", `{"jti":"jti-dave"}`); st != http.StatusOK {
		t.Fatalf("admin revoke jti: %d %s", st, body)
	}
	check("a token with a revoked jti", e.invalidateSession(t, withJTI, ""), `Bearer error="invalid_token"`)
	erin := testtoken.HS256(t, jwt.MapClaims{"sub": "erin", "sid": "unseen"})
	if st, body := e.C.AdminDo("POST", "/revocation/revoke", `{"subject":"erin"}`); st != http.StatusOK {
		t.Fatalf("admin revoke subject: %d %s", st, body)
	}
	check("a token issued before its subject was revoked", e.invalidateSession(t, erin, ""), `Bearer error="invalid_token"`)
}

// seedMalformedBodies are bodies every body-taking dialect refuses, for
// the field it reads; each comes with what it gets wrong.
func seedMalformedBodies(field, value string) []struct{ name, body string } {
	good := fmt.Sprintf(`{%q:%q}`, field, value)
	return []struct{ name, body string }{
		{"bad JSON", `{` + fmt.Sprintf("%q", field) + `:`},
		{"not JSON", field + "=" + value},
		{"number", fmt.Sprintf(`{%q:123}`, field)},
		{"null", fmt.Sprintf(`{%q:null}`, field)},
		{"boolean", fmt.Sprintf(`{%q:true}`, field)},
		{"array", fmt.Sprintf(`{%q:[%q]}`, field, value)},
		{"object", fmt.Sprintf(`{%q:{"id":%q}}`, field, value)},
		{"empty string", fmt.Sprintf(`{%q:""}`, field)},
		{"duplicate field", fmt.Sprintf(`{%q:%q,%q:%q}`, field, value, field, value)},
		{"duplicate field, escaped", fmt.Sprintf(`{%q:%q,"%s":%q}`, field, value, strings.Replace(field, "e", `\u0065`, 1), value)},
		{"trailing data", good + ` {}`},
		{"trailing garbage", good + `x`},
		{"two objects", good + good},
		{"array body", `[` + good + `]`},
		{"string body", fmt.Sprintf("%q", value)},
		{"null body", `null`},
		{"trailing comma", fmt.Sprintf(`{%q:%q,}`, field, value)},
		{"invalid UTF-8", fmt.Sprintf(`{%q:"%s\xff"}`, field, value)},
		{"oversized", fmt.Sprintf(`{%q:%q,"padding":%q}`, field, value, strings.Repeat("p", 16<<10))},
	}
}

func TestSeed002_400_InvalidBody(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	cur, phone := seedSess(t, "alice", "cur"), seedSess(t, "alice", "phone")
	for _, c := range append(seedMalformedBodies("session_id", "phone"),
		struct{ name, body string }{"session_id too long", fmt.Sprintf(`{"session_id":%q}`, strings.Repeat("s", 1025))}) {
		expectSeedJSON(t, c.name, e.invalidateSession(t, cur, c.body), http.StatusBadRequest, seed002InvalidRequest)
		e.passes(t, c.name+": the caller", cur)
		e.passes(t, c.name+": the session the body names", phone)
	}
	// A body of unknown length (chunked) is bounded just the same.
	r := doChunked(t, http.MethodDelete, e.C.URL+"/v1/auth/session", `{"session_id":"`+strings.Repeat("p", 20<<10)+`"}`, "Authorization", "Bearer "+cur)
	expectSeedJSON(t, "oversized chunked body", r, http.StatusBadRequest, seed002InvalidRequest)
	e.passes(t, "the caller after a chunked body", cur)
	r = doChunked(t, http.MethodDelete, e.C.URL+"/v1/auth/session", `{"session_id":"phone"}`, "Authorization", "Bearer "+cur)
	expectSeedJSON(t, "a small chunked body", r, http.StatusOK, seed002OK("phone"))
	e.blocked(t, "the session the chunked body named", phone)
}

func TestSeed002_500_StoreDown(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	cur, phone := seedSess(t, "alice", "cur"), seedSess(t, "alice", "phone")
	e.Redis.Stop()
	for _, body := range []string{"", `{"session_id":"phone"}`} {
		expectSeedJSON(t, "body "+body, e.invalidateSession(t, cur, body), http.StatusInternalServerError, seed002Internal)
	}
	e.passes(t, "the caller", cur)
	e.passes(t, "the named session", phone)
}

func TestSeed002_EndpointsOptionAndPath(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "endpoints {\n\t\t\tinvalidate_session /auth/session\n\t\t}")
	cur := seedSess(t, "alice", "cur")
	r := e.invalidateSession(t, cur, "")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `"upstream":"reached"`) {
		t.Fatalf("default path with a custom one set: %d %s; want the upstream's answer", r.Status, r.Body)
	}
	e.passes(t, "nothing revoked by the default path", cur)
	r = Do(t, http.MethodDelete, e.C.URL+"/auth/session", "", "Authorization", "Bearer "+cur)
	expectSeedJSON(t, "custom path", r, http.StatusOK, seed002OK("cur"))
	e.blocked(t, "after the custom path", cur)

	e2 := startSeedEnv(t, "endpoints none")
	cur = seedSess(t, "alice", "cur")
	for name, r := range map[string]Response{
		"000": e2.revokeRefresh(t, seedRefresh(t, "alice", "cur", nil)),
		"001": e2.revokeSessions(t, cur, "target=all"),
		"002": e2.invalidateSession(t, cur, ""),
		"003": e2.logout(t, cur, ""),
	} {
		if r.Status != http.StatusOK || !strings.Contains(r.Body, `"upstream":"reached"`) {
			t.Fatalf("endpoints none, seed %s: %d %s; want the upstream's answer", name, r.Status, r.Body)
		}
	}
	e2.passes(t, "nothing revoked", cur)
}
