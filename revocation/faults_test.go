package revocation

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
)

// A key-by-key load that has read every key does not vouch for its copy
// yet: a revocation acknowledged after the scan read past its key is only
// in the feed. Here one is committed right after the scan, and the
// loader is then cut off before it can read the feed: it must not call
// its copy current (Staleness, which releases the requests held for the
// load) while that revocation is missing, and once the link is back it
// has it before it confirms.
func TestRedisKeyLoadConfirmsOnlyAfterTheFeed(t *testing.T) {
	srv := testredis.Start(t)
	proxy := testredis.NewProxy(t, srv.Addr())
	writer := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	for i := range 300 {
		commit(t, writer, Change{Puts: []Put{{Key: TokenKey(fmt.Sprintf("old-%d", i)), TTL: time.Hour}}})
	}
	late := TokenKey("acknowledged-during-the-load")
	var committed atomic.Bool
	loader := NewRedisStore(RedisOptions{
		Client:        redis.NewClient(&redis.Options{Addr: proxy.Addr(), MaxRetries: 1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second}),
		SnapshotEvery: -1, Deferred: true, InitialLoad: -1, Logger: quiet,
		Block: 100 * time.Millisecond, IOTimeout: 500 * time.Millisecond,
	})
	t.Cleanup(func() { loader.Close() })
	loader.afterScan = func() {
		if committed.Swap(true) {
			return
		}
		commit(t, writer, Change{Puts: []Put{{Key: late, TTL: time.Hour}}})
		proxy.Cut()
	}
	loader.Start()
	waitFor(t, "the load's scan", committed.Load)
	has := func() bool { return loader.Denylist().Check(&Identity{Token: late}, nowSec()) == BlockedToken }
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if loader.Staleness(time.Now()) < time.Minute && !has() {
			t.Fatal("the copy was confirmed current without a revocation acknowledged before the load ended")
		}
		time.Sleep(time.Millisecond)
	}
	if !loader.Health().Loaded {
		t.Fatal("the load did not finish")
	}
	proxy.Restore()
	waitFor(t, "confirmed once the feed is read", func() bool { return loader.Staleness(time.Now()) < time.Minute })
	if !has() {
		t.Fatal("confirmed current without the revocation acknowledged during the load")
	}
}

// A store opened on the same Redis and prefix as a loaded one (a reload
// that changed another store setting) takes over its copy and its feed
// position: loaded at once, without a full load, and current from the
// feed from there.
func TestRedisStoreCarriesTheCopyOver(t *testing.T) {
	srv := testredis.Start(t)
	old := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	var keys []Key
	for i := range 50 {
		k := TokenKey(fmt.Sprintf("carried-%d", i))
		keys = append(keys, k)
		commit(t, old, Change{Puts: []Put{{Key: k, TTL: time.Hour}}})
	}
	waitFor(t, "the old store confirmed", func() bool { return old.Staleness(time.Now()) < time.Minute })
	var reloads atomic.Int64
	next := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1, CarryFrom: old, InitialLoad: -1,
		Hooks: Hooks{Reloaded: func(int, time.Duration) { reloads.Add(1) }}})
	if !next.Health().Loaded {
		t.Fatal("the new store is not loaded")
	}
	for _, k := range keys {
		if next.Denylist().Check(&Identity{Token: k}, nowSec()) != BlockedToken {
			t.Fatalf("%v not carried over", k)
		}
	}
	old.Close()
	fresh := TokenKey("after-the-reload")
	writer := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	commit(t, writer, Change{Puts: []Put{{Key: fresh, TTL: time.Hour}}})
	waitFor(t, "the new store follows the feed", func() bool {
		return next.Denylist().Check(&Identity{Token: fresh}, nowSec()) == BlockedToken && next.Staleness(time.Now()) < time.Minute
	})
	if n := reloads.Load(); n != 0 {
		t.Fatalf("the new store loaded in full %d times, want none", n)
	}
}

