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
			res := commit(t, s, Change{Subject: &SubjectCut{Subject: subj, TTL: time.Hour, At: UnixMillis(at)}})
			dl := s.Denylist()
			before := Identity{Subject: subj, Issued: UnixMillis(at)}
			after := Identity{Subject: subj, Issued: UnixMillis(at + 1000)}
			if got := dl.Check(&before, nowSec()); got != BlockedSubject {
				t.Fatalf("token issued at the event: %v, want subject", got)
			}
			if got := dl.Check(&after, nowSec()); got != NotBlocked {
				t.Fatalf("token issued after the event: %v, want none", got)
			}
			// Replayed: the same cutoff.
			commit(t, s, Change{Subject: &SubjectCut{Subject: subj, TTL: time.Hour, At: UnixMillis(at)}})
			if got := dl.Check(&after, nowSec()); got != NotBlocked {
				t.Fatalf("a replayed event moved the cutoff: %v", got)
			}
			// A time in the future is the store's clock.
			future := Identity{Subject: SubjectKey("bob"), Issued: MillisOf(time.Now().Add(time.Hour))}
			res = commit(t, s, Change{Subject: &SubjectCut{Subject: SubjectKey("bob"), TTL: time.Hour, At: future.Issued}})
			if res.Entries[0].Cutoff > MillisOf(time.Now()) {
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

func TestLogoutTokenClaims(t *testing.T) {
	ev := map[string]any{BackchannelLogoutEvent: map[string]any{}}
	base := func(changes map[string]any) map[string]any {
		c := map[string]any{"iss": "https://idp", "sub": "alice", "sid": "s1", "jti": "j1", "iat": float64(1700000000), "events": ev}
		for k, v := range changes {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	got, jti, err := LogoutToken(base(nil))
	if err != nil || jti != "j1" || got != (ProviderEvent{Issuer: "https://idp", Subject: "alice", Session: "s1", At: 1700000000000}) {
		t.Fatalf("valid token: %+v %q %v", got, jti, err)
	}
	for name, c := range map[string]map[string]any{
		"no events":           {"events": nil},
		"events not object":   {"events": "x"},
		"other event":         {"events": map[string]any{"x": map[string]any{}}},
		"event not an object": {"events": map[string]any{BackchannelLogoutEvent: true}},
		"nonce":               {"nonce": "n"},
		"neither sub nor sid": {"sub": nil, "sid": nil},
		"empty sid":           {"sub": nil, "sid": ""},
		"sub not a string":    {"sub": 1.0},
		"no jti":              {"jti": nil},
	} {
		if _, _, err := LogoutToken(base(c)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSecurityEventSubjects(t *testing.T) {
	iss := "https://ssf"
	set := func(typ string, payload map[string]any, extra map[string]any) map[string]any {
		c := map[string]any{"iss": iss, "jti": "j", "iat": float64(1700000000), "events": map[string]any{typ: payload}}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	issSub := map[string]any{"format": "iss_sub", "iss": "https://idp", "sub": "alice"}
	cases := []struct {
		name string
		mc   map[string]any
		want []ProviderEvent
	}{
		{"session-revoked, user", set(CAEPSessionRevoked, map[string]any{"subject": issSub, "event_timestamp": float64(1600000000)}, nil),
			[]ProviderEvent{{Issuer: "https://idp", Subject: "alice", At: 1600000000000}}},
		{"session-revoked, complex", set(CAEPSessionRevoked, map[string]any{"subject": map[string]any{"format": "complex", "user": issSub, "session": map[string]any{"format": "opaque", "id": "s9"}}}, nil),
			[]ProviderEvent{{Issuer: "https://idp", Subject: "alice", Session: "s9"}}},
		{"session-revoked, session only", set(CAEPSessionRevoked, map[string]any{"subject": map[string]any{"format": "complex", "session": map[string]any{"format": "opaque", "id": "s9"}}}, nil),
			[]ProviderEvent{{Issuer: iss, Session: "s9"}}},
		{"credential-change ends every session", set(CAEPCredentialChange, map[string]any{"subject": map[string]any{"format": "complex", "user": issSub, "session": map[string]any{"format": "opaque", "id": "s9"}}}, nil),
			[]ProviderEvent{{Issuer: "https://idp", Subject: "alice", At: 1700000000000}}},
		{"sessions-revoked, sub_id opaque", set(RISCSessionsRevoked, map[string]any{}, map[string]any{"sub_id": map[string]any{"format": "opaque", "id": "u7"}}),
			[]ProviderEvent{{Issuer: iss, Subject: "u7", At: 1700000000000}}},
		{"unknown event ignored", set("https://example.com/event", map[string]any{}, nil), nil},
	}
	for _, c := range cases {
		got, _, err := SecurityEvent(c.mc)
		if err != nil || len(got) != len(c.want) || (len(got) == 1 && got[0] != c.want[0]) {
			t.Errorf("%s: %+v %v, want %+v", c.name, got, err, c.want)
		}
	}
	for name, mc := range map[string]map[string]any{
		"no subject":         set(CAEPSessionRevoked, map[string]any{}, nil),
		"email subject":      set(CAEPSessionRevoked, map[string]any{"subject": map[string]any{"format": "email", "email": "a@b"}}, nil),
		"bad timestamp":      set(RISCSessionsRevoked, map[string]any{"subject": issSub, "event_timestamp": "yesterday"}, nil),
		"session not opaque": set(CAEPSessionRevoked, map[string]any{"subject": map[string]any{"format": "complex", "session": map[string]any{"format": "iss_sub", "id": "s"}}}, nil),
		"event not object":   {"jti": "j", "events": map[string]any{CAEPSessionRevoked: "x"}},
		"no jti":             {"events": map[string]any{"x": map[string]any{}}},
	} {
		if _, _, err := SecurityEvent(mc); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
