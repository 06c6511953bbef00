package integration

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// fillFromScript is fillScript from entry ARGV[2] on (ARGV[3] entries,
// expiring at ARGV[4]), so that a large fill goes in calls short enough
// for the client's timeout.
const fillFromScript = `
local base, from, n, exp = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
for i = from + 1, from + n do
  redis.call('SET', base .. 't:' .. string.sub(redis.sha1hex(tostring(i)), 1, 30) .. '74', exp, 'EXAT', exp)
end
return n`

// procKB reads a field of /proc/<pid>/status, in KiB.
func procKB(t *testing.T, c *Caddy, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("read caddy's status: %v", err)
	}
	m := regexp.MustCompile(`(?m)^` + field + `:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /proc/<pid>/status", field)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// A replica whose denylist outgrows the memory budget the test gives it
// (a few MiB above what an idle replica holds, far less than the 500k
// entries in Redis need) is not killed and does not go past the budget:
// it refuses readiness saying why, the metrics count what it could not
// hold, and it keeps serving by on_store_down, as for a copy it cannot
// confirm current: fail_closed refuses tokens with a 503, fail_open lets
// them through.
//
// Not parallel: its replicas load half a million entries, which takes the
// CPU the other tests would share; Go runs the tests that are not
// parallel first, alone. It waits up to a minute for the load to end, as
// long as it takes on a loaded 2-core machine.
func TestMemoryBudgetRefusesReadinessInsteadOfOOM(t *testing.T) {
	up := StartUpstream(t)
	// What an idle replica holds here, so that the budget leaves room
	// for a part of the entries only, whatever the build's own size.
	idle := StartCaddy(t, basicConfig("redis "+testredis.Start(t).URL(), up, "memory_budget off"))
	idle.WaitReady()
	base := procKB(t, idle, "VmRSS") << 10
	idle.Stop()
	budget := (base + 16<<20) >> 20 << 20 // 8 MiB of headroom, about 8 MiB of tables: 300k entries

	srv := testredis.Start(t)
	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	for from := 0; from < 500_000; from += 50_000 {
		if out, err := srv.Do("EVAL", fillFromScript, "0", revocation.KeyBase("revocation:"), strconv.Itoa(from), "50000", exp); err != nil {
			t.Fatalf("fill redis: %v %s", err, out)
		}
	}
	store := "redis " + srv.URL()
	opt := fmt.Sprintf("memory_budget %dMiB", budget>>20)
	closed := StartCaddy(t, basicConfig(store, up, opt+"\n\t\ton_store_down fail_closed"))
	open := StartCaddy(t, basicConfig(store, up, opt+"\n\t\ton_store_down fail_open"))
	good := testtoken.HS256(t, jwt.MapClaims{"sub": "fine"})

	for _, c := range []*Caddy{closed, open} {
		var body string
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
			var st int
			st, body = c.AdminDo("GET", "/revocation/ready", "")
			if st == http.StatusServiceUnavailable && strings.Contains(body, "memory budget") {
				break
			}
			if time.Now().After(deadline) {
				_, status := c.AdminDo("GET", "/revocation/status", "")
				t.Fatalf("readiness not refused for the memory budget (%d MiB): %d %s\n%s", budget>>20, st, body, status)
			}
		}
		if !strings.Contains(body, "revocations not held") {
			t.Fatalf("the reason does not say what is missing: %s", body)
		}
		_, metrics := c.AdminDo("GET", "/metrics", "")
		notHeld := regexp.MustCompile(`caddy_revocation_denylist_not_held_entries\{prefix="revocation:",store="redis"\} (\d+)`).FindStringSubmatch(metrics)
		if notHeld == nil || notHeld[1] == "0" {
			t.Fatalf("no entries counted as not held:\n%s", grepLines(metrics, "not_held"))
		}
		if !strings.Contains(metrics, fmt.Sprintf(`caddy_revocation_memory_budget_bytes{prefix="revocation:",store="redis"} %d`, budget)) &&
			!strings.Contains(metrics, fmt.Sprintf(`caddy_revocation_memory_budget_bytes{prefix="revocation:",store="redis"} %g`, float64(budget))) {
			t.Fatalf("no budget gauge at %d:\n%s", budget, grepLines(metrics, "memory_budget"))
		}
		if peak := procKB(t, c, "VmHWM") << 10; peak > budget {
			t.Fatalf("the replica's peak RSS %d MiB went past its budget of %d MiB", peak>>20, budget>>20)
		}
		ExpectStatus(t, "a request without credentials over budget", Get(t, c.URL+"/public", ""), http.StatusOK)
	}
	ExpectStatus(t, "a token at the fail_closed replica over budget", Get(t, closed.URL+"/orders", good), http.StatusServiceUnavailable)
	ExpectStatus(t, "a token at the fail_open replica over budget", Get(t, open.URL+"/orders", good), http.StatusOK)
}