// Redis restarts empty (no persistence). The replicas that were running
// see the feed gone, reload, and write back every unexpired revocation
// they hold: plain entries, a subject cut with a kept session, and the
// global cutoff. A store opened afterwards loads every one of them.
func TestRedisHealsAfterLosingItsData(t *testing.T) {
	srv := testredis.Start(t)
	a := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1, Block: 100 * time.Millisecond})
	b := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1, Block: 100 * time.Millisecond})
	var keys []Key
	for i := range 120 {
		k := TokenKey(fmt.Sprintf("healed-%d", i))
		keys = append(keys, k)
		commit(t, []*RedisStore{a, b}[i%2], Change{Puts: []Put{{Key: k, TTL: time.Hour}}})
	}
	cutAt := time.Now().UnixMilli()
	commit(t, a, Change{Subject: &SubjectCut{Subject: SubjectKey("alice"), Keep: SessionKey("alice", "kept"), TTL: time.Hour}})
	commit(t, b, Change{Global: &GlobalCut{Before: UnixMillis(cutAt - 60_000), TTL: time.Hour}})
	waitFor(t, "both replicas hold everything", func() bool {
		for _, s := range []*RedisStore{a, b} {
			if s.Denylist().Check(&Identity{Token: keys[len(keys)-1]}, nowSec()) != BlockedToken ||
				s.Denylist().Check(&Identity{Subject: SubjectKey("alice"), Issued: UnixMillis(cutAt - 1)}, nowSec()) != BlockedSubject {
				return false
			}
		}
		return true
	})

	srv.Restart() // empty

	check := func(s *RedisStore) error {
		dl := s.Denylist()
		for _, k := range keys {
			if dl.Check(&Identity{Token: k}, nowSec()) != BlockedToken {
				return fmt.Errorf("%v missing", k)
			}
		}
		if r := dl.Check(&Identity{Subject: SubjectKey("alice"), Session: SessionKey("alice", "other"), Issued: UnixMillis(cutAt - 1)}, nowSec()); r != BlockedSubject {
			return fmt.Errorf("subject cut missing: %v", r)
		}
		if r := dl.Check(&Identity{Subject: SubjectKey("bob"), Issued: UnixMillis(cutAt - 120_000)}, nowSec()); r != BlockedGlobal {
			return fmt.Errorf("global cutoff missing: %v", r)
		}
		return nil
	}
	var last error
	waitFor(t, "a replica started after the restart holds every revocation", func() bool {
		late := NewRedisStore(RedisOptions{
			Client:        redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: 1}),
			SnapshotEvery: -1, Logger: quiet, InitialLoad: 5 * time.Second,
		})
		defer late.Close()
		last = check(late)
		return last == nil
	})
	for i, s := range []*RedisStore{a, b} {
		if err := check(s); err != nil {
			t.Fatalf("replica %d after the heal: %v", i, err)
		}
	}
	_ = last
}

// startReplicated starts a master and one replica that replicates it
// through a proxy the test can cut.
func startReplicated(t *testing.T) (master, replica *testredis.Server, link *testredis.Proxy) {
	t.Helper()
	master = testredis.Start(t)
	link = testredis.NewProxy(t, master.Addr())
	_, port, _ := strings.Cut(link.Addr(), ":")
	replica = testredis.Start(t, "--replicaof", "127.0.0.1", port)
	waitFor(t, "the replica in sync", func() bool {
		out, err := replica.Do("INFO", "replication")
		return err == nil && strings.Contains(out, "master_link_status:up")
	})
	return master, replica, link
}

// With a replica, a commit answers only once the replica holds it: the
// master is killed right after the last acknowledgement and the replica
// promoted, and a store opened on it has every acknowledged revocation.
// With the replication link cut, a commit that must wait for a replica
// fails (ErrNotReplicated, within the wait timeout) instead of being
// acknowledged on the master alone.
func TestRedisCommitWaitsForAReplica(t *testing.T) {
	master, replica, link := startReplicated(t)
	s := openRedis(t, master.Addr(), RedisOptions{SnapshotEvery: -1, WaitTimeout: 300 * time.Millisecond})
	waitFor(t, "the store sees the replica", func() bool { return s.replicas.Load() == 1 })
	strict := openRedis(t, master.Addr(), RedisOptions{SnapshotEvery: -1, WaitReplicas: 1, WaitTimeout: 300 * time.Millisecond})

	link.Cut()
	start := time.Now()
	_, err := strict.Commit(context.Background(), Change{Puts: []Put{{Key: TokenKey("unreplicated"), TTL: time.Hour}}})
	if !errors.Is(err, ErrNotReplicated) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("commit with the replica cut off: %v, want ErrNotReplicated", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the failed commit took %v", took)
	}
	link.Restore()
	waitFor(t, "the replica back in sync", func() bool {
		out, err := replica.Do("INFO", "replication")
		return err == nil && strings.Contains(out, "master_link_status:up")
	})

	var acked []Key
	for i := range 200 {
		k := TokenKey("acked-" + strconv.Itoa(i))
		if _, err := s.Commit(context.Background(), Change{Puts: []Put{{Key: k, TTL: time.Hour}}}); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		acked = append(acked, k)
	}
	master.Stop() // SIGKILL, right after the last acknowledgement
	if _, err := replica.Do("REPLICAOF", "NO", "ONE"); err != nil {
		t.Fatal(err)
	}
	promoted := openRedis(t, replica.Addr(), RedisOptions{SnapshotEvery: -1, InitialLoad: 5 * time.Second})
	for _, k := range acked {
		if promoted.Denylist().Check(&Identity{Token: k}, nowSec()) != BlockedToken {
			t.Fatalf("acknowledged revocation %v lost in the failover", k)
		}
	}
}

