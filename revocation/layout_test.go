package revocation

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
)

// shardHolding finds the bucket shard that holds a plain entry expiring
// at about exp (the seconds around it, for a TTL put), addressed as
// commitScript addresses it, and returns the shard's key and the stored
// expiry.
func shardHolding(t *testing.T, s *RedisStore, k Key, exp int64) (string, int64) {
	t.Helper()
	ctx := context.Background()
	for _, e := range []int64{exp, exp - 1, exp + 1, exp - 2} {
		b := e / bucketWidth
		var l, p, n int64
		v, err := s.client.Get(ctx, s.base+"e:"+strconv.FormatInt(b, 10)).Result()
		if errors.Is(err, redis.Nil) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Sscanf(v, "%d %d %d", &l, &p, &n); err != nil {
			t.Fatalf("bucket %d state %q: %v", b, v, err)
		}
		h := int64(k[0])<<24 | int64(k[1])<<16 | int64(k[2])<<8 | int64(k[3])
		a := h % (1 << l)
		if a < p {
			a = h % (2 << l)
		}
		shard := s.base + "e:" + strconv.FormatInt(b, 10) + ":" + strconv.FormatInt(a, 10)
		got, err := s.client.HGet(ctx, shard, string(k[:])).Int64()
		if errors.Is(err, redis.Nil) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		return shard, got
	}
	t.Fatalf("no shard holds %s near expiry %d", k, exp)
	return "", 0
}

