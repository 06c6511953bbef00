package revocation

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

var revokeSecret = []byte("revoke-test-secret-0123456789abcdef")

// newRevoker returns a Revoker over s that verifies HS256 tokens signed
// with revokeSecret.
func newRevoker(t *testing.T, s Store) *Revoker {
	t.Helper()
	v, err := NewVerifier(VerifierConfig{HMACSecret: revokeSecret})
	if err != nil {
		t.Fatal(err)
	}
	return &Revoker{Store: s, Verifier: v, SessionTTL: time.Hour}
}

// revokeTokens mints the HS256 tokens of the revoker's tests: sub alice,
// sid s1, a unique jti, issued now, valid an hour, signed with
// revokeSecret.
var revokeTokens = testtoken.Minter{Secret: string(revokeSecret), Defaults: func() jwt.MapClaims {
	return testtoken.With(testtoken.Claims(), jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()})
}}

// caller authenticates a freshly minted token.
func caller(t *testing.T, rv *Revoker, claims jwt.MapClaims) *Credential {
	t.Helper()
	c, err := rv.Authenticate(context.Background(), revokeTokens.Mint(t, claims))
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	return c
}

// later is a verified credential of sub/sid issued after the revocation
// res recorded: a token minted after the call, as a refresh would.
func later(sub, sid string, res Result) *Credential {
	return &Credential{
		Hash:     HashToken("later-" + sub + "-" + sid),
		Claims:   &Claims{Subject: sub, Session: sid, IssuedAt: res.Time + 1000},
		Verified: true,
	}
}

