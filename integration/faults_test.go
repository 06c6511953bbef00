package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

// The tests of this file inject the faults of issue 22 from outside (a
// Redis restarted empty, a Sentinel failover after replication lag, a
// replica cut off from Redis, a reload and a replica joining during a
// load, a replica killed during a bulk call) while a storm of revocations
// goes through the admin API. Every acknowledged (2xx) revocation is
// recorded, then probed at every running replica and at one started
// afterwards: none may be lost. While the storm runs, a prober sends
// the acknowledged ones to the replicas: none may get through once the
// feed has had propagationAllowance to bring it (a replica's own
// revocations are in its copy before it answers; the others learn them
// from the feed within milliseconds).

// propagationAllowance is how long after its acknowledgement a
// revocation made at one replica may still pass at another: the feed's
// ordinary delay, with room for a shared machine.
const propagationAllowance = 250 * time.Millisecond

// ack is one acknowledged revocation.
type ack struct {
	token string
	at    time.Time
}

// stormRun sends revocations (one exact token each) through the admin
// API of the replicas, in turn, at about rate per second, until stopped,
// and records the acknowledged ones; the others are counted by status.
type stormRun struct {
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	acks   []ack
	failed map[int]int
	// failedAt records when each failure was answered.
	failedAt []time.Time
}

func startStorm(t *testing.T, cs func() []*Caddy, rate int) *stormRun {
	t.Helper()
	s := &stormRun{stop: make(chan struct{}), failed: map[int]int{}}
	const workers = 4
	every := time.Duration(workers) * time.Second / time.Duration(rate)
	var n atomic.Int64
	for w := range workers {
		s.wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-s.stop:
					return
				case <-tick.C:
				}
				i := n.Add(1)
				replicas := cs()
				c := replicas[int(i)%len(replicas)]
				tok := testtoken.HS256(t, jwt.MapClaims{"sid": fmt.Sprintf("storm-%d-%d", w, i)})
				req, _ := http.NewRequest("POST", "http://"+c.Admin+"/revocation/revoke", strings.NewReader(fmt.Sprintf(`{"token":%q}`, tok)))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				status := 0
				if err == nil {
					status = resp.StatusCode
					resp.Body.Close()
				}
				s.mu.Lock()
				if status == http.StatusOK {
					s.acks = append(s.acks, ack{tok, time.Now()})
				} else {
					s.failed[status]++
					s.failedAt = append(s.failedAt, time.Now())
				}
				s.mu.Unlock()
			}
		})
	}
	return s
}

// finish stops the storm and returns the acknowledged revocations.
func (s *stormRun) finish() []ack {
	close(s.stop)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ack(nil), s.acks...)
}

// snapshot returns the revocations acknowledged so far.
func (s *stormRun) snapshot() []ack {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ack(nil), s.acks...)
}

// leakProbe sends, until stopped, revocations acknowledged more than
// propagationAllowance ago to every replica, and records every one that
// got through (2xx), with how long after its acknowledgement.
type leakProbe struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	leaks []string
	sent  atomic.Int64
}