// BenchmarkRedisCommitWait measures what waiting for a replica costs a
// revocation: one put per commit, from 8 callers at once, with the wait
// off and for one replica (master and replica on loopback).
func BenchmarkRedisCommitWait(b *testing.B) {
	master := testredis.Start(b)
	replica := testredis.Start(b, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	for {
		out, _ := replica.Do("INFO", "replication")
		if strings.Contains(out, "master_link_status:up") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, wait := range []int{-1, 1} {
		name := "wait=off"
		if wait > 0 {
			name = "wait=1"
		}
		b.Run(name, func(b *testing.B) {
			s := NewRedisStore(RedisOptions{
				Client:        redis.NewClient(&redis.Options{Addr: master.Addr()}),
				SnapshotEvery: -1, Logger: quiet, WaitReplicas: wait,
			})
			defer s.Close()
			var n atomic.Int64
			b.SetParallelism(4) // 4 x GOMAXPROCS callers
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					k := TokenKey("bench-" + strconv.FormatInt(n.Add(1), 10))
					if _, err := s.Commit(context.Background(), Change{Puts: []Put{{Key: k, TTL: time.Hour}}}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "revocations/s")
		})
	}
}

// A snapshot never drops an unexpired entry the previous one had: here
// an entry is missing from Redis's keys (as after a failover that lost
// it) and from the copy of the replica that writes the next snapshot,
// which loaded key by key; the new snapshot still has it, and so does
// that replica's copy from then on.
func TestRedisSnapshotKeepsWhatThePreviousHad(t *testing.T) {
	srv := testredis.Start(t)
	a := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	ctx := context.Background()
	kept := TokenKey("only-in-the-snapshot")
	commit(t, a, Change{Puts: []Put{{Key: kept, TTL: time.Hour}}})
	for i := range 50 {
		commit(t, a, Change{Puts: []Put{{Key: TokenKey(fmt.Sprintf("other-%d", i)), TTL: time.Hour}}})
	}
	if err := a.writeSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	shard, _ := shardHolding(t, a, kept, nowSec()+3600)
	if _, err := srv.Do("HDEL", shard, string(kept[:])); err != nil {
		t.Fatal(err)
	}
	// A replica that loads key by key (its load skips the snapshot by
	// reading the keys first) lacks it.
	b := NewRedisStore(RedisOptions{
		Client:        redis.NewClient(&redis.Options{Addr: srv.Addr()}),
		SnapshotEvery: -1, Logger: quiet, Deferred: true,
	})
	t.Cleanup(func() { b.Close() })
	if err := b.fullLoadKeysOnly(ctx); err != nil {
		t.Fatal(err)
	}
	if b.Denylist().Check(&Identity{Token: kept}, nowSec()) == BlockedToken {
		t.Fatal("the entry removed from Redis was still loaded from its keys")
	}
	if err := b.writeSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if b.Denylist().Check(&Identity{Token: kept}, nowSec()) != BlockedToken {
		t.Fatal("the replica that wrote the new snapshot does not block what the previous one had")
	}
	c := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1, InitialLoad: 5 * time.Second})
	c.mu.Lock()
	source := c.loadSource
	c.mu.Unlock()
	if source != "snapshot" {
		t.Fatalf("loaded from %q, want the snapshot", source)
	}
	if c.Denylist().Check(&Identity{Token: kept}, nowSec()) != BlockedToken {
		t.Fatal("the new snapshot dropped an unexpired entry the previous one had")
	}
}

// fullLoadKeysOnly loads a store key by key, as fullLoad does when there
// is no usable snapshot, and sets it loaded.
func (s *RedisStore) fullLoadKeysOnly(ctx context.Context) error {
	snap := s.base + "snap"
	hdr, err := s.client.Get(ctx, snap).Result()
	if err != nil {
		return err
	}
	if err := s.client.Del(ctx, snap).Err(); err != nil {
		return err
	}
	defer s.client.Set(ctx, snap, hdr, time.Hour)
	return s.fullLoad(ctx)
}
