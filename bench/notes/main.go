// Command notes measures what the session notes (the sessions in use that
// a subject revocation reads) cost in Redis: n active subjects, each with
// -sessions live sessions, noted through the store's own NoteSession
// path, as the proxy notes every verified token with a subject and a
// session. It prints Redis's used_memory growth per active session and
// per active subject, beside the bytes of one plain entry measured in the
// same run (the entries' bound), on a Redis it is given (empty, or with
// other key prefixes only).
//
//	go run ./bench/notes -addr 127.0.0.1:6379 -n 1000000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-revocation/caddy-revocation/bench/internal/fill"
	"github.com/caddy-revocation/caddy-revocation/revocation"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6379", "redis address")
	n := flag.Int("n", 1_000_000, "active subjects")
	per := flag.Int("sessions", 1, "live sessions per subject")
	entries := flag.Int("entries", 1_000_000, "plain entries to measure beside them (0: none)")
	flag.Parse()
	if err := run(*addr, *n, *per, *entries); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func usedMemory(ctx context.Context, c *redis.Client) (int64, error) {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no used_memory in INFO")
}

// countNotes counts the notes in either layout: one sorted set per
// subject (earlier versions), or the fields of the shared note shards.
func countNotes(ctx context.Context, c *redis.Client, base string) (int64, error) {
	var got int64
	iter := c.Scan(ctx, 0, base+"seen:*", 10000).Iterator()
	for iter.Next(ctx) {
		got++
	}
	shards := c.Scan(ctx, 0, base+"n:*", 10000).Iterator()
	for shards.Next(ctx) {
		n, err := c.HLen(ctx, shards.Val()).Result()
		if err != nil {
			return 0, err
		}
		got += n
	}
	if err := iter.Err(); err != nil {
		return 0, err
	}
	return got, shards.Err()
}

// redisCPU returns the CPU time Redis has used (user and system).
func redisCPU(ctx context.Context, c *redis.Client) (time.Duration, error) {
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, err
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		for _, k := range []string{"used_cpu_sys:", "used_cpu_user:"} {
			if v, ok := strings.CutPrefix(line, k); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return 0, err
				}
				total += f
			}
		}
	}
	return time.Duration(total * float64(time.Second)), nil
}

func run(addr string, n, per, entries int) error {
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	const prefix = "notes-bench:"
	base := revocation.KeyBase(prefix)
	before, err := usedMemory(ctx, c)
	if err != nil {
		return err
	}
	s := revocation.NewRedisStore(revocation.RedisOptions{
		Client: redis.NewClient(&redis.Options{Addr: addr}), KeyPrefix: prefix,
		SnapshotEvery: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	defer s.Close()
	keys0, err := c.DBSize(ctx).Result()
	if err != nil {
		return err
	}
	cpu0, err := redisCPU(ctx, c)
	if err != nil {
		return err
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		sub := "user-" + strconv.Itoa(i)
		for j := 0; j < per; j++ {
			s.NoteSession(revocation.SubjectKey(sub), revocation.SessionKey(sub, "s-"+strconv.Itoa(j)), 720*time.Hour)
		}
		if (i+1)%1000 == 0 {
			// The note queue drops what it cannot hold (a proxy never
			// notes a million new subjects at once): keep within it.
			for stall := time.Now().Add(2 * time.Second); time.Now().Before(stall); {
				// Written so far: one key per subject (earlier versions),
				// or the count in the note shards' state.
				k, err := c.DBSize(ctx).Result()
				if err != nil {
					return err
				}
				done := k - keys0
				if v, err := c.Get(ctx, base+"n").Result(); err == nil {
					var L, p int64
					fmt.Sscanf(v, "%d %d %d", &L, &p, &done)
				}
				if done+2000 >= int64(i+1) {
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	want := int64(n)
	for deadline := time.Now().Add(time.Minute); ; {
		got, err := countNotes(ctx, c, base)
		if err != nil {
			return err
		}
		if got >= want || time.Now().After(deadline) {
			if got < want*95/100 {
				return fmt.Errorf("only %d of %d subjects noted", got, want)
			}
			n = int(got) // the queue dropped a few: count what is there
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(start)
	cpu1, err := redisCPU(ctx, c)
	if err != nil {
		return err
	}
	after, err := usedMemory(ctx, c)
	if err != nil {
		return err
	}
	sample, _ := c.MemoryUsage(ctx, base+"seen:"+revocation.SubjectKey("user-0").String()).Result()
	if sample == 0 {
		sample, _ = c.MemoryUsage(ctx, base+"n:0").Result()
	}
	grew := after - before
	fmt.Printf("%s notes: %d subjects x %d sessions in %.1f s, %.1f µs of Redis CPU per note (polling included): used_memory +%d B: %.1f B per active session, %.1f B per active subject (MEMORY USAGE of one set or shard: %d B)\n",
		time.Now().UTC().Format("2006-01-02"), n, per, took.Seconds(), float64((cpu1-cpu0).Microseconds())/float64(n*per), grew, float64(grew)/float64(n*per), float64(grew)/float64(n), sample)
	if entries > 0 {
		before = after
		if _, err := fill.Fill(ctx, fill.Options{Addr: addr, KeyPrefix: prefix, Entries: entries, Expires: time.Now().Add(time.Hour), Spread: time.Hour}); err != nil {
			return err
		}
		after, err = usedMemory(ctx, c)
		if err != nil {
			return err
		}
		fmt.Printf("entries: %d plain entries: used_memory +%d B: %.1f B per entry\n", entries, after-before, float64(after-before)/float64(entries))
	}
	return nil
}
