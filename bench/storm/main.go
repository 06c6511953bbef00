// Command storm measures, with the real binary, real redis-server and
// replicas on loopback, what issue 11 asks of the shared denylist:
//
//  1. revocations per second into one Redis through the admin API, in
//     bulk parts of 10,000 as the CLI sends them, from one replica and
//     from two at once, with Redis's CPU per revocation;
//  2. propagation from one replica to another (the time from the
//     revoking admin call's answer to the first 401 at the other
//     replica), at rest and during a storm of revocations at -rate;
//  3. a replica joining (start to GET /revocation/ready answering 200)
//     with -entries entries in Redis, at rest and during the storm.
//
// Every loop is bounded in count and in time. Processes are started on
// free loopback ports and stopped by PID.
//
//	go build -o bench/results/storm ./bench/storm
//	bench/results/storm -caddy ./caddy -entries 1000000 -rate 5000
//
// With -redis-replica, Redis has a replica and every revocation waits
// for it (WAIT) unless -wait off: the same run with -wait off and
// -wait auto gives what waiting costs.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-revocation/caddy-revocation/bench/internal/fill"
	"github.com/caddy-revocation/caddy-revocation/bench/internal/proc"
	"github.com/caddy-revocation/caddy-revocation/bench/internal/procstat"
)

const hmacSecret = "storm-secret-0123456789abcdef0123"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		os.Exit(1)
	}
}

type options struct {
	redisReplica bool
	wait         string
	snapEvery    string
	caddy        string
	entries      int
	rate         int
	samples      int
	bulkTotal    int
	bulkPart     int
	senders      int
	stormLimit   time.Duration
	snapWait     time.Duration
	joinAfter    time.Duration
	single       bool
	singles      int
	jsonOut      string
}

