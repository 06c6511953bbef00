package revocation

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
)

// csnapEntry is entry i of the compact snapshot tests: the three plain
// kinds, expiring from one to thirty hours ahead.
func csnapEntry(i int, now int64) Put {
	kind := []Kind{KindToken, KindJTI, KindSession}[i%3]
	return Put{Key: keyN(i, kind), Expires: UnixSeconds(now + 3600 + int64(i%30)*3600 + int64(i%977))}
}

// commitCsnap commits entries from to n of csnapEntry, in bulk changes.
func commitCsnap(t *testing.T, s *RedisStore, from, n int, now int64) {
	t.Helper()
	const batch = 5000
	for i := from; i < n; i += batch {
		puts := make([]Put, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			puts = append(puts, csnapEntry(j, now))
		}
		commit(t, s, Change{Puts: puts})
	}
}

// csnapWriter opens a compact store on addr with opts, commits entries 0
// to n (csnapEntry, expiring from now), and writes its compact snapshot.
func csnapWriter(t *testing.T, addr string, opts RedisOptions, n int, now int64) *RedisStore {
	t.Helper()
	w := openRedis(t, addr, opts)
	current(t, w)
	commitCsnap(t, w, 0, n, now)
	current(t, w)
	if err := w.writeCompactSnapshot(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return w
}

func loadedFrom(s *RedisStore) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loadSource
}

// current waits until s has loaded and read the feed to its end.
func current(t *testing.T, s *RedisStore) {
	t.Helper()
	waitFor(t, "the replica to load and catch up", func() bool {
		return s.Health().Loaded && s.Staleness(time.Now()) < time.Second
	})
}

// A compact replica writes a compact snapshot; a second compact replica
// loads it, follows the feed from its position, and holds every entry
// (300k of three kinds) in its static part or its delta: no false
// negative. Subject cuts, the global cutoff and an entry too far ahead
// for a value to tell come through exact. An exact replica on the same
// Redis writes and reads its own snapshot, unaffected.
func TestCompactSnapshotLoad(t *testing.T) {
	srv := testredis.Start(t)
	ctx := context.Background()
	now := nowSec()
	const n = 300_000
	w := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1, Compact: true})
	current(t, w)
	commitCsnap(t, w, 0, n, now)
	far := Put{Key: TokenKey("far-ahead"), Expires: UnixSeconds(now + 50*86400)}
	commit(t, w, Change{Puts: []Put{far}})
	cut := commit(t, w, Change{Subject: &SubjectCut{Subject: SubjectKey("alice"), Keep: SessionKey("alice", "k"), TTL: time.Hour}})
	rv := &Revoker{Store: w, SessionTTL: time.Hour}
	global, err := rv.RevokeAll(ctx, time.UnixMilli(int64(cut.Time-60_000)))
	if err != nil {
		t.Fatal(err)
	}
	current(t, w)
	if err := w.writeCompactSnapshot(ctx, nil); err != nil {
		t.Fatal(err)
	}
	h, err := w.readCompactHeader(ctx)
	if err != nil || h == nil {
		t.Fatalf("no compact snapshot header: %+v, %v", h, err)
	}
	if h.values != n || h.fingerprint != "-" {
		t.Fatalf("header %+v: want %d values and no hash key", h, n)
	}
	// Revoked after the snapshot: only the feed has it.
	after := TokenKey("after-the-snapshot")
	commit(t, w, Change{Puts: []Put{{Key: after, TTL: time.Hour}}})

	// An exact replica beside it writes its own snapshot.
	e := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	current(t, e)
	if loadedFrom(e) != "keys" {
		t.Fatalf("exact replica loaded from %q, want keys (it never reads a compact snapshot)", loadedFrom(e))
	}
	if err := e.writeSnapshot(ctx); err != nil {
		t.Fatal(err)
	}

	r := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1, Compact: true})
	current(t, r)
	if got := loadedFrom(r); got != "compact snapshot" {
		t.Fatalf("compact replica loaded from %q, want the compact snapshot", got)
	}
	dl := r.Denylist()
	if st := dl.CompactStats(); st.Static != n {
		t.Fatalf("static part holds %d values, want %d", st.Static, n)
	}
	if got := dl.Len(KindToken) + dl.Len(KindJTI) + dl.Len(KindSession); got != n+2 {
		t.Fatalf("counts by kind: %d plain entries, want %d", got, n+2)
	}
	check := nowSec()
	for i := range n {
		p := csnapEntry(i, now)
		s := dl.shard(p.Key)
		s.mu.RLock()
		unit := s.cp.get(&p.Key, check)
		exp, inDelta := s.plain.get(&p.Key)
		s.mu.RUnlock()
		if unit*compactUnit < int64(p.Expires) && !(inDelta && exp >= uint32(p.Expires)) {
			t.Fatalf("entry %d (%s): not held (static bound %d, delta %v)", i, p.Key, unit*compactUnit, inDelta)
		}
	}
	// A sample end to end, confirmed in Redis.
	for i := 0; i < n; i += 997 {
		p := csnapEntry(i, now)
		id := Identity{}
		want := map[Kind]Reason{KindToken: BlockedToken, KindJTI: BlockedJTI, KindSession: BlockedSession}[p.Key.Kind()]
		switch p.Key.Kind() {
		case KindToken:
			id.Token = p.Key
		case KindJTI:
			id.JTI = p.Key
		default:
			id.Session = p.Key
		}
		if got := dl.Check(&id, nowSec()); got != want {
			t.Fatalf("entry %d: %v, want %v", i, got, want)
		}
	}
	for name, k := range map[string]Key{"far ahead": far.Key, "after the snapshot": after} {
		if got := dl.Check(&Identity{Token: k}, nowSec()); got != BlockedToken {
			t.Fatalf("%s: %v", name, got)
		}
	}
	if got := dl.Check(&Identity{Token: TokenKey("never-revoked")}, nowSec()); got != NotBlocked {
		t.Fatalf("a clean token: %v", got)
	}
	want, _ := w.Denylist().Lookup(SubjectKey("alice"), nowSec())
	if got, ok := dl.Lookup(SubjectKey("alice"), nowSec()); !ok || got != want {
		t.Fatalf("subject entry %+v, want %+v", got, want)
	}
	if got, ok := dl.Lookup(GlobalKey(), nowSec()); !ok || got != global.Entries[0] {
		t.Fatalf("global entry %+v, want %+v", got, global.Entries[0])
	}
	// And it follows the feed on.
	later := JTIKey("later")
	commit(t, w, Change{Puts: []Put{{Key: later, TTL: time.Hour}}})
	waitFor(t, "the replica to follow the feed", func() bool {
		return dl.Check(&Identity{JTI: later}, nowSec()) == BlockedJTI
	})

	// The exact replica's snapshot is read by an exact replica.
	e2 := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1})
	current(t, e2)
	if got := loadedFrom(e2); got != "snapshot" {
		t.Fatalf("exact replica loaded from %q, want its snapshot", got)
	}
	if got := e2.Denylist().Check(&Identity{Token: after}, nowSec()); got != BlockedToken {
		t.Fatalf("exact replica: %v", got)
	}
}

