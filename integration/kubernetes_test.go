package integration

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// startCaddyFile runs caddy on a Caddyfile as it is on disk, unchanged:
// the ports it must use come from the environment, which env builds from
// the free loopback ports chosen here (admin address, site port).
func startCaddyFile(t *testing.T, path string, env func(admin string, port int) []string) *Caddy {
	t.Helper()
	c := &Caddy{t: t, dir: t.TempDir(), bin: caddyBin, config: path}
	t.Cleanup(c.Stop)
	for attempt := 1; ; attempt++ {
		c.Admin = "127.0.0.1:" + strconv.Itoa(testredis.FreePort(t))
		port := testredis.FreePort(t)
		c.URL = "http://127.0.0.1:" + strconv.Itoa(port)
		err := c.start(env(c.Admin, port))
		if err == nil {
			return c
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			t.Fatalf("%v\n%s", err, c.Logs())
		}
	}
}

// The sidecar's Caddyfile of deploy/kubernetes (the ConfigMap's content,
// verbatim) in front of a real upstream and a real Redis that requires a
// password: valid tokens pass, revoked ones get 401 and never reach the
// upstream, and the probes' command answers.
func TestKubernetesCaddyfile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(repoRoot, "deploy", "kubernetes", "Caddyfile")
	srv := testredis.Start(t)
	// Set after the start so the harness's PING needs no password; the
	// sidecar must then authenticate with REDIS_PASSWORD.
	redisPassword := "redis-pw-" + randomID()
	if _, err := srv.Do("CONFIG", "SET", "requirepass", redisPassword); err != nil {
		t.Fatalf("set redis password: %v", err)
	}
	up := StartUpstream(t)
	metricsPort := testredis.FreePort(t)
	hashKey := "hash-key-" + randomID()
	c := startCaddyFile(t, path, func(admin string, port int) []string {
		_, adminPort, _ := strings.Cut(admin, ":")
		return []string{
			"BIND_ADDRESSES=127.0.0.1",
			"LISTEN_PORT=" + strconv.Itoa(port),
			"ADMIN_PORT=" + adminPort,
			"METRICS_PORT=" + strconv.Itoa(metricsPort),
			"UPSTREAM=" + up.Addr(),
			"REDIS_URL=" + srv.URL(),
			"REDIS_PASSWORD=" + redisPassword,
			"JWT_SECRET=" + testtoken.Secret,
			"REVOCATION_HASH_KEY=" + hashKey,
		}
	})
	c.WaitReady()
	if strings.Contains(c.Logs(), "not formatted") {
		t.Fatalf("the Kubernetes Caddyfile is not caddy fmt clean:\n%s", c.Logs())
	}

	// The probes, as the Deployment runs them: the admin address read
	// from the Caddyfile, with the container's environment; they print
	// nothing (no adapter log lines either) when healthy.
	_, adminPort, _ := strings.Cut(c.Admin, ":")
	probeEnv := []string{"ADMIN_PORT=" + adminPort, "REDIS_PASSWORD=x", "JWT_SECRET=" + testtoken.Secret, "REVOCATION_HASH_KEY=" + hashKey}
	for _, probe := range [][]string{
		{"revocation", "health", "--quiet", "--config", path, "--adapter", "caddyfile"},
		{"revocation", "health", "--live", "--quiet", "--config", path, "--adapter", "caddyfile"},
	} {
		if code, out, errOut := runCLI(t, "", probeEnv, probe...); code != 0 || out != "" || errOut != "" {
			t.Fatalf("probe %q: exit %d\nstdout: %s\nstderr: %s", probe, code, out, errOut)
		}
	}

	// A valid token passes; the same user's logout revokes it.
	tok := testtoken.HS256(t, jwt.MapClaims{"sub": "kate", "sid": "k1"})
	r := Get(t, c.URL+"/orders", tok)
	ExpectStatus(t, "valid token", r, http.StatusOK)
	if !up.Saw(tok) {
		t.Fatal("the upstream did not receive the valid token")
	}
	r = Do(t, "POST", c.URL+"/v1/auth/logout", "", "Authorization", "Bearer "+tok)
	ExpectStatus(t, "logout", r, http.StatusOK)
	if r.Body != "true" {
		t.Fatalf("logout body %q, want true", r.Body)
	}
	hits := up.Hits()
	r = Get(t, c.URL+"/orders", tok)
	ExpectStatus(t, "token after logout", r, http.StatusUnauthorized)
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), `Bearer error="invalid_token"`) {
		t.Fatalf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
	}
	ExpectStatus(t, "new token of the logged-out session", Get(t, c.URL+"/orders", testtoken.HS256(t, jwt.MapClaims{"sub": "kate", "sid": "k1"})), http.StatusUnauthorized)

	// A token revoked through the admin API before its first use never
	// reaches the upstream.
	stolen := testtoken.HS256(t, jwt.MapClaims{"sub": "kate", "sid": "k2"})
	if code, out, errOut := runCLI(t, stolen+"\n", nil, "revocation", "revoke", "--token", "-", "--address", c.Admin); code != 0 {
		t.Fatalf("caddy revocation revoke --token -: exit %d\n%s%s", code, out, errOut)
	}
	ExpectStatus(t, "token revoked before first use", Get(t, c.URL+"/orders", stolen), http.StatusUnauthorized)
	if up.Hits() != hits || up.Saw(stolen) {
		t.Fatal("a revoked token reached the upstream")
	}
	ExpectStatus(t, "another user", Get(t, c.URL+"/orders", testtoken.HS256(t, jwt.MapClaims{"sub": "liam"})), http.StatusOK)

	// The revocations are in the shared Redis, behind its password.
	if _, err := srv.Do("DBSIZE"); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("redis answers without the password (err %v): the test would not prove the sidecar authenticates", err)
	}
	// Token entries are fields of the expiry buckets' shards, named by
	// the key's 16 raw bytes, the last one its kind.
	count := `local n = 0
for _, k in ipairs(redis.call('KEYS', 'revocation:{dl}:e:*:*')) do
  for _, f in ipairs(redis.call('HKEYS', k)) do
    if string.sub(f, 16) == 't' then n = n + 1 end
  end
end
return n`
	tokens := strings.TrimSpace(redisCLI(t, srv, redisPassword, "EVAL", count, "0"))
	if n, _ := strconv.Atoi(tokens); n < 2 {
		t.Fatalf("%s token entries in Redis, want the logged-out and the stolen token", tokens)
	}

	// The identities are keyed with the Secret's hash_key: Redis records
	// its fingerprint, the status shows the same one, and a subject
	// revoked here is not under the hash anyone can compute from its name.
	base := revocation.KeyBase("revocation:")
	rec := strings.TrimSpace(redisCLI(t, srv, redisPassword, "GET", base+"hashkey"))
	fp := "" // the record is v1:<fingerprint>:<end of the unkeyed window>
	if f := strings.Split(rec, ":"); len(f) == 3 {
		fp = f[1]
	}
	st, status := c.AdminDo("GET", "/revocation/status", "")
	if fp == "" || st != http.StatusOK || !strings.Contains(status, `"hash_key_fingerprint":"`+fp+`"`) {
		t.Fatalf("hash_key: Redis records %q, the status (%d) says %s", rec, st, status)
	}
	if st, body := c.AdminDo("POST", "/revocation/revoke", `{"subject":"liam"}`); st != http.StatusOK {
		t.Fatalf("revoke subject liam: %d %s", st, body)
	}
	ExpectStatus(t, "a revoked subject", Get(t, c.URL+"/orders", testtoken.HS256(t, jwt.MapClaims{"sub": "liam", "iat": time.Now().Add(-time.Minute).Unix()})), http.StatusUnauthorized)
	if n := strings.TrimSpace(redisCLI(t, srv, redisPassword, "EXISTS", base+"u:"+revocation.SubjectKey("liam").String())); n != "0" {
		t.Error("the unkeyed hash of the subject's name finds its revocation in Redis")
	}
	if n := strings.Count(redisCLI(t, srv, redisPassword, "KEYS", base+"u:*"), "\n"); n != 1 {
		t.Errorf("%d subject entries in Redis, want liam's, keyed", n)
	}

	// Metrics on the metrics port, as Prometheus scrapes the pod.
	m := Do(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort), "")
	ExpectStatus(t, "metrics port", m, http.StatusOK)
	for _, want := range []string{
		`caddy_revocation_revocations_total{endpoint="logout",kind="session"}`,
		`caddy_revocation_revocations_total{endpoint="admin",kind="token"} 1`,
		`caddy_revocation_store_up{prefix="revocation:",store="redis"} 1`,
	} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("metrics port lacks %s", want)
		}
	}

	// The logging of the Caddyfile: probes leave no trace, revocations
	// and blocks do, access logs are on, and no secret appears.
	logs := c.Logs()
	lines := parseLogLines(t, logs)
	for _, l := range lines {
		if l["msg"] == "received request" && strings.HasPrefix(fmt.Sprint(l["uri"]), "/revocation/") {
			t.Fatalf("a probe request was logged: %v", l)
		}
	}
	if findLine(lines, "admin.api.revocation", "revocation") == nil {
		t.Error("no audit line for the admin revocation (logger admin.api.revocation)")
	}
	if findLine(lines, "http.handlers.revocation", "revocation") == nil {
		t.Error("no audit line for the logout")
	}
	if findLine(lines, "http.handlers.revocation", "request blocked: revoked credential") == nil {
		t.Error("no line for the blocked requests")
	}
	if findLine(lines, "http.log.access.log0", "handled request") == nil {
		t.Error("no access log line")
	}
	for _, secret := range []string{tok, stolen, redisPassword, testtoken.Secret, hashKey} {
		if strings.Contains(logs, secret) {
			t.Fatalf("a secret appears in the logs: %q", secret[:8]+"...")
		}
	}
}

// redisCLI runs redis-cli against srv with a password (given through
// the environment, not the command line) and returns its output.
func redisCLI(t *testing.T, srv *testredis.Server, password string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testredis.Binary(t, "redis-cli"), append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(srv.Port)}, args...)...)
	cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
	}
	return string(out)
}