func run() error {
	var o options
	flag.StringVar(&o.caddy, "caddy", "./caddy", "caddy binary with the module (./xcaddy.sh builds ./caddy)")
	flag.IntVar(&o.entries, "entries", 1_000_000, "entries put in Redis before the replicas start")
	flag.IntVar(&o.rate, "rate", 5000, "storm: revocations per second through the admin API of the first replica")
	flag.IntVar(&o.samples, "samples", 200, "propagation samples at rest and during the storm")
	flag.IntVar(&o.bulkTotal, "bulk", 200_000, "revocations per throughput run (bulk admin API calls)")
	flag.IntVar(&o.bulkPart, "part", 10_000, "revocations per bulk admin API call")
	flag.IntVar(&o.senders, "senders", 4, "concurrent bulk calls per replica")
	flag.DurationVar(&o.stormLimit, "storm-limit", 120*time.Second, "longest the storm may last")
	flag.DurationVar(&o.joinAfter, "join-after", 30*time.Second, "storm time before the third replica joins (longer than the feed's cap of 100000 entries lasts at -rate, so the snapshot's position is trimmed away)")
	flag.BoolVar(&o.single, "single", false, "storm of single-revocation admin calls (64 at once) instead of one bulk call every 10 ms")
	flag.IntVar(&o.singles, "singles", 20_000, "revocations in the single-call throughput run (one admin call each, 64 at once)")
	flag.DurationVar(&o.snapWait, "snapshot-wait", 90*time.Second, "longest wait for the first snapshot")
	flag.StringVar(&o.jsonOut, "json", "", "also write the figures as JSON to this file")
	flag.BoolVar(&o.redisReplica, "redis-replica", false, "give Redis a replica (redis-server --replicaof), as a failover-ready deployment has")
	flag.StringVar(&o.wait, "wait", "", "redis_wait_replicas of the replicas: auto (the default), off or a number")
	flag.StringVar(&o.snapEvery, "snapshot-every", "", "snapshot_every of the replicas (default: the handler's, 1m)")
	flag.Parse()
	if _, err := exec.LookPath("redis-server"); err != nil {
		return errors.New("redis-server not found (on Debian: apt-get install -y redis-server)")
	}
	work, err := os.MkdirTemp("", "storm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	b := &bench{Group: proc.Group{Work: work}, o: o, figures: map[string]any{}}
	defer b.StopAll()
	if err := b.measure(); err != nil {
		return err
	}
	if o.jsonOut != "" {
		data, _ := json.MarshalIndent(b.figures, "", "  ")
		if err := os.WriteFile(o.jsonOut, append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", o.jsonOut, err)
		}
	}
	return nil
}

type bench struct {
	proc.Group
	o        options
	redis    *redis.Client
	redisPID int
	rport    int
	figures  map[string]any
}

func (b *bench) report(key, format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	fmt.Println(line)
	b.figures[key] = line
}

func (b *bench) measure() error {
	ctx := context.Background()
	if err := b.startRedis(ctx); err != nil {
		return err
	}
	if err := b.fill(ctx); err != nil {
		return err
	}
	a, took, err := b.startReplica("a")
	if err != nil {
		return err
	}
	b.report("first_replica_ready", "first replica: ready %.2f s after start, %d entries in Redis, loaded from: %s", took.Seconds(), b.o.entries, b.loadSource(a))
	fmt.Printf("waiting for the first snapshot (at most %s)...\n", b.o.snapWait)
	deadline := time.Now().Add(b.o.snapWait)
	for n := 0; ; n++ {
		if v, _ := b.redis.Exists(ctx, "revocation:{dl}:snap").Result(); v > 0 {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("no snapshot written in time")
		}
		time.Sleep(500 * time.Millisecond)
	}
	r, took, err := b.startReplica("b")
	if err != nil {
		return err
	}
	b.report("join_at_rest", "replica joining at rest: ready %.2f s after start (%d entries, a snapshot there), loaded from: %s", took.Seconds(), b.o.entries, b.loadSource(r))

	lat, err := b.propagation(a, r, b.o.samples, "rest")
	if err != nil {
		return err
	}
	b.reportLatencies("propagation_at_rest", "propagation at rest", lat)

	// The storm: revocations at -rate through the first replica's admin
	// API, in bulk calls every 10 ms, for as long as the measurements
	// during it take (at most -storm-limit).
	stormCtx, stopStorm := context.WithTimeout(ctx, b.o.stormLimit)
	defer stopStorm()
	st := &storm{}
	var stormDone sync.WaitGroup
	stormStart := time.Now()
	stormDone.Go(func() { st.run(stormCtx, a, b.o.rate, b.o.single) })
	time.Sleep(3 * time.Second) // let the feed fill
	lat, err = b.propagation(a, r, b.o.samples, "storm")
	if err != nil {
		return err
	}
	b.reportLatencies("propagation_storm", fmt.Sprintf("propagation during a %d/s storm", b.o.rate), lat)
	time.Sleep(time.Until(stormStart.Add(b.o.joinAfter)))
	feed, _ := b.redis.XLen(ctx, "revocation:{dl}:feed").Result()
	c, took, err := b.startReplica("c")
	if err != nil {
		return err
	}
	b.report("join_storm", "replica joining during the storm: ready %.2f s after start, %.0f s into the storm (%d entries before the storm, %d revoked by the storm so far, %d in the feed), loaded from: %s",
		took.Seconds(), time.Since(stormStart).Seconds()-took.Seconds(), b.o.entries, st.applied.Load(), feed, b.loadSource(c))
	time.Sleep(2 * time.Second) // the joined replica follows the storm
	stopStorm()
	stormDone.Wait()
	b.report("storm", "storm: %d revocations in %.1f s = %.0f/s through one replica's admin API, %s (target %d/s; %d late or failed)",
		st.applied.Load(), st.took.Seconds(), float64(st.applied.Load())/st.took.Seconds(), stormKind(b.o.single), b.o.rate, st.missed.Load())
	proc.Stop(c.Cmd)

	// Throughput into one Redis: bulk calls, as the CLI sends them, then
	// one revocation per call.
	for _, set := range [][]*proc.Replica{{a}, {a, r}} {
		if err := b.throughput(ctx, set); err != nil {
			return err
		}
	}
	return b.singleThroughput(ctx, a)
}

// singleThroughput sends o.singles revocations to r, one admin call each
// from 64 workers (at most 60 s), and reports revocations per second and
// the CPU time of Redis and of the replica per revocation.
func (b *bench) singleThroughput(ctx context.Context, r *proc.Replica) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	rcpu0, err := procstat.CPU(b.redisPID)
	if err != nil {
		return err
	}
	ccpu0, err := procstat.CPU(r.Cmd.Process.Pid)
	if err != nil {
		return err
	}
	var next, applied atomic.Int64
	var failed atomic.Value
	t0 := time.Now()
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(b.o.singles) && ctx.Err() == nil; i = next.Add(1) {
				if _, err := r.Revoke(ctx, client, []byte(`{"jti":"single-`+strconv.FormatInt(i, 10)+`","expires":"1h"}`)); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
				applied.Add(1)
			}
		})
	}
	wg.Wait()
	took := time.Since(t0)
	if err, ok := failed.Load().(error); ok {
		return err
	}
	rcpu1, err := procstat.CPU(b.redisPID)
	if err != nil {
		return err
	}
	ccpu1, err := procstat.CPU(r.Cmd.Process.Pid)
	if err != nil {
		return err
	}
	n := applied.Load()
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	b.report("revocations_per_s_single_calls",
		"revocations into one Redis through one replica's admin API, one per call, 64 calls at once: %d in %.2f s = %.0f/s; CPU per revocation: Redis %.1f µs, the replica %.1f µs",
		n, took.Seconds(), float64(n)/took.Seconds(), us(rcpu1-rcpu0), us(ccpu1-ccpu0))
	return nil
}