// A revocation committed while a compact replica loads the snapshot
// (after it read the last chunk) is in its copy before the copy is called
// current: the feed is read from the snapshot's position first.
func TestCompactSnapshotConfirmsOnlyAfterTheFeed(t *testing.T) {
	srv := testredis.Start(t)
	proxy := testredis.NewProxy(t, srv.Addr())
	ctx := context.Background()
	w := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1, Compact: true})
	current(t, w)
	commitCsnap(t, w, 0, 3000, nowSec())
	current(t, w)
	if err := w.writeCompactSnapshot(ctx, nil); err != nil {
		t.Fatal(err)
	}
	late := SessionKey("bob", "acknowledged-during-the-load")
	var committed atomic.Bool
	loader := NewRedisStore(RedisOptions{
		Client:        redis.NewClient(&redis.Options{Addr: proxy.Addr(), MaxRetries: 1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second}),
		SnapshotEvery: -1, Deferred: true, InitialLoad: -1, Logger: quiet, Compact: true,
		Block: 100 * time.Millisecond, IOTimeout: 500 * time.Millisecond,
	})
	t.Cleanup(func() { loader.Close() })
	loader.afterScan = func() {
		if committed.Swap(true) {
			return
		}
		commit(t, w, Change{Puts: []Put{{Key: late, TTL: time.Hour}}})
		proxy.Cut()
	}
	loader.Start()
	waitFor(t, "the snapshot's chunks read", committed.Load)
	has := func() bool { return loader.Denylist().liveLocally(late, nowSec()) }
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if loader.Staleness(time.Now()) < time.Minute && !has() {
			t.Fatal("the copy was confirmed current without a revocation acknowledged during the load")
		}
		time.Sleep(time.Millisecond)
	}
	if !loader.Health().Loaded || loadedFrom(loader) != "compact snapshot" {
		t.Fatalf("loaded %v from %q, want the compact snapshot", loader.Health().Loaded, loadedFrom(loader))
	}
	proxy.Restore()
	waitFor(t, "confirmed once the feed is read", func() bool { return loader.Staleness(time.Now()) < time.Minute })
	if !has() {
		t.Fatal("confirmed current without the revocation acknowledged during the load")
	}
	if got := loader.Denylist().Check(&Identity{Session: late}, nowSec()); got != BlockedSession {
		t.Fatalf("the late revocation: %v", got)
	}
}

