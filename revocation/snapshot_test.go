package revocation

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
)

// A replica loads the latest snapshot, then the feed from its position:
// it holds what only the snapshot still has, and what came after it.
func TestRedisSnapshotLoad(t *testing.T) {
	srv := testredis.Start(t)
	a := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	rv := &Revoker{Store: a, SessionTTL: time.Hour}
	ctx := context.Background()
	var toks []Key
	for i := range 300 {
		toks = append(toks, TokenKey(fmt.Sprintf("snap-%d", i)))
	}
	for _, k := range toks {
		commit(t, a, Change{Puts: []Put{{Key: k, TTL: time.Hour}}})
	}
	cut := commit(t, a, Change{Subject: &SubjectCut{Subject: SubjectKey("alice"), Keep: SessionKey("alice", "k"), TTL: time.Hour}})
	global, err := rv.RevokeAll(ctx, time.UnixMilli(int64(cut.Time-60_000)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.writeSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	after := TokenKey("after-the-snapshot")
	commit(t, a, Change{Puts: []Put{{Key: after, TTL: time.Hour}}})
	// Only the snapshot still has this one: an entry loaded key by key
	// would be missing.
	shard, _ := shardHolding(t, a, toks[7], nowSec()+3600)
	if _, err := srv.Do("HDEL", shard, string(toks[7][:])); err != nil {
		t.Fatal(err)
	}

	b := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	waitFor(t, "the replica to load and catch up", func() bool {
		return b.Health().Loaded && b.Staleness(time.Now()) < time.Second
	})
	b.mu.Lock()
	source := b.loadSource
	b.mu.Unlock()
	if source != "snapshot" {
		t.Fatalf("loaded from %q, want the snapshot", source)
	}
	for i, k := range toks {
		if got := b.Denylist().Check(&Identity{Token: k}, nowSec()); got != BlockedToken {
			t.Fatalf("token %d: %v", i, got)
		}
	}
	if got := b.Denylist().Check(&Identity{Token: after}, nowSec()); got != BlockedToken {
		t.Fatalf("the revocation after the snapshot, from the feed: %v", got)
	}
	want, _ := a.Denylist().Lookup(SubjectKey("alice"), nowSec())
	if got, ok := b.Denylist().Lookup(SubjectKey("alice"), nowSec()); !ok || got != want {
		t.Fatalf("subject entry %+v, want %+v", got, want)
	}
	if got, ok := b.Denylist().Lookup(GlobalKey(), nowSec()); !ok || got != global.Entries[0] {
		t.Fatalf("global entry %+v, want %+v", got, global.Entries[0])
	}
	// And it follows the feed on.
	later := TokenKey("later")
	commit(t, a, Change{Puts: []Put{{Key: later, TTL: time.Hour}}})
	waitFor(t, "the replica to follow the feed", func() bool {
		return b.Denylist().Check(&Identity{Token: later}, nowSec()) == BlockedToken
	})
}

// A snapshot whose position the feed no longer holds is not used: the
// replica loads entry by entry, and misses nothing.
func TestRedisSnapshotPastTheFeedIsNotUsed(t *testing.T) {
	srv := testredis.Start(t)
	a := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1, FeedMaxLen: 10})
	commit(t, a, Change{Puts: []Put{{Key: TokenKey("before"), TTL: time.Hour}}})
	if err := a.writeSnapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 400 {
		commit(t, a, Change{Puts: []Put{{Key: TokenKey(fmt.Sprintf("storm-%d", i)), TTL: time.Hour}}})
	}
	b := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	waitFor(t, "the replica to load", func() bool { return b.Health().Loaded })
	b.mu.Lock()
	source := b.loadSource
	b.mu.Unlock()
	if source != "keys" {
		t.Fatalf("loaded from %q, want entry by entry", source)
	}
	for i := range 400 {
		if got := b.Denylist().Check(&Identity{Token: TokenKey(fmt.Sprintf("storm-%d", i))}, nowSec()); got != BlockedToken {
			t.Fatalf("storm revocation %d: %v", i, got)
		}
	}
	if got := b.Denylist().Check(&Identity{Token: TokenKey("before")}, nowSec()); got != BlockedToken {
		t.Fatalf("revocation before the snapshot: %v", got)
	}
}

