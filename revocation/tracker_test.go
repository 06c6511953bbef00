package revocation

import (
	"fmt"
	"sync"
	"testing"
)

// trackedUse is one registered use and what ended it.
type trackedUse struct {
	t      *Tracked
	mu     sync.Mutex
	reason Reason
	idx    int
	ends   int
}

func (u *trackedUse) ended() (Reason, int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.reason, u.ends
}

// streamID is the identity of a token of subject sub, session sid,
// issuer iss, jti jti, issued at ms.
func streamID(tok, sub, sid, iss, jti string, issued int64) Identity {
	return Identity{
		Token:         TokenKey(tok),
		JTI:           JTIKey(jti),
		Session:       SessionKey(sub, sid),
		IssuerSession: IssuerSessionKey(iss, sid),
		Subject:       SubjectKey(sub),
		Issued:        UnixMillis(issued),
	}
}

// trackAll registers each identity as a use of its own on a tracker fed
// by dl.
func trackAll(dl *Denylist, ids ...Identity) (*Tracker, []*trackedUse) {
	tr := NewTracker()
	dl.SetApplied(func(es []Entry) { tr.Applied(dl, es, 1000) })
	uses := make([]*trackedUse, len(ids))
	for i, id := range ids {
		u := &trackedUse{}
		u.t = tr.Add([]Identity{id}, func(r Reason, idx int) {
			u.mu.Lock()
			u.reason, u.idx = r, idx
			u.ends++
			u.mu.Unlock()
		})
		uses[i] = u
	}
	return tr, uses
}

func TestTrackerEndsExactlyTheUsesARevocationBlocks(t *testing.T) {
	const exp = 1 << 30
	cases := []struct {
		name  string
		entry Entry
		// want is, per use (alice s1 at 100, alice s2 at 200, bob s1 at
		// 100, alice s1 at 300), the reason it ends with, NotBlocked for
		// none.
		want [4]Reason
	}{
		{"token", Entry{Key: TokenKey("tok-a1"), Expires: exp}, [4]Reason{BlockedToken, 0, 0, 0}},
		{"jti", Entry{Key: JTIKey("j-b"), Expires: exp}, [4]Reason{0, 0, BlockedJTI, 0}},
		{"session", Entry{Key: SessionKey("alice", "s1"), Expires: exp}, [4]Reason{BlockedSession, 0, 0, BlockedSession}},
		{"issuer session", Entry{Key: IssuerSessionKey("https://idp", "s2"), Expires: exp}, [4]Reason{0, BlockedSession, 0, 0}},
		{"subject cut", Entry{Key: SubjectKey("alice"), Expires: exp, Cutoff: 250}, [4]Reason{BlockedSubject, BlockedSubject, 0, 0}},
		{"subject cut keeping s1", Entry{Key: SubjectKey("alice"), Expires: exp, Cutoff: 400, Keep: SessionKey("alice", "s1")}, [4]Reason{0, BlockedSubject, 0, 0}},
		{"global cutoff", Entry{Key: GlobalKey(), Expires: exp, Cutoff: 150}, [4]Reason{BlockedGlobal, 0, BlockedGlobal, 0}},
		{"global cutoff before all", Entry{Key: GlobalKey(), Expires: exp, Cutoff: 50}, [4]Reason{0, 0, 0, 0}},
		{"expired entry", Entry{Key: TokenKey("tok-a1"), Expires: 999}, [4]Reason{0, 0, 0, 0}},
		{"someone else's session", Entry{Key: SessionKey("carol", "s1"), Expires: exp}, [4]Reason{0, 0, 0, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dl := NewDenylist()
			tr, uses := trackAll(dl,
				streamID("tok-a1", "alice", "s1", "https://idp", "j-a1", 100),
				streamID("tok-a2", "alice", "s2", "https://idp", "j-a2", 200),
				streamID("tok-b", "bob", "s1", "https://idp", "j-b", 100),
				streamID("tok-a3", "alice", "s1", "https://idp", "j-a3", 300),
			)
			dl.Apply(c.entry)
			for i, u := range uses {
				r, n := u.ended()
				if r != c.want[i] {
					t.Errorf("use %d ended with %v, want %v", i, r, c.want[i])
				}
				if n > 1 {
					t.Errorf("use %d ended %d times", i, n)
				}
			}
			// Applying it again ends nothing twice.
			dl.Apply(c.entry)
			for i, u := range uses {
				if _, n := u.ended(); n > 1 {
					t.Errorf("use %d ended %d times after a repeat", i, n)
				}
			}
			for _, u := range uses {
				tr.Remove(u.t)
			}
			if tr.Len() != 0 || len(tr.byKey) != 0 || len(tr.issued) != 0 {
				t.Fatalf("after removing every use: len %d, %d keys, heap %d", tr.Len(), len(tr.byKey), len(tr.issued))
			}
		})
	}
}

