package revocation

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
)

func TestGlobalEntryRoundTrip(t *testing.T) {
	e := Entry{Key: GlobalKey(), Expires: 1800000000, Cutoff: 1799999999123}
	back, err := ParseRecord(e.Record())
	if err != nil || back != e {
		t.Fatalf("round trip of %s: %+v, %v", e.Record(), back, err)
	}
	if GlobalKey().Kind() != KindGlobal || !KindGlobal.Valid() {
		t.Fatal("global key does not carry its kind")
	}
	bad := GlobalKey().String() + "=1800000000:1:" + SessionKey("a", "b").String() + ":0"
	if _, err := ParseRecord(bad); err == nil {
		t.Fatalf("a global entry keeping a session was accepted: %s", bad)
	}
}

// The global cutoff blocks every subject's tokens issued at or before it,
// and nothing issued after it.
func TestStoreGlobalCutoff(t *testing.T) {
	for _, sk := range stores() {
		t.Run(sk.name, func(t *testing.T) {
			s := sk.open(t)
			rv := &Revoker{Store: s, SessionTTL: time.Hour}
			res, err := rv.RevokeAll(context.Background(), time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			cut := res.Time
			if d := time.Since(time.UnixMilli(int64(cut))); d < -time.Second || d > 5*time.Second {
				t.Fatalf("cutoff %v is not about now", time.UnixMilli(int64(cut)))
			}
			if len(res.Entries) != 1 || res.Entries[0].Kind() != KindGlobal || res.Entries[0].Cutoff != cut {
				t.Fatalf("entries written: %+v", res.Entries)
			}
			dl := s.Denylist()
			cases := []struct {
				name string
				id   Identity
				want Reason
			}{
				{"alice, issued before", Identity{Subject: SubjectKey("alice"), Issued: cut - 3600_000}, BlockedGlobal},
				{"bob, issued at the cutoff", Identity{Subject: SubjectKey("bob"), Session: SessionKey("bob", "s"), Issued: cut}, BlockedGlobal},
				{"issue time unknown", Identity{Subject: SubjectKey("carol")}, BlockedGlobal},
				{"issued after", Identity{Subject: SubjectKey("alice"), Issued: cut + 1}, NotBlocked},
				{"opaque token: no subject, no issue time", Identity{Token: TokenKey("opaque")}, NotBlocked},
			}
			for _, c := range cases {
				if got := dl.Check(&c.id, nowSec()); got != c.want {
					t.Errorf("%s: got %v, want %v", c.name, got, c.want)
				}
			}
			if dl.Len(KindGlobal) != 1 {
				t.Fatalf("global entries: %d, want 1", dl.Len(KindGlobal))
			}

			// An earlier cutoff given later never moves it back; a later
			// one moves it forward. Still one entry.
			if _, err := rv.RevokeAll(context.Background(), time.UnixMilli(int64(cut-60_000))); err != nil {
				t.Fatal(err)
			}
			if g, ok := dl.Lookup(GlobalKey(), nowSec()); !ok || g.Cutoff != cut {
				t.Fatalf("earlier cutoff moved it: %+v %v, want cutoff %d", g, ok, cut)
			}
			later := time.UnixMilli(int64(cut + 5000))
			if _, err := rv.RevokeAll(context.Background(), later); err != nil {
				t.Fatal(err)
			}
			id := Identity{Subject: SubjectKey("alice"), Issued: cut + 4000}
			if got := dl.Check(&id, nowSec()); got != BlockedGlobal {
				t.Fatalf("later cutoff not applied: %v", got)
			}
			if dl.Len(KindGlobal) != 1 {
				t.Fatalf("global entries: %d, want 1", dl.Len(KindGlobal))
			}
			if n := dl.Sweep(nowSec() + 2*3600); n < 1 || dl.Len(KindGlobal) != 0 {
				t.Fatalf("sweep after the TTL left the cutoff: removed %d, global %d", n, dl.Len(KindGlobal))
			}
		})
	}
}

// One replica's global cutoff reaches the others through the feed, and a
// replica started later loads it.
func TestRedisGlobalCutoffShared(t *testing.T) {
	srv := testredis.Start(t)
	a := openRedis(t, srv.Addr(), RedisOptions{})
	b := openRedis(t, srv.Addr(), RedisOptions{})
	rv := &Revoker{Store: a, SessionTTL: time.Hour}
	res, err := rv.RevokeAll(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	old := Identity{Subject: SubjectKey("zoe"), Issued: res.Time - 1}
	waitFor(t, "the other replica to apply the cutoff", func() bool {
		return b.Denylist().Check(&old, nowSec()) == BlockedGlobal
	})
	c := openRedis(t, srv.Addr(), RedisOptions{})
	if got := c.Denylist().Check(&old, nowSec()); got != BlockedGlobal {
		t.Fatalf("late replica after its initial load: %v", got)
	}
	if g, ok := c.Denylist().Lookup(GlobalKey(), nowSec()); !ok || g.Cutoff != res.Time {
		t.Fatalf("loaded cutoff %+v, want %d", g, res.Time)
	}
}

func TestStoreBulk(t *testing.T) {
	for _, sk := range stores() {
		t.Run(sk.name, func(t *testing.T) {
			s := sk.open(t)
			rv := &Revoker{Store: s, SessionTTL: time.Hour}
			var orders []Order
			for i := range 25 {
				orders = append(orders,
					Order{Subject: fmt.Sprintf("user-%d", i)},
					Order{Subject: "alice", Session: fmt.Sprintf("s-%d", i)},
					Order{JTI: fmt.Sprintf("jti-%d", i), Expires: UnixSeconds(nowSec() + 600)},
					Order{Token: fmt.Sprintf("opaque-%d", i)},
				)
			}
			orders = append(orders, Order{Subject: "user-3"}) // twice in one batch
			res, err := rv.RevokeBulk(context.Background(), orders, 7)
			if err != nil {
				t.Fatal(err)
			}
			if res.Applied != len(orders) || res.Entries != len(orders) {
				t.Fatalf("applied %d orders, %d entries; want %d each", res.Applied, res.Entries, len(orders))
			}
			if res.Kinds[KindSubject] != 26 || res.Kinds[KindSession] != 25 || res.Kinds[KindJTI] != 25 || res.Kinds[KindToken] != 25 {
				t.Fatalf("entries by kind: %v", res.Kinds)
			}
			dl := s.Denylist()
			now := time.Now().UnixMilli()
			for i := range 25 {
				checks := []struct {
					id   Identity
					want Reason
				}{
					{Identity{Subject: SubjectKey(fmt.Sprintf("user-%d", i)), Issued: UnixMillis(now - 1000)}, BlockedSubject},
					{Identity{Subject: SubjectKey("alice"), Session: SessionKey("alice", fmt.Sprintf("s-%d", i)), Issued: UnixMillis(now + 60_000)}, BlockedSession},
					{Identity{JTI: JTIKey(fmt.Sprintf("jti-%d", i))}, BlockedJTI},
					{Identity{Token: TokenKey(fmt.Sprintf("opaque-%d", i))}, BlockedToken},
				}
				for _, c := range checks {
					if got := dl.Check(&c.id, nowSec()); got != c.want {
						t.Fatalf("order %d: got %v, want %v", i, got, c.want)
					}
				}
			}
			if n := dl.Len(KindSubject); n != 25 {
				t.Fatalf("subject entries: %d, want 25", n)
			}
		})
	}
}

// A bad order anywhere applies nothing at all.
func TestBulkBadOrderAppliesNothing(t *testing.T) {
	for _, sk := range stores() {
		t.Run(sk.name, func(t *testing.T) {
			s := sk.open(t)
			rv := &Revoker{Store: s, SessionTTL: time.Hour}
			bad := [][]Order{
				{{Subject: "a"}, {}},
				{{Subject: "a"}, {Subject: "a", JTI: "j"}},
				{{JTI: "j"}, {Subject: "a", Expires: UnixSeconds(nowSec() + 60)}},
				{{JTI: "j", Expires: -5}},
				{{Session: "s-without-subject"}},
			}
			for i, orders := range bad {
				res, err := rv.RevokeBulk(context.Background(), orders, 1)
				if !errors.Is(err, ErrBadRequest) || res.Applied != 0 {
					t.Errorf("case %d: applied %d, err %v; want a bad request and nothing applied", i, res.Applied, err)
				}
			}
			if n := s.Denylist().Total(); n != 0 {
				t.Fatalf("bad bulk requests left %d entries", n)
			}
		})
	}
}

// failingStore is a real store whose commits start failing after a
// number of them, as a Redis that goes away in the middle of a bulk
// revocation.
type failingStore struct {
	Store
	ok int
}

func (f *failingStore) Commit(ctx context.Context, c Change) (Result, error) {
	if f.ok <= 0 {
		return Result{}, fmt.Errorf("commit: %w: connection refused", ErrUnavailable)
	}
	f.ok--
	return f.Store.Commit(ctx, c)
}

// A store that fails midway reports how many orders, from the first, are
// applied: exactly the batches committed before the failure.
func TestBulkStopsAtBatchBoundary(t *testing.T) {
	mem := NewMemoryStore(MemoryOptions{SweepEvery: -1})
	t.Cleanup(func() { mem.Close() })
	rv := &Revoker{Store: &failingStore{Store: mem, ok: 2}, SessionTTL: time.Hour}
	orders := make([]Order, 10)
	for i := range orders {
		orders[i] = Order{JTI: fmt.Sprintf("j-%d", i)}
	}
	res, err := rv.RevokeBulk(context.Background(), orders, 3)
	if !errors.Is(err, ErrUnavailable) || res.Applied != 6 || res.Entries != 6 {
		t.Fatalf("applied %d orders (%d entries), err %v; want 6 and ErrUnavailable", res.Applied, res.Entries, err)
	}
	for i, o := range orders {
		id := Identity{JTI: JTIKey(o.JTI)}
		if blocked := mem.Denylist().Check(&id, nowSec()) == BlockedJTI; blocked != (i < 6) {
			t.Errorf("order %d: blocked %v", i, blocked)
		}
	}
}
