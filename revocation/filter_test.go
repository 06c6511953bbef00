package revocation

import (
	"fmt"
	"testing"
	"time"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
)

// collide returns a key of k's kind that shares k's fingerprint (the
// first 39 bits decide shard, bucket and fingerprint) but is another
// key: the compact denylist cannot tell them apart without Redis.
func collide(k Key, salt byte) Key {
	c := k
	for i := 6; i < 15; i++ {
		c[i] ^= salt + byte(i)
	}
	return c
}

// mergeAll moves every shard's exact entries into its static part, as a
// merge does once a shard's delta is due.
func mergeAll(d *Denylist) { d.compactLoaded() }

// A revoked token in the static part is blocked once Redis confirms it;
// another key with the same fingerprint is not blocked, and is answered
// from the cache the next time; a clean key that matches nothing never
// reaches Redis; and while Redis does not answer, a match blocks.
func TestCompactConfirmsMatches(t *testing.T) {
	srv := testredis.Start(t)
	proxy := testredis.NewProxy(t, srv.Addr())
	s := openRedis(t, proxy.Addr(), RedisOptions{Compact: true})
	dl := s.Denylist()
	if !dl.Compact() {
		t.Fatal("compact mode is off")
	}
	revoked := TokenKey("revoked.token.1")
	commit(t, s, Change{Puts: []Put{{Key: revoked, TTL: time.Hour}}})
	mergeAll(dl)
	if st := dl.CompactStats(); st.Static != 1 {
		t.Fatalf("static part holds %d values, want 1", st.Static)
	}
	now := nowSec()
	if r := dl.Check(&Identity{Token: revoked}, now); r != BlockedToken {
		t.Fatalf("revoked token: %v, want blocked", r)
	}
	fake := collide(revoked, 1)
	if b, tag := compactSlot(&fake); func() bool { b0, t0 := compactSlot(&revoked); return b != b0 || tag != t0 }() {
		t.Fatal("the test key does not collide")
	}
	if r := dl.Check(&Identity{Token: fake}, now); r != NotBlocked {
		t.Fatalf("a key sharing a revoked key's fingerprint: %v, want not blocked", r)
	}
	st := dl.CompactStats()
	if st.Matches != 2 || st.Confirmed != 1 || st.FalseMatches != 1 {
		t.Fatalf("stats %+v: want 2 matches, 1 confirmed, 1 false", st)
	}
	for range 3 {
		if dl.Check(&Identity{Token: fake}, now) != NotBlocked || dl.Check(&Identity{Token: revoked}, now) != BlockedToken {
			t.Fatal("cached verdicts changed")
		}
	}
	for i := range 1000 {
		if r := dl.Check(&Identity{Token: TokenKey(fmt.Sprintf("clean-%d", i))}, now); r != NotBlocked {
			t.Fatalf("clean token %d: %v", i, r)
		}
	}
	if got := dl.CompactStats().Matches; got != 2 {
		t.Fatalf("%d matches after cached verdicts and clean tokens, want still 2 (no Redis call)", got)
	}
	if e, ok := dl.Lookup(revoked, now); !ok || int64(e.Expires) <= now {
		t.Fatalf("Lookup of the revoked token: %v %v", e, ok)
	}

	// Redis unreachable: a match that is not cached blocks (the rule
	// compact_denylist documents), and a clean key is still clean.
	proxy.Cut()
	other := collide(revoked, 2)
	if r := dl.Check(&Identity{Token: other}, now); r != BlockedToken {
		t.Fatalf("unconfirmed match with Redis down: %v, want blocked", r)
	}
	if st := dl.CompactStats(); st.Unconfirmed != 1 {
		t.Fatalf("stats %+v: want 1 unconfirmed", st)
	}
	if r := dl.Check(&Identity{Token: TokenKey("clean-while-down")}, now); r != NotBlocked {
		t.Fatalf("clean token with Redis down: %v", r)
	}
	proxy.Restore()
	waitFor(t, "the match confirmed false once Redis answers", func() bool {
		return dl.Check(&Identity{Token: other}, nowSec()) == NotBlocked
	})
}

// A revocation written after a merge is exact at once (the delta), and a
// key revoked again after its fingerprint was found false is blocked:
// the cache of false matches does not hide it.
func TestCompactNewRevocationAfterFalseMatch(t *testing.T) {
	srv := testredis.Start(t)
	s := openRedis(t, srv.Addr(), RedisOptions{Compact: true})
	dl := s.Denylist()
	a := TokenKey("first.revoked.token")
	commit(t, s, Change{Puts: []Put{{Key: a, TTL: time.Hour}}})
	mergeAll(dl)
	b := collide(a, 3)
	if dl.Check(&Identity{Token: b}, nowSec()) != NotBlocked {
		t.Fatal("false match blocked")
	}
	commit(t, s, Change{Puts: []Put{{Key: b, TTL: time.Hour}}})
	if r := dl.Check(&Identity{Token: b}, nowSec()); r != BlockedToken {
		t.Fatalf("revoked after its false match: %v", r)
	}
	mergeAll(dl)
	if r := dl.Check(&Identity{Token: b}, nowSec()); r != BlockedToken {
		t.Fatalf("revoked after its false match, merged: %v", r)
	}
}