// Many plain entries, across a few expiry buckets, load key by key (no
// snapshot) into a fresh store with their expiries; every bucket shard
// stays a small listpack, and every bucket key expires at its bucket's
// end.
func TestRedisBucketLayoutLoads(t *testing.T) {
	srv := testredis.Start(t)
	w := openRedis(t, srv.Addr(), RedisOptions{KeyPrefix: "rv:", SnapshotEvery: -1})
	const n = 20_000
	now := nowSec()
	want := make(map[Key]int64, n)
	kinds := []func(string) Key{TokenKey, JTIKey, func(s string) Key { return SessionKey("u", s) }}
	var puts []Put
	for i := range n {
		k := kinds[i%3](fmt.Sprintf("entry-%d", i))
		exp := now + 600 + int64(i%4)*bucketWidth + int64(i%97)
		want[k] = exp
		puts = append(puts, Put{Key: k, Expires: UnixSeconds(exp)})
		if len(puts) == 500 {
			commit(t, w, Change{Puts: puts})
			puts = nil
		}
	}

	r := openRedis(t, srv.Addr(), RedisOptions{KeyPrefix: "rv:", SnapshotEvery: -1})
	waitFor(t, "the second store to load", func() bool { return r.Health().Loaded })
	if r.loadSource != "keys" {
		t.Fatalf("loaded from %q, want keys", r.loadSource)
	}
	for k, exp := range want {
		if e, ok := r.Denylist().Lookup(k, nowSec()); !ok || int64(e.Expires) != exp {
			t.Fatalf("%s entry loaded as %+v (%v), want expiry %d", k.Kind(), e, ok, exp)
		}
	}

	ctx := context.Background()
	// A load's progress counts entries, not keys: the buckets' fields,
	// and the other keys (the feed, the bucket index) as an upper bound.
	if e, _ := r.expectEntries(ctx); e < n || e > n+2 {
		t.Fatalf("a load would expect %d entries; want %d and at most the two other keys", e, n)
	}
	keys, err := r.client.Keys(ctx, "rv:{dl}:e:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	shards, buckets, fields := 0, map[string]bool{}, int64(0)
	for _, key := range keys {
		rest := strings.TrimPrefix(key, "rv:{dl}:e:")
		b, _, isShard := strings.Cut(rest, ":")
		bucket, err := strconv.ParseInt(b, 10, 64)
		if err != nil {
			t.Fatalf("unexpected key %q", key)
		}
		buckets[b] = true
		at, err := r.client.ExpireTime(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if end := (bucket + 1) * bucketWidth; int64(at/time.Second) != end {
			t.Fatalf("%s expires at %d, want the bucket's end %d", key, at/time.Second, end)
		}
		if !isShard {
			continue
		}
		shards++
		enc, err := r.client.ObjectEncoding(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		size, err := r.client.HLen(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if enc != "listpack" || size > 128 {
			t.Fatalf("shard %s: %d fields encoded as %s; want at most 128 in a listpack", key, size, enc)
		}
		fields += size
	}
	if len(buckets) < 4 || shards < 4*n/(4*128) || fields != n {
		t.Fatalf("%d buckets, %d shards holding %d fields for %d entries", len(buckets), shards, fields, n)
	}
	t.Logf("%d entries in %d buckets, %d shards", n, len(buckets), shards)
}

// One-key entries an earlier version wrote load beside the bucket
// layout (a rolling upgrade), and are still counted as existing.
func TestRedisOldLayoutStillLoads(t *testing.T) {
	srv := testredis.Start(t)
	old := TokenKey("written-by-an-earlier-version")
	exp := strconv.FormatInt(nowSec()+3600, 10)
	if _, err := srv.Do("SET", KeyBase("revocation:")+"t:"+old.String(), exp, "EXAT", exp); err != nil {
		t.Fatal(err)
	}
	w := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	waitFor(t, "the store to load", func() bool { return w.Health().Loaded })
	fresh := TokenKey("written-now")
	res := commit(t, w, Change{Puts: []Put{{Key: old, TTL: time.Hour}, {Key: fresh, TTL: time.Hour}}})
	if !res.Existed[0] || res.Existed[1] {
		t.Fatalf("existed %v; want the old-layout entry live and the new one not", res.Existed)
	}
	r := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	waitFor(t, "the second store to load", func() bool { return r.Health().Loaded })
	for _, k := range []Key{old, fresh} {
		if got := r.Denylist().Check(&Identity{Token: k}, nowSec()); got != BlockedToken {
			t.Fatalf("%s: %v", k, got)
		}
	}
	if got := r.Denylist().Len(KindToken); got != 2 {
		t.Fatalf("%d token entries loaded, want 2", got)
	}
}

// A key revoked again with a later expiry, in the same bucket or in
// another one, loads with the later expiry; an earlier one changes
// nothing.
func TestRedisLaterExpiryWinsAcrossBuckets(t *testing.T) {
	srv := testredis.Start(t)
	w := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	start := (nowSec()/bucketWidth + 2) * bucketWidth // a bucket's start, well ahead
	same, other := TokenKey("same-bucket"), TokenKey("other-bucket")
	commit(t, w, Change{Puts: []Put{{Key: same, Expires: UnixSeconds(start + 10)}, {Key: other, Expires: UnixSeconds(start + 10)}}})
	commit(t, w, Change{Puts: []Put{{Key: same, Expires: UnixSeconds(start + 20)}, {Key: other, Expires: UnixSeconds(start + 3*bucketWidth)}}})
	commit(t, w, Change{Puts: []Put{{Key: same, Expires: UnixSeconds(start + 15)}, {Key: other, Expires: UnixSeconds(start + 30)}}})
	r := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	waitFor(t, "the second store to load", func() bool { return r.Health().Loaded })
	for k, exp := range map[Key]int64{same: start + 20, other: start + 3*bucketWidth} {
		if e, ok := r.Denylist().Lookup(k, nowSec()); !ok || int64(e.Expires) != exp {
			t.Fatalf("loaded %+v (%v), want expiry %d", e, ok, exp)
		}
	}
	if _, got := shardHolding(t, w, same, start+20); got != start+20 {
		t.Fatalf("same-bucket entry stored with expiry %d, want %d", got, start+20)
	}
}

// A load reads the shards a split created while it scanned: here the
// scan returned shard 0 of a bucket only, as if every other shard had
// been split off it during the scan, and the rounds after the scan read
// them all, children after parents.
func TestRedisLoadReadsShardsTheScanMissed(t *testing.T) {
	srv := testredis.Start(t)
	w := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	exp := nowSec() + 3600
	var puts []Put
	for i := range 2000 {
		puts = append(puts, Put{Key: JTIKey(fmt.Sprintf("j-%d", i)), Expires: UnixSeconds(exp)})
	}
	commit(t, w, Change{Puts: puts})
	r := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1, Deferred: true})
	ctx := context.Background()
	read := &shardsRead{names: make(map[string]struct{})}
	first := r.base + "e:" + strconv.FormatInt(exp/bucketWidth, 10) + ":0"
	n0, err := r.readEntries(ctx, r.client, []string{first}, read)
	if err != nil || n0 == 0 || n0 > 2*shardLoad+1 {
		t.Fatalf("shard 0 alone: %d entries (%v)", n0, err)
	}
	n, err := r.readSplitShards(ctx, read)
	if err != nil || n0+n != len(puts) {
		t.Fatalf("read %d + %d entries (%v), want %d", n0, n, err, len(puts))
	}
	for _, p := range puts {
		if _, ok := r.Denylist().Lookup(p.Key, nowSec()); !ok {
			t.Fatalf("%s not loaded", p.Key)
		}
	}
	// Nothing more to read: no round after the last.
	if n, err := r.readSplitShards(ctx, read); err != nil || n != 0 {
		t.Fatalf("a second pass read %d entries (%v), want none", n, err)
	}
}

// A session revoked again with an expiry in another bucket was already
// revoked: the second put says so (seed 002's "already invalidated"),
// from either store.
func TestStoreRevokedAgainAcrossBuckets(t *testing.T) {
	for _, sk := range stores() {
		t.Run(sk.name, func(t *testing.T) {
			s := sk.open(t)
			k := SessionKey("alice", "laptop")
			first := nowSec() + 600
			if res := commit(t, s, Change{Puts: []Put{{Key: k, Expires: UnixSeconds(first)}}}); res.Existed[0] {
				t.Fatal("first revocation reported as existing")
			}
			res := commit(t, s, Change{Puts: []Put{{Key: k, Expires: UnixSeconds(first + 3*bucketWidth)}}})
			if !res.Existed[0] {
				t.Fatal("revoked again in another bucket: not reported as existing")
			}
			if e, ok := s.Denylist().Lookup(k, nowSec()); !ok || int64(e.Expires) != first+3*bucketWidth {
				t.Fatalf("entry %+v (%v), want the later expiry", e, ok)
			}
		})
	}
}

// A session put with a TTL lands in the bucket of now + TTL, so the same
// session revoked again a moment later, across a bucket boundary, lands
// in the next one. The script itself says it existed, for a replica
// whose local copy does not have the first revocation yet (its feed has
// not brought it): seed 002's "already invalidated" must not depend on
// which replica the second request reaches.
func TestRedisRevokedAgainWithATTLAcrossABoundary(t *testing.T) {
	srv := testredis.Start(t)
	first := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	// Never started: no load, no feed, an empty local copy.
	second := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1, Deferred: true})
	k := SessionKey("alice", "laptop")
	const ttl = time.Hour
	// The first revocation as if made just before the boundary: in the
	// bucket before the one now + TTL falls in.
	b := (nowSec() + int64(ttl/time.Second)) / bucketWidth
	if res := commit(t, first, Change{Puts: []Put{{Key: k, Expires: UnixSeconds((b-1)*bucketWidth + 1)}}}); res.Existed[0] {
		t.Fatal("first revocation reported as existing")
	}
	if _, ok := second.Denylist().Lookup(k, nowSec()); ok {
		t.Fatal("the second replica's copy already has the session: the test proves nothing")
	}
	if res := commit(t, second, Change{Puts: []Put{{Key: k, TTL: ttl}}}); !res.Existed[0] {
		t.Fatal("revoked again across a bucket boundary, on a replica that had not heard of it: not reported as existing")
	}
	// And a session never revoked is not reported as existing.
	if res := commit(t, second, Change{Puts: []Put{{Key: SessionKey("alice", "phone"), TTL: ttl}}}); res.Existed[0] {
		t.Fatal("a new session reported as existing")
	}
}

