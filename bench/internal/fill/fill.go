// Package fill puts token entries in a Redis through the store's own
// commit path (revocation.RedisStore.Commit, in bulk changes), so that a
// benchmark's Redis holds what replicas' revocations would have left
// there, in the layout the store writes.
package fill

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// Options say what to fill.
type Options struct {
	// Addr is the Redis address (host:port).
	Addr string
	// KeyPrefix is the store's key prefix; "revocation:" when empty.
	KeyPrefix string
	// Entries is how many token entries to commit.
	Entries int
	// From is the index of the first entry ("fill-<From>"), so that a
	// Redis can be filled in steps (10M, then 20M more to 30M, ...).
	From int
	// Expires is the first expiry; entry i expires Spread*i/Entries later,
	// as tokens revoked over time would.
	Expires time.Time
	Spread  time.Duration
	// KeepFeed leaves the change feed that carried the entries; by
	// default it is deleted, as its retention would drop them after a
	// few minutes, and as a Redis filled by earlier replicas' would be.
	// (Trimming it empty instead would leave its last id out of the feed,
	// which makes a snapshot at that position unusable once anything is
	// added: not what a real feed, trimmed by age on XADD, looks like.)
	KeepFeed bool
}

// Stats is what the fill measured.
type Stats struct {
	Took time.Duration
	// RedisCPU is the CPU time Redis spent during the fill (user + sys).
	RedisCPU time.Duration
}

// Fill commits the entries, in changes of 2000 puts from 8 goroutines at
// once (the store batches them into script calls). Keys are SHA-256
// spread, as real ones are: revocation.TokenKey of "fill-<i>".
func Fill(ctx context.Context, o Options) (Stats, error) {
	if o.KeyPrefix == "" {
		o.KeyPrefix = "revocation:"
	}
	client := redis.NewClient(&redis.Options{Addr: o.Addr, PoolSize: 16})
	s := revocation.NewRedisStore(revocation.RedisOptions{
		Client:        client,
		KeyPrefix:     o.KeyPrefix,
		SnapshotEvery: -1,
		Deferred:      true, // commits only: no load, no feed reader
	})
	defer s.Close()
	probe := redis.NewClient(&redis.Options{Addr: o.Addr})
	defer probe.Close()
	cpu0, err := redisCPU(ctx, probe)
	if err != nil {
		return Stats{}, err
	}
	start := time.Now()
	const batch, workers = 2000, 8
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for from := range next {
				puts := make([]revocation.Put, 0, batch)
				for i := from; i < min(from+batch, o.Entries); i++ {
					exp := o.Expires.Add(time.Duration(int64(o.Spread) * int64(i) / int64(o.Entries)))
					puts = append(puts, revocation.Put{Key: revocation.TokenKey("fill-" + strconv.Itoa(o.From+i)), Expires: revocation.SecondsOf(exp)})
				}
				if _, err := s.Commit(ctx, revocation.Change{Puts: puts}); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	for from := 0; from < o.Entries && ctx.Err() == nil; from += batch {
		next <- from
	}
	close(next)
	wg.Wait()
	if first != nil {
		return Stats{}, fmt.Errorf("fill: %w", first)
	}
	st := Stats{Took: time.Since(start)}
	cpu1, err := redisCPU(ctx, probe)
	if err != nil {
		return st, err
	}
	st.RedisCPU = cpu1 - cpu0
	if !o.KeepFeed {
		if err := probe.Del(ctx, revocation.KeyBase(o.KeyPrefix)+"feed").Err(); err != nil {
			return st, fmt.Errorf("fill: delete the feed: %w", err)
		}
	}
	return st, nil
}

// redisCPU reads Redis's own CPU time (INFO cpu).
func redisCPU(ctx context.Context, c *redis.Client) (time.Duration, error) {
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO cpu: %w", err)
	}
	var total float64
	for _, field := range []string{"used_cpu_sys:", "used_cpu_user:"} {
		i := indexOf(info, field)
		if i < 0 {
			return 0, fmt.Errorf("redis INFO cpu: no %s", field)
		}
		v := info[i+len(field):]
		if j := indexOf(v, "\r"); j >= 0 {
			v = v[:j]
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("redis INFO cpu %s %q: %w", field, v, err)
		}
		total += f
	}
	return time.Duration(total * float64(time.Second)), nil
}

func indexOf(s, sub string) int { return strings.Index(s, sub) }