// Expired entries leave the static part at the sweep, and a revocation
// too far ahead for the expiry field stays exact.
func TestCompactExpiry(t *testing.T) {
	srv := testredis.Start(t)
	s := openRedis(t, srv.Addr(), RedisOptions{Compact: true, SweepEvery: time.Hour})
	dl := s.Denylist()
	now := nowSec()
	var puts []Put
	for i := range 1000 {
		puts = append(puts, Put{Key: JTIKey(fmt.Sprintf("soon-%d", i)), Expires: UnixSeconds(now + 3600)})
	}
	far := SessionKey("user", fmt.Sprintf("far-%d", now))
	puts = append(puts, Put{Key: far, Expires: UnixSeconds(now + 60*86400)})
	commit(t, s, Change{Puts: puts})
	mergeAll(dl)
	if st := dl.CompactStats(); st.Static != 1000 {
		t.Fatalf("static part holds %d, want the 1000 near entries", st.Static)
	}
	if n := dl.Len(KindJTI); n != 1000 {
		t.Fatalf("%d jti entries counted, want 1000", n)
	}
	if r := dl.Check(&Identity{Session: far}, now); r != BlockedSession {
		t.Fatalf("far session entry: %v", r)
	}
	later := now + 3600 + compactUnit + 1
	if removed := dl.Sweep(later); removed < 1000 {
		t.Fatalf("sweep removed %d, want the 1000 expired", removed)
	}
	if st := dl.CompactStats(); st.Static != 0 {
		t.Fatalf("static part holds %d after they expired", st.Static)
	}
	if n := dl.Len(KindJTI); n != 0 {
		t.Fatalf("%d jti entries counted after they expired", n)
	}
	before := dl.CompactStats().Matches
	if r := dl.Check(&Identity{JTI: JTIKey("soon-5")}, later); r != NotBlocked {
		t.Fatalf("expired jti: %v", r)
	}
	if dl.CompactStats().Matches != before {
		t.Fatal("an expired entry still matched")
	}
	if r := dl.Check(&Identity{Session: far}, later); r != BlockedSession {
		t.Fatalf("far session entry after the sweep: %v", r)
	}
}

// A compact replica that starts on a Redis holding revocations loads
// them all into its static part and blocks every one of them.
func TestCompactReplicaLoads(t *testing.T) {
	srv := testredis.Start(t)
	w := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	const n = 50_000
	keys := make([]Key, n)
	now := nowSec()
	for i := 0; i < n; i += 5000 {
		var puts []Put
		for j := i; j < i+5000; j++ {
			keys[j] = TokenKey(fmt.Sprintf("loaded-%d", j))
			puts = append(puts, Put{Key: keys[j], Expires: UnixSeconds(now + 600 + int64(j))})
		}
		commit(t, w, Change{Puts: puts})
	}
	r := openRedis(t, srv.Addr(), RedisOptions{Compact: true, InitialLoad: 30 * time.Second})
	dl := r.Denylist()
	waitFor(t, "loaded", func() bool { return r.Health().Loaded })
	if st := dl.CompactStats(); st.Static != n {
		t.Fatalf("static part holds %d after the load, want %d (the delta is merged at the load's end)", st.Static, n)
	}
	// Every entry is held in the static part, with an expiry bound no
	// earlier than its own; a sample is checked end to end, each match
	// confirmed in Redis (one round trip each: all 50k took 35 s of the
	// suite under -race).
	check := nowSec()
	for i, k := range keys {
		s := dl.shard(k)
		s.mu.RLock()
		unit := s.cp.get(&k, check)
		s.mu.RUnlock()
		if unit*compactUnit < now+600+int64(i) {
			t.Fatalf("revoked token %d: static bound %d, want at least %d", i, unit*compactUnit, now+600+int64(i))
		}
	}
	const every = 50
	for i := 0; i < n; i += every {
		if got := dl.Check(&Identity{Token: keys[i]}, nowSec()); got != BlockedToken {
			t.Fatalf("revoked token %d: %v", i, got)
		}
	}
	if st := dl.CompactStats(); st.Confirmed != n/every {
		t.Fatalf("stats %+v: want %d confirmed", st, n/every)
	}
	// Bytes: 4 per value and the offsets.
	if b := dl.Bytes(); b > 4*n+numShards*(compactBuckets+1)*4+numShards*200 {
		t.Fatalf("%d bytes for %d entries", b, n)
	}
}

// The static part never loses an entry (every key put in matches, with
// an expiry bound no earlier than its own), and keys never put in match
// about as rarely as 39 bits of fingerprint say.
func TestCompactNoFalseNegatives(t *testing.T) {
	dl := NewDenylist()
	dl.SetCompact(func(Key, int64, int64) (int64, bool, error) { return 0, false, nil })
	const n = 300_000
	now := time.Now().Unix()
	batch := make([]Entry, 0, 4096)
	for i := range n {
		kind := []Kind{KindToken, KindJTI, KindSession}[i%3]
		batch = append(batch, Entry{Key: keyN(i, kind), Expires: UnixSeconds(now + 3600 + int64(i%100_000))})
		if len(batch) == cap(batch) {
			dl.Apply(batch...)
			batch = batch[:0]
		}
	}
	dl.Apply(batch...)
	mergeAll(dl)
	if st := dl.CompactStats(); st.Static < n-n/10000 {
		t.Fatalf("static part holds %d of %d", st.Static, n)
	}
	for i := range n {
		kind := []Kind{KindToken, KindJTI, KindSession}[i%3]
		k := keyN(i, kind)
		unit := dl.shard(k).cp.get(&k, now)
		if unit*compactUnit < now+3600+int64(i%100_000) {
			t.Fatalf("entry %d: bound %d before its expiry", i, unit*compactUnit)
		}
	}
	matches := 0
	for i := n; i < 2*n; i++ {
		k := keyN(i, KindToken)
		if dl.shard(k).cp.get(&k, now) != 0 {
			matches++
		}
	}
	// n/3 tokens in 2^39 fingerprints: about 0.06 matches expected in all.
	if matches > 5 {
		t.Fatalf("%d of %d other keys matched", matches, n)
	}
}