func startLeakProbe(storm *stormRun, cs func() []*Caddy) *leakProbe {
	lp := &leakProbe{stop: make(chan struct{})}
	lp.wg.Go(func() {
		pollers := map[string]*poller{}
		for n := 0; ; n++ {
			select {
			case <-lp.stop:
				return
			default:
			}
			acks := storm.snapshot()
			cutoff := time.Now().Add(-propagationAllowance)
			// The newest old-enough ones, where a load's gap would be.
			var old []ack
			for i := len(acks) - 1; i >= 0 && len(old) < 20; i-- {
				if acks[i].at.Before(cutoff) {
					old = append(old, acks[i])
				}
			}
			if len(old) == 0 {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			for i, c := range cs() {
				p := pollers[c.URL]
				if p == nil {
					p = newPoller(c)
					pollers[c.URL] = p
				}
				a := old[n%len(old)]
				sent := time.Now()
				st, err := p.status(a.token)
				lp.sent.Add(1)
				if err == nil && st < 300 {
					lp.mu.Lock()
					lp.leaks = append(lp.leaks, fmt.Sprintf("replica %d (%s): %d for a revocation acknowledged %v before", i, c.URL, st, sent.Sub(a.at).Round(time.Millisecond)))
					lp.mu.Unlock()
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	return lp
}

func (lp *leakProbe) finish(t *testing.T) {
	t.Helper()
	close(lp.stop)
	lp.wg.Wait()
	if lp.sent.Load() == 0 {
		t.Fatal("the leak probe sent nothing")
	}
	if len(lp.leaks) > 0 {
		t.Fatalf("%d acknowledged revocations let through (of %d probes): %s", len(lp.leaks), lp.sent.Load(), strings.Join(lp.leaks[:min(len(lp.leaks), 10)], "; "))
	}
	t.Logf("leak probe: %d probes, none let through", lp.sent.Load())
}

// expectNoneLost probes every acknowledged revocation at every replica
// until each answers 401 (the feed may still be bringing the last ones),
// and fails with the count of those never blocked.
func expectNoneLost(t *testing.T, what string, cs []*Caddy, acks []ack) {
	t.Helper()
	if len(acks) == 0 {
		t.Fatalf("%s: no revocation was acknowledged", what)
	}
	for i, c := range cs {
		p := newPoller(c)
		pending := acks
		deadline := time.Now().Add(15 * time.Second)
		for len(pending) > 0 && time.Now().Before(deadline) {
			var still []ack
			for _, a := range pending {
				if st, err := p.status(a.token); err != nil || st != http.StatusUnauthorized {
					still = append(still, a)
				}
			}
			pending = still
			if len(pending) > 0 {
				time.Sleep(100 * time.Millisecond)
			}
		}
		if len(pending) > 0 {
			st, _ := p.status(pending[0].token)
			t.Fatalf("%s: %d of %d acknowledged revocations lost at replica %d (the first answers %d)\n%s", what, len(pending), len(acks), i, st, c.Logs())
		}
	}
	t.Logf("%s: %d acknowledged revocations, every one blocked at %d replicas", what, len(acks), len(cs))
}

// Row 3: Redis restarted without persistence in the middle of a storm.
// The replicas that were running hold every acknowledged revocation and
// write back those Redis lost; a replica started afterwards blocks all
// of them.
func TestFaultRedisRestartedEmpty(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	up := StartUpstream(t)
	config := basicConfig("redis "+srv.URL(), up, "snapshot_every off")
	cs := startReplicas(t, 2, config)
	list := func() []*Caddy { return cs }
	storm := startStorm(t, list, 300)
	calm := sampleStale(cs[1])
	time.Sleep(1500 * time.Millisecond)
	calmMax := calm.finish()
	hiccup := sampleStale(cs[1])
	srv.Restart()
	time.Sleep(1500 * time.Millisecond)
	acks := storm.finish()
	t.Logf("storm: %d acknowledged, failures by status %v; the longest a replica went unconfirmed: %v during the storm, %v across the Redis restart",
		len(acks), storm.failed, calmMax.Round(time.Millisecond), hiccup.finish().Round(time.Millisecond))
	for i, c := range cs {
		Eventually(t, fmt.Sprintf("replica %d healed Redis", i), func() bool { return logCount(c, "denylist healed") >= 1 })
	}
	late := StartCaddy(t, config)
	late.WaitReady()
	expectNoneLost(t, "Redis restarted empty", append(cs, late), acks)
}

// Row 1: a replica joins, and another is reloaded with a changed store
// setting, while a storm runs and the full load goes key by key (no
// snapshot) over 20 000 entries. No acknowledged revocation
// gets through at any replica past the feed's ordinary delay, and none
// is lost; the reloaded replica carries its copy over instead of
// loading again.
func TestFaultJoinAndReloadDuringStorm(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	up := StartUpstream(t)
	config := basicConfig("redis "+srv.URL(), up, "snapshot_every off")
	a := StartCaddy(t, config)
	a.WaitReady()
	for part := range 2 {
		var bulk []string
		for i := range 10000 {
			bulk = append(bulk, fmt.Sprintf(`{"jti":"prefill-%d-%d","expires":"1h"}`, part, i))
		}
		adminRevoke(t, a, "["+strings.Join(bulk, ",")+"]")
	}
	b := StartCaddy(t, config)
	b.WaitReady()

	var mu sync.Mutex
	running := []*Caddy{a, b}
	list := func() []*Caddy {
		mu.Lock()
		defer mu.Unlock()
		return append([]*Caddy(nil), running...)
	}
	storm := startStorm(t, func() []*Caddy { return []*Caddy{a} }, 300)
	probe := startLeakProbe(storm, list)
	time.Sleep(700 * time.Millisecond)

	// A replica joins (fail_closed: it answers 503 until it is current,
	// which the probe accepts), over a slow link: its load takes a
	// while, and so does its first read of the feed after it, so that a
	// copy called current before that read would miss the revocations
	// acknowledged during the load for long enough for the probe to see.
	slow := testredis.NewProxy(t, srv.Addr())
	slow.SetDelay(30 * time.Millisecond)
	c := StartCaddy(t, basicConfig("redis redis://"+slow.Addr(), up, "snapshot_every off"))
	mu.Lock()
	running = append(running, c)
	mu.Unlock()
	time.Sleep(700 * time.Millisecond)
	// A reload that changes a store setting: a new store on the same
	// Redis and prefix.
	b.Reload(basicConfig("redis "+srv.URL(), up, "snapshot_every off\n\t\tredis_timeout 3s"))
	time.Sleep(1500 * time.Millisecond)
	acks := storm.finish()
	probe.finish(t)
	t.Logf("storm: %d acknowledged, failures by status %v", len(acks), storm.failed)

	if n := logCount(b, msgLoaded); n != 1 {
		t.Fatalf("the reloaded replica loaded %d times, want once (the reload carries its copy over):\n%s", n, b.Logs())
	}
	if logCount(b, "denylist carried over") != 1 {
		t.Fatalf("the reload did not carry the copy over:\n%s", b.Logs())
	}
	late := StartCaddy(t, config)
	late.WaitReady()
	expectNoneLost(t, "join and reload during a storm", []*Caddy{a, b, c, late}, acks)
}

// Row 4: one replica cut off from Redis while another keeps revoking,
// first by a blackhole (nothing answers, nothing is refused), then by
// refused connections. The cut replica reports itself disconnected
// within its read bound, refuses token-bearing requests (fail_closed)
// once its copy is older than stale_after (default), and catches up
// when the network heals: every revocation acknowledged meanwhile is
// blocked there and at a replica started afterwards. The times are
// logged, as figures, not asserted beyond the stale_after bound.
func TestFaultReplicaPartitioned(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	up := StartUpstream(t)
	proxy := testredis.NewProxy(t, srv.Addr())
	config := basicConfig("redis "+srv.URL(), up, "")
	a := StartCaddy(t, config)
	a.WaitReady()
	p := StartCaddy(t, basicConfig("redis redis://"+proxy.Addr(), up, ""))
	p.WaitReady()
	good := testtoken.HS256(t, jwt.MapClaims{"sid": "partition-good"})

	var all []ack
	for _, mode := range []string{"blackhole", "refused"} {
		storm := startStorm(t, func() []*Caddy { return []*Caddy{a} }, 200)
		time.Sleep(500 * time.Millisecond)
		cut := time.Now()
		if mode == "blackhole" {
			proxy.Blackhole()
		} else {
			proxy.Cut()
		}
		var disconnected, refusing time.Duration
		var letThrough, probes int
		var worst time.Duration
		pp := newPoller(p)
		deadline := cut.Add(15 * time.Second)
		for (disconnected == 0 || refusing == 0) && time.Now().Before(deadline) {
			if disconnected == 0 && !storeConnected(t, p) {
				disconnected = time.Since(cut)
			}
			if refusing == 0 {
				if st, err := pp.status(good); err == nil && st == http.StatusServiceUnavailable {
					refusing = time.Since(cut)
				}
			}
			// Revocations acknowledged at a during the cut: p cannot know
			// them; count those it lets through until it refuses.
			for _, ack := range storm.snapshot() {
				if ack.at.After(cut) && time.Since(ack.at) > propagationAllowance {
					probes++
					if st, err := pp.status(ack.token); err == nil && st < 300 {
						letThrough++
						worst = max(worst, time.Since(cut))
					}
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		if disconnected == 0 || refusing == 0 {
			t.Fatalf("%s: after 15s, disconnected after %v, refusing after %v (0: never)", mode, disconnected, refusing)
		}
		if refusing > 5*time.Second+time.Second {
			t.Fatalf("%s: the cut replica trusted its copy for %v, past stale_after (5s) and a second", mode, refusing)
		}
		if st, _ := p.AdminDo("GET", "/revocation/ready", ""); st != http.StatusServiceUnavailable {
			t.Fatalf("%s: a stale fail_closed replica reports ready (%d)", mode, st)
		}
		healed := time.Now()
		proxy.Restore()
		p.WaitReady()
		caughtUp := time.Since(healed)
		acks := storm.finish()
		t.Logf("%s: connected=false after %v, 503 after %v; %d of %d probes of revocations made during the cut let through, the last %v after the cut; ready again %v after the network healed; %d acknowledged",
			mode, disconnected.Round(time.Millisecond), refusing.Round(time.Millisecond), letThrough, probes, worst.Round(time.Millisecond), caughtUp.Round(time.Millisecond), len(acks))
		expectNoneLost(t, mode+", after the network healed", []*Caddy{a, p}, acks)
		all = append(all, acks...)
	}
	late := StartCaddy(t, config)
	late.WaitReady()
	ExpectStatus(t, "a valid token at a replica started afterwards", Get(t, late.URL+"/orders", good), http.StatusOK)
	expectNoneLost(t, "both cuts, at a replica started afterwards", []*Caddy{late}, all)
}

// staleSampler polls /revocation/status of a replica every 20 ms and
// keeps the largest stale_seconds seen: how far an ordinary hiccup
// pushes a healthy replica towards stale_after.
type staleSampler struct {
	stop chan struct{}
	done chan struct{}
	max  float64
}

func sampleStale(c *Caddy) *staleSampler {
	s := &staleSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			_, body := c.AdminDo("GET", "/revocation/status", "")
			var out struct {
				Stores []struct {
					Stale float64 `json:"stale_seconds"`
				} `json:"stores"`
			}
			if json.Unmarshal([]byte(body), &out) == nil && len(out.Stores) > 0 {
				s.max = max(s.max, out.Stores[0].Stale)
			}
		}
	}()
	return s
}

func (s *staleSampler) finish() time.Duration {
	close(s.stop)
	<-s.done
	return time.Duration(s.max * float64(time.Second))
}

// storeConnected reads "connected" of the first store in
// /revocation/status.
func storeConnected(t *testing.T, c *Caddy) bool {
	t.Helper()
	st, body := c.AdminDo("GET", "/revocation/status", "")
	if st != http.StatusOK && st != http.StatusServiceUnavailable {
		t.Fatalf("status: %d %s", st, body)
	}
	var out struct {
		Stores []struct {
			Connected bool `json:"connected"`
		} `json:"stores"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || len(out.Stores) == 0 {
		t.Fatalf("status %s: %v", body, err)
	}
	return out.Stores[0].Connected
}

// Row 5: a replica SIGKILLed during a 10 000-entry bulk call. The client
// gets no answer; the call sent again, whole, to another replica
// applies everything (applying a revocation again changes nothing), and
// every entry is blocked everywhere, at a replica started afterwards too.
func TestFaultReplicaKilledDuringBulk(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	up := StartUpstream(t)
	config := basicConfig("redis "+srv.URL(), up, "")
	cs := startReplicas(t, 2, config)
	var orders []string
	var toks []string
	for i := range 10000 {
		if i%500 == 0 {
			tok := testtoken.HS256(t, jwt.MapClaims{"sid": fmt.Sprintf("bulk-%d", i)})
			toks = append(toks, tok)
			orders = append(orders, fmt.Sprintf(`{"token":%q}`, tok))
			continue
		}
		orders = append(orders, fmt.Sprintf(`{"jti":"bulk-%d","expires":"1h"}`, i))
	}
	body := "[" + strings.Join(orders, ",") + "]"
	done := make(chan struct{})
	go func() {
		defer close(done)
		st, resp := cs[0].AdminDo("POST", "/revocation/revoke", body)
		t.Logf("the bulk call at the killed replica: %d %.200s", st, resp)
	}()
	time.Sleep(30 * time.Millisecond)
	cs[0].Kill()
	<-done
	st, resp := cs[1].AdminDo("POST", "/revocation/revoke", body)
	if st != http.StatusOK {
		t.Fatalf("the bulk call sent again: %d %s", st, resp)
	}
	var out struct {
		Applied int `json:"applied"`
	}
	if err := json.Unmarshal([]byte(resp), &out); err != nil || out.Applied != len(orders) {
		t.Fatalf("the bulk call sent again: %s (%v), want applied %d", resp, err, len(orders))
	}
	late := StartCaddy(t, config)
	late.WaitReady()
	for _, tok := range toks {
		expectAll(t, "a token of the bulk call", []*Caddy{cs[1], late}, tok, http.StatusUnauthorized)
	}
}

// Rows 2 and 6: a Sentinel failover (the master SIGKILLed) after a
// second of replication lag, during a storm: the replica is stopped
// (SIGSTOP) and its link dropped by the master (CLIENT KILL TYPE
// replica), so that what the master acknowledges meanwhile never leaves
// it; then the master is killed, the replica resumed, and the Sentinels
// promote it. Every acknowledged revocation is probed at every replica
// and at one started after the failover. The errors after the Sentinels
// name the new master are counted: a commit that cannot reach a master
// retries within redis_timeout.
//
// With redis_wait_replicas 1, a revocation is acknowledged only once the
// replica holds it: those made during the lag fail (503) and none
// acknowledged is lost with the master. With off, those acknowledged
// during the lag are lost from Redis in the failover; the replicas that
// hold them see that Redis went back in time and write them back, so
// the replica started afterwards blocks every one all the same.
func TestFaultSentinelFailoverAfterLag(t *testing.T) {
	t.Parallel()
	for _, wait := range []string{"1", "off"} {
		t.Run("wait "+wait, func(t *testing.T) {
			t.Parallel() // each has its own Sentinels, replicas and storm
			sentinelFailoverAfterLag(t, wait)
		})
	}
}

func sentinelFailoverAfterLag(t *testing.T, wait string) {
	sn := testredis.StartSentinel(t, 1, 3)
	up := StartUpstream(t)
	config := basicConfig(fmt.Sprintf("redis {\n\t\t\taddrs %s\n\t\t\tmaster_name %s\n\t\t}", strings.Join(sn.Addrs(), " "), sn.MasterName), up, "redis_wait_replicas "+wait)
	cs := startReplicas(t, 2, config)
	storm := startStorm(t, func() []*Caddy { return cs }, 200)
	time.Sleep(time.Second)

	replicaPID := serverPID(t, sn.Replicas[0])
	if err := syscall.Kill(replicaPID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Master.Do("CLIENT", "KILL", "TYPE", "replica"); err != nil {
		t.Fatal(err)
	}
	lagFrom := time.Now()
	time.Sleep(time.Second)
	old := sn.Master.Addr()
	stale := sampleStale(cs[0])
	killed := time.Now()
	sn.Master.Stop()
	if err := syscall.Kill(replicaPID, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.WaitFailover(old, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	named := time.Now()
	time.Sleep(2 * time.Second)
	acks := storm.finish()
	staleMax := stale.finish()

	storm.mu.Lock()
	var after []time.Duration
	for _, at := range storm.failedAt {
		if at.After(named) {
			after = append(after, at.Sub(named))
		}
	}
	storm.mu.Unlock()
	sort.Slice(after, func(i, j int) bool { return after[i] < after[j] })
	last := time.Duration(0)
	if len(after) > 0 {
		last = after[len(after)-1]
	}
	during := 0
	for _, a := range acks {
		if a.at.After(lagFrom) && a.at.Before(killed) {
			during++
		}
	}
	t.Logf("storm: %d acknowledged (%d during the lag), failures by status %v; the Sentinels named the new master %v after the kill; %d failures after that, the last %v after; a replica went unconfirmed for %v at most",
		len(acks), during, storm.failed, named.Sub(killed).Round(time.Millisecond), len(after), last.Round(time.Millisecond), staleMax.Round(time.Millisecond))
	if wait == "off" {
		if during == 0 {
			t.Fatal("nothing was acknowledged during the lag: the test shows nothing")
		}
		for i, c := range cs {
			Eventually(t, fmt.Sprintf("replica %d wrote back what Redis lost", i), func() bool { return logCount(c, "denylist healed") >= 1 })
		}
	}
	late := StartCaddy(t, config)
	late.WaitReady()
	expectNoneLost(t, "Sentinel failover after a second of lag", append(cs, late), acks)
}

// serverPID asks a redis-server for its process id.
func serverPID(t *testing.T, s *testredis.Server) int {
	t.Helper()
	out, err := s.Do("INFO", "server")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			if err == nil && pid != os.Getpid() {
				return pid
			}
		}
	}
	t.Fatalf("no process_id in INFO server: %s", out)
	return 0
}

// Row 5, the store's side: a bulk call that Redis cuts short (out of
// memory, noeviction) answers 503 with how many elements, from the
// first, were applied, how many it carried, and where to resend from;
// resending from there, once Redis has room, applies the rest, and every
// element is blocked.
func TestFaultBulkCutShortByTheStore(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t, "--maxmemory-policy", "noeviction")
	up := StartUpstream(t)
	c := StartCaddy(t, basicConfig("redis "+srv.URL(), up, ""))
	c.WaitReady()
	info, err := srv.Do("INFO", "memory")
	if err != nil {
		t.Fatal(err)
	}
	var used int
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			used, _ = strconv.Atoi(v)
		}
	}
	if used == 0 {
		t.Fatalf("no used_memory in %s", info)
	}
	if _, err := srv.Do("CONFIG", "SET", "maxmemory", strconv.Itoa(used+300_000)); err != nil {
		t.Fatal(err)
	}
	var orders, toks []string
	for i := range 10000 {
		tok := testtoken.HS256(t, jwt.MapClaims{"sid": fmt.Sprintf("cut-%d", i)})
		toks = append(toks, tok)
		orders = append(orders, fmt.Sprintf(`{"token":%q}`, tok))
	}
	st, body := c.AdminDo("POST", "/revocation/revoke", "["+strings.Join(orders, ",")+"]")
	var cut struct {
		Applied    int `json:"applied"`
		Orders     int `json:"orders"`
		ResendFrom int `json:"resend_from"`
	}
	if st != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &cut) != nil {
		t.Fatalf("a bulk call past maxmemory: %d %.300s, want 503 with what was applied", st, body)
	}
	if cut.Orders != len(orders) || cut.ResendFrom != cut.Applied || cut.Applied%500 != 0 || cut.Applied == 0 || cut.Applied >= len(orders) {
		t.Fatalf("a bulk call cut short answers %s: want whole batches of 500 applied, orders %d, resend_from = applied", body, len(orders))
	}
	for _, tok := range []string{toks[0], toks[cut.Applied-1]} {
		ExpectStatus(t, "an element applied before the cut", Get(t, c.URL+"/orders", tok), http.StatusUnauthorized)
	}
	if _, err := srv.Do("CONFIG", "SET", "maxmemory", "0"); err != nil {
		t.Fatal(err)
	}
	st, body = c.AdminDo("POST", "/revocation/revoke", "["+strings.Join(orders[cut.ResendFrom:], ",")+"]")
	if st != http.StatusOK {
		t.Fatalf("resending from %d: %d %s", cut.ResendFrom, st, body)
	}
	for i, tok := range toks {
		if i%100 == 0 {
			ExpectStatus(t, fmt.Sprintf("element %d after the resend", i), Get(t, c.URL+"/orders", tok), http.StatusUnauthorized)
		}
	}
	t.Logf("cut short after %d of %d elements; resent from %d", cut.Applied, len(orders), cut.ResendFrom)
}
