package revocation

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
)

// fillLua writes ARGV[2] token entries numbered from ARGV[4] under the
// key base ARGV[1], expiring at ARGV[3], inside Redis in one call: what many replicas'
// revocations would have left there.
const fillLua = `
local base, n, exp, from = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
for i = from, from + n - 1 do
  redis.call('SET', base .. 't:' .. string.sub(redis.sha1hex(tostring(i)), 1, 30) .. '74', exp, 'EXAT', exp)
end
return n`

// usedMemory reads Redis's used_memory.
func usedMemory(b testing.TB, srv *testredis.Server) int64 {
	out, err := srv.Do("INFO", "memory")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatal("no used_memory in INFO")
	return 0
}

// BenchmarkRedisLoad is a replica's start at one million entries: from
// NewRedisStore to a local copy loaded in full and confirmed current, on
// a real redis-server, entry by entry (source=keys: the bucket layout
// commitScript writes; source=old-keys: one key per entry, as earlier
// versions wrote them) and from a snapshot (source=snapshot); and the
// Redis memory the entries take.
//
//	go test -run '^$' -bench RedisLoad -benchtime 3x ./revocation/
func BenchmarkRedisLoad(b *testing.B) {
	for _, n := range []int{1e6} {
		for _, source := range []string{"keys", "snapshot", "old-keys"} {
			b.Run(fmt.Sprintf("entries=%d/source=%s", n, source), func(b *testing.B) {
				srv := testredis.Start(b)
				mem0 := usedMemory(b, srv)
				if source == "old-keys" {
					exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
					for from := 1; from <= n; from += 100_000 {
						if out, err := srv.Do("EVAL", fillLua, "0", KeyBase("revocation:"), strconv.Itoa(min(100_000, n-from+1)), exp, strconv.Itoa(from)); err != nil {
							b.Fatalf("fill: %v %s", err, out)
						}
					}
				} else {
					w := NewRedisStore(RedisOptions{Client: redis.NewClient(&redis.Options{Addr: srv.Addr()}), SnapshotEvery: -1, Logger: quiet})
					commitMany(b, w, n)
					w.Close()
					w.dl.release()
				}
				perEntry := float64(usedMemory(b, srv)-mem0) / float64(n)
				open := func() *RedisStore {
					return NewRedisStore(RedisOptions{
						Client:        redis.NewClient(&redis.Options{Addr: srv.Addr()}),
						InitialLoad:   time.Minute,
						SnapshotEvery: -1,
						Logger:        quiet,
					})
				}
				want := "keys"
				if source == "snapshot" {
					want = source
					w := open()
					if err := w.writeSnapshot(context.Background()); err != nil {
						b.Fatal(err)
					}
					w.Close()
					w.dl.release()
					perEntry = float64(usedMemory(b, srv)-mem0) / float64(n)
				}
				for b.Loop() {
					start := time.Now()
					s := open()
					took := time.Since(start)
					s.mu.Lock()
					got := s.loadSource
					s.mu.Unlock()
					if got != want || s.Staleness(time.Now()) > time.Minute || s.Denylist().Len(KindToken) != int64(n) {
						b.Fatalf("not loaded in full from %s: %+v, from %s, %d entries", want, s.Health(), got, s.Denylist().Len(KindToken))
					}
					b.ReportMetric(took.Seconds(), "load-s")
					b.ReportMetric(perEntry, "redis-B/entry")
					s.Close()
					s.dl.release()
				}
			})
		}
	}
}

// BenchmarkRedisCommit is revocations into one real redis-server from one
// replica, 64 at a time (a storm): one jti each, as the admin API or an
// endpoint commits them. revocations/s is the figure of SPEC section 6.
func BenchmarkRedisCommit(b *testing.B) {
	srv := testredis.Start(b)
	s := NewRedisStore(RedisOptions{
		Client:        redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 64}),
		SnapshotEvery: -1,
		Logger:        quiet,
	})
	defer s.Close()
	var seq atomic.Int64
	b.SetParallelism(32) // × GOMAXPROCS committers
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			k := JTIKey("storm-" + strconv.FormatInt(seq.Add(1), 10))
			if _, err := s.Commit(ctx, Change{Puts: []Put{{Key: k, TTL: time.Hour}}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "revocations/s")
}