func stormKind(single bool) string {
	if single {
		return "one revocation per call, 64 calls at once"
	}
	return "one bulk call every 10 ms"
}

func (b *bench) reportLatencies(key, what string, lat []time.Duration) {
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.report(key, "%s: %d samples, p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms",
		what, len(lat), ms(proc.Pct(lat, 0.5)), ms(proc.Pct(lat, 0.9)), ms(proc.Pct(lat, 0.99)), ms(lat[len(lat)-1]))
}

func (b *bench) startRedis(ctx context.Context) error {
	port, cmd, err := b.Redis("")
	if err != nil {
		return err
	}
	b.rport, b.redisPID = port, cmd.Process.Pid
	b.redis = redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	return b.startRedisReplica(ctx)
}

// startRedisReplica starts, with -redis-replica, a replica of Redis and
// waits until it is in sync: the commits then wait for it (WAIT) unless
// -wait off.
func (b *bench) startRedisReplica(ctx context.Context) error {
	if !b.o.redisReplica {
		return nil
	}
	dir := filepath.Join(b.Work, "replica")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	port, _, err := b.Redis(dir, "--repl-diskless-sync-delay", "0", "--replicaof", "127.0.0.1", strconv.Itoa(b.rport))
	if err != nil {
		return err
	}
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	defer rc.Close()
	for i := 0; i < 400; i++ {
		if info, err := rc.Info(ctx, "replication").Result(); err == nil && strings.Contains(info, "master_link_status:up") {
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return errors.New("the Redis replica never came in sync")
}

// fill puts o.entries token entries in Redis through the store's own
// commit path, as bench/startup.sh does: SHA-256-spread keys, as real
// ones are, expiring over the hour after the next.
func (b *bench) fill(ctx context.Context) error {
	_, err := fill.Fill(ctx, fill.Options{
		Addr:    "127.0.0.1:" + strconv.Itoa(b.rport),
		Entries: b.o.entries,
		Expires: time.Now().Add(time.Hour),
		Spread:  time.Hour,
	})
	if err != nil {
		return fmt.Errorf("fill redis: %w", err)
	}
	return nil
}

// startReplica starts a caddy replica and returns once it is ready, with
// the time from its start.
func (b *bench) startReplica(name string) (*proc.Replica, time.Duration, error) {
	opts := ""
	if b.o.wait != "" {
		opts = "\n\t\tredis_wait_replicas " + b.o.wait
	}
	if b.o.snapEvery != "" {
		opts += "\n\t\tsnapshot_every " + b.o.snapEvery
	}
	return b.Caddy(b.o.caddy, name, func(admin, site int) string {
		return fmt.Sprintf(`{
	admin 127.0.0.1:%d
}
:%d {
	bind 127.0.0.1
	revocation {
		redis redis://127.0.0.1:%d%s
		jwt {
			hmac_secret %s
		}
	}
	respond "ok"
}
`, admin, site, b.rport, opts, hmacSecret)
	}, 120*time.Second)
}

// loadSource reads from a replica's log where its first load came from
// ("snapshot" or "keys"), as the store logs it.
func (b *bench) loadSource(r *proc.Replica) string {
	log, _ := os.ReadFile(r.Log)
	m := sourceRe.FindSubmatch(log)
	if m == nil {
		return "?"
	}
	return string(m[1])
}

var sourceRe = regexp.MustCompile(`"source":"([a-z_]*)"`)

var client = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64},
}

func status(r *proc.Replica, token string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+r.Addr+"/", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func token(jti string) (string, error) {
	now := time.Now()
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "storm-user", "jti": jti, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}).SignedString([]byte(hmacSecret))
}

