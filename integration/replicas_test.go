package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

// The tests in this file, outage_test.go and topologies_test.go run
// several caddy processes on one shared store: the promise of SPEC
// section 5, "many replicas, one truth".

// startReplicas starts n caddy processes with the same config and waits
// until each has loaded the denylist.
func startReplicas(t *testing.T, n int, config string) []*Caddy {
	t.Helper()
	cs := make([]*Caddy, n)
	for i := range cs {
		cs[i] = StartCaddy(t, config)
		cs[i].WaitReady()
	}
	return cs
}

// logoutAt revokes a token (and its session) through seed 003's endpoint
// at one replica; it must answer 200 true.
func logoutAt(t *testing.T, c *Caddy, token string) {
	t.Helper()
	r := Do(t, "POST", c.URL+"/v1/auth/logout", "", "Authorization", "Bearer "+token)
	if r.Status != http.StatusOK || strings.TrimSpace(r.Body) != "true" {
		t.Fatalf("logout at %s: %d %s", c.URL, r.Status, r.Body)
	}
}

// adminRevoke sends a revocation to one replica's admin API; it must
// answer 200.
func adminRevoke(t *testing.T, c *Caddy, body string) {
	t.Helper()
	if st, resp := c.AdminDo("POST", "/revocation/revoke", body); st != http.StatusOK {
		t.Fatalf("admin revoke at %s: %d %s", c.Admin, st, resp)
	}
}

// revokeTokenAt revokes one exact token at a replica through the admin API.
func revokeTokenAt(t *testing.T, c *Caddy, token string) {
	t.Helper()
	adminRevoke(t, c, fmt.Sprintf(`{"token":%q}`, token))
}

// expectAll asserts the status every replica gives a token, at once (no
// waiting): for what a replica must already know.
func expectAll(t *testing.T, what string, cs []*Caddy, token string, want int) {
	t.Helper()
	for i, c := range cs {
		ExpectStatus(t, fmt.Sprintf("%s at replica %d", what, i), Get(t, c.URL+"/orders", token), want)
	}
}

// eventuallyAll waits until every replica gives a token the status want.
func eventuallyAll(t *testing.T, what string, cs []*Caddy, token string, want int) {
	t.Helper()
	for i, c := range cs {
		var last Response
		Eventually(t, fmt.Sprintf("%s at replica %d", what, i), func() bool {
			last = Get(t, c.URL+"/orders", token)
			return last.Status == want
		})
		ExpectStatus(t, fmt.Sprintf("%s at replica %d", what, i), last, want)
	}
}

// logCount counts the log lines of a process that carry msg.
func logCount(c *Caddy, msg string) int {
	n := 0
	for _, line := range strings.Split(c.Logs(), "\n") {
		if strings.Contains(line, msg) {
			n++
		}
	}
	return n
}

// The store's transition messages, logged once per transition.
const (
	msgStoreDown = "revocation store unreachable; enforcing the local copy"
	msgStoreUp   = "revocation store reachable"
	msgLoaded    = "denylist loaded from redis"
)

// poller sends requests to one replica over one kept-alive connection,
// as fast as the replica answers.
type poller struct {
	client *http.Client
	url    string
}

func newPoller(c *Caddy) *poller {
	return &poller{
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}, Timeout: 10 * time.Second},
		url:    c.URL + "/orders",
	}
}