// A compact snapshot that must not be used is not: past the feed, under
// another hash key, written after the reader's clock, too old for its
// expiries to read right, of another format, or with a chunk missing or
// cut short. The replica loads from the keys instead and misses nothing.
func TestCompactSnapshotNotUsed(t *testing.T) {
	const n = 2000
	header := func(t *testing.T, w *RedisStore, edit func(f []string)) {
		t.Helper()
		ctx := context.Background()
		v, err := w.client.Get(ctx, w.base+"csnap").Result()
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(v)
		edit(f)
		if err := w.client.Set(ctx, w.base+"csnap", strings.Join(f, " "), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	chunk := func(t *testing.T, w *RedisStore, edit func(key string) error) {
		t.Helper()
		h, err := w.readCompactHeader(context.Background())
		if err != nil || h == nil {
			t.Fatal(h, err)
		}
		if err := edit(w.base + "csnap:" + h.id + ":0"); err != nil {
			t.Fatal(err)
		}
	}
	shiftTime := func(d time.Duration) func(f []string) {
		return func(f []string) {
			ms, _ := strconv.ParseInt(f[5], 10, 64)
			f[5] = strconv.FormatInt(ms+d.Milliseconds(), 10)
		}
	}
	cases := []struct {
		name     string
		feedMax  int64
		hashKey  bool
		spoil    func(t *testing.T, w *RedisStore)
		wantWarn string
	}{
		{name: "past the feed", feedMax: 100, wantWarn: "no longer holds its position"},
		{name: "another hash key", hashKey: true, spoil: func(t *testing.T, w *RedisStore) {
			header(t, w, func(f []string) { f[7] = "0123456789abcdef" })
		}, wantWarn: "hash key fingerprint"},
		{name: "written after the reader's clock", spoil: func(t *testing.T, w *RedisStore) {
			header(t, w, shiftTime(time.Hour))
		}, wantWarn: "after this replica's clock"},
		{name: "too old", spoil: func(t *testing.T, w *RedisStore) {
			header(t, w, shiftTime(-43*24*time.Hour))
		}, wantWarn: "too long ago"},
		{name: "another format", spoil: func(t *testing.T, w *RedisStore) {
			header(t, w, func(f []string) { f[0] = "2" })
		}, wantWarn: "unknown format"},
		{name: "a chunk missing", spoil: func(t *testing.T, w *RedisStore) {
			chunk(t, w, func(key string) error { return w.client.Del(context.Background(), key).Err() })
		}, wantWarn: "compact denylist snapshot unusable"},
		{name: "a chunk cut short", spoil: func(t *testing.T, w *RedisStore) {
			chunk(t, w, func(key string) error {
				b, err := w.client.Get(context.Background(), key).Bytes()
				if err != nil {
					return err
				}
				return w.client.Set(context.Background(), key, b[:len(b)-4], 0).Err()
			})
		}, wantWarn: "compact denylist snapshot unusable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := testredis.Start(t)
			opts := RedisOptions{SnapshotEvery: -1, Compact: true, FeedMaxLen: tc.feedMax}
			if tc.hashKey {
				hk, err := NewHasher([]byte("a hash key of at least 32 bytes, shared"))
				if err != nil {
					t.Fatal(err)
				}
				opts.Hasher = hk
			}
			now := nowSec()
			w := csnapWriter(t, srv.Addr(), opts, n, now)
			if tc.feedMax > 0 {
				for i := n; i < n+400; i++ {
					commit(t, w, Change{Puts: []Put{csnapEntry(i, now)}})
				}
			} else {
				tc.spoil(t, w)
			}
			logs := &lockedBuilder{}
			opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
			opts.FeedMaxLen = 0
			r := openRedis(t, srv.Addr(), opts)
			current(t, r)
			if got := loadedFrom(r); got != "keys" {
				t.Fatalf("loaded from %q, want keys", got)
			}
			if !strings.Contains(logs.String(), tc.wantWarn) {
				t.Fatalf("the log does not say why (%q):\n%s", tc.wantWarn, logs)
			}
			total := n
			if tc.feedMax > 0 {
				total = n + 400
			}
			for i := range total {
				p := csnapEntry(i, now)
				if !r.Denylist().liveLocally(p.Key, nowSec()) && r.Denylist().shard(p.Key).cp.get(&p.Key, nowSec()) == 0 {
					t.Fatalf("entry %d not held", i)
				}
			}
		})
	}
}

// Replicas take turns at the compact snapshot as at the exact one, a
// compact replica leaves the exact snapshot alone, and a compact snapshot
// of another format is replaced.
func TestCompactSnapshotTurns(t *testing.T) {
	srv := testredis.Start(t)
	ctx := context.Background()
	a := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: time.Hour, Compact: true})
	b := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: time.Hour, Compact: true})
	current(t, a)
	current(t, b)
	commitCsnap(t, a, 0, 100, nowSec())
	current(t, a)
	if err := a.maybeSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := a.readCompactHeader(ctx)
	if err != nil || first == nil {
		t.Fatalf("no compact snapshot written: %v", err)
	}
	if err := b.maybeSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	second, err := b.readCompactHeader(ctx)
	if err != nil || second == nil || second.id != first.id {
		t.Fatalf("a fresh compact snapshot was replaced: %+v then %+v (%v)", first, second, err)
	}
	if exact, err := a.readSnapshotHeader(ctx); err != nil || exact != nil {
		t.Fatalf("a compact replica wrote an exact snapshot: %+v, %v", exact, err)
	}
	// A header of another format (another build's) is written over.
	if err := a.client.Set(ctx, a.base+"csnap", "2 of another build", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.maybeSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if third, err := a.readCompactHeader(ctx); err != nil || third == nil || third.id == first.id {
		t.Fatalf("a header of another format was not written over: %+v, %v", third, err)
	}
}