// propagation revokes n tokens, one after another, through from's admin
// API and measures, for each, the time from the call's answer to the
// first 401 answered by to (polled without pause; at most 5 s each).
func (b *bench) propagation(from, to *proc.Replica, n int, tag string) ([]time.Duration, error) {
	var lat []time.Duration
	for i := range n {
		jti := fmt.Sprintf("prop-%s-%d", tag, i)
		tok, err := token(jti)
		if err != nil {
			return nil, err
		}
		if st, err := status(to, tok); err != nil || st != http.StatusOK {
			return nil, fmt.Errorf("%s before revoking: %d %v", jti, st, err)
		}
		if _, err := from.Revoke(context.Background(), client, []byte(`{"jti":"`+jti+`","expires":"1h"}`)); err != nil {
			return nil, err
		}
		answered := time.Now()
		for {
			st, err := status(to, tok)
			if err != nil {
				return nil, err
			}
			if st == http.StatusUnauthorized {
				lat = append(lat, time.Since(answered))
				break
			}
			if st != http.StatusOK {
				return nil, fmt.Errorf("%s: status %d while waiting", jti, st)
			}
			if time.Since(answered) > 5*time.Second {
				return nil, fmt.Errorf("%s: not blocked at %s after 5 s", jti, to.Name)
			}
		}
	}
	return lat, nil
}

type storm struct {
	applied atomic.Int64
	missed  atomic.Int64
	took    time.Duration
}

// run sends rate revocations per second, every 10 ms, until ctx ends:
// as one bulk call, at most four in flight (a tick with four in flight
// counts as missed), or, single, as one call each from 64 workers (a
// revocation that finds a backlog of 1000 counts as missed).
func (s *storm) run(ctx context.Context, r *proc.Replica, rate int, single bool) {
	per := max(1, rate/100)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	t0 := time.Now()
	defer func() { wg.Wait(); s.took = time.Since(t0) }()
	if single {
		jobs := make(chan string, 1000)
		defer close(jobs)
		for range 64 {
			wg.Go(func() {
				for jti := range jobs {
					if _, err := r.Revoke(context.WithoutCancel(ctx), client, []byte(`{"jti":"`+jti+`","expires":"1h"}`)); err != nil {
						s.missed.Add(1)
						continue
					}
					s.applied.Add(1)
				}
			})
		}
		for seq := 0; ; seq++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for i := range per {
				select {
				case jobs <- fmt.Sprintf("storm-%d-%d", seq, i):
				default:
					s.missed.Add(1)
				}
			}
		}
	}
	for seq := 0; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			s.missed.Add(1)
			continue
		}
		var body strings.Builder
		body.WriteByte('[')
		for i := range per {
			if i > 0 {
				body.WriteByte(',')
			}
			fmt.Fprintf(&body, `{"jti":"storm-%d-%d","expires":"1h"}`, seq, i)
		}
		body.WriteByte(']')
		wg.Go(func() {
			defer func() { <-sem }()
			n, err := r.Revoke(context.WithoutCancel(ctx), client, []byte(body.String()))
			if err != nil {
				s.missed.Add(1)
				return
			}
			s.applied.Add(int64(n))
		})
	}
}

// throughput sends o.bulkTotal revocations to each replica of set, in
// bulk calls of o.bulkPart with o.senders at once per replica, and
// reports revocations per second and Redis CPU per revocation.
func (b *bench) throughput(ctx context.Context, set []*proc.Replica) error {
	cpu0, err := procstat.CPU(b.redisPID)
	if err != nil {
		return err
	}
	var applied atomic.Int64
	errs := make(chan error, len(set)*b.o.senders)
	t0 := time.Now()
	var wg sync.WaitGroup
	for ri, r := range set {
		parts := make(chan int, b.o.bulkTotal/b.o.bulkPart+1)
		for p := 0; p*b.o.bulkPart < b.o.bulkTotal; p++ {
			parts <- p
		}
		close(parts)
		for range b.o.senders {
			wg.Go(func() {
				for p := range parts {
					var body strings.Builder
					body.WriteByte('[')
					for i := range min(b.o.bulkPart, b.o.bulkTotal-p*b.o.bulkPart) {
						if i > 0 {
							body.WriteByte(',')
						}
						fmt.Fprintf(&body, `{"jti":"bulk-%d-%d-%d-%d","expires":"1h"}`, len(set), ri, p, i)
					}
					body.WriteByte(']')
					n, err := r.Revoke(ctx, client, []byte(body.String()))
					if err != nil {
						errs <- err
						return
					}
					applied.Add(int64(n))
				}
			})
		}
	}
	wg.Wait()
	took := time.Since(t0)
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	cpu1, err := procstat.CPU(b.redisPID)
	if err != nil {
		return err
	}
	n := applied.Load()
	b.report(fmt.Sprintf("revocations_per_s_%d_replicas", len(set)),
		"revocations into one Redis through %d replica(s)' admin API, bulk calls of %d, %d at once each: %d in %.2f s = %.0f/s; Redis CPU %.1f µs per revocation",
		len(set), b.o.bulkPart, b.o.senders, n, took.Seconds(), float64(n)/took.Seconds(), float64((cpu1-cpu0).Microseconds())/float64(n))
	return nil
}