// commitMany commits n token entries expiring over the hour after the
// next, in bulk changes of 2000 from a few goroutines at once, then trims
// the change feed that carried them (as its retention would).
func commitMany(tb testing.TB, s *RedisStore, n int) {
	tb.Helper()
	const batch, workers = 2000, 8
	ctx := context.Background()
	now := nowSec()
	var wg sync.WaitGroup
	var failed atomic.Value
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for from := range next {
				puts := make([]Put, 0, batch)
				for i := from; i < min(from+batch, n); i++ {
					puts = append(puts, Put{Key: TokenKey("entry-" + strconv.Itoa(i)), Expires: UnixSeconds(now + 3600 + int64(i)*3600/int64(n))})
				}
				if _, err := s.Commit(ctx, Change{Puts: puts}); err != nil {
					failed.Store(err)
				}
			}
		}()
	}
	for from := 0; from < n; from += batch {
		next <- from
	}
	close(next)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		tb.Fatalf("commit: %v", err)
	}
	if err := s.client.XTrimMaxLen(ctx, s.feed, 0).Err(); err != nil {
		tb.Fatalf("trim the feed: %v", err)
	}
}

// A split that would move none of a shard's fields, or all of them,
// leaves no shard to be created later without an expiry: every bucket
// key expires, and every entry loads.
func TestRedisSplitKeepsEveryShardExpiring(t *testing.T) {
	srv := testredis.Start(t)
	w := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	exp := nowSec() + 3600
	key := func(h uint32, i int) Key {
		var k Key
		binary.BigEndian.PutUint32(k[:], h)
		binary.BigEndian.PutUint32(k[4:], uint32(i))
		k[15] = byte(KindToken)
		return k
	}
	var all []Key
	// Two buckets: in one, the first split (of shard 0 into 0 and 1)
	// moves nothing (every hash even), in the other everything (odd).
	for b, parity := range []uint32{0, 1} {
		var puts []Put
		for i := range shardLoad + 1 {
			k := key(uint32(i)*2+parity, i)
			all = append(all, k)
			puts = append(puts, Put{Key: k, Expires: UnixSeconds(exp + int64(b)*bucketWidth)})
		}
		commit(t, w, Change{Puts: puts})
		// Then an entry for the shard left empty.
		k := key(1-parity, 999)
		all = append(all, k)
		commit(t, w, Change{Puts: []Put{{Key: k, Expires: UnixSeconds(exp + int64(b)*bucketWidth)}}})
	}
	ctx := context.Background()
	keys, err := w.client.Keys(ctx, "revocation:{dl}:e*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 7 { // ebuckets, two states, two shards each
		t.Fatalf("bucket keys %q, want 7", keys)
	}
	for _, k := range keys {
		if ttl, err := w.client.TTL(ctx, k).Result(); err != nil || ttl <= 0 {
			t.Fatalf("%s: TTL %v (%v), want every bucket key to expire", k, ttl, err)
		}
	}
	r := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	waitFor(t, "the second store to load", func() bool { return r.Health().Loaded })
	if got := r.Denylist().Len(KindToken); got != int64(len(all)) {
		t.Fatalf("loaded %d entries, want %d", got, len(all))
	}
	for _, k := range all {
		if _, ok := r.Denylist().Lookup(k, nowSec()); !ok {
			t.Fatalf("%s not loaded", k)
		}
	}
}