// Replicas take turns: one whose snapshot is fresh keeps the others from
// writing theirs.
func TestRedisSnapshotTurns(t *testing.T) {
	srv := testredis.Start(t)
	a := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: time.Hour})
	b := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: time.Hour})
	ctx := context.Background()
	if err := a.maybeSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := a.readSnapshotHeader(ctx)
	if err != nil || first == nil {
		t.Fatalf("no snapshot written: %v", err)
	}
	if err := b.maybeSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	second, err := b.readSnapshotHeader(ctx)
	if err != nil || second == nil || second.id != first.id {
		t.Fatalf("a fresh snapshot was replaced: %+v then %+v (%v)", first, second, err)
	}
}

// The feed keeps entries by age: a storm's old entries go, whatever
// their count.
func TestRedisFeedRetentionByTime(t *testing.T) {
	srv := testredis.Start(t)
	a := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1, FeedRetention: 200 * time.Millisecond})
	for i := range 250 {
		commit(t, a, Change{Puts: []Put{{Key: TokenKey(fmt.Sprintf("old-%d", i)), TTL: time.Hour}}})
	}
	time.Sleep(300 * time.Millisecond)
	commit(t, a, Change{Puts: []Put{{Key: TokenKey("new"), TTL: time.Hour}}})
	n, err := a.client.XLen(context.Background(), a.feed).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n >= 100 {
		t.Fatalf("the feed holds %d entries, want the ones older than its retention gone", n)
	}
}

// Concurrent commits share script calls, and each still gets its own
// answer: of many revocations of one session at once, exactly one finds
// it not yet revoked.
func TestRedisConcurrentCommitsAreBatched(t *testing.T) {
	srv := testredis.Start(t)
	s := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	const distinct, same = 200, 50
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		fresh atomic.Int32
		errs  = make(chan error, distinct+same)
	)
	sess := SessionKey("alice", "contested")
	for i := range distinct + same {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			k := sess
			if i < distinct {
				k = JTIKey(fmt.Sprintf("batched-%d", i))
			}
			res, err := s.Commit(context.Background(), Change{Puts: []Put{{Key: k, TTL: time.Hour}}})
			if err != nil {
				errs <- err
				return
			}
			if len(res.Existed) != 1 || len(res.Entries) != 1 || res.Entries[0].Key != k {
				errs <- fmt.Errorf("commit %d: result %+v", i, res)
				return
			}
			if k == sess && !res.Existed[0] {
				fresh.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if fresh.Load() != 1 {
		t.Fatalf("%d of %d concurrent revocations of one session found it new, want exactly one", fresh.Load(), same)
	}
	for i := range distinct {
		if got := s.Denylist().Check(&Identity{JTI: JTIKey(fmt.Sprintf("batched-%d", i))}, nowSec()); got != BlockedJTI {
			t.Fatalf("revocation %d: %v", i, got)
		}
	}
	n, err := s.client.XLen(context.Background(), s.feed).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n >= distinct+same {
		t.Fatalf("%d feed entries for %d concurrent commits: none were batched", n, distinct+same)
	}
	t.Logf("%d commits in %d script calls", distinct+same, n)
}

// A new snapshot sends the one before it away within a minute; with
// nothing revoked since the last one, none is written, and the last one
// is kept alive.
func TestRedisSnapshotReplacesTheOldOne(t *testing.T) {
	srv := testredis.Start(t)
	s := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: time.Hour})
	ctx := context.Background()
	commit(t, s, Change{Puts: []Put{{Key: TokenKey("one"), TTL: time.Hour}}})
	if err := s.writeSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	first, _ := s.readSnapshotHeader(ctx)
	commit(t, s, Change{Puts: []Put{{Key: TokenKey("two"), TTL: time.Hour}}})
	waitFor(t, "the feed read back", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.applied == 2
	})
	if err := s.writeSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	second, _ := s.readSnapshotHeader(ctx)
	if second.id == first.id {
		t.Fatal("no new snapshot")
	}
	ttl, err := s.client.PTTL(ctx, s.base+"snap:"+first.id+":0").Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("the old snapshot's chunk expires in %v (%v), want within a minute", ttl, err)
	}
	// Nothing new: a replica taking its turns every few milliseconds
	// keeps the snapshot there is, alive.
	b := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: 5 * time.Millisecond})
	time.Sleep(200 * time.Millisecond)
	if third, _ := b.readSnapshotHeader(ctx); third == nil || third.id != second.id {
		t.Fatalf("a snapshot was rewritten with nothing new: %+v then %+v", second, third)
	}
	// Kept alive by b's turns: its expiry is b's (about a minute), no
	// longer the writer's (three hours).
	if ttl, err := b.client.PTTL(ctx, b.base+"snap").Result(); err != nil || ttl < 30*time.Second || ttl > 2*time.Minute {
		t.Fatalf("the kept snapshot expires in %v (%v), want b's keep of about a minute", ttl, err)
	}
}
