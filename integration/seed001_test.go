package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

// Seed 001: POST /v1/session/me/revoke?target=all|others|mine|session
// [&session_id=...], with a bearer access token. 204; 400 bad_request;
// 401 unauthorized; 500 internal. Errors are {"code":...,"type":...}.

var (
	seed001BadRequest   = map[string]string{"code": "bad_request", "type": "bad_request"}
	seed001Unauthorized = map[string]string{"code": "unauthorized", "type": "unauthorized"}
	seed001Internal     = map[string]string{"code": "internal", "type": "internal"}
)

// seed001Alice is alice calling from session "cur", with a session "seen"
// that went through the proxy, a session "unseen" that never did, and bob,
// who has a session of the same id "seen" and one called "bob-only".
type seed001Alice struct {
	cur, seen, unseen string
	loginTime         int64 // auth_time of alice's unseen session's login
	bobSeen, bobOnly  string
}

func newSeed001Alice(t *testing.T, e *seedEnv) *seed001Alice {
	t.Helper()
	a := &seed001Alice{
		loginTime: time.Now().Add(-10 * time.Minute).Unix(),
		cur:       seedSess(t, "alice", "cur"),
		seen:      seedSess(t, "alice", "seen"),
		bobSeen:   seedSess(t, "bob", "seen"),
		bobOnly:   seedSess(t, "bob", "bob-only"),
	}
	a.unseen = testtoken.HS256(t, jwt.MapClaims{"sub": "alice", "sid": "unseen", "auth_time": a.loginTime})
	for _, tok := range []string{a.cur, a.seen, a.bobSeen, a.bobOnly} {
		e.passes(t, "before", tok)
	}
	e.waitSeen(t, "alice", "seen")
	e.waitSeen(t, "alice", "cur")
	return a
}

// refreshed mints the token a refresh would give session sid of alice
// after the revocation: a later iat (the next second), same session, and
// the login's auth_time for the unseen session (whose tokens carry it).
func (a *seed001Alice) refreshed(t *testing.T, sid string) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": "alice", "sid": sid}
	if sid == "unseen" {
		claims["auth_time"] = a.loginTime
	}
	return testtoken.HS256(t, nextSecond(), claims)
}

// The four targets, each called from alice's session "cur": which of the
// tokens minted before the call, and of those a refresh gives afterwards,
// pass or are blocked; then what each target adds.
func TestSeed001_204(t *testing.T) {
	t.Parallel()
	type names = []string // fields of seed001Alice: cur, seen, unseen, bobSeen, bobOnly
	for _, tc := range []struct {
		query           string
		blocked, passes names
		// The tokens a refresh gives alice's sessions after the call.
		laterBlocked, laterPasses names
		more                      func(t *testing.T, e *seedEnv, a *seed001Alice)
	}{{
		query:        "target=all",
		blocked:      names{"cur", "seen", "unseen"},
		passes:       names{"bobSeen", "bobOnly"},
		laterBlocked: names{"cur", "seen", "unseen"},
		more: func(t *testing.T, e *seedEnv, a *seed001Alice) {
			e.passes(t, "a new login after the call", seedSessLater(t, "alice", "new-login"))
			e.passes(t, "bob, new token", seedSessLater(t, "bob", "seen"))
			expectSeedJSON(t, "the revoked token calls again", e.revokeSessions(t, a.cur, "target=all"), http.StatusUnauthorized, seed001Unauthorized)
		},
	}, {
		query:        "target=others",
		blocked:      names{"seen", "unseen"},
		passes:       names{"cur", "bobSeen", "bobOnly"},
		laterBlocked: names{"seen", "unseen"},
		laterPasses:  names{"cur"},
		more: func(t *testing.T, e *seedEnv, a *seed001Alice) {
			e.passes(t, "a new login after the call", seedSessLater(t, "alice", "new-login"))
			// The caller may go on using its session, and call again.
			expectSeedNoContent(t, "target=others again", e.revokeSessions(t, a.cur, "target=others"))
			e.passes(t, "the caller's token after a second call", a.cur)
		},
	}, {
		query:        "target=mine",
		blocked:      names{"cur"},
		passes:       names{"seen", "unseen", "bobSeen"},
		laterBlocked: names{"cur"},
		laterPasses:  names{"seen"},
	}, {
		query:        "target=session&session_id=seen",
		blocked:      names{"seen"},
		passes:       names{"cur", "unseen", "bobSeen"},
		laterBlocked: names{"seen"},
		laterPasses:  names{"cur"},
		more: func(t *testing.T, e *seedEnv, a *seed001Alice) {
			// Naming another user's session ID revokes nothing of theirs: it
			// names a session of the caller's own (which does not exist).
			expectSeedNoContent(t, "naming bob's session", e.revokeSessions(t, a.cur, "target=session&session_id=bob-only"))
			e.passes(t, "bob's session named by alice", a.bobOnly)
			e.passes(t, "bob's new token of that session", seedSess(t, "bob", "bob-only"))
			e.passes(t, "the caller", a.cur)

			// The seed's example ID, percent-encoded characters and all.
			odd := "ses_01jqebhswje1ka1z7ahr9rfsgt/é &x"
			oddTok := seedSess(t, "alice", odd)
			e.passes(t, "a session with an odd id", oddTok)
			expectSeedNoContent(t, "an encoded session id", e.revokeSessions(t, a.cur, "target=session&session_id=ses_01jqebhswje1ka1z7ahr9rfsgt%2F%C3%A9+%26x"))
			e.blocked(t, "the session with an odd id", oddTok)

			// Naming the current session is "mine".
			expectSeedNoContent(t, "naming the current session", e.revokeSessions(t, a.cur, "target=session&session_id=cur"))
			e.blocked(t, "the caller's session, named", a.cur)
		},
	}} {
		t.Run(tc.query, func(t *testing.T) {
			t.Parallel()
			e := startSeedEnv(t, "")
			a := newSeed001Alice(t, e)
			expectSeedNoContent(t, tc.query, e.revokeSessions(t, a.cur, tc.query))
			for _, n := range tc.blocked {
				e.blocked(t, a.describe(n), a.token(n))
			}
			for _, n := range tc.passes {
				e.passes(t, a.describe(n), a.token(n))
			}
			for _, n := range tc.laterBlocked {
				e.blocked(t, "later token of "+a.describe(n), a.refreshed(t, n))
			}
			for _, n := range tc.laterPasses {
				e.passes(t, "later token of "+a.describe(n), a.refreshed(t, n))
			}
			if tc.more != nil {
				tc.more(t, e, a)
			}
		})
	}
}