// The script checks every put's raw key against its hex form before the
// first write: a batch with one bad put writes nothing at all.
func TestCommitScriptRefusesMismatchedKeyBytes(t *testing.T) {
	srv := testredis.Start(t)
	s := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	good, bad := TokenKey("good"), TokenKey("bad")
	other := TokenKey("other")
	ctx := context.Background()
	for name, bin := range map[string]string{"other key's bytes": string(other[:]), "short": string(bad[:15]), "kind byte": string(bad[:15]) + "j"} {
		args := []any{s.base, s.maxLen, s.retain.Milliseconds(), bucketWidth, shardLoad, 2,
			1, "t", good.String(), string(good[:]), 0, 3600, 0, "0",
			1, "t", bad.String(), bin, 0, 3600, 0, "0"}
		err := commitScript.Run(ctx, s.client, []string{s.feed}, args...).Err()
		if err == nil || !strings.Contains(err.Error(), "bad put") {
			t.Fatalf("%s: error %v, want the put refused", name, err)
		}
		if n, err := s.client.DBSize(ctx).Result(); err != nil || n != 0 {
			t.Fatalf("%s: %d keys written (%v), want none", name, n, err)
		}
	}
}

// A load key by key while another replica's revocations keep splitting
// the same bucket's shards misses none of the entries committed before
// it began.
func TestRedisLoadDuringSplitsMissesNothing(t *testing.T) {
	srv := testredis.Start(t)
	w := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	exp := (nowSec()/bucketWidth+2)*bucketWidth + 10 // one bucket for all
	batch := func(prefix string, n int) []Put {
		puts := make([]Put, n)
		for i := range puts {
			puts[i] = Put{Key: JTIKey(fmt.Sprintf("%s-%d", prefix, i)), Expires: UnixSeconds(exp)}
		}
		return puts
	}
	before := batch("before", 20_000)
	for i := 0; i < len(before); i += 1000 {
		commit(t, w, Change{Puts: before[i : i+1000]})
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 200 { // bounded: at most 200k more entries
			select {
			case <-stop:
				return
			default:
			}
			if _, err := w.Commit(context.Background(), Change{Puts: batch(fmt.Sprintf("during-%d", i), 1000)}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	r := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	waitFor(t, "the second store to load", func() bool { return r.Health().Loaded })
	close(stop)
	wg.Wait()
	for _, p := range before {
		if _, ok := r.Denylist().Lookup(p.Key, nowSec()); !ok {
			t.Fatalf("%s, committed before the load, not loaded", p.Key)
		}
	}
}
