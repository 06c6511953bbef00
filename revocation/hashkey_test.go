package revocation

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
)

func mustHasher(t *testing.T, secret string) *Hasher {
	t.Helper()
	h, err := NewHasher([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A keyed hash cannot be recomputed from a name without the key: every
// identity's key differs from its unkeyed form and between two keys,
// while it keeps its kind; token keys are never keyed.
func TestHasherKeysIdentities(t *testing.T) {
	h1 := mustHasher(t, "first-key-0123456789abcdef")
	h2 := mustHasher(t, "second-key-0123456789abcdef")
	var unkeyed *Hasher
	cases := []struct {
		name string
		of   func(h *Hasher) Key
		kind Kind
		old  Key
	}{
		{"jti", func(h *Hasher) Key { return h.JTI("j-1") }, KindJTI, JTIKey("j-1")},
		{"session", func(h *Hasher) Key { return h.Session("alice", "s-1") }, KindSession, SessionKey("alice", "s-1")},
		{"issuer session", func(h *Hasher) Key { return h.IssuerSession("https://idp", "s-1") }, KindSession, IssuerSessionKey("https://idp", "s-1")},
		{"subject", func(h *Hasher) Key { return h.Subject("alice") }, KindSubject, SubjectKey("alice")},
	}
	for _, c := range cases {
		k1, k2 := c.of(h1), c.of(h2)
		if got := c.of(unkeyed); got != c.old {
			t.Errorf("%s: the nil Hasher derives %s, the unkeyed key is %s", c.name, got, c.old)
		}
		if k1 == c.old || k2 == c.old || k1 == k2 {
			t.Errorf("%s: keyed %s / %s, unkeyed %s: want three different keys", c.name, k1, k2, c.old)
		}
		if k1.Kind() != c.kind || k2.Kind() != c.kind {
			t.Errorf("%s: kinds %v, %v: want %v", c.name, k1.Kind(), k2.Kind(), c.kind)
		}
		if c.of(h1) != k1 {
			t.Errorf("%s: not deterministic", c.name)
		}
	}
	claims := &Claims{Subject: "alice", Session: "s-1", JTI: "j-1"}
	tok := HashToken("opaque-token")
	if a, b := h1.Identity(claims, tok).Token, claims.Identity(tok).Token; a != b {
		t.Errorf("token key keyed: %s, unkeyed %s: want the same", a, b)
	}
	if h1.Fingerprint() == h2.Fingerprint() || len(h1.Fingerprint()) != 16 || unkeyed.Fingerprint() != "" {
		t.Errorf("fingerprints %q %q %q", h1.Fingerprint(), h2.Fingerprint(), unkeyed.Fingerprint())
	}
	if strings.Contains(h1.Fingerprint(), "first") {
		t.Errorf("fingerprint shows the key")
	}
	if _, err := NewHasher([]byte("short")); err == nil {
		t.Errorf("a 5-byte key was accepted")
	}
}

// Replicas on one Redis must share the key: the first keyed replica
// records its fingerprint, one with another key or none refuses to load
// or commit, one with the same key runs.
func TestRedisHashKeyMismatchRefused(t *testing.T) {
	srv := testredis.Start(t)
	h1 := mustHasher(t, "first-key-0123456789abcdef")
	a := openRedis(t, srv.Addr(), RedisOptions{Hasher: h1})
	waitFor(t, "keyed store loaded", func() bool { return a.Health().Loaded })
	if h1.ChecksUnkeyed() {
		t.Errorf("a key set on an empty store checks unkeyed entries")
	}
	if _, err := NewRevoker(a, h1).RevokeSubject(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name string
		h    *Hasher
	}{
		{"another key", mustHasher(t, "second-key-0123456789abcdef")},
		{"no key", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := openRedis(t, srv.Addr(), RedisOptions{Hasher: c.h, Deferred: true})
			err := b.CheckHashKey(context.Background())
			if !errors.Is(err, ErrHashKeyMismatch) || !strings.Contains(err.Error(), h1.Fingerprint()) {
				t.Fatalf("check: %v: want ErrHashKeyMismatch naming fingerprint %s", err, h1.Fingerprint())
			}
			b.Start()
			if _, err := NewRevoker(b, c.h).RevokeJTI(context.Background(), "j-1", 0); !errors.Is(err, ErrHashKeyMismatch) {
				t.Errorf("commit: %v: want ErrHashKeyMismatch", err)
			}
			time.Sleep(200 * time.Millisecond)
			if h := b.Health(); h.Loaded || !strings.Contains(h.LastError, "hash_key") {
				t.Errorf("health %+v: want not loaded, with the reason", h)
			}
		})
	}

	c := openRedis(t, srv.Addr(), RedisOptions{Hasher: mustHasher(t, "first-key-0123456789abcdef")})
	waitFor(t, "same key loaded", func() bool { return c.Health().Loaded })
	id := Identity{Subject: h1.Subject("alice"), Issued: MillisOf(time.Now().Add(-time.Minute))}
	if got := c.Denylist().Check(&id, nowSec()); got != BlockedSubject {
		t.Errorf("a replica with the same key: %v, want blocked", got)
	}
}

// NewRevoker is a Revoker on a store with a Hasher, for these tests.
func NewRevoker(s Store, h *Hasher) *Revoker {
	return &Revoker{Store: s, Hasher: h, SessionTTL: time.Hour}
}

// The migration: entries an unkeyed replica wrote keep blocking at a
// keyed one (an "others" revocation still sparing its session) until the
// window after the key's first use ends; entries a keyed replica writes
// cannot be found by recomputing a name's unkeyed key.
func TestUnkeyedEntriesBlockDuringWindow(t *testing.T) {
	srv := testredis.Start(t)
	ctx := context.Background()
	old := openRedis(t, srv.Addr(), RedisOptions{})
	waitFor(t, "unkeyed store loaded", func() bool { return old.Health().Loaded })
	ro := NewRevoker(old, nil)
	for _, err := range []error{
		func() error { _, err := ro.RevokeJTI(ctx, "j-old", 0); return err }(),
		func() error { _, err := ro.RevokeSession(ctx, "carol", "s-1"); return err }(),
		func() error { _, err := ro.RevokeSubject(ctx, "bob"); return err }(),
		func() error {
			_, err := old.Commit(ctx, Change{Subject: &SubjectCut{Subject: SubjectKey("dave"), Keep: SessionKey("dave", "s-keep"), TTL: time.Hour}})
			return err
		}(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	before := time.Now().Add(-time.Minute).UnixMilli()

	h := mustHasher(t, "migrate-key-0123456789abcdef")
	clock := time.Now()
	h.now = func() time.Time { return clock }
	h.SetUnkeyedWindow(2 * time.Hour)
	nw := openRedis(t, srv.Addr(), RedisOptions{Hasher: h})
	waitFor(t, "keyed store loaded", func() bool { return nw.Health().Loaded })
	if !h.ChecksUnkeyed() {
		t.Fatalf("a key set over unkeyed entries does not check them")
	}
	if until := h.UnkeyedUntil(); until.Before(clock.Add(2*time.Hour-time.Minute)) || until.After(clock.Add(2*time.Hour+time.Minute)) {
		t.Errorf("unkeyed until %v: want about two hours from now", until)
	}
	check := func(c *Claims) Reason {
		id := h.Identity(c, HashToken("t-"+c.Subject+c.Session+c.JTI))
		return nw.Denylist().Check(&id, nowSec())
	}
	cases := []struct {
		claims Claims
		want   Reason
	}{
		{Claims{Subject: "erin", JTI: "j-old", IssuedAt: UnixMillis(before)}, BlockedJTI},
		{Claims{Subject: "carol", Session: "s-1", IssuedAt: UnixMillis(before)}, BlockedSession},
		{Claims{Subject: "bob", IssuedAt: UnixMillis(before)}, BlockedSubject},
		{Claims{Subject: "dave", Session: "s-keep", IssuedAt: UnixMillis(before)}, NotBlocked},
		{Claims{Subject: "dave", Session: "s-other", IssuedAt: UnixMillis(before)}, BlockedSubject},
		{Claims{Subject: "erin", Session: "s-1", JTI: "j-new", IssuedAt: UnixMillis(before)}, NotBlocked},
	}
	for _, c := range cases {
		if got := check(&c.claims); got != c.want {
			t.Errorf("%+v during the window: %v, want %v", c.claims, got, c.want)
		}
	}

	// A keyed revocation: found under the keyed subject only.
	if _, err := NewRevoker(nw, h).RevokeSubject(ctx, "frank"); err != nil {
		t.Fatal(err)
	}
	if got := check(&Claims{Subject: "frank", IssuedAt: UnixMillis(before)}); got != BlockedSubject {
		t.Errorf("keyed subject revocation: %v", got)
	}
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	base := KeyBase("revocation:")
	if n, _ := rc.Exists(ctx, base+"u:"+SubjectKey("frank").String()).Result(); n != 0 {
		t.Errorf("the unkeyed key of a subject revoked under a key is in Redis")
	}
	if n, _ := rc.Exists(ctx, base+"u:"+h.Subject("frank").String()).Result(); n != 1 {
		t.Errorf("the keyed subject entry is not in Redis")
	}

	// A session an unkeyed replica noted, idle since: a subject revoked
	// at the keyed replica revokes it by name too, so that a token minted
	// for it after the revocation is stopped.
	old.NoteSession(SubjectKey("ivy"), SessionKey("ivy", "s-idle"), time.Hour)
	waitFor(t, "the unkeyed note", func() bool { return sessionsNoted(t, old, SubjectKey("ivy")) == 1 })
	res, err := NewRevoker(nw, h).RevokeSubject(ctx, "ivy")
	if err != nil {
		t.Fatal(err)
	}
	named := false
	for _, e := range res.Entries {
		named = named || e.Key == SessionKey("ivy", "s-idle")
	}
	if !named {
		t.Errorf("the keyed subject revocation did not revoke the session noted unkeyed: %v", res.Entries)
	}
	if got := check(&Claims{Subject: "ivy", Session: "s-idle", IssuedAt: res.Time + 60_000}); got != BlockedSession {
		t.Errorf("a token minted later for the session noted unkeyed: %v, want session", got)
	}

	// Past the window, unkeyed entries are no longer looked for.
	clock = clock.Add(2*time.Hour + time.Second)
	if h.ChecksUnkeyed() {
		t.Fatalf("unkeyed entries still checked past the window")
	}
	if got := check(&Claims{Subject: "erin", JTI: "j-old", IssuedAt: UnixMillis(before)}); got != NotBlocked {
		t.Errorf("an unkeyed jti past the window: %v, want no longer looked for", got)
	}
}

// The identities of a token seen for the first time (a token seen before
// keeps them): unkeyed, keyed, and keyed while unkeyed entries are
// checked too, side by side.
func BenchmarkIdentityDerive(b *testing.B) {
	claims := &Claims{Subject: "alice@example.com", Session: "9f8e7d6c5b4a", JTI: "0c1d2e3f-4a5b-6c7d-8e9f", Issuer: "https://idp.example.com"}
	tok := HashToken("opaque-token")
	keyed, err := NewHasher([]byte("bench-key-0123456789abcdef"))
	if err != nil {
		b.Fatal(err)
	}
	keyed.setSince(0)
	migrating, _ := NewHasher([]byte("bench-key-0123456789abcdef"))
	for _, c := range []struct {
		name string
		h    *Hasher
	}{{"unkeyed", nil}, {"keyed", keyed}, {"keyed+unkeyed", migrating}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = c.h.Identity(claims, tok)
			}
		})
	}
}
