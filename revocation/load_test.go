package revocation

import (
	"context"
	"encoding/binary"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
)

// fillRedis writes n token entries straight into Redis, as many
// replicas' revocations would have, in pipelined batches.
func fillRedis(t *testing.T, addr, prefix string, n int) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	base := KeyBase(prefix)
	exp := time.Now().Add(time.Hour).Unix()
	val := strconv.FormatInt(exp, 10)
	ctx := context.Background()
	for start := 0; start < n; start += 10000 {
		pipe := c.Pipeline()
		for i := start; i < min(start+10000, n); i++ {
			var k Key
			binary.BigEndian.PutUint64(k[:], uint64(i)+1)
			k[15] = byte(KindToken)
			pipe.Set(ctx, base+"t:"+k.String(), val, 0)
			pipe.ExpireAt(ctx, base+"t:"+k.String(), time.Unix(exp, 0))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("fill redis: %v", err)
		}
	}
}

// A store whose first load outlasts its initial wait returns at once,
// reports the load's progress, and finishes that same load: the wait is
// no deadline, nothing is aborted or started again, and nothing is
// reported unreachable.
func TestRedisLongLoadGoesOnInTheBackground(t *testing.T) {
	srv := testredis.Start(t)
	const n = 100_000
	fillRedis(t, srv.Addr(), "revocation:", n)

	var loads, downs atomic.Int32
	started := time.Now()
	s := openRedis(t, srv.Addr(), RedisOptions{
		InitialLoad: time.Millisecond,
		Hooks: Hooks{
			Reloaded:   func(int, time.Duration) { loads.Add(1) },
			Transition: func(up bool) { downs.Add(map[bool]int32{false: 1}[up]) },
		},
	})
	if d := time.Since(started); d > 500*time.Millisecond {
		t.Fatalf("NewRedisStore waited %v for a long load; want it to return after its initial wait", d)
	}
	sawProgress := false
	waitFor(t, "the first load to complete", func() bool {
		h := s.Health()
		if p := h.Load; p != nil && !h.Loaded {
			if (p.Expected != 0 && p.Expected < n) || p.Entries < 0 || p.Entries > n || p.Started.Before(started) {
				t.Fatalf("load progress %+v with %d entries in redis", p, n)
			}
			sawProgress = sawProgress || p.Entries > 0
		}
		return h.Loaded && s.Staleness(time.Now()) < time.Minute
	})
	t.Logf("loaded %d entries in %v", n, time.Since(started))
	if !sawProgress {
		t.Fatal("no progress reported while loading")
	}
	h := s.Health()
	if h.Load != nil || !h.Connected || h.LastError != "" {
		t.Fatalf("after the load: %+v", h)
	}
	if got := s.Denylist().Len(KindToken); got != n {
		t.Fatalf("loaded %d entries, want %d", got, n)
	}
	if loads.Load() != 1 || downs.Load() != 0 {
		t.Fatalf("%d full loads and %d transitions to down; want one load, never down", loads.Load(), downs.Load())
	}
}