// lockedBuilder is a strings.Builder the store's goroutines may log to.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A stream opened before a compact replica's first load, with a
// credential the compact snapshot revokes, ends once the snapshot is
// installed, though its values name no key; one with a clean credential
// stays open.
func TestCompactSnapshotEndsOpenStreams(t *testing.T) {
	srv := testredis.Start(t)
	csnapWriter(t, srv.Addr(), RedisOptions{SnapshotEvery: -1, Compact: true}, 1000, nowSec())
	r := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1, Compact: true, Deferred: true})
	dl := r.Denylist()
	tr := NewTracker()
	dl.SetApplied(func(es []Entry) { tr.Applied(dl, es, nowSec()) })
	var ended, cleanEnded atomic.Bool
	tr.Add([]Identity{{Token: csnapEntry(3, 0).Key}}, func(Reason, int) { ended.Store(true) })
	tr.Add([]Identity{{Token: TokenKey("clean")}}, func(Reason, int) { cleanEnded.Store(true) })
	r.Start()
	current(t, r)
	if got := loadedFrom(r); got != "compact snapshot" {
		t.Fatalf("loaded from %q, want the compact snapshot", got)
	}
	if !ended.Load() {
		t.Fatal("a stream of a revoked token is still open after the compact snapshot's load")
	}
	if cleanEnded.Load() {
		t.Fatal("a clean stream was ended")
	}
}

// A compact snapshot larger than the memory budget leaves is not
// installed (it would be whole or not at all): the replica loads entry
// by entry, which holds what fits and counts the rest, and says why.
func TestCompactSnapshotOverTheBudget(t *testing.T) {
	srv := testredis.Start(t)
	csnapWriter(t, srv.Addr(), RedisOptions{SnapshotEvery: -1, Compact: true}, 1000, nowSec())
	logs := &lockedBuilder{}
	r := openRedis(t, srv.Addr(), RedisOptions{SnapshotEvery: -1, Compact: true, MemoryBudget: 1 << 20,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	waitFor(t, "the replica to load", func() bool { return r.Health().Loaded })
	if got := loadedFrom(r); got != "keys" {
		t.Fatalf("loaded from %q, want keys", got)
	}
	if !strings.Contains(logs.String(), "do not fit the memory budget") {
		t.Fatalf("the log does not say why:\n%s", logs)
	}
}