// token returns the token of a field of a by its name.
func (a *seed001Alice) token(name string) string {
	return map[string]string{"cur": a.cur, "seen": a.seen, "unseen": a.unseen, "bobSeen": a.bobSeen, "bobOnly": a.bobOnly}[name]
}

// describe says what the token of that name is, in a failure message.
func (a *seed001Alice) describe(name string) string {
	return map[string]string{
		"cur":     "the caller's session",
		"seen":    "alice's session seen by the proxy",
		"unseen":  "alice's session never seen, with auth_time",
		"bobSeen": "bob's session of the same id as a seen one",
		"bobOnly": "bob's other session",
	}[name]
}

// A session that only another replica has seen is revoked by name, so
// that its later tokens are stopped everywhere.
func TestSeed001_204_AllStopsSessionsSeenByAnotherReplica(t *testing.T) {
	t.Parallel()
	srv := startSeedEnv(t, "")
	b := StartCaddy(t, withLeeway(seedConfig(srv.Redis.URL(), srv.Up, "")))
	b.WaitReady()
	tablet := seedSess(t, "alice", "tablet")
	ExpectStatus(t, "the tablet, through replica B only", Get(t, b.URL+"/", tablet), http.StatusOK)
	srv.waitSeen(t, "alice", "tablet")

	expectSeedNoContent(t, "target=all at replica A", srv.revokeSessions(t, seedSess(t, "alice", "laptop"), "target=all"))
	later := seedSessLater(t, "alice", "tablet")
	srv.blocked(t, "a later token of the tablet session at A", later)
	Eventually(t, "replica B blocks the later tablet token", func() bool {
		return Get(t, b.URL+"/", later).Status == http.StatusUnauthorized
	})
	ExpectStatus(t, "a new login at B", Get(t, b.URL+"/", seedSessLater(t, "alice", "new")), http.StatusOK)
}

func TestSeed001_400_BadRequest(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	cur, other := seedSess(t, "alice", "cur"), seedSess(t, "alice", "other")
	e.passes(t, "before", other)
	e.waitSeen(t, "alice", "other")
	for _, q := range []string{
		"",
		"target=",
		"target=everything",
		"target=ALL",
		"target=all&target=mine",
		"target=all&target=all",
		"target=session",
		"target=session&session_id=",
		"target=session&session_id=other&session_id=cur",
		"session_id=other",
		"target=%zz",
		"target=all;x=1",
		"target=session&session_id=%FF",
		"target=session&session_id=" + strings.Repeat("s", 1025),
	} {
		expectSeedJSON(t, "query "+q, e.revokeSessions(t, cur, q), http.StatusBadRequest, seed001BadRequest)
		e.passes(t, "query "+q+": the caller", cur)
		e.passes(t, "query "+q+": the caller's other session", other)
	}
	// others from a token without a session: there is no current session
	// to keep, so the request cannot be honoured as asked.
	lone := testtoken.HS256(t, jwt.MapClaims{"sub": "alice", "sid": nil})
	expectSeedJSON(t, "others without a current session", e.revokeSessions(t, lone, "target=others"), http.StatusBadRequest, seed001BadRequest)
	e.passes(t, "the sessionless token", lone)
	e.passes(t, "the other session", other)
	// A body is not part of the request: it changes nothing.
	r := Do(t, http.MethodPost, e.C.URL+"/v1/session/me/revoke?target=mine", `{"target":"all"}`, "Authorization", "Bearer "+lone, "Content-Type", "application/json")
	expectSeedNoContent(t, "a body, ignored", r)
	e.blocked(t, "mine, despite the body", lone)
	e.passes(t, "the other session, despite the body", other)
}

