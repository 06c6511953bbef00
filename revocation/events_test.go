package revocation

import (
	"context"
	"testing"
	"time"
)

// A subject cut with an explicit time (an identity provider's event)
// takes that time as its cutoff, never a later one than the store's
// clock, and a replay of it cuts nothing new.
func TestStoreSubjectCutAt(t *testing.T) {
	for _, sk := range stores() {
		t.Run(sk.name, func(t *testing.T) {
			s := sk.open(t)
			subj := SubjectKey("alice")
			at := time.Now().Add(-time.Minute).UnixMilli()
			res := commit(t, s, Change{Subject: &SubjectCut{Subject: subj, TTL: time.Hour, At: at}})
			dl := s.Denylist()
			before := Identity{Subject: subj, Issued: at}
			after := Identity{Subject: subj, Issued: at + 1000}
			if got := dl.Check(&before, nowSec()); got != BlockedSubject {
				t.Fatalf("token issued at the event: %v, want subject", got)
			}
			if got := dl.Check(&after, nowSec()); got != NotBlocked {
				t.Fatalf("token issued after the event: %v, want none", got)
			}
			// Replayed: the same cutoff.
			commit(t, s, Change{Subject: &SubjectCut{Subject: subj, TTL: time.Hour, At: at}})
			if got := dl.Check(&after, nowSec()); got != NotBlocked {
				t.Fatalf("a replayed event moved the cutoff: %v", got)
			}
			// A time in the future is the store's clock.
			future := Identity{Subject: SubjectKey("bob"), Issued: time.Now().Add(time.Hour).UnixMilli()}
			res = commit(t, s, Change{Subject: &SubjectCut{Subject: SubjectKey("bob"), TTL: time.Hour, At: future.Issued}})
			if res.Entries[0].Cutoff > time.Now().UnixMilli() {
				t.Fatalf("cutoff %d in the future", res.Entries[0].Cutoff)
			}
			if got := dl.Check(&future, nowSec()); got != NotBlocked {
				t.Fatalf("token issued after the store's clock blocked: %v", got)
			}
		})
	}
}

// A session named by its issuer stops any token of that issuer and sid,
// whatever its subject, and nothing of another issuer.
func TestIssuerSessionKey(t *testing.T) {
	s := NewMemoryStore(MemoryOptions{})
	defer s.Close()
	r := &Revoker{Store: s, SessionTTL: time.Hour}
	if _, err := r.RevokeProviderEvents(context.Background(), []ProviderEvent{{Issuer: "https://idp", Session: "s1"}}); err != nil {
		t.Fatal(err)
	}
	dl := s.Denylist()
	for _, c := range []struct {
		claims Claims
		want   Reason
	}{
		{Claims{Issuer: "https://idp", Subject: "alice", Session: "s1"}, BlockedSession},
		{Claims{Issuer: "https://idp", Session: "s1"}, BlockedSession},
		{Claims{Issuer: "https://idp", Subject: "alice", Session: "s2"}, NotBlocked},
		{Claims{Issuer: "https://other", Subject: "alice", Session: "s1"}, NotBlocked},
		{Claims{Subject: "alice", Session: "s1"}, NotBlocked},
	} {
		id := c.claims.Identity(HashToken("t"))
		if got := dl.Check(&id, nowSec()); got != c.want {
			t.Errorf("%+v: %v, want %v", c.claims, got, c.want)
		}
	}
	if IssuerSessionKey("a", "b") == SessionKey("a", "b") || IssuerSessionKey("a", "b").Kind() != KindSession {
		t.Fatal("issuer session keys must be session entries of their own domain")
	}
}