func TestTrackerRemovedUsesAreNotEnded(t *testing.T) {
	dl := NewDenylist()
	tr, uses := trackAll(dl,
		streamID("t1", "alice", "s1", "i", "j1", 100),
		streamID("t2", "alice", "s1", "i", "j2", 100),
		streamID("t3", "alice", "s1", "i", "j3", 100),
	)
	tr.Remove(uses[1].t)
	tr.Remove(uses[1].t) // twice: harmless
	dl.Apply(Entry{Key: SessionKey("alice", "s1"), Expires: 1 << 30})
	for i, want := range []int{1, 0, 1} {
		if _, n := uses[i].ended(); n != want {
			t.Errorf("use %d ended %d times, want %d", i, n, want)
		}
	}
}

// TestTrackerGlobalHeap checks the walk of the issue-time heap against
// the plain answer, with uses added and removed in a mixed order.
func TestTrackerGlobalHeap(t *testing.T) {
	tr := NewTracker()
	var live []*Tracked
	for i := range 500 {
		issued := int64((i * 7919) % 1000)
		id := Identity{Token: TokenKey(fmt.Sprint(i)), Subject: SubjectKey(fmt.Sprint(i % 13)), Issued: UnixMillis(issued)}
		live = append(live, tr.Add([]Identity{id}, func(Reason, int) {}))
		if i%3 == 0 {
			tr.Remove(live[i/2])
		}
	}
	for _, cutoff := range []UnixMillis{-1, 0, 1, 250, 500, 999, 5000} {
		got := 0
		tr.issuedUpTo(cutoff, func(*Tracked) { got++ })
		want := 0
		for _, x := range live {
			if !x.removed && x.issued <= cutoff {
				want++
			}
		}
		if got != want {
			t.Errorf("cutoff %d: walk found %d uses, want %d", cutoff, got, want)
		}
	}
	for i, x := range tr.issued {
		if x.heapIdx != i {
			t.Fatalf("heap index %d holds a use that says %d", i, x.heapIdx)
		}
		if i > 0 && tr.issued[(i-1)/2].issued > x.issued {
			t.Fatalf("heap order broken at %d", i)
		}
	}
}

// TestTrackerRevocationBeforeAddIsCaughtByCheck is the contract Add
// states: a revocation applied before the use registers is found by
// Check after it.
func TestTrackerRevocationBeforeAddIsCaughtByCheck(t *testing.T) {
	dl := NewDenylist()
	dl.Apply(Entry{Key: JTIKey("j1"), Expires: 1 << 30})
	tr := NewTracker()
	x := tr.Add([]Identity{{Token: TokenKey("other")}, streamID("t1", "alice", "s1", "i", "j1", 100)}, func(Reason, int) {})
	if r, i := x.Check(dl, 1000); r != BlockedJTI || i != 1 {
		t.Fatalf("Check: %v at %d, want jti at 1", r, i)
	}
}

// A load applies entries in large batches, which the tracker takes in
// chunks: an entry anywhere in a batch reaches its stream, once.
func TestTrackerLargeBatch(t *testing.T) {
	dl := NewDenylist()
	_, uses := trackAll(dl,
		streamID("t1", "alice", "s1", "i", "j1", 100),
		streamID("t2", "bob", "s2", "i", "j2", 100),
	)
	batch := make([]Entry, 0, 2000)
	for i := range 1999 {
		batch = append(batch, Entry{Key: JTIKey(fmt.Sprint("other-", i)), Expires: 1 << 30})
		if i == 1500 {
			batch = append(batch, Entry{Key: SessionKey("bob", "s2"), Expires: 1 << 30})
		}
	}
	batch = append(batch, Entry{Key: SessionKey("bob", "s2"), Expires: 1 << 30})
	dl.Apply(batch...)
	if r, n := uses[1].ended(); r != BlockedSession || n != 1 {
		t.Fatalf("bob's stream: %v, ended %d times; want session, once", r, n)
	}
	if _, n := uses[0].ended(); n != 0 {
		t.Fatal("alice's stream ended")
	}
}