func (p *poller) status(token string) (int, error) {
	req, err := http.NewRequest("GET", p.url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// untilBlocked polls until the replica answers 401 for token and returns
// the time from since to the arrival of that first 401. Every answer
// before it must be 200: the token was valid until revoked.
func (p *poller) untilBlocked(token string, since time.Time) (time.Duration, error) {
	deadline := since.Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, err := p.status(token)
		if err != nil {
			return 0, err
		}
		switch st {
		case http.StatusUnauthorized:
			return time.Since(since), nil
		case http.StatusOK:
		default:
			return 0, fmt.Errorf("status %d while waiting for the revocation", st)
		}
	}
	return 0, fmt.Errorf("still not blocked after 10s")
}

// percentile returns the q-quantile (0 < q <= 1) of sorted samples, by
// the nearest-rank method.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Three replicas share one Redis. Revocations made at any of them, through
// an endpoint (seed 003 logout) or the admin API, are enforced by the
// replica that made them before it answers, and by the others as soon as
// the change feed brings them. The time from the revoking call's answer
// to the first 401 at each other replica is measured over every
// revocation and reported (PROPAGATION_OUT names a JSON file for the
// benchmark script); only enforcement is asserted, never a latency.
func TestReplicasPropagateRevocations(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	up := StartUpstream(t)
	cs := startReplicas(t, 3, basicConfig("redis "+srv.URL(), up, ""))
	pollers := make([]*poller, len(cs))
	for i, c := range cs {
		pollers[i] = newPoller(c)
	}

	const revocations = 120
	var samples []time.Duration
	for i := range revocations {
		at := i % len(cs)
		tok := testtoken.HS256(t, jwt.MapClaims{"sid": fmt.Sprintf("prop-%d", i)})
		// The token works everywhere, and every replica has seen it (as
		// a client reusing its token would have made it).
		for j, p := range pollers {
			if st, err := p.status(tok); err != nil || st != http.StatusOK {
				t.Fatalf("revocation %d: replica %d before: %d %v", i, j, st, err)
			}
		}
		if i%2 == 0 {
			logoutAt(t, cs[at], tok)
		} else {
			revokeTokenAt(t, cs[at], tok)
		}
		returned := time.Now()
		lat := make([]time.Duration, len(cs))
		errs := make([]error, len(cs))
		var wg sync.WaitGroup
		for j, p := range pollers {
			if j == at {
				continue
			}
			wg.Go(func() { lat[j], errs[j] = p.untilBlocked(tok, returned) })
		}
		// The replica that revoked blocks the token the moment it has
		// answered: no waiting here.
		if st, err := pollers[at].status(tok); err != nil || st != http.StatusUnauthorized {
			t.Fatalf("revocation %d: the revoking replica %d answers %d %v, want 401 at once", i, at, st, err)
		}
		wg.Wait()
		for j := range cs {
			if j == at {
				continue
			}
			if errs[j] != nil {
				t.Fatalf("revocation %d made at replica %d: replica %d: %v", i, at, j, errs[j])
			}
			samples = append(samples, lat[j])
		}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	report := map[string]any{
		"what":        "time from a revoking call's answer at one replica to the first 401 answered by another replica (3 caddy replicas, one redis-server, loopback)",
		"revocations": revocations,
		"samples":     len(samples),
		"p50_ms":      ms(percentile(samples, 0.50)),
		"p90_ms":      ms(percentile(samples, 0.90)),
		"p99_ms":      ms(percentile(samples, 0.99)),
		"max_ms":      ms(samples[len(samples)-1]),
		"mean_ms":     ms(sum / time.Duration(len(samples))),
	}
	t.Logf("propagation over %d revocations (%d samples): p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms",
		revocations, len(samples), report["p50_ms"], report["p90_ms"], report["p99_ms"], report["max_ms"])
	if out := os.Getenv("PROPAGATION_OUT"); out != "" {
		data, _ := json.MarshalIndent(report, "", "  ")
		if err := os.WriteFile(out, append(data, '\n'), 0o644); err != nil {
			t.Fatalf("write PROPAGATION_OUT: %v", err)
		}
	}

	// Other kinds travel the same way: a whole subject revoked through
	// the admin API at one replica stops that subject's tokens at the
	// others, and no one else's.
	bob := testtoken.HS256(t, jwt.MapClaims{"sub": "bob", "sid": "b1"})
	carol := testtoken.HS256(t, jwt.MapClaims{"sub": "carol", "sid": "c1"})
	expectAll(t, "bob before", cs, bob, http.StatusOK)
	adminRevoke(t, cs[1], `{"subject":"bob"}`)
	ExpectStatus(t, "bob at the revoking replica", Get(t, cs[1].URL+"/orders", bob), http.StatusUnauthorized)
	eventuallyAll(t, "bob after his subject revocation", cs, bob, http.StatusUnauthorized)
	expectAll(t, "carol after bob's revocation", cs, carol, http.StatusOK)
}

// A replica that was down while revocations were made, then restarted,
// blocks every revocation: those it had seen and those made while it was
// away. It loads them before it reports ready, so nothing is waited for.
func TestReplicaRestartCatchesUp(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	up := StartUpstream(t)
	cs := startReplicas(t, 2, withLeeway(basicConfig("redis "+srv.URL(), up, "")))
	a, b := cs[0], cs[1]

	seen := []string{
		testtoken.HS256(t, jwt.MapClaims{"sid": "r1"}),
		testtoken.HS256(t, jwt.MapClaims{"sid": "r2"}),
		testtoken.HS256(t, jwt.MapClaims{"sid": "r3"}),
	}
	logoutAt(t, a, seen[0])
	revokeTokenAt(t, a, seen[1])
	adminRevoke(t, a, `{"subject":"alice","session":"r3"}`)
	for _, tok := range seen {
		eventuallyAll(t, "revoked before the restart", cs, tok, http.StatusUnauthorized)
	}
	good := testtoken.HS256(t, jwt.MapClaims{"sid": "g1"})
	expectAll(t, "a token nobody revoked", cs, good, http.StatusOK)

	b.Kill() // as a crash would
	erin := testtoken.HS256(t, jwt.MapClaims{"sub": "erin", "sid": "e1"})
	missed := []string{
		testtoken.HS256(t, jwt.MapClaims{"sid": "m1"}),
		testtoken.HS256(t, jwt.MapClaims{"sid": "m2"}),
		testtoken.HS256(t, jwt.MapClaims{"jti": "jti-while-down", "sid": "m3"}),
		erin,
	}
	logoutAt(t, a, missed[0])
	revokeTokenAt(t, a, missed[1])
	adminRevoke(t, a, `{"jti":"jti-while-down"}`)
	adminRevoke(t, a, `{"subject":"erin"}`)

	b.Restart()
	b.WaitReady()
	for i, tok := range append(seen, missed...) {
		ExpectStatus(t, fmt.Sprintf("revocation %d at the restarted replica", i), Get(t, b.URL+"/orders", tok), http.StatusUnauthorized)
	}
	ExpectStatus(t, "a token nobody revoked, after the restart", Get(t, b.URL+"/orders", good), http.StatusOK)
	ExpectStatus(t, "erin's login after her revocation", Get(t, b.URL+"/orders", testtoken.HS256(t, nextSecond(), jwt.MapClaims{"sub": "erin", "sid": "e2"})), http.StatusOK)

	// And it follows the feed again: a revocation at the other replica
	// reaches it.
	later := testtoken.HS256(t, jwt.MapClaims{"sid": "l1"})
	logoutAt(t, a, later)
	eventuallyAll(t, "revoked after the restart", cs, later, http.StatusUnauthorized)
	if n := logCount(b, msgLoaded); n != 2 {
		t.Fatalf("restarted replica logged %d loads over its two runs, want one per run", n)
	}
}
