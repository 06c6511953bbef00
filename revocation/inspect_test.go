package revocation

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

func TestInspectorRemembersUntilExpiry(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	clock := time.Unix(1_800_000_000, 0)
	now := func() time.Time { return clock }
	v, err := NewVerifier(VerifierConfig{HMACSecret: secret, Leeway: 10 * time.Second, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	store := NewMemoryStore(MemoryOptions{Now: now, SweepEvery: -1})
	defer store.Close()
	in := NewInspector(InspectorConfig{Verifier: v, Store: store, SessionTTL: time.Hour, Now: now})
	tok := testtoken.Sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{
		"sub": "alice", "sid": "s1", "iat": clock.Unix(), "exp": clock.Add(time.Minute).Unix(),
	})
	ctx := context.Background()

	first := in.Inspect(ctx, tok)
	if !first.Verified || first.ID.Session != SessionKey("alice", "s1") {
		t.Fatalf("first sight: %+v", first)
	}
	if in.Inspect(ctx, tok) != first {
		t.Fatal("a token seen before was parsed again")
	}
	if n := sessionsNoted(t, store, SubjectKey("alice")); n != 1 {
		t.Fatalf("%d sessions noted, want 1", n)
	}
	clock = clock.Add(65 * time.Second) // past exp, within leeway
	if got := in.Inspect(ctx, tok); got != first {
		t.Fatal("forgotten within the leeway")
	}
	clock = clock.Add(10 * time.Second) // past exp + leeway
	later := in.Inspect(ctx, tok)
	if later == first || later.Verified {
		t.Fatalf("expired token still cached as verified: %+v", later)
	}
	if later.ID.Session != first.ID.Session {
		t.Fatal("an expired token's claims no longer count for blocking")
	}
	if in.Inspect(ctx, tok) != later {
		t.Fatal("an expired token was decoded and verified again on its next request")
	}
	clock = clock.Add(unverifiedFor * time.Second)
	if again := in.Inspect(ctx, tok); again == later || again.Verified {
		t.Fatalf("an expired token remembered past %ds, or verified: %+v", unverifiedFor, again)
	}
}

func TestInspectorForgedTokenStillBlocksByClaims(t *testing.T) {
	v, _ := NewVerifier(VerifierConfig{HMACSecret: []byte("0123456789abcdef0123456789abcdef")})
	store := NewMemoryStore(MemoryOptions{SweepEvery: -1})
	defer store.Close()
	in := NewInspector(InspectorConfig{Verifier: v, Store: store, SessionTTL: time.Hour})
	forged := testtoken.HS256With(t, "another-secret-another-secret-00", jwt.MapClaims{"sub": "alice", "sid": "s1", "iat": time.Now().Unix()})
	commit(t, store, Change{Puts: []Put{{Key: SessionKey("alice", "s1"), TTL: time.Hour}}})
	info := in.Inspect(context.Background(), forged)
	if info.Verified {
		t.Fatal("forged token verified")
	}
	if store.Denylist().Check(&info.ID, time.Now().Unix()) != BlockedSession {
		t.Fatal("claims of an unverifiable token are not used for blocking")
	}
	if sessionsNoted(t, store, SubjectKey("alice")) != 0 {
		t.Fatal("an unverified token's session was noted")
	}
}

func TestInspectorCacheIsBounded(t *testing.T) {
	store := NewMemoryStore(MemoryOptions{SweepEvery: -1})
	defer store.Close()
	in := NewInspector(InspectorConfig{Store: store, CacheSize: 640})
	for i := 0; i < 10000; i++ {
		raw := "opaque-token-" + string(rune('a'+i%26)) + time.Duration(i).String()
		in.Inspect(context.Background(), raw)
		if in.Cached(raw, time.Now().Unix()) == nil {
			t.Fatalf("token %d is not remembered right after it was read", i)
		}
	}
	if n := in.CacheLen(); n > 640 {
		t.Fatalf("cache holds %d tokens, bound is 640", n)
	}
}

// TestInspectorCheckSeesEveryRevocation: Check answers a token found
// clean from the cache's table alone only while the denylist has not
// changed since. Each kind of revocation of a token already found clean
// (twice, so from the table) is seen by the next Check, and so is the
// verdict of a token re-learned in place of an expired copy.
func TestInspectorCheckSeesEveryRevocation(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	v, err := NewVerifier(VerifierConfig{HMACSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	store := NewMemoryStore(MemoryOptions{SweepEvery: -1})
	defer store.Close()
	in := NewInspector(InspectorConfig{Verifier: v, Store: store, SessionTTL: time.Hour})
	r := &Revoker{Store: store, SessionTTL: time.Hour}
	ctx := context.Background()
	now := time.Now().Unix()
	mint := func(jti string) string {
		return testtoken.Sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{
			"sub": "u-" + jti, "sid": "s-" + jti, "jti": jti, "iat": now - 60, "exp": now + 3600,
		})
	}
	cleanTwice := func(tok string) *TokenInfo {
		t.Helper()
		var first *TokenInfo
		for range 2 {
			info, reason, verified := in.Check(ctx, store.Denylist(), tok, now, true)
			if reason != NotBlocked || !verified || !info.Verified {
				t.Fatalf("a fresh token: reason %v, verified %v", reason, verified)
			}
			if first != nil && info != first {
				t.Fatal("a token met before was learned again")
			}
			first = info
		}
		return first
	}
	for _, c := range []struct {
		name   string
		revoke func(tok string) error
		want   Reason
	}{
		{"token", func(tok string) error { _, err := r.RevokeToken(ctx, tok); return err }, BlockedToken},
		{"jti", func(string) error { _, err := r.RevokeJTI(ctx, "jti-jti", 0); return err }, BlockedJTI},
		{"session", func(string) error { _, err := r.RevokeSession(ctx, "u-jti-session", "s-jti-session"); return err }, BlockedSession},
		// By the subject's cut, or by the session it noted: either blocks.
		{"subject", func(string) error { _, err := r.RevokeSubject(ctx, "u-jti-subject"); return err }, NotBlocked},
	} {
		tok := mint("jti-" + c.name)
		cleanTwice(tok)
		if err := c.revoke(tok); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for range 2 {
			if _, reason, _ := in.Check(ctx, store.Denylist(), tok, now, true); reason == NotBlocked || c.want != NotBlocked && reason != c.want {
				t.Fatalf("revoked by %s: Check says %v, want %v", c.name, reason, c.want)
			}
		}
		// CheckInfo, on the info the table holds, agrees.
		if reason := store.Denylist().CheckInfo(in.Cached(tok, now), now); reason == NotBlocked || c.want != NotBlocked && reason != c.want {
			t.Fatalf("revoked by %s: CheckInfo says %v", c.name, reason)
		}
	}

	// An unverified copy (first met where only blocking mattered) is
	// replaced by a verified one when verification is asked, and the
	// table's copy of Verified follows.
	tok := mint("later")
	if _, _, verified := in.Check(ctx, store.Denylist(), tok, now, false); verified {
		t.Fatal("verified without being asked to")
	}
	if _, _, verified := in.Check(ctx, store.Denylist(), tok, now, true); !verified {
		t.Fatal("not verified when asked")
	}
	if _, _, verified := in.Check(ctx, store.Denylist(), tok, now, true); !verified {
		t.Fatal("the table's copy lost Verified")
	}
}
