package integration

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

// traffic keeps requests flowing to replicas in the background and
// records any revoked token that got through.
type traffic struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	requests atomic.Int64
	mu       sync.Mutex
	leaks    []string
}

// startTraffic sends, until stopped (or for a minute at most), requests
// carrying each revoked token and each good one to every replica. A
// revoked token must never get a 2xx.
func startTraffic(cs []*Caddy, revoked, good []string) *traffic {
	tr := &traffic{stop: make(chan struct{})}
	for i, c := range cs {
		p := newPoller(c)
		tr.wg.Go(func() {
			deadline := time.Now().Add(time.Minute)
			for n := 0; time.Now().Before(deadline); n++ {
				select {
				case <-tr.stop:
					return
				default:
				}
				tok := revoked[n%len(revoked)]
				if st, err := p.status(tok); err == nil && st < 300 {
					tr.mu.Lock()
					tr.leaks = append(tr.leaks, fmt.Sprintf("replica %d: revoked token %d answered %d", i, n%len(revoked), st))
					tr.mu.Unlock()
				}
				_, _ = p.status(good[n%len(good)])
				tr.requests.Add(2)
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	return tr
}

// finish stops the traffic and fails the test if a revoked token passed.
func (tr *traffic) finish(t *testing.T) {
	t.Helper()
	close(tr.stop)
	tr.wg.Wait()
	if len(tr.leaks) > 0 {
		t.Fatalf("revoked tokens got through: %s", strings.Join(tr.leaks, "; "))
	}
	if tr.requests.Load() == 0 {
		t.Fatal("no background traffic was sent")
	}
}

// endpointFailures calls the four endpoints at a replica whose store is
// down, and checks that each answers its own dialect's 500: a revocation
// that could not be stored is never reported as done.
func endpointFailures(t *testing.T, c *Caddy, bearer, refresh string) {
	t.Helper()
	auth := []string{"Authorization", "Bearer " + bearer}
	cases := []struct {
		name, method, path, body string
		headers                  []string
		keys                     []string // the dialect's error fields
	}{
		{"seed 000 revoke_refresh", "POST", "/v1/session/revoke", "", []string{"Cookie", "__Host-refresh_demo=" + refresh}, []string{"code", "type"}},
		{"seed 001 revoke_sessions", "POST", "/v1/session/me/revoke?target=mine", "", auth, []string{"code", "type"}},
		{"seed 002 invalidate_session", "DELETE", "/v1/auth/session", "", auth, []string{"error", "message"}},
		{"seed 003 logout", "POST", "/v1/auth/logout", "", auth, []string{"code", "message"}},
	}
	for _, tc := range cases {
		r := Do(t, tc.method, c.URL+tc.path, tc.body, tc.headers...)
		ExpectStatus(t, tc.name+" with the store down", r, http.StatusInternalServerError)
		body := r.JSON(t)
		if len(body) != len(tc.keys) {
			t.Fatalf("%s: body %s, want exactly the fields %v", tc.name, r.Body, tc.keys)
		}
		for _, k := range tc.keys {
			if s, ok := body[k].(string); !ok || s == "" {
				t.Fatalf("%s: body %s lacks %q", tc.name, r.Body, k)
			}
		}
	}
	if st, body := c.AdminDo("POST", "/revocation/revoke", fmt.Sprintf(`{"token":%q}`, bearer)); st == http.StatusOK {
		t.Fatalf("admin revoke with the store down: %d %s, want a failure", st, body)
	}
}

// Redis stops in the middle of traffic. No revoked token gets through
// anywhere; the revocation endpoints answer their dialect's 500; once the
// local copy is older than stale_after, the fail_closed replica answers
// 503 to token-bearing requests (requests without credentials still
// pass) while the fail_open replica lets valid tokens through and keeps
// blocking revoked ones. Redis comes back (empty: no persistence) on the
// same port; the replicas recover without a restart, keep what they
// knew, and new revocations flow between them again. Each transition is
// logged once.
func TestRedisOutageAndRecovery(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	up := StartUpstream(t)
	store := "redis " + srv.URL()
	closed := StartCaddy(t, basicConfig(store, up, "on_store_down fail_closed\n\t\tstale_after 1s"))
	open := StartCaddy(t, basicConfig(store, up, "on_store_down fail_open\n\t\tstale_after 1s"))
	cs := []*Caddy{closed, open}
	for _, c := range cs {
		c.WaitReady()
	}

	var revoked []string
	for i := range 4 {
		tok := testtoken.HS256(t, jwt.MapClaims{"sid": fmt.Sprintf("rev-%d", i)})
		if i%2 == 0 {
			logoutAt(t, cs[i%2], tok)
		} else {
			revokeTokenAt(t, cs[i%2], tok)
		}
		revoked = append(revoked, tok)
	}
	for _, tok := range revoked {
		eventuallyAll(t, "revoked before the outage", cs, tok, http.StatusUnauthorized)
	}
	var good []string
	for i := range 4 {
		tok := testtoken.HS256(t, jwt.MapClaims{"sid": fmt.Sprintf("good-%d", i)})
		expectAll(t, "a valid token before the outage", cs, tok, http.StatusOK)
		good = append(good, tok)
	}
	seenBefore := make([]int, len(revoked))
	for i, tok := range revoked {
		seenBefore[i] = countSeen(up, tok)
	}

	tr := startTraffic(cs, revoked, good)
	srv.Stop()

	refresh := testtoken.HS256(t, jwt.MapClaims{"sid": "refresh-1", "typ": "refresh"})
	for _, c := range cs {
		endpointFailures(t, c, good[0], refresh)
	}
	// A failed revocation changed nothing, anywhere.
	ExpectStatus(t, "the token of a failed logout, at the fail_open replica", Get(t, open.URL+"/orders", good[0]), http.StatusOK)

	// Past stale_after, fail_closed refuses token-bearing requests...
	Eventually(t, "fail_closed replica refuses once stale", func() bool {
		return Get(t, closed.URL+"/orders", good[1]).Status == http.StatusServiceUnavailable
	})
	r := Get(t, closed.URL+"/orders", good[1])
	ExpectStatus(t, "fail_closed, stale, valid token", r, http.StatusServiceUnavailable)
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("a 503 for a stale denylist has no Retry-After")
	}
	for _, tok := range revoked {
		if st := Get(t, closed.URL+"/orders", tok).Status; st != http.StatusServiceUnavailable && st != http.StatusUnauthorized {
			t.Fatalf("fail_closed, stale, revoked token: %d", st)
		}
	}
	ExpectStatus(t, "fail_closed, stale, no credentials", Get(t, closed.URL+"/public", ""), http.StatusOK)
	if st, _ := closed.AdminDo("GET", "/revocation/ready", ""); st != http.StatusServiceUnavailable {
		t.Fatalf("a stale replica reports ready: %d", st)
	}
	// ...while fail_open passes valid tokens and blocks revoked ones, and
	// stays ready: pulling it out of service would refuse the traffic
	// fail_open asks to let through.
	if st, body := open.AdminDo("GET", "/revocation/ready", ""); st != http.StatusOK || body != "{\"ready\":true}\n" {
		t.Fatalf("a stale fail_open replica reports %d %s, want 200 ready", st, body)
	}
	for _, tok := range good {
		ExpectStatus(t, "fail_open, stale, valid token", Get(t, open.URL+"/orders", tok), http.StatusOK)
	}
	for _, tok := range revoked {
		ExpectStatus(t, "fail_open, stale, revoked token", Get(t, open.URL+"/orders", tok), http.StatusUnauthorized)
	}

	// Let each replica retry the feed a few times, so that "logged once"
	// means something: counted by its metrics, however slow the run.
	for i, c := range cs {
		Eventually(t, fmt.Sprintf("replica %d retried the feed", i), func() bool {
			return scrape(t, c)[`caddy_revocation_store_errors_total{op="follow feed",store="redis"}`] >= 3
		})
	}
	for i, c := range cs {
		if n := logCount(c, msgStoreDown); n != 1 {
			t.Fatalf("replica %d logged the outage %d times, want once:\n%s", i, n, c.Logs())
		}
		if strings.Contains(c.Logs(), `"stacktrace"`) {
			t.Fatalf("replica %d logged a stack trace for an unreachable Redis:\n%s", i, c.Logs())
		}
	}

	srv.Resume() // same port, empty
	for _, c := range cs {
		c.WaitReady()
	}
	for _, tok := range good {
		expectAll(t, "a valid token after recovery", cs, tok, http.StatusOK)
	}
	for _, tok := range revoked {
		expectAll(t, "revoked before the outage, after recovery (redis came back empty)", cs, tok, http.StatusUnauthorized)
	}
	fresh := testtoken.HS256(t, jwt.MapClaims{"sid": "after-1"})
	expectAll(t, "a new token after recovery", cs, fresh, http.StatusOK)
	logoutAt(t, open, fresh)
	eventuallyAll(t, "a logout after recovery", cs, fresh, http.StatusUnauthorized)
	fresh2 := testtoken.HS256(t, jwt.MapClaims{"sid": "after-2"})
	revokeTokenAt(t, closed, fresh2)
	eventuallyAll(t, "an admin revocation after recovery", cs, fresh2, http.StatusUnauthorized)
	tr.finish(t)

	for i, tok := range revoked {
		if n := countSeen(up, tok); n != seenBefore[i] {
			t.Fatalf("revoked token %d reached the upstream during the outage", i)
		}
	}
	for i, c := range cs {
		Eventually(t, "the recovery logged", func() bool { return logCount(c, msgStoreUp) >= 2 })
		down, upLines := logCount(c, msgStoreDown), logCount(c, msgStoreUp)
		if down != 1 || upLines != 2 {
			t.Fatalf("replica %d logged %d outages and %d recoveries (counting the start), want 1 and 2:\n%s", i, down, upLines, c.Logs())
		}
	}
}

// With persistence, Redis comes back with its data. A replica started
// while Redis was down runs (not ready; fail_closed answers 503 to
// token-bearing requests, since it knows nothing yet) and loads the whole
// denylist the moment Redis appears. A replica that stayed up resumes the
// change feed where it left off, without a full reload.
func TestRedisOutageReplicaStartedWhileDown(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	up := StartUpstream(t)
	config := basicConfig("redis "+srv.URL(), up, "stale_after 1s")
	a := StartCaddy(t, config)
	a.WaitReady()
	var revoked []string
	for i := range 3 {
		tok := testtoken.HS256(t, jwt.MapClaims{"sid": fmt.Sprintf("p-%d", i)})
		logoutAt(t, a, tok)
		revoked = append(revoked, tok)
	}
	good := testtoken.HS256(t, jwt.MapClaims{"sid": "p-good"})
	srv.Stop()

	late := StartCaddy(t, config)
	// Not ready; until a dial has failed (go-redis retries for a while)
	// the reason is that its first load is under way.
	if st, body := late.AdminDo("GET", "/revocation/ready", ""); st != http.StatusServiceUnavailable || !strings.Contains(body, "not loaded") && !strings.Contains(body, "denylist loading") {
		t.Fatalf("a replica that could not load reports ready: %d %s", st, body)
	}
	ExpectStatus(t, "a token at a replica that knows nothing yet", Get(t, late.URL+"/orders", good), http.StatusServiceUnavailable)
	ExpectStatus(t, "no credentials at a replica that knows nothing yet", Get(t, late.URL+"/public", ""), http.StatusOK)

	srv.Resume()
	late.WaitReady()
	// a is fail_closed with stale_after 1s: until its own next try of the
	// feed it may still answer 503, whatever late has done meanwhile.
	a.WaitReady()
	cs := []*Caddy{a, late}
	for _, tok := range revoked {
		expectAll(t, "revoked before the outage", cs, tok, http.StatusUnauthorized)
	}
	expectAll(t, "a valid token after recovery", cs, good, http.StatusOK)
	fresh := testtoken.HS256(t, jwt.MapClaims{"sid": "p-fresh"})
	logoutAt(t, late, fresh)
	eventuallyAll(t, "a revocation at the late replica", cs, fresh, http.StatusUnauthorized)

	if n := logCount(a, msgLoaded); n != 1 {
		t.Fatalf("the replica that stayed up loaded %d times, want once (it resumes the feed):\n%s", n, a.Logs())
	}
	if n := logCount(late, msgStoreDown); n != 1 {
		t.Fatalf("the late replica logged its unreachable store %d times, want once", n)
	}
}
