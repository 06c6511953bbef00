package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// oldBuild is the release before keyed identity hashes: a rolling
// upgrade runs it beside the new build on one Redis.
const oldBuild = "e3ec1a5"

var oldCaddy struct {
	once sync.Once
	bin  string
	err  error
}

// oldCaddyBin returns a caddy binary of oldBuild: $OLD_CADDY_BIN when
// set, else one built here from the repository's history.
func oldCaddyBin(t *testing.T) string {
	t.Helper()
	oldCaddy.once.Do(buildOldCaddy)
	if oldCaddy.err != nil {
		t.Fatal(oldCaddy.err)
	}
	return oldCaddy.bin
}

// buildOldCaddy sets oldCaddy's binary, built once per test process.
func buildOldCaddy() {
	if bin := os.Getenv("OLD_CADDY_BIN"); bin != "" {
		oldCaddy.bin, oldCaddy.err = filepath.Abs(bin)
		return
	}
	dir, err := os.MkdirTemp(buildDir, "old-")
	if err != nil {
		oldCaddy.err = err
		return
	}
	src := filepath.Join(dir, "src")
	script := fmt.Sprintf("mkdir -p %q && git -C %q archive %s | tar -x -C %q", src, repoRoot, oldBuild, src)
	if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		oldCaddy.err = fmt.Errorf("extract %s: %v\n%s", oldBuild, err, out)
		return
	}
	oldCaddy.bin = filepath.Join(dir, "caddy")
	build := exec.Command("go", "build", "-o", oldCaddy.bin, "./cmd/caddy")
	build.Dir = src
	build.Env = xcaddyBuildEnv()
	if out, err := build.CombinedOutput(); err != nil {
		oldCaddy.err = fmt.Errorf("build %s: %v\n%s", oldBuild, err, out)
	}
}

// StartCaddyFails runs caddy with a Caddyfile that must keep it from
// starting, and returns what it logged.
func StartCaddyFails(t *testing.T, caddyfile string, env ...string) string {
	t.Helper()
	c := &Caddy{t: t, dir: t.TempDir(), bin: caddyBin}
	c.config = filepath.Join(c.dir, "Caddyfile")
	t.Cleanup(c.Stop)
	c.Admin = "127.0.0.1:" + fmt.Sprint(testredis.FreePort(t))
	c.write(caddyfile, testredis.FreePort(t))
	if err := c.start(env); err == nil {
		t.Fatalf("caddy started; want it refused\n%s", c.Logs())
	}
	return c.Logs()
}

func hashKeyConfig(redisAddr, upstream, extra string) string {
	return guarded(fmt.Sprintf(`		redis redis://%s
		jwt {
			hmac_secret %s
		}
		endpoints none
%s`, redisAddr, testtoken.Secret, extra), upstream)
}