func TestAuthenticate(t *testing.T) {
	for _, sk := range stores() {
		t.Run(sk.name, func(t *testing.T) {
			s := sk.open(t)
			rv := newRevoker(t, s)
			ctx := context.Background()

			raw := revokeTokens.Mint(t, jwt.MapClaims{"sid": "laptop"})
			c, err := rv.Authenticate(ctx, raw)
			if err != nil {
				t.Fatalf("valid token: %v", err)
			}
			if !c.Verified || c.Claims.Subject != "alice" || c.Claims.Session != "laptop" || c.Hash != HashToken(raw) {
				t.Fatalf("credential %+v, claims %+v", c, c.Claims)
			}
			// The caller's session is noted as seen, for a later "all".
			waitFor(t, "the caller's session noted", func() bool { return sessionsNoted(t, s, SubjectKey("alice")) == 1 })

			for name, tok := range map[string]string{
				"no subject":    revokeTokens.Mint(t, jwt.MapClaims{"sub": nil}),
				"empty subject": revokeTokens.Mint(t, jwt.MapClaims{"sub": ""}),
				"bad signature": testtoken.Sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdefgh"), baseClaims(), nil),
				"expired":       revokeTokens.Mint(t, jwt.MapClaims{"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()}),
				"alg none":      testtoken.Unsigned(t, baseClaims()),
				"not a JWT":     "opaque-token",
			} {
				c, err := rv.Authenticate(ctx, tok)
				if !errors.Is(err, ErrInvalidToken) || c != nil {
					t.Errorf("%s: %v, %v; want ErrInvalidToken and no credential", name, c, err)
				}
			}
			if _, err := rv.Authenticate(ctx, revokeTokens.Mint(t, jwt.MapClaims{"sub": nil})); !errors.Is(err, ErrNoSubject) {
				t.Errorf("no subject: %v, want ErrNoSubject", err)
			}

			commit(t, s, Change{Puts: []Put{{Key: TokenKey(raw), TTL: time.Hour}}})
			c, err = rv.Authenticate(ctx, raw)
			var rev *RevokedError
			if !errors.As(err, &rev) || rev.Reason != BlockedToken || !errors.Is(err, ErrRevoked) {
				t.Fatalf("revoked token: %v, want a RevokedError for the token", err)
			}
			if c == nil || c.Claims.Session != "laptop" {
				t.Fatal("a revoked caller's credential is not returned")
			}

			noVerifier := &Revoker{Store: s, SessionTTL: time.Hour}
			if _, err := noVerifier.Authenticate(ctx, revokeTokens.Mint(t, nil)); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("without a verifier: %v, want ErrInvalidToken", err)
			}
		})
	}
}

func TestExamineRefresh(t *testing.T) {
	rv := newRevoker(t, NewMemoryStore(MemoryOptions{SweepEvery: -1}))
	ctx := context.Background()

	c, err := rv.ExamineRefresh(ctx, "opaque-refresh-token")
	if err != nil || c.Claims != nil || c.Verified || c.Hash != HashToken("opaque-refresh-token") {
		t.Fatalf("opaque: %+v, %v", c, err)
	}
	raw := revokeTokens.Mint(t, jwt.MapClaims{"sid": "r1", "cnf": map[string]any{"jkt": "thumb"}})
	c, err = rv.ExamineRefresh(ctx, raw)
	if err != nil || !c.Verified || c.Claims.Session != "r1" || c.Claims.Confirmation != "thumb" {
		t.Fatalf("verified JWT: %+v, %v", c, err)
	}
	for name, tok := range map[string]string{
		"bad signature": testtoken.Sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdefgh"), baseClaims(), nil),
		"expired":       revokeTokens.Mint(t, jwt.MapClaims{"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()}),
		"alg none":      testtoken.Unsigned(t, baseClaims()),
		"three garbage": "a.b.c",
	} {
		if c, err := rv.ExamineRefresh(ctx, tok); !errors.Is(err, ErrInvalidToken) || c != nil {
			t.Errorf("%s: %v, %v; want ErrInvalidToken", name, c, err)
		}
	}
}

func TestExamine(t *testing.T) {
	rv := newRevoker(t, NewMemoryStore(MemoryOptions{SweepEvery: -1}))
	ctx := context.Background()
	if c := rv.Examine(ctx, "opaque"); c.Claims != nil || c.Verified {
		t.Fatalf("opaque: %+v", c)
	}
	if c := rv.Examine(ctx, revokeTokens.Mint(t, jwt.MapClaims{"sid": "r2"})); !c.Verified || c.Claims.Session != "r2" {
		t.Fatalf("verifiable: %+v", c)
	}
	forged := testtoken.Sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdefgh"), jwt.MapClaims{"sub": "bob", "sid": "b1"}, nil)
	c := rv.Examine(ctx, forged)
	if c.Verified || c.Claims == nil || c.Claims.Subject != "bob" {
		t.Fatalf("unverifiable JWT: %+v, want decoded, unverified claims", c)
	}
	if c := rv.Examine(ctx, "a.b.c"); c.Claims != nil || c.Verified {
		t.Fatalf("three parts of garbage: %+v", c)
	}
}

func TestTokenPutExpiry(t *testing.T) {
	clock := time.Unix(1_800_000_000, 0)
	rv := &Revoker{SessionTTL: time.Hour, Now: func() time.Time { return clock }}
	in := func(d time.Duration) int64 { return clock.Add(d).UnixMilli() }
	cases := []struct {
		name        string
		cred        *Credential
		wantExpires UnixSeconds
	}{
		{"opaque", &Credential{}, 0},
		{"verified, with exp", &Credential{Claims: &Claims{ExpiresAt: UnixMillis(in(15 * time.Minute))}, Verified: true}, UnixSeconds(clock.Add(15 * time.Minute).Unix())},
		{"verified, far exp", &Credential{Claims: &Claims{ExpiresAt: UnixMillis(in(1000 * time.Hour))}, Verified: true}, UnixSeconds(clock.Add(1000 * time.Hour).Unix())},
		{"verified, exp in ms rounds up", &Credential{Claims: &Claims{ExpiresAt: UnixMillis(in(time.Minute) + 1)}, Verified: true}, UnixSeconds(clock.Add(time.Minute).Unix() + 1)},
		{"verified, no exp", &Credential{Claims: &Claims{}, Verified: true}, 0},
		{"unverified, near exp", &Credential{Claims: &Claims{ExpiresAt: UnixMillis(in(10 * time.Minute))}}, UnixSeconds(clock.Add(10 * time.Minute).Unix())},
		// The claim of an unverified token is not believed past the TTL.
		{"unverified, far exp", &Credential{Claims: &Claims{ExpiresAt: UnixMillis(in(1000 * time.Hour))}}, 0},
	}
	for _, c := range cases {
		p := rv.tokenPut(c.cred)
		if p.Expires != c.wantExpires || p.TTL != time.Hour {
			t.Errorf("%s: Expires %d TTL %v; want Expires %d (0: the TTL applies), TTL 1h", c.name, p.Expires, p.TTL, c.wantExpires)
		}
	}
}

func TestRevokeRefresh(t *testing.T) {
	for _, sk := range stores() {
		t.Run(sk.name, func(t *testing.T) {
			s := sk.open(t)
			rv := newRevoker(t, s)
			ctx := context.Background()

			raw := revokeTokens.Mint(t, jwt.MapClaims{"sid": "r1", "jti": "refresh-jti-1"})
			refresh, err := rv.ExamineRefresh(ctx, raw)
			if err != nil {
				t.Fatal(err)
			}
			sibling := caller(t, rv, jwt.MapClaims{"sid": "r1"})
			other := caller(t, rv, jwt.MapClaims{"sid": "r2"})
			bob := caller(t, rv, jwt.MapClaims{"sub": "bob", "sid": "r1"})

			res, err := rv.RevokeRefresh(ctx, refresh)
			if err != nil {
				t.Fatal(err)
			}
			if got := entryKinds(res); got != "token jti session" {
				t.Fatalf("wrote %q, want the token, its jti and its session", got)
			}
			if r := rv.Revoked(refresh); r != BlockedToken {
				t.Errorf("the refresh token: %v", r)
			}
			// Another encoding of the same signed token is the same token.
			reencoded := &Credential{Hash: HashToken(raw + "x"), Claims: &Claims{Subject: "alice", JTI: "refresh-jti-1"}, Verified: true}
			if r := rv.Revoked(reencoded); r != BlockedToken {
				t.Errorf("same token, signature encoded otherwise: %v", r)
			}
			// And a token of the same jti, whatever its bytes, is stopped too.
			sameJTI := &Credential{Hash: HashToken("other-bytes"), Claims: &Claims{Subject: "alice", JTI: "refresh-jti-1"}, Verified: true}
			if r := rv.Revoked(sameJTI); r != BlockedJTI {
				t.Errorf("same jti, other token: %v", r)
			}
			if r := rv.Revoked(sibling); r != BlockedSession {
				t.Errorf("access token of the refresh token's session: %v", r)
			}
			if r := rv.Revoked(later("alice", "r1", res)); r != BlockedSession {
				t.Errorf("later token of the session: %v", r)
			}
			if r := rv.Revoked(other); r != NotBlocked {
				t.Errorf("another session of the same user: %v", r)
			}
			if r := rv.Revoked(bob); r != NotBlocked {
				t.Errorf("bob's session of the same id: %v", r)
			}

			opaque, _ := rv.ExamineRefresh(ctx, "opaque-refresh")
			res, err = rv.RevokeRefresh(ctx, opaque)
			if err != nil {
				t.Fatal(err)
			}
			if got := entryKinds(res); got != "token" {
				t.Fatalf("opaque refresh token wrote %q, want only the token", got)
			}
			if r := rv.Revoked(opaque); r != BlockedToken {
				t.Errorf("opaque refresh token: %v", r)
			}
		})
	}
}

// entryKinds lists the kinds of the entries a change wrote, in order.
func entryKinds(res Result) string {
	out := ""
	for i, e := range res.Entries {
		if i > 0 {
			out += " "
		}
		out += e.Kind().String()
	}
	return out
}

func TestRevokeSessionsTargets(t *testing.T) {
	type probe struct {
		name string
		cred func(cur *Credential, res Result, fix *fixture) *Credential
	}
	// The cases check the same probes: the caller's token, a later token
	// of the caller's session, old and later tokens of a seen and an
	// unseen other session, bob's session of the same id, and a new login.
	probes := []probe{
		{"current token", func(cur *Credential, _ Result, _ *fixture) *Credential { return cur }},
		{"later token, current session", func(_ *Credential, res Result, _ *fixture) *Credential { return later("alice", "cur", res) }},
		{"old token, seen session", func(_ *Credential, _ Result, f *fixture) *Credential { return f.seen }},
		{"later token, seen session", func(_ *Credential, res Result, _ *fixture) *Credential { return later("alice", "seen", res) }},
		{"old token, unseen session", func(_ *Credential, _ Result, f *fixture) *Credential { return f.unseen }},
		{"later token, unseen session, old auth_time", func(_ *Credential, res Result, _ *fixture) *Credential {
			c := later("alice", "unseen", res)
			c.Claims.AuthTime = res.Time - 1000
			return c
		}},
		{"bob, same session id", func(_ *Credential, _ Result, f *fixture) *Credential { return f.bob }},
		{"bob, his other session", func(_ *Credential, _ Result, f *fixture) *Credential { return f.bobOnly }},
		{"new login", func(_ *Credential, res Result, _ *fixture) *Credential { return later("alice", "new", res) }},
	}
	B, P := true, false // blocked, passes
	cases := []struct {
		target  Target
		session string
		want    []bool // per probe
	}{
		{TargetAll, "", []bool{B, B, B, B, B, B, P, P, P}},
		{TargetOthers, "", []bool{P, P, B, B, B, B, P, P, P}},
		{TargetMine, "", []bool{B, B, P, P, P, P, P, P, P}},
		{TargetSession, "seen", []bool{P, P, B, B, P, P, P, P, P}},
		{TargetSession, "cur", []bool{B, B, P, P, P, P, P, P, P}},
		// Naming bob's session revokes nothing of bob's: alice has no
		// session of that name, so it is unknown and nothing is stored.
		{TargetSession, "bob-only", []bool{P, P, P, P, P, P, P, P, P}},
		{TargetSession, "unseen", []bool{P, P, P, P, P, P, P, P, P}},
	}
	for _, sk := range stores() {
		t.Run(sk.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(string(c.target)+"/"+c.session, func(t *testing.T) {
					f := newFixture(t, sk)
					res, err := f.rv.RevokeSessions(context.Background(), f.cur, c.target, c.session)
					if c.session == "bob-only" || c.session == "unseen" {
						if !errors.Is(err, ErrUnknownSession) {
							t.Fatalf("a session nobody has seen: %v", err)
						}
						if n := f.s.Denylist().Total(); n != 0 {
							t.Fatalf("%d entries stored for an unknown session", n)
						}
					} else if err != nil {
						t.Fatal(err)
					}
					for i, p := range probes {
						got := f.rv.Revoked(p.cred(f.cur, res, f)) != NotBlocked
						if got != c.want[i] {
							t.Errorf("%s: blocked %v, want %v", p.name, got, c.want[i])
						}
					}
				})
			}
		})
	}
}

// fixture is alice calling from session "cur", with a session "seen" the
// proxy has noted, a session "unseen" it has not, and bob, who also has a
// session "seen" and one called "bob-only".
type fixture struct {
	s                 Store
	rv                *Revoker
	cur, seen, unseen *Credential
	bob, bobOnly      *Credential
}

func newFixture(t *testing.T, sk storeKind) *fixture {
	t.Helper()
	s := sk.open(t)
	f := &fixture{s: s, rv: newRevoker(t, s)}
	f.seen = caller(t, f.rv, jwt.MapClaims{"sid": "seen"})
	f.unseen = &Credential{Hash: HashToken("unseen"), Claims: &Claims{Subject: "alice", Session: "unseen", IssuedAt: MillisOf(time.Now().Add(-time.Minute))}, Verified: true}
	f.bob = caller(t, f.rv, jwt.MapClaims{"sub": "bob", "sid": "seen"})
	f.bobOnly = caller(t, f.rv, jwt.MapClaims{"sub": "bob", "sid": "bob-only"})
	f.cur = caller(t, f.rv, jwt.MapClaims{"sid": "cur"})
	waitFor(t, "sessions noted", func() bool { return sessionsNoted(t, s, SubjectKey("alice")) == 2 })
	return f
}

func TestRevokeSessionsBadRequests(t *testing.T) {
	s := NewMemoryStore(MemoryOptions{SweepEvery: -1})
	defer s.Close()
	rv := newRevoker(t, s)
	ctx := context.Background()
	cur := caller(t, rv, nil)
	sessionless := caller(t, rv, jwt.MapClaims{"sid": nil})
	cases := []struct {
		name    string
		caller  *Credential
		target  Target
		session string
		want    error
	}{
		{"others without a current session", sessionless, TargetOthers, "", ErrBadRequest},
		{"session without session_id", cur, TargetSession, "", ErrBadRequest},
		{"unknown target", cur, Target("everything"), "", ErrBadRequest},
		{"empty target", cur, Target(""), "", ErrBadRequest},
		{"unverified caller", &Credential{Claims: &Claims{Subject: "alice"}}, TargetAll, "", ErrInvalidToken},
		{"caller without claims", &Credential{}, TargetAll, "", ErrInvalidToken},
		{"caller without subject", &Credential{Claims: &Claims{Session: "s1"}, Verified: true}, TargetAll, "", ErrNoSubject},
	}
	for _, c := range cases {
		if _, err := rv.RevokeSessions(ctx, c.caller, c.target, c.session); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if n := s.Denylist().Total(); n != 0 {
		t.Fatalf("refused requests wrote %d entries", n)
	}
	// Without a session claim, "mine" is the token itself.
	res, err := rv.RevokeSessions(ctx, sessionless, TargetMine, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := entryKinds(res); got != "token jti" {
		t.Fatalf("mine without a session wrote %q, want the token and its jti", got)
	}
}

func TestInvalidateSession(t *testing.T) {
	for _, sk := range stores() {
		t.Run(sk.name, func(t *testing.T) {
			s := sk.open(t)
			rv := newRevoker(t, s)
			ctx := context.Background()
			cur := caller(t, rv, jwt.MapClaims{"sid": "cur"})
			phone := caller(t, rv, jwt.MapClaims{"sid": "phone"})
			bobPhone := caller(t, rv, jwt.MapClaims{"sub": "bob", "sid": "phone"})

			inv, err := rv.InvalidateSession(ctx, cur, "phone")
			sid, res := inv.SessionID, inv.Result
			if err != nil || sid != "phone" || inv.AlreadyRevoked {
				t.Fatalf("named session: %q %+v %v", sid, res, err)
			}
			if r := rv.Revoked(phone); r != BlockedSession {
				t.Errorf("the named session: %v", r)
			}
			if r := rv.Revoked(cur); r != NotBlocked {
				t.Errorf("the caller's own session: %v", r)
			}
			if r := rv.Revoked(bobPhone); r != NotBlocked {
				t.Errorf("bob's session of the same id: %v", r)
			}
			inv, err = rv.InvalidateSession(ctx, cur, "phone")
			res = inv.Result
			if err != nil || !inv.AlreadyRevoked {
				t.Fatalf("named session again: %+v %v; want it reported as already revoked", res, err)
			}

			curRaw := revokeTokens.Mint(t, jwt.MapClaims{"sid": "cur"})
			cur, err = rv.Authenticate(ctx, curRaw)
			if err != nil {
				t.Fatal(err)
			}
			inv, err = rv.InvalidateSession(ctx, cur, "")
			sid, res = inv.SessionID, inv.Result
			if err != nil || sid != "cur" || inv.AlreadyRevoked {
				t.Fatalf("current session: %q %+v %v", sid, res, err)
			}
			// The caller's token is revoked with its session; calling
			// again, it is told that its session is gone.
			var rev *RevokedError
			if _, err := rv.Authenticate(ctx, curRaw); !errors.As(err, &rev) || rev.Reason != BlockedSession {
				t.Errorf("the invalidated session's token: %v, want refused for its session", err)
			}
			if r := rv.Revoked(cur); r == NotBlocked {
				t.Error("the current session still passes")
			}
			if r := rv.Revoked(later("alice", "cur", res)); r != BlockedSession {
				t.Errorf("later token of the current session: %v", r)
			}

			// A token without a session is its own session.
			lone := caller(t, rv, jwt.MapClaims{"sid": nil})
			inv, err = rv.InvalidateSession(ctx, lone, "")
			sid, res = inv.SessionID, inv.Result
			if err != nil || sid != "" || entryKinds(res) != "token jti" {
				t.Fatalf("sessionless token: %q %q %v", sid, entryKinds(res), err)
			}
			if r := rv.Revoked(lone); r != BlockedToken {
				t.Errorf("sessionless token: %v", r)
			}
		})
	}
}

func TestLogout(t *testing.T) {
	for _, sk := range stores() {
		t.Run(sk.name, func(t *testing.T) {
			s := sk.open(t)
			rv := newRevoker(t, s)
			ctx := context.Background()
			cur := caller(t, rv, jwt.MapClaims{"sid": "cur", "jti": "access-jti"})
			refreshRaw := revokeTokens.Mint(t, jwt.MapClaims{"sid": "web", "jti": "refresh-jti"})
			web := caller(t, rv, jwt.MapClaims{"sid": "web"})
			tv := caller(t, rv, jwt.MapClaims{"sid": "tv"})
			bobRaw := revokeTokens.Mint(t, jwt.MapClaims{"sub": "bob", "sid": "bob-1"})
			bobOther := caller(t, rv, jwt.MapClaims{"sub": "bob", "sid": "bob-1"})
			forged := testtoken.Sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdefgh"), jwt.MapClaims{"sub": "alice", "sid": "tv", "exp": time.Now().Add(time.Hour).Unix()}, nil)

			res, err := rv.Logout(ctx, cur, rv.Examine(ctx, refreshRaw))
			if err != nil {
				t.Fatal(err)
			}
			if got := entryKinds(res); got != "token jti session token jti session" {
				t.Fatalf("wrote %q", got)
			}
			if r := rv.Revoked(cur); r != BlockedToken {
				t.Errorf("access token: %v", r)
			}
			if r := rv.Revoked(&Credential{Hash: HashToken("other-bytes"), Claims: &Claims{Subject: "alice", JTI: "access-jti"}, Verified: true}); r != BlockedJTI {
				t.Errorf("access token's jti: %v", r)
			}
			if r := rv.Revoked(later("alice", "cur", res)); r != BlockedSession {
				t.Errorf("later token of the caller's session: %v", r)
			}
			if r := rv.Revoked(rv.Examine(ctx, refreshRaw)); r != BlockedToken {
				t.Errorf("refresh token: %v", r)
			}
			if r := rv.Revoked(web); r != BlockedSession {
				t.Errorf("the refresh token's own session (same subject): %v", r)
			}
			if r := rv.Revoked(tv); r != NotBlocked {
				t.Errorf("another session: %v", r)
			}

			// Someone else's refresh token: that token goes, not its session.
			other := caller(t, rv, jwt.MapClaims{"sid": "other"})
			if _, err := rv.Logout(ctx, other, rv.Examine(ctx, bobRaw)); err != nil {
				t.Fatal(err)
			}
			if r := rv.Revoked(rv.Examine(ctx, bobRaw)); r != BlockedToken {
				t.Errorf("bob's refresh token handed in: %v", r)
			}
			if r := rv.Revoked(bobOther); r != NotBlocked {
				t.Errorf("bob's session: %v", r)
			}
			// An unverifiable token claiming one of the caller's sessions
			// revokes only itself.
			again := caller(t, rv, jwt.MapClaims{"sid": "again"})
			if _, err := rv.Logout(ctx, again, rv.Examine(ctx, forged)); err != nil {
				t.Fatal(err)
			}
			if r := rv.Revoked(tv); r != NotBlocked {
				t.Errorf("session named by a forged refresh token: %v", r)
			}
			// An already revoked refresh token is no error.
			third := caller(t, rv, jwt.MapClaims{"sid": "third"})
			if _, err := rv.Logout(ctx, third, rv.Examine(ctx, refreshRaw)); err != nil {
				t.Fatalf("already revoked refresh token: %v", err)
			}
			// Without a refresh token: the access token and its session.
			fourth := caller(t, rv, jwt.MapClaims{"sid": "fourth"})
			res, err = rv.Logout(ctx, fourth, nil)
			if err != nil || entryKinds(res) != "token jti session" {
				t.Fatalf("logout without refresh token: %q %v", entryKinds(res), err)
			}
			if _, err := rv.Logout(ctx, &Credential{Claims: &Claims{}, Verified: true}, nil); !errors.Is(err, ErrNoSubject) {
				t.Fatalf("caller without a subject: %v", err)
			}
		})
	}
}

// A revocation that cannot reach Redis fails as a whole: nothing of it is
// in the local copy, and the caller's tokens still pass.
func TestRevokerStoreDownAppliesNothing(t *testing.T) {
	srv := testredis.Start(t)
	s := openRedis(t, srv.Addr(), RedisOptions{})
	rv := newRevoker(t, s)
	cur := caller(t, rv, jwt.MapClaims{"sid": "cur"})
	refresh := rv.Examine(context.Background(), revokeTokens.Mint(t, jwt.MapClaims{"sid": "web"}))
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	ops := map[string]func() error{
		"all":        func() error { _, err := rv.RevokeSessions(ctx, cur, TargetAll, ""); return err },
		"others":     func() error { _, err := rv.RevokeSessions(ctx, cur, TargetOthers, ""); return err },
		"session":    func() error { _, err := rv.InvalidateSession(ctx, cur, ""); return err },
		"logout":     func() error { _, err := rv.Logout(ctx, cur, refresh); return err },
		"refresh":    func() error { _, err := rv.RevokeRefresh(ctx, refresh); return err },
		"subject":    func() error { _, err := rv.RevokeSubject(ctx, "alice"); return err },
		"admin sess": func() error { _, err := rv.RevokeSession(ctx, "alice", "cur"); return err },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s with redis down: %v, want ErrUnavailable", name, err)
		}
	}
	if n := s.Denylist().Total(); n != 0 {
		t.Fatalf("failed revocations left %d entries in the local copy", n)
	}
	if r := rv.Revoked(cur); r != NotBlocked {
		t.Fatalf("caller blocked after failed revocations: %v", r)
	}
}

func TestOperatorRevocationsRefuseEmptyNames(t *testing.T) {
	s := NewMemoryStore(MemoryOptions{SweepEvery: -1})
	defer s.Close()
	rv := &Revoker{Store: s, SessionTTL: time.Hour}
	ctx := context.Background()
	for name, err := range map[string]error{
		"subject": func() error { _, err := rv.RevokeSubject(ctx, ""); return err }(),
		"session": func() error { _, err := rv.RevokeSession(ctx, "alice", ""); return err }(),
		"jti":     func() error { _, err := rv.RevokeJTI(ctx, "", 0); return err }(),
		"token":   func() error { _, err := rv.RevokeToken(ctx, ""); return err }(),
	} {
		if !errors.Is(err, ErrBadRequest) {
			t.Errorf("empty %s: %v, want ErrBadRequest", name, err)
		}
	}
	if s.Denylist().Total() != 0 {
		t.Fatal("refused operator revocations wrote entries")
	}
}

// A refresh token handed to logout that does not verify is revoked only
// when it names the caller: a stranger's header and payload with any
// signature would otherwise revoke the stranger's token, whose key
// ignores the signature.
func TestLogoutRevokesOnlyRefreshTokensTheCallerHolds(t *testing.T) {
	for _, sk := range stores() {
		t.Run(sk.name, func(t *testing.T) {
			s := sk.open(t)
			rv := &Revoker{Store: s, SessionTTL: time.Hour}
			ctx := context.Background()
			caller := &Credential{Hash: HashToken("caller"), Claims: &Claims{Subject: "mallory", Session: "m1"}, Verified: true}
			victim := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.real-signature"
			forged := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.garbage"
			if _, err := rv.Logout(ctx, caller, rv.Examine(ctx, forged)); err != nil {
				t.Fatal(err)
			}
			if r := rv.Revoked(rv.Examine(ctx, victim)); r != NotBlocked {
				t.Fatalf("another subject's token revoked through an unverifiable copy: %v", r)
			}
			own := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.sig"
			if _, err := rv.Logout(ctx, caller, rv.Examine(ctx, own)); err != nil {
				t.Fatal(err)
			}
			if r := rv.Revoked(rv.Examine(ctx, own)); r != BlockedToken {
				t.Fatalf("the caller's own unverifiable refresh token: %v", r)
			}
			opaque := "opaque-refresh-token"
			if _, err := rv.Logout(ctx, caller, rv.Examine(ctx, opaque)); err != nil {
				t.Fatal(err)
			}
			if r := rv.Revoked(rv.Examine(ctx, opaque)); r != BlockedToken {
				t.Fatalf("an opaque refresh token in the caller's hands: %v", r)
			}
		})
	}
}

// An app's logout seen at the proxy: each presented credential in one
// change; a verified one with its jti and session, an unverified or
// opaque one as its exact string only; duplicates written once.
func TestRevokePresented(t *testing.T) {
	for _, sk := range stores() {
		t.Run(sk.name, func(t *testing.T) {
			s := sk.open(t)
			rv := newRevoker(t, s)
			ctx := context.Background()

			if res, err := rv.RevokePresented(ctx, nil); err != nil || len(res.Entries) != 0 {
				t.Fatalf("nothing presented: %v, %v", res, err)
			}
			raw := revokeTokens.Mint(t, jwt.MapClaims{"sid": "p1", "jti": "presented-jti"})
			bearer := rv.Examine(ctx, raw)
			victim := revokeTokens.Mint(t, jwt.MapClaims{"sub": "victim", "sid": "v1"})
			forged := rv.Examine(ctx, victim[:strings.LastIndexByte(victim, '.')]+".Zm9yZ2Vk")
			opaque := rv.Examine(ctx, "JSESSIONID-value")
			sibling := caller(t, rv, jwt.MapClaims{"sid": "p1"})
			victimCred := caller(t, rv, jwt.MapClaims{"sub": "victim", "sid": "v1"})

			res, err := rv.RevokePresented(ctx, []*Credential{bearer, forged, opaque, bearer})
			if err != nil {
				t.Fatal(err)
			}
			if got := entryKinds(res); got != "token jti session token token" {
				t.Fatalf("wrote %q", got)
			}
			for name, c := range map[string]*Credential{"bearer": bearer, "forged": forged, "opaque": opaque} {
				if r := rv.Revoked(c); r == NotBlocked {
					t.Errorf("%s not revoked", name)
				}
			}
			if r := rv.Revoked(sibling); r != BlockedSession {
				t.Errorf("another token of the bearer's session: %v", r)
			}
			if r := rv.Revoked(victimCred); r != NotBlocked {
				t.Errorf("a forgery revoked the victim's token: %v", r)
			}
		})
	}
}
