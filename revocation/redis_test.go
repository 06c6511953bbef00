package revocation

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
)

func TestPositionHeld(t *testing.T) {
	info := func(length, added int64, last string) *redis.XInfoStream {
		return &redis.XInfoStream{Length: length, EntriesAdded: added, LastGeneratedID: last}
	}
	cases := []struct {
		name    string
		id      string
		applied int64
		info    *redis.XInfoStream
		exists  bool
		want    bool
	}{
		{"loaded before any feed, still none", "0-0", 0, nil, false, true},
		{"loaded before any feed, all entries kept", "0-0", 0, info(5, 5, "9-0"), true, true},
		{"loaded before any feed, some trimmed", "0-0", 0, info(100, 500, "9-0"), true, false},
		{"position gone with the feed", "5-0", 3, nil, false, false},
		{"nothing added since", "5-0", 3, info(0, 3, "5-0"), true, true},
		{"entries added after a gone position", "5-0", 3, info(10, 13, "9-0"), true, false},
		{"feed recreated and grown past us", "5-0", 3, info(4, 4, "9-0"), true, false},
		{"feed recreated behind us", "5-0", 3, info(1, 1, "2-0"), true, false},
	}
	for _, c := range cases {
		if got := positionHeld(c.id, c.applied, c.info, c.exists); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

// A feed deleted and written again past the follower's position, trimmed
// meanwhile, while the follower was cut off. The follower had applied
// more entries than the new feed lost to trimming, so the counts alone
// (entries added since, against the feed's length) would say nothing is
// missing; the check that the feed still holds the follower's last entry
// says it is another feed, and a full reload brings every revocation.
func TestRedisFeedRecreatedWhileAway(t *testing.T) {
	srv := testredis.Start(t)
	proxy := testredis.NewProxy(t, srv.Addr())
	writer := openRedis(t, srv.Addr(), RedisOptions{FeedMaxLen: 60})
	follower := openRedis(t, proxy.Addr(), RedisOptions{FeedMaxLen: 60, Block: 100 * time.Millisecond})

	var before []Key
	for i := range 1000 {
		k := TokenKey(fmt.Sprintf("before-%d", i))
		before = append(before, k)
		commit(t, writer, Change{Puts: []Put{{Key: k, TTL: time.Hour}}})
	}
	waitFor(t, "follower sees the first revocations", func() bool {
		return follower.Denylist().Check(&Identity{Token: before[len(before)-1]}, nowSec()) == BlockedToken
	})
	proxy.Cut()
	waitFor(t, "follower notices the outage", func() bool { return !follower.Health().Connected })
	ctx := context.Background()
	if err := writer.client.Del(ctx, writer.feed).Err(); err != nil {
		t.Fatal(err)
	}
	var keys []Key
	for i := range 1050 {
		k := TokenKey(fmt.Sprintf("recreated-%d", i))
		keys = append(keys, k)
		commit(t, writer, Change{Puts: []Put{{Key: k, TTL: time.Hour}}})
	}
	n, err := writer.client.XLen(ctx, writer.feed).Result()
	if err != nil || n >= 1050 || n < 1050-1000 {
		t.Fatalf("feed length %d (%v): want it trimmed, yet holding the 50 entries a count would look for", n, err)
	}
	proxy.Restore()
	for _, k := range append(keys, before...) {
		waitFor(t, "every revocation of the recreated feed", func() bool {
			return follower.Denylist().Check(&Identity{Token: k}, nowSec()) == BlockedToken
		})
	}
}

// A replica that starts while Redis is down starts empty and not loaded,
// then loads everything once Redis is back (here with its data, from the
// append-only file) and follows the feed from there.
func TestRedisStartWhileDown(t *testing.T) {
	srv := testredis.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	writer := openRedis(t, srv.Addr(), RedisOptions{})
	old := TokenKey("revoked-before-the-outage")
	commit(t, writer, Change{Puts: []Put{{Key: old, TTL: time.Hour}}})
	srv.Stop()

	late := openRedis(t, srv.Addr(), RedisOptions{Block: 100 * time.Millisecond, InitialLoad: time.Second})
	if h := late.Health(); h.Loaded || h.Connected {
		t.Fatalf("store started with redis down reports %+v", h)
	}
	if st := late.Staleness(time.Now()); st < time.Hour {
		t.Fatalf("a store never loaded has staleness %v, want it unbounded", st)
	}
	srv.Resume()
	waitFor(t, "the late replica loads", func() bool { return late.Health().Loaded })
	if r := late.Denylist().Check(&Identity{Token: old}, nowSec()); r != BlockedToken {
		t.Fatalf("revocation made before the replica started: %v", r)
	}
	fresh := TokenKey("after")
	waitFor(t, "the writer commits again", func() bool {
		_, err := writer.Commit(context.Background(), Change{Puts: []Put{{Key: fresh, TTL: time.Hour}}})
		return err == nil
	})
	waitFor(t, "the late replica follows the feed", func() bool {
		return late.Denylist().Check(&Identity{Token: fresh}, nowSec()) == BlockedToken
	})
}

// The seen-session set keeps each session until its own expiry: a subject
// revocation names live sessions only, as the embedded store does, and
// expired members are dropped so the set stays small.
func TestRedisSeenSessionsExpire(t *testing.T) {
	srv := testredis.Start(t)
	s := openRedis(t, srv.Addr(), RedisOptions{})
	subj := SubjectKey("alice")
	gone, live := SessionKey("alice", "gone"), SessionKey("alice", "live")
	// A note expires by Redis's clock, whatever the replica's.
	s.NoteSession(subj, gone, time.Second)
	waitFor(t, "the short note", func() bool { return sessionsNoted(t, s, subj) == 1 })
	time.Sleep(2100 * time.Millisecond)
	s.NoteSession(subj, live, time.Hour)
	waitFor(t, "expired notes dropped as notes come", func() bool {
		n := redisNotes(t, s, subj)
		return n[live] > 0 && len(n) == 1
	})

	s.NoteSession(subj, gone, time.Second) // noted again, to expire
	waitFor(t, "the short note again", func() bool { return sessionsNoted(t, s, subj) == 2 })
	time.Sleep(2100 * time.Millisecond)
	res := commit(t, s, Change{Subject: &SubjectCut{Subject: subj, TTL: time.Hour}})
	for _, e := range res.Entries {
		if e.Key == gone {
			t.Fatal("a subject revocation named a session whose note had expired")
		}
	}
	later := Identity{Subject: subj, Session: live, Issued: res.Time + 60_000}
	if got := s.Denylist().Check(&later, nowSec()); got != BlockedSession {
		t.Fatalf("live noted session: got %v, want session", got)
	}
	alive := 0
	for _, exp := range redisNotes(t, s, subj) {
		if exp > nowSec() {
			alive++
		}
	}
	if alive != 1 {
		t.Fatalf("%d live notes after the cut, want the live one", alive)
	}
}

// The same replica code against a real three-master Cluster: one script
// call per change on the slot of {dl}, a full load that scans every
// master, and the feed followed on the right node.
func TestRedisClusterStore(t *testing.T) {
	cl := testredis.StartCluster(t, 3)
	open := func() *RedisStore {
		cfg := RedisConfig{Addrs: cl.Addrs(), Cluster: true}
		uo, err := cfg.Options(time.Second, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		s := NewRedisStore(RedisOptions{Client: redis.NewUniversalClient(uo), Logger: quiet, Block: 100 * time.Millisecond})
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	subj := SubjectKey("alice")
	a.NoteSession(subj, SessionKey("alice", "laptop"), time.Hour)
	waitFor(t, "the session note", func() bool { return sessionsNoted(t, a, subj) == 1 })
	tok := TokenKey("clustered")
	commit(t, a, Change{Puts: []Put{{Key: tok, TTL: time.Hour}}})
	res := commit(t, a, Change{Subject: &SubjectCut{Subject: subj, TTL: time.Hour}})
	if len(res.Entries) != 2 {
		t.Fatalf("subject cut wrote %d entries, want the subject and its noted session", len(res.Entries))
	}
	waitFor(t, "the other replica follows", func() bool {
		return b.Denylist().Check(&Identity{Token: tok}, nowSec()) == BlockedToken &&
			b.Denylist().Total() == 3
	})

	owner, err := cl.Owner(a.feed)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range cl.Nodes {
		out, err := n.Do("DBSIZE")
		if err != nil {
			t.Fatal(err)
		}
		if (n == owner) != (out != "0\n") {
			t.Fatalf("node %s (owner %v) holds %s keys: every key must share the slot of the feed", n.Addr(), n == owner, out)
		}
	}

	c := open()
	if got := c.Denylist().Total(); got != 3 {
		t.Fatalf("a replica started later loaded %d entries, want 3", got)
	}
	if r := c.Denylist().Check(&Identity{Token: tok}, nowSec()); r != BlockedToken {
		t.Fatalf("late replica: %v", r)
	}

	// A snapshot, on the same slot, loaded by the next replica.
	if err := c.writeSnapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	d := open()
	d.mu.Lock()
	source := d.loadSource
	d.mu.Unlock()
	if source != "snapshot" || d.Denylist().Total() != 3 {
		t.Fatalf("replica started after the snapshot: loaded %d entries from %q", d.Denylist().Total(), source)
	}
	for _, n := range cl.Nodes {
		if n == owner {
			continue
		}
		if out, err := n.Do("DBSIZE"); err != nil || out != "0\n" {
			t.Fatalf("node %s holds %q keys after the snapshot (%v)", n.Addr(), out, err)
		}
	}
}

// The session notes share small hashes that split as subjects come, so
// that each stays in Redis's compact encoding: every subject's note is
// still found (by SessionSeen and by a subject revocation), and the
// sorted sets earlier versions wrote are still read.
func TestRedisNotesSharded(t *testing.T) {
	srv := testredis.Start(t)
	s := openRedis(t, srv.Addr(), RedisOptions{})
	ctx := context.Background()
	const subjects = 5000
	sub := func(i int) (Key, Key) {
		name := "user-" + strconv.Itoa(i)
		return SubjectKey(name), SessionKey(name, "s")
	}
	for i := 0; i < subjects; i++ {
		subj, sess := sub(i)
		s.NoteSession(subj, sess, time.Hour)
		// Small batches: many script calls, so that the pruning cursor
		// goes round the shards many times while they split.
		if (i+1)%10 == 0 {
			waitFor(t, "notes written", func() bool {
				v, _ := s.client.Get(ctx, s.base+"n").Result()
				var L, p, n int
				fmt.Sscanf(v, "%d %d %d", &L, &p, &n)
				return n >= i+1
			})
		}
	}
	shards, err := s.client.Keys(ctx, s.base+"n:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	// The count that decides splits is the notes there are, however many
	// turns of the pruning cursor went by.
	total := int64(0)
	for _, k := range shards {
		n, _ := s.client.HLen(ctx, k).Result()
		total += n
	}
	v, _ := s.client.Get(ctx, s.base+"n").Result()
	var L, p, counted int64
	fmt.Sscanf(v, "%d %d %d", &L, &p, &counted)
	if total != subjects || counted != subjects {
		t.Errorf("%d notes in the shards, %d counted (state %q): want %d", total, counted, v, subjects)
	}
	if len(shards) < subjects/(2*noteLoad) {
		t.Fatalf("%d shards for %d notes: want them split near %d each", len(shards), subjects, noteLoad)
	}
	for _, k := range shards {
		n, _ := s.client.HLen(ctx, k).Result()
		enc, _ := s.client.ObjectEncoding(ctx, k).Result()
		ttl, _ := s.client.TTL(ctx, k).Result()
		if n > 2*noteLoad || enc != "listpack" || ttl <= 0 {
			t.Errorf("shard %s: %d fields, %s, ttl %v: want at most %d, listpack, expiring", k, n, enc, ttl, 2*noteLoad)
		}
	}
	for _, i := range []int{0, 1, 777, 2500, subjects - 1} {
		subj, sess := sub(i)
		s.mu.Lock()
		clear(s.recent) // ask Redis, not what this replica noted lately
		s.mu.Unlock()
		if ok, err := s.SessionSeen(ctx, subj, sess); err != nil || !ok {
			t.Errorf("subject %d: seen %v %v", i, ok, err)
		}
	}
	subj, sess := sub(1234)
	res := commit(t, s, Change{Subject: &SubjectCut{Subject: subj, TTL: time.Hour}})
	found := false
	for _, e := range res.Entries {
		found = found || e.Key == sess
	}
	if !found {
		t.Errorf("a subject revocation did not revoke its noted session")
	}

	// A note as an earlier version wrote it.
	old, oldSess := SubjectKey("legacy"), SessionKey("legacy", "s")
	if err := s.client.ZAdd(ctx, s.base+"seen:"+old.String(), redis.Z{Score: float64(nowSec() + 3600), Member: oldSess.String()}).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.SessionSeen(ctx, old, oldSess); err != nil || !ok {
		t.Errorf("a note of an earlier version: seen %v %v", ok, err)
	}
	res = commit(t, s, Change{Subject: &SubjectCut{Subject: old, TTL: time.Hour}})
	found = false
	for _, e := range res.Entries {
		found = found || e.Key == oldSess
	}
	if !found {
		t.Errorf("a subject revocation did not revoke a session an earlier version noted")
	}
}