// A rolling upgrade to a keyed store: an old replica (the build before
// hash_key) and a new one with hash_key on one Redis. What the old one
// revoked keeps blocking at the new one; the new one's revocations are
// stored under keys that a list of names does not find; exact token
// revocations stay shared both ways; a replica with another key, or
// none, refuses to start with the reason.
func TestHashKeyRollingUpgrade(t *testing.T) {
	t.Parallel()
	old := oldCaddyBin(t)
	srv := testredis.Start(t)
	up := StartUpstream(t)
	plain := withLeeway(hashKeyConfig(srv.Addr(), up.URL, ""))
	keyed := withLeeway(hashKeyConfig(srv.Addr(), up.URL, "		hash_key {env.REVOCATION_HASH_KEY}\n"))
	const key = "REVOCATION_HASH_KEY=rolling-upgrade-key-0123456789"

	a := StartCaddyBin(t, old, plain)
	a.WaitReady()
	before := time.Now().Add(-time.Minute).Unix()
	bob := testtoken.HS256(t, jwt.MapClaims{"sub": "bob", "iat": before})
	carol := testtoken.HS256(t, jwt.MapClaims{"sub": "carol", "sid": "c-1"})
	erin := testtoken.HS256(t, jwt.MapClaims{"sub": "erin", "jti": "j-old"})
	adminRevoke(t, a, `{"subject":"bob"}`)
	adminRevoke(t, a, `{"subject":"carol","session":"c-1"}`)
	adminRevoke(t, a, `{"jti":"j-old"}`)
	// A session in use at the old replica, noted there (a sorted set
	// under the unkeyed subject), idle afterwards.
	ExpectStatus(t, "ivy at the old replica", Get(t, a.URL+"/orders", testtoken.HS256(t, jwt.MapClaims{"sub": "ivy", "sid": "iv-1"})), http.StatusOK)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	ctx := context.Background()
	base := revocation.KeyBase("revocation:")
	Eventually(t, "the old replica notes ivy's session", func() bool {
		_, err := rc.ZScore(ctx, base+"seen:"+revocation.SubjectKey("ivy").String(), revocation.SessionKey("ivy", "iv-1").String()).Result()
		return err == nil
	})

	b := StartCaddy(t, keyed, key)
	b.WaitReady()
	cs := []*Caddy{a, b}
	expectAll(t, "a subject the old replica revoked", cs, bob, http.StatusUnauthorized)
	expectAll(t, "a session the old replica revoked", cs, carol, http.StatusUnauthorized)
	expectAll(t, "a jti the old replica revoked", cs, erin, http.StatusUnauthorized)
	expectAll(t, "an unrevoked token", cs, testtoken.HS256(t, jwt.MapClaims{"sub": "gina"}), http.StatusOK)
	st, status := b.AdminDo("GET", "/revocation/status", "")
	if st != http.StatusOK || !strings.Contains(status, `"hash_key_fingerprint":"`) || !strings.Contains(status, `"unkeyed_until":"`) {
		t.Errorf("status of the keyed replica: %d %s: want its key's fingerprint and the end of the unkeyed window", st, status)
	}

	// Revocations at the new replica: a subject, under its keyed hash
	// only, and an exact token, which the old replica enforces too.
	frank := testtoken.HS256(t, jwt.MapClaims{"sub": "frank", "iat": before})
	adminRevoke(t, b, `{"subject":"frank"}`)
	ExpectStatus(t, "a subject the keyed replica revoked", Get(t, b.URL+"/orders", frank), http.StatusUnauthorized)
	tok := testtoken.HS256(t, jwt.MapClaims{"sub": "hank"})
	revokeTokenAt(t, b, tok)
	eventuallyAll(t, "a token the keyed replica revoked", cs, tok, http.StatusUnauthorized)

	if n, err := rc.Exists(ctx, base+"u:"+revocation.SubjectKey("bob").String()).Result(); err != nil || n != 1 {
		t.Fatalf("the old replica's unkeyed subject entry: %d %v", n, err)
	}
	if n, _ := rc.Exists(ctx, base+"u:"+revocation.SubjectKey("frank").String()).Result(); n != 0 {
		t.Errorf("a name's unkeyed hash finds the subject the keyed replica revoked")
	}
	keys, _ := rc.Keys(ctx, base+"u:*").Result()
	if len(keys) != 2 {
		t.Errorf("subject entries %v: want bob's unkeyed and frank's keyed", keys)
	}

	// ivy revoked at the keyed replica: her session noted by the old one
	// is revoked by name, so a token minted for it afterwards is stopped
	// at both.
	adminRevoke(t, b, `{"subject":"ivy"}`)
	eventuallyAll(t, "a later token of ivy's session noted before the key", cs, testtoken.HS256(t, nextSecond(), jwt.MapClaims{"sub": "ivy", "sid": "iv-1"}), http.StatusUnauthorized)

	// Misconfigured replicas refuse to start, naming the key in use.
	rec, err := rc.Get(ctx, base+"hashkey").Result()
	if err != nil {
		t.Fatal(err)
	}
	fp := strings.Split(rec, ":")[1]
	logs := StartCaddyFails(t, keyed, "REVOCATION_HASH_KEY=another-key-0123456789abcdef")
	if !strings.Contains(logs, "hash_key does not match") || !strings.Contains(logs, fp) {
		t.Errorf("a replica with another key: want a refusal naming fingerprint %s\n%s", fp, logs)
	}
	logs = StartCaddyFails(t, plain)
	if !strings.Contains(logs, "this replica has no hash_key") {
		t.Errorf("a new replica without the key: want a refusal\n%s", logs)
	}
	if !strings.Contains(StartCaddyFails(t, keyed), "is empty once its placeholders are replaced") {
		t.Errorf("an unset REVOCATION_HASH_KEY: want the reason")
	}

	// The upgrade ends: the old replica is replaced by a keyed one, which
	// still enforces every revocation of both.
	a.Stop()
	c := StartCaddy(t, keyed, key)
	c.WaitReady()
	for _, tk := range []string{bob, carol, erin, frank, tok} {
		ExpectStatus(t, "after the upgrade", Get(t, c.URL+"/orders", tk), http.StatusUnauthorized)
	}
}
