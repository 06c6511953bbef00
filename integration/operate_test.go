package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// operateConfig is a guarded site as an operator would run it: access
// logs on, debug-level logs everywhere (the most a log could reveal),
// blocked requests logged at warn, and the DPoP header dropped from
// request logs (Caddy redacts Authorization and Cookie by itself).
func operateConfig(redisURL, upstream string) string {
	const dropDPoP = `format filter {
			wrap json
			fields {
				request>headers>Dpop delete
			}
		}`
	return fmt.Sprintf(`{
	admin {{ADMIN}}
	log default {
		output stderr
		level DEBUG
		%s
	}
}
:{{PORT}} {
	bind 127.0.0.1
	log {
		output stderr
		%s
	}
	revocation {
		app_id demo
		redis %s
		jwt {
			hmac_secret {env.JWT_SECRET}
		}
		log_blocked warn
		# Short, so the outage below shows in /revocation/ready quickly;
		# fail_open keeps the proxied checks below meaningful meanwhile.
		stale_after 1s
		on_store_down fail_open
	}
	reverse_proxy %s
}
`, dropDPoP, dropDPoP, redisURL, upstream)
}

// TestOperate runs two replicas sharing a Redis through a day in an
// operator's life: traffic, revocations through an endpoint (with a
// bearer token and with a DPoP-bound refresh cookie), through the admin
// API and the CLI, a Redis outage and its end; then checks what an
// operator sees: the metrics, the health routes, the CLI's answers, and
// every log line, none of which may hold a raw token or secret.
func TestOperate(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	up := StartUpstream(t)
	cfg := operateConfig(srv.URL(), up.Addr())
	a := StartCaddy(t, cfg, "JWT_SECRET="+testtoken.Secret)
	b := StartCaddy(t, cfg, "JWT_SECRET="+testtoken.Secret)
	a.WaitReady()
	b.WaitReady()

	// Every raw credential of the run, to look for in the logs.
	var secrets []string
	mint := func(claims jwt.MapClaims) string {
		tok := testtoken.HS256(t, claims)
		secrets = append(secrets, tok)
		return tok
	}
	// What replica a's metrics must show at the end.
	checked := 0
	blocked := map[string]int{}
	proxied := func(what string, want int, reason string, headers ...string) Response {
		t.Helper()
		hits := up.Hits()
		r := Do(t, "GET", a.URL+"/api/orders", "", headers...)
		ExpectStatus(t, what, r, want)
		checked++
		if want == http.StatusUnauthorized {
			blocked[reason]++
			if up.Hits() != hits {
				t.Fatalf("%s: a blocked request reached the upstream", what)
			}
		}
		return r
	}
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	cli := func(stdin string, args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, stdin, nil, append(args, "--address", a.Admin)...)
		if code != 0 {
			t.Fatalf("caddy %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}

	// Health while all is well.
	if st, body := a.AdminDo("GET", "/revocation/live", ""); st != http.StatusOK || !strings.Contains(body, `"live":true`) {
		t.Fatalf("live: %d %s", st, body)
	}
	if st, body := a.AdminDo("GET", "/revocation/ready", ""); st != http.StatusOK || !strings.Contains(body, `"ready":true`) {
		t.Fatalf("ready: %d %s", st, body)
	}

	// Traffic, then a logout through seed 003 with a bearer token and a
	// refresh token in the body.
	alice := mint(jwt.MapClaims{"sub": "alice", "sid": "a1"})
	aliceRefresh := mint(jwt.MapClaims{"sub": "alice", "sid": "a1", "typ": "refresh", "exp": time.Now().Add(24 * time.Hour).Unix()})
	proxied("alice", http.StatusOK, "", bearer(alice)...)
	proxied("alice again", http.StatusOK, "", bearer(alice)...)
	r := Do(t, "POST", a.URL+"/v1/auth/logout", fmt.Sprintf(`{"refreshToken":%q}`, aliceRefresh),
		"Authorization", "Bearer "+alice, "Content-Type", "application/json")
	ExpectStatus(t, "logout", r, http.StatusOK)
	proxied("alice after logout", http.StatusUnauthorized, "token", bearer(alice)...)
	proxied("alice's refresh cookie after logout", http.StatusUnauthorized, "refresh_token", "Cookie", "__Host-refresh_demo="+aliceRefresh)
	proxied("a new token of alice's logged-out session", http.StatusUnauthorized, "session", bearer(mint(jwt.MapClaims{"sub": "alice", "sid": "a1"}))...)
	// The other replica learns it from Redis.
	Eventually(t, "replica b blocks alice's token", func() bool {
		return Do(t, "GET", b.URL+"/api/orders", "", bearer(alice)...).Status == http.StatusUnauthorized
	})
	// An endpoint error.
	r = Do(t, "POST", a.URL+"/v1/auth/logout", "")
	ExpectStatus(t, "logout without a token", r, http.StatusUnauthorized)

	// The CLI, through the admin API: a subject, a jti, a token (from
	// stdin), a session (with the address from CADDY_ADMIN).
	bob := mint(jwt.MapClaims{"sub": "bob", "sid": nil})
	proxied("bob", http.StatusOK, "", bearer(bob)...)
	if out := cli("", "revocation", "revoke", "--subject", "bob"); !strings.Contains(out, `revoked subject "bob"`) {
		t.Fatalf("revoke --subject: %q", out)
	}
	proxied("bob after his subject was revoked", http.StatusUnauthorized, "subject", bearer(bob)...)

	carolJTI := "jti-carol-" + randomID()
	carol := mint(jwt.MapClaims{"sub": "carol", "jti": carolJTI})
	proxied("carol", http.StatusOK, "", bearer(carol)...)
	cli("", "revocation", "revoke", "--jti", carolJTI, "--expires", "1h")
	proxied("carol after her jti was revoked", http.StatusUnauthorized, "jti", bearer(carol)...)

	dave := mint(jwt.MapClaims{"sub": "dave"})
	proxied("dave", http.StatusOK, "", bearer(dave)...)
	if out := cli(dave+"\n", "revocation", "revoke", "--token", "-"); !strings.Contains(out, "revoked token") || strings.Contains(out, dave) {
		t.Fatalf("revoke --token -: %q", out)
	}
	proxied("dave after his token was revoked", http.StatusUnauthorized, "token", bearer(dave)...)

	// A token revoked before its first use never reaches the upstream.
	henry := mint(jwt.MapClaims{"sub": "henry"})
	cli(henry+"\n", "revocation", "revoke", "--token", "-")
	proxied("henry, revoked before first use", http.StatusUnauthorized, "token", bearer(henry)...)
	if up.Saw(henry) {
		t.Fatal("the upstream saw a token revoked before its first use")
	}

	erin := mint(jwt.MapClaims{"sub": "erin", "sid": "e1"})
	proxied("erin", http.StatusOK, "", bearer(erin)...)
	if code, out, errOut := runCLI(t, "", []string{"CADDY_ADMIN=" + a.Admin}, "revocation", "revoke", "--subject", "erin", "--session", "e1"); code != 0 {
		t.Fatalf("revoke --session with CADDY_ADMIN: exit %d\n%s%s", code, out, errOut)
	}
	proxied("erin after her session was revoked", http.StatusUnauthorized, "session", bearer(erin)...)

	// Seed 000 with a DPoP-bound refresh cookie and its proof, and a
	// proxied DPoP request: proofs are credentials too.
	key, jkt := dpopKey(t)
	frankRefresh := mint(jwt.MapClaims{"sub": "frank", "sid": "f1", "cnf": map[string]any{"jkt": jkt}, "exp": time.Now().Add(24 * time.Hour).Unix()})
	frankAccess := mint(jwt.MapClaims{"sub": "frank", "sid": "f2", "cnf": map[string]any{"jkt": jkt}})
	proof := dpopProof(t, key, "GET", a.URL+"/api/orders")
	secrets = append(secrets, proof)
	proxied("frank's DPoP request", http.StatusOK, "", "Authorization", "DPoP "+frankAccess, "DPoP", proof)
	proof = dpopProof(t, key, "POST", a.URL+"/v1/session/revoke")
	secrets = append(secrets, proof)
	r = Do(t, "POST", a.URL+"/v1/session/revoke", "", "Cookie", "__Host-refresh_demo="+frankRefresh, "DPoP", proof)
	ExpectStatus(t, "revoke a DPoP-bound refresh token", r, http.StatusNoContent)
	proxied("frank's revoked refresh cookie", http.StatusUnauthorized, "refresh_token", "Cookie", "__Host-refresh_demo="+frankRefresh)

	// The CLI's status.
	if out := cli("", "revocation", "status"); !strings.Contains(out, "redis standalone "+srv.Addr()) || !strings.Contains(out, "yes") {
		t.Fatalf("status:\n%s", out)
	}
	var status struct {
		Stores []struct {
			Store   string           `json:"store"`
			Ready   bool             `json:"ready"`
			Entries map[string]int64 `json:"entries"`
		} `json:"stores"`
	}
	if err := json.Unmarshal([]byte(cli("", "revocation", "status", "--json")), &status); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	if len(status.Stores) != 1 || status.Stores[0].Store != "redis" || !status.Stores[0].Ready ||
		status.Stores[0].Entries["subject"] != 1 || status.Stores[0].Entries["jti"] < 1 || status.Stores[0].Entries["token"] < 4 {
		t.Fatalf("status --json: %+v", status)
	}
	if code, _, errOut := runCLI(t, "", nil, "revocation", "revoke", "--address", a.Admin); code != 1 || errOut != "caddy revocation revoke: give exactly one of: --subject [--session], --jti, --token, --all --before, --bulk\n" {
		t.Fatalf("revoke without a target: exit %d, %s", code, errOut)
	}
	if code, _, _ := runCLI(t, "", nil, "revocation", "health", "--timeout", "2s", "--address", "127.0.0.1:"+strconv.Itoa(testredis.FreePort(t))); code != 1 {
		t.Fatalf("health of nothing: exit %d, want 1", code)
	}

	// The metrics before the outage.
	m := scrape(t, a)
	expectMetric(t, m, `caddy_revocation_requests_checked_total`, float64(checked))
	for _, reason := range []string{"token", "jti", "session", "subject", "refresh_token"} {
		expectMetric(t, m, `caddy_revocation_requests_blocked_total{reason="`+reason+`"}`, float64(blocked[reason]))
	}
	expectMetric(t, m, `caddy_revocation_endpoint_errors_total{code="MISSING_AUTH",dialect="logout"}`, 1)
	expectMetric(t, m, `caddy_revocation_revocations_total{endpoint="admin",kind="subject"}`, 1)
	expectMetric(t, m, `caddy_revocation_revocations_total{endpoint="admin",kind="jti"}`, 1)
	expectMetric(t, m, `caddy_revocation_revocations_total{endpoint="admin",kind="token"}`, 2)
	expectMetric(t, m, `caddy_revocation_revocations_total{endpoint="admin",kind="session"}`, 1)
	expectMetric(t, m, `caddy_revocation_store_up{prefix="revocation:",store="redis"}`, 1)
	expectMetric(t, m, `caddy_revocation_denylist_loads_total{store="redis"}`, 1)
	expectMetric(t, m, `caddy_revocation_denylist_entries{kind="subject",prefix="revocation:",store="redis"}`, 1)
	if v := metricValue(t, m, `caddy_revocation_store_staleness_seconds{prefix="revocation:",store="redis"}`); v < 0 {
		t.Errorf("staleness %v before the outage: the store was confirmed, it must not be negative", v)
	}
	if v := metricValue(t, scrape(t, b), `caddy_revocation_remote_apply_seconds_count`); v < 1 {
		t.Errorf("replica b applied %v revocations from replica a, want some", v)
	}

	// Redis goes away: the status says why, live stays up, and what is
	// known is still enforced. Under fail_open (this config) the replica
	// stays ready: it keeps serving, so it must keep its traffic.
	srv.Stop()
	var statusBody string
	Eventually(t, "status shows the outage", func() bool {
		_, statusBody = a.AdminDo("GET", "/revocation/status", "")
		return strings.Contains(statusBody, "not confirmed current")
	})
	if !strings.Contains(statusBody, "store unreachable") || !strings.Contains(statusBody, "on_store_down fail_open") || !strings.Contains(statusBody, `"connected":false`) {
		t.Fatalf("status does not say why: %s", statusBody)
	}
	if st, body := a.AdminDo("GET", "/revocation/ready", ""); st != http.StatusOK || body != "{\"ready\":true}\n" {
		t.Fatalf("ready under fail_open while Redis is down: %d %s, want 200 {\"ready\":true}", st, body)
	}
	if st, _ := a.AdminDo("GET", "/revocation/live", ""); st != http.StatusOK {
		t.Fatalf("live while Redis is down: %d", st)
	}
	if code, out, errOut := runCLI(t, "", nil, "revocation", "health", "--address", a.Admin); code != 0 || out != "ready\n" {
		t.Fatalf("health under fail_open while Redis is down: exit %d, %q %s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "", nil, "revocation", "health", "--live", "--address", a.Admin); code != 0 {
		t.Fatalf("health --live while Redis is down: exit %d\n%s%s", code, out, errOut)
	}
	if out := cli("", "revocation", "status"); !strings.Contains(out, "ready, degraded: denylist not confirmed current") || !strings.Contains(out, "store unreachable") {
		t.Fatalf("status while Redis is down:\n%s", out)
	}
	proxied("alice while Redis is down", http.StatusUnauthorized, "token", bearer(alice)...)
	m = scrape(t, a)
	expectMetric(t, m, `caddy_revocation_store_up{prefix="revocation:",store="redis"}`, 0)
	if v := metricValue(t, m, `caddy_revocation_store_transitions_total{store="redis",to="down"}`); v < 1 {
		t.Errorf("transitions to down: %v", v)
	}

	// Redis is back (empty: it had no persistence): ready again, and the
	// local copy, merged on reload, still holds every revocation.
	srv.Resume()
	Eventually(t, "the store is current again when Redis is back", func() bool {
		st, body := a.AdminDo("GET", "/revocation/status", "")
		return st == http.StatusOK && !strings.Contains(body, "not confirmed current") && strings.Contains(body, `"connected":true`)
	})
	if code, out, errOut := runCLI(t, "", nil, "revocation", "health", "--address", a.Admin); code != 0 || out != "ready\n" {
		t.Fatalf("health after Redis came back: exit %d, %q %s", code, out, errOut)
	}
	proxied("dave after the outage", http.StatusUnauthorized, "token", bearer(dave)...)
	m = scrape(t, a)
	expectMetric(t, m, `caddy_revocation_requests_checked_total`, float64(checked))
	expectMetric(t, m, `caddy_revocation_requests_blocked_total{reason="token"}`, float64(blocked["token"]))
	expectMetric(t, m, `caddy_revocation_store_up{prefix="revocation:",store="redis"}`, 1)
	down := metricValue(t, m, `caddy_revocation_store_transitions_total{store="redis",to="down"}`)
	expectMetric(t, m, `caddy_revocation_store_transitions_total{store="redis",to="up"}`, down+1)
	if v := metricValue(t, m, `caddy_revocation_denylist_loads_total{store="redis"}`); v < 2 {
		t.Errorf("denylist loads %v: Redis came back empty, a full load was due", v)
	}
	if v := metricSum(m, `caddy_revocation_store_errors_total{`); v < 1 {
		t.Errorf("store errors %v after an outage", v)
	}

	var scraped []string
	for k, v := range m {
		scraped = append(scraped, k+" "+strconv.FormatFloat(v, 'g', -1, 64))
	}
	slices.Sort(scraped)
	t.Logf("replica a's revocation metrics after the run:\n%s", strings.Join(scraped, "\n"))

	// The logs: every revocation and block has its line, with the fields
	// an operator needs; both health transitions are there; and not one
	// line of either replica holds a raw token, a DPoP proof or the key.
	logsA := a.Logs()
	lines := parseLogLines(t, logsA)
	audits := map[string][]map[string]any{}
	for _, l := range lines {
		if l["msg"] != "revocation" {
			continue
		}
		ep := fmt.Sprint(l["endpoint"])
		audits[ep] = append(audits[ep], l)
		for _, f := range []string{"remote_ip", "request_id", "kinds", "entries"} {
			if s := fmt.Sprint(l[f]); l[f] == nil || s == "" {
				t.Errorf("audit line without %s: %v", f, l)
			}
		}
	}
	if len(audits["logout"]) != 1 || len(audits["revoke_refresh"]) != 1 || len(audits["admin"]) != 5 {
		t.Fatalf("audit lines: %d logout, %d revoke_refresh, %d admin; want 1, 1, 5", len(audits["logout"]), len(audits["revoke_refresh"]), len(audits["admin"]))
	}
	logout := audits["logout"][0]
	if logout["subject"] != "alice" || logout["session_id"] != "a1" || logout["token_hash"] != shortHash(alice) ||
		!slices.Contains(anyStrings(logout["revoked_token_hashes"]), shortHash(aliceRefresh)) ||
		!slices.Contains(anyStrings(logout["revoked_token_hashes"]), shortHash(alice)) {
		t.Errorf("logout audit line: %v", logout)
	}
	if rr := audits["revoke_refresh"][0]; rr["subject"] != "frank" || rr["token_hash"] != shortHash(frankRefresh) {
		t.Errorf("revoke_refresh audit line: %v", rr)
	}
	adminKinds := []string{}
	for _, l := range audits["admin"] {
		if l["logger"] != "admin.api.revocation" {
			t.Errorf("admin audit line without its logger name: %v", l)
		}
		adminKinds = append(adminKinds, fmt.Sprint(l["kind"]))
	}
	if !slices.Equal(adminKinds, []string{"subject", "jti", "token", "token", "session"}) {
		t.Errorf("admin audit kinds %v", adminKinds)
	}
	if dl := audits["admin"][2]; dl["token_hash"] != shortHash(dave) {
		t.Errorf("admin token audit line: %v", dl)
	}
	// Metrics and audit lines agree on what was written.
	for ep, ls := range audits {
		written := 0.0
		for _, l := range ls {
			written += l["entries"].(float64)
		}
		if got := metricSum(m, `caddy_revocation_revocations_total{endpoint="`+ep+`",`); got != written {
			t.Errorf("revocations_total for %s is %v, its audit lines say %v entries", ep, got, written)
		}
	}
	nBlocked := 0
	for _, l := range lines {
		if l["msg"] != "request blocked: revoked credential" {
			continue
		}
		nBlocked++
		if l["level"] != "warn" || l["logger"] != "http.handlers.revocation" || l["reason"] == nil || l["token_hash"] == nil || l["request_id"] == "" || l["remote_ip"] == nil {
			t.Errorf("block line: %v", l)
		}
	}
	total := 0
	for _, n := range blocked {
		total += n
	}
	if nBlocked != total {
		t.Errorf("%d block lines, %d blocked requests", nBlocked, total)
	}
	if l := findLine(lines, "http.handlers.revocation.store", "revocation store unreachable; enforcing the local copy"); l == nil || l["level"] != "error" {
		t.Errorf("no error line for the store going down: %v", l)
	}
	if findLine(lines, "http.handlers.revocation.store", "revocation store reachable") == nil {
		t.Error("no line for the store coming back")
	}
	if findLine(lines, "http.log.access.log0", "handled request") == nil {
		t.Error("no access log lines: the scan would prove less than it claims")
	}
	for name, logs := range map[string]string{"a": logsA, "b": b.Logs()} {
		for i, line := range strings.Split(logs, "\n") {
			for _, s := range secrets {
				sig := s[strings.LastIndex(s, ".")+1:]
				if strings.Contains(line, s) || strings.Contains(line, sig) {
					t.Fatalf("replica %s, log line %d holds a raw credential (%s...): %s", name, i+1, s[:12], line)
				}
			}
			if strings.Contains(line, testtoken.Secret) {
				t.Fatalf("replica %s, log line %d holds the JWT key", name, i+1)
			}
		}
	}
}

// runCLI runs the caddy binary (a CLI command, not a server) and returns
// its exit status and output.
func runCLI(t *testing.T, stdin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, args...)
	dir := t.TempDir()
	cmd.Env = []string{"HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CADDY_ADMIN=") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errOut.String()
	case errors.As(err, &exit) && ctx.Err() == nil:
		return exit.ExitCode(), out.String(), errOut.String()
	}
	t.Fatalf("caddy %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	return 0, "", ""
}

// scrape reads Caddy's /metrics from its admin endpoint: every series of
// this module, by its text as Prometheus prints it.
func scrape(t *testing.T, c *Caddy) map[string]float64 {
	t.Helper()
	st, body := c.AdminDo("GET", "/metrics", "")
	if st != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", st, body)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "caddy_revocation_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m
}

func metricValue(t *testing.T, m map[string]float64, series string) float64 {
	t.Helper()
	v, ok := m[series]
	if !ok {
		t.Fatalf("no series %s in the scrape", series)
	}
	return v
}

func expectMetric(t *testing.T, m map[string]float64, series string, want float64) {
	t.Helper()
	if got := metricValue(t, m, series); got != want {
		t.Errorf("%s = %v, want %v", series, got, want)
	}
}

// metricSum adds every series starting with prefix.
func metricSum(m map[string]float64, prefix string) float64 {
	sum := 0.0
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			sum += v
		}
	}
	return sum
}

