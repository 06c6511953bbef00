package integration

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// fillScript writes ARGV[2] token entries under the key base ARGV[1],
// expiring at ARGV[3]: what many replicas' revocations leave in Redis,
// written inside Redis in one call.
const fillScript = `
local base, n, exp = ARGV[1], tonumber(ARGV[2]), ARGV[3]
for i = 1, n do
  redis.call('SET', base .. 't:' .. string.sub(redis.sha1hex(tostring(i)), 1, 30) .. '74', exp, 'EXAT', exp)
end
return n`

// fillDenylist writes n token entries into Redis under the default
// prefix.
func fillDenylist(t *testing.T, srv *testredis.Server, n int) {
	t.Helper()
	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	if out, err := srv.Do("EVAL", fillScript, "0", revocation.KeyBase("revocation:"), strconv.Itoa(n), exp); err != nil {
		t.Fatalf("fill redis: %v %s", err, out)
	}
}

// A replica whose first load takes long (here: Redis holds 100k entries
// and answers nothing for four seconds, as a busy server would) listens
// at once and serves: requests without credentials pass, token-bearing
// requests get what on_store_down says (fail_closed: 503; fail_open:
// through), /revocation/status and the metrics show the load, readiness
// says why it is not ready. The load is never aborted or started again,
// and nothing claims that Redis is unreachable.
//
// Not parallel: everything it checks must happen within Redis's pause,
// so it runs alone, before the parallel tests.
func TestLongLoadServesMeanwhile(t *testing.T) {
	srv := testredis.Start(t)
	up := StartUpstream(t)
	fillDenylist(t, srv, 100_000)
	revoked := testtoken.HS256(t, jwt.MapClaims{"sub": "loaded"})
	k := revocation.TokenKey(revoked)
	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	if out, err := srv.Do("SET", revocation.KeyBase("revocation:")+"t:"+k.String(), exp, "EXAT", exp); err != nil {
		t.Fatalf("revoke before start: %v %s", err, out)
	}
	good := testtoken.HS256(t, jwt.MapClaims{"sub": "fine"})

	if out, err := srv.Do("CLIENT", "PAUSE", "4000", "ALL"); err != nil {
		t.Fatalf("pause redis: %v %s", err, out)
	}
	paused := time.Now()
	store := "redis " + srv.URL() + "\n\t\tredis_timeout 10s"
	closed := StartCaddy(t, basicConfig(store, up, "on_store_down fail_closed"))
	open := StartCaddy(t, basicConfig(store, up, "on_store_down fail_open"))
	if time.Since(paused) > 3*time.Second {
		t.Fatalf("the replicas took %v to start listening while their first load waited on Redis", time.Since(paused))
	}

	for _, c := range []*Caddy{closed, open} {
		ExpectStatus(t, "a request without credentials while loading", Get(t, c.URL+"/public", ""), http.StatusOK)
	}
	ExpectStatus(t, "a token at the fail_closed replica while loading", Get(t, closed.URL+"/orders", good), http.StatusServiceUnavailable)
	ExpectStatus(t, "a token at the fail_open replica while loading", Get(t, open.URL+"/orders", good), http.StatusOK)

	st, body := closed.AdminDo("GET", "/revocation/ready", "")
	if st != http.StatusServiceUnavailable || !strings.Contains(body, "denylist loading") {
		t.Fatalf("ready while loading: %d %s", st, body)
	}
	var status struct {
		Stores []struct {
			Loaded bool `json:"loaded"`
			Load   *struct {
				Entries  int64 `json:"entries"`
				Expected int64 `json:"expected_entries"`
			} `json:"load"`
		} `json:"stores"`
	}
	st, body = closed.AdminDo("GET", "/revocation/status", "")
	if err := json.Unmarshal([]byte(body), &status); err != nil || st != http.StatusOK || len(status.Stores) != 1 {
		t.Fatalf("status while loading: %d %s (%v)", st, body, err)
	}
	if s := status.Stores[0]; s.Loaded || s.Load == nil {
		t.Fatalf("status while loading: %s", body)
	}
	st, body = closed.AdminDo("GET", "/metrics", "")
	if st != http.StatusOK || !strings.Contains(body, `caddy_revocation_denylist_loading{prefix="revocation:",store="redis"} 1`) {
		t.Fatalf("metrics while loading: %d, no loading gauge at 1:\n%s", st, grepLines(body, "denylist_load"))
	}

	for _, c := range []*Caddy{closed, open} {
		c.WaitReady()
		ExpectStatus(t, "a token revoked before start, once loaded", Get(t, c.URL+"/orders", revoked), http.StatusUnauthorized)
		ExpectStatus(t, "a good token, once loaded", Get(t, c.URL+"/orders", good), http.StatusOK)
		if n := logCount(c, msgLoaded); n != 1 {
			t.Fatalf("%d full loads logged, want one: the load must not restart\n%s", n, c.Logs())
		}
		if n := logCount(c, msgStoreDown); n != 0 {
			t.Fatalf("a slow load was logged as an unreachable store:\n%s", c.Logs())
		}
		if n := logCount(c, "denylist still loading from redis"); n != 1 {
			t.Fatalf("the long load was logged %d times as such, want once\n%s", n, c.Logs())
		}
	}
	st, body = closed.AdminDo("GET", "/metrics", "")
	if !strings.Contains(body, `caddy_revocation_denylist_loading{prefix="revocation:",store="redis"} 0`) {
		t.Fatalf("metrics once loaded: %d\n%s", st, grepLines(body, "denylist_load"))
	}
	if !strings.Contains(body, `caddy_revocation_denylist_entries{kind="token",prefix="revocation:",store="redis"} 100001`) {
		t.Fatalf("entries once loaded:\n%s", grepLines(body, "denylist_entries"))
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