func TestSeed001_401_Unauthorized(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	victim := seedSess(t, "alice", "cur")
	e.passes(t, "before", victim)
	e.waitSeen(t, "alice", "cur")
	check := func(name string, r Response, challenge string) {
		t.Helper()
		expectSeedJSON(t, name, r, http.StatusUnauthorized, seed001Unauthorized)
		if got := r.Header.Get("WWW-Authenticate"); got != challenge {
			t.Fatalf("%s: WWW-Authenticate %q, want %q", name, got, challenge)
		}
		e.passes(t, name+": alice's session", victim)
	}
	check("no Authorization header", e.revokeSessions(t, "", "target=all"), "Bearer")
	check("missing token, bad query too", e.revokeSessions(t, "", "target=nonsense"), "Bearer")
	for _, c := range seedBadBearers(t, "alice", "cur") {
		check(c.name, Do(t, http.MethodPost, e.C.URL+"/v1/session/me/revoke?target=all", "", "Authorization", c.header), "Bearer")
	}
	check("two Authorization headers", Do(t, http.MethodPost, e.C.URL+"/v1/session/me/revoke?target=all", "",
		"Authorization", "Bearer "+victim, "Authorization", "Bearer "+victim), "Bearer")
	for _, c := range seedInvalidBearers(t, "alice", "cur") {
		check(c.name, e.revokeSessions(t, c.token, "target=all"), `Bearer error="invalid_token"`)
	}
	// Revoked: its own session, its jti, the whole subject.
	mine := seedSess(t, "carol", "s1")
	expectSeedNoContent(t, "carol logs out", e.revokeSessions(t, mine, "target=mine"))
	check("token of a revoked session", e.revokeSessions(t, mine, "target=all"), `Bearer error="invalid_token"`)
	check("later token of a revoked session", e.revokeSessions(t, seedSess(t, "carol", "s1"), "target=all"), `Bearer error="invalid_token"`)
	withJTI := testtoken.HS256(t, jwt.MapClaims{"sub": "dave", "sid": "d1", "jti": "jti-dave"})
	if st, body := e.C.AdminDo("POST", "/revocation/revoke", `{"jti":"jti-dave"}`); st != http.StatusOK {
		t.Fatalf("admin revoke jti: %d %s", st, body)
	}
	check("token with a revoked jti", e.revokeSessions(t, withJTI, "target=all"), `Bearer error="invalid_token"`)
	erin := seedSess(t, "erin", "e1")
	expectSeedNoContent(t, "erin revokes all", e.revokeSessions(t, seedSess(t, "erin", "e2"), "target=all"))
	check("token issued before a subject revocation", e.revokeSessions(t, erin, "target=others"), `Bearer error="invalid_token"`)
}

func TestSeed001_500_StoreDown(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	cur, other := seedSess(t, "alice", "cur"), seedSess(t, "alice", "other")
	e.passes(t, "before", other)
	e.waitSeen(t, "alice", "other")
	e.Redis.Stop()
	for _, q := range []string{"target=all", "target=others", "target=mine", "target=session&session_id=other"} {
		expectSeedJSON(t, q, e.revokeSessions(t, cur, q), http.StatusInternalServerError, seed001Internal)
	}
	// Nothing was half applied.
	e.passes(t, "the caller", cur)
	e.passes(t, "the caller's other session", other)
	e.passes(t, "a later token of the other session", seedSess(t, "alice", "other"))
}

func TestSeed001_EndpointsOptionAndPath(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "endpoints {\n\t\t\trevoke_sessions /me/sessions/revoke\n\t\t\tlogout\n\t\t}")
	cur := seedSess(t, "alice", "cur")
	r := Do(t, http.MethodPost, e.C.URL+"/v1/session/me/revoke?target=mine", "", "Authorization", "Bearer "+cur)
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `"upstream":"reached"`) {
		t.Fatalf("default path with a custom one set: %d %s; want the upstream's answer", r.Status, r.Body)
	}
	e.passes(t, "nothing revoked by the default path", cur)
	expectSeedNoContent(t, "custom path", Do(t, http.MethodPost, e.C.URL+"/me/sessions/revoke?target=mine", "", "Authorization", "Bearer "+cur))
	e.blocked(t, "after the custom path", cur)

	e2 := startSeedEnv(t, "endpoints invalidate_session logout")
	cur = seedSess(t, "alice", "cur")
	r = e2.revokeSessions(t, cur, "target=mine")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `"upstream":"reached"`) {
		t.Fatalf("revoke_sessions not listed: %d %s; want the upstream's answer", r.Status, r.Body)
	}
	e2.passes(t, "nothing revoked", cur)
}