// parseLogLines decodes every JSON log line; other lines are skipped
// here (the secret scan reads them all as text).
func parseLogLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		t.Fatal("no JSON log lines")
	}
	return out
}

// findLine returns the first log line of a logger with a message.
func findLine(lines []map[string]any, logger, msg string) map[string]any {
	for _, l := range lines {
		if l["logger"] == logger && l["msg"] == msg {
			return l
		}
	}
	return nil
}

func anyStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// shortHash is how logs name a token: the first 6 bytes of its SHA-256.
// shortHash is how logs name a token: the product's own definition (for a
// JWT, the hash of its signed part), so that a log line can be matched to
// the token it is about.
func shortHash(tok string) string { return revocation.HashToken(tok).Short() }

// dpopKey makes a P-256 key and its RFC 7638 thumbprint.
func dpopKey(t *testing.T) (*ecdsa.PrivateKey, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk := publicJWK(t, key)
	canon := fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, jwk["x"], jwk["y"])
	sum := sha256.Sum256([]byte(canon))
	return key, base64.RawURLEncoding.EncodeToString(sum[:])
}

func publicJWK(t *testing.T, key *ecdsa.PrivateKey) map[string]any {
	t.Helper()
	pub, err := key.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	b := pub.Bytes() // 0x04 || X || Y
	return map[string]any{
		"kty": "EC", "crv": "P-256",
		"x": base64.RawURLEncoding.EncodeToString(b[1:33]),
		"y": base64.RawURLEncoding.EncodeToString(b[33:65]),
	}
}

// dpopProof signs a DPoP proof (RFC 9449) for one request.
func dpopProof(t *testing.T, key *ecdsa.PrivateKey, method, url string) string {
	t.Helper()
	return testtoken.Sign(t, jwt.SigningMethodES256, key, jwt.MapClaims{
		"htm": method, "htu": url, "iat": time.Now().Unix(), "jti": randomID(),
	}, map[string]any{"typ": "dpop+jwt", "jwk": publicJWK(t, key)})
}
