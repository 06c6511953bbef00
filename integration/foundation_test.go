package integration

import (
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

// storeModes runs a test with the embedded store and with Redis.
func storeModes(t *testing.T, f func(t *testing.T, redisLine string)) {
	t.Run("embedded", func(t *testing.T) { f(t, "") })
	t.Run("redis", func(t *testing.T) {
		srv := testredis.Start(t)
		f(t, "redis "+srv.URL())
	})
}

func basicConfig(redisLine string, upstream *Upstream, extra string) string {
	return guarded(fmt.Sprintf(`
		app_id demo
		%s
		jwt {
			hmac_secret %s
		}
		%s`, redisLine, testtoken.Secret, extra), upstream.Addr())
}

func TestProxyPassesValidAndStopsRevoked(t *testing.T) {
	t.Parallel()
	storeModes(t, func(t *testing.T, redisLine string) {
		up := StartUpstream(t)
		c := StartCaddy(t, withLeeway(basicConfig(redisLine, up, "")))
		c.WaitReady()

		good := testtoken.HS256(t, nil)
		r := Get(t, c.URL+"/orders", good)
		ExpectStatus(t, "valid token", r, http.StatusOK)
		if !up.Saw(good) {
			t.Fatal("the upstream did not receive the valid token")
		}
		if r := Get(t, c.URL+"/public", ""); r.Status != http.StatusOK {
			t.Fatalf("request without credentials: %d, want it passed through", r.Status)
		}

		// A token revoked before its first use never reaches the upstream.
		stolen := testtoken.HS256(t, jwt.MapClaims{"sid": "s2"})
		st, body := c.AdminDo("POST", "/revocation/revoke", fmt.Sprintf(`{"token":%q}`, stolen))
		if st != http.StatusOK {
			t.Fatalf("admin revoke token: %d %s", st, body)
		}
		r = Get(t, c.URL+"/orders", stolen)
		ExpectStatus(t, "revoked token", r, http.StatusUnauthorized)
		if got := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Bearer error="invalid_token", error_description=`) {
			t.Fatalf("WWW-Authenticate %q", got)
		}
		if r.JSON(t)["error"] != "invalid_token" {
			t.Fatalf("body %s", r.Body)
		}
		if up.Saw(stolen) {
			t.Fatal("the upstream saw a revoked token")
		}
		// The other token of the same user is untouched.
		ExpectStatus(t, "other token of the same user", Get(t, c.URL+"/orders", good), http.StatusOK)
	})
}

func TestAdminRevocationKinds(t *testing.T) {
	t.Parallel()
	storeModes(t, func(t *testing.T, redisLine string) {
		up := StartUpstream(t)
		c := StartCaddy(t, basicConfig(redisLine, up, ""))
		c.WaitReady()
		revoke := func(body string) {
			t.Helper()
			if st, resp := c.AdminDo("POST", "/revocation/revoke", body); st != http.StatusOK {
				t.Fatalf("admin revoke %s: %d %s", body, st, resp)
			}
		}

		aliceS1 := testtoken.HS256(t, jwt.MapClaims{"sid": "s1"})
		aliceS2 := testtoken.HS256(t, jwt.MapClaims{"sid": "s2"})
		bobS1 := testtoken.HS256(t, jwt.MapClaims{"sub": "bob", "sid": "s1"})
		for _, tok := range []string{aliceS1, aliceS2, bobS1} {
			ExpectStatus(t, "before", Get(t, c.URL+"/", tok), http.StatusOK)
		}

		// A session, scoped to its subject: bob's session of the same id
		// is not touched.
		revoke(`{"subject":"alice","session":"s1"}`)
		ExpectStatus(t, "alice s1 after session revocation", Get(t, c.URL+"/", aliceS1), http.StatusUnauthorized)
		ExpectStatus(t, "alice s2 after s1 revoked", Get(t, c.URL+"/", aliceS2), http.StatusOK)
		ExpectStatus(t, "bob s1 after alice s1 revoked", Get(t, c.URL+"/", bobS1), http.StatusOK)
		// A token minted later for that session (a refresh) is stopped too.
		ExpectStatus(t, "new token of a revoked session", Get(t, c.URL+"/", testtoken.HS256(t, jwt.MapClaims{"sid": "s1"})), http.StatusUnauthorized)

		// A jti.
		withJTI := testtoken.HS256(t, jwt.MapClaims{"jti": "jti-42", "sid": "s3"})
		ExpectStatus(t, "jti before", Get(t, c.URL+"/", withJTI), http.StatusOK)
		revoke(`{"jti":"jti-42"}`)
		ExpectStatus(t, "jti after", Get(t, c.URL+"/", withJTI), http.StatusUnauthorized)

		// The whole subject: every token issued until now.
		revoke(`{"subject":"alice"}`)
		ExpectStatus(t, "alice s2 after subject revocation", Get(t, c.URL+"/", aliceS2), http.StatusUnauthorized)
		ExpectStatus(t, "bob after alice's subject revocation", Get(t, c.URL+"/", bobS1), http.StatusOK)
		// A login after the revocation (issued in a later second) works.
		ExpectStatus(t, "alice's new login", Get(t, c.URL+"/", testtoken.HS256(t, nextSecond(), jwt.MapClaims{"sid": "s9"})), http.StatusOK)

		st, body := c.AdminDo("GET", "/revocation/status", "")
		if st != http.StatusOK || !strings.Contains(body, `"subject":1`) || !strings.Contains(body, `"session":`) {
			t.Fatalf("status: %d %s", st, body)
		}
		for _, bad := range []string{`{}`, `{"subject":"a","jti":"b"}`, `{"session":"x"}`, `not json`, `{"subject":"a","extra":1}`} {
			if st, _ := c.AdminDo("POST", "/revocation/revoke", bad); st != http.StatusBadRequest {
				t.Errorf("admin revoke %s: %d, want 400", bad, st)
			}
		}
		if up.Saw(aliceS1) && countSeen(up, aliceS1) > 1 {
			t.Fatal("a revoked token reached the upstream after its revocation")
		}
	})
}

func countSeen(u *Upstream, s string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, r := range u.seen {
		if strings.Contains(r.Header.Get("Authorization"), s) {
			n++
		}
	}
	return n
}

// nextSecond returns the claims of a token issued in the next wall-clock
// second: later than anything revoked until now, since a cutoff compares
// whole seconds of iat, without sleeping into that second. The caddy that
// reads it must tolerate that much clock skew: withLeeway.
func nextSecond() jwt.MapClaims {
	return testtoken.Issued(time.Now().Truncate(time.Second).Add(time.Second))
}

// withLeeway gives the jwt block of a config from basicConfig or
// seedConfig the leeway a token from nextSecond needs.
func withLeeway(config string) string {
	return strings.Replace(config, "hmac_secret "+testtoken.Secret, "hmac_secret "+testtoken.Secret+"\n\t\t\tleeway 2s", 1)
}

func TestRefreshTokensAreChecked(t *testing.T) {
	t.Parallel()
	up := StartUpstream(t)
	c := StartCaddy(t, basicConfig("", up, ""))
	refresh := testtoken.HS256(t, jwt.MapClaims{"sid": "r1", "typ": "refresh"})
	cookie := "__Host-refresh_demo=" + refresh
	ExpectStatus(t, "refresh cookie before", Do(t, "GET", c.URL+"/", "", "Cookie", cookie), http.StatusOK)
	body := fmt.Sprintf(`{"refreshToken":%q}`, refresh)
	ExpectStatus(t, "refresh body before", Do(t, "POST", c.URL+"/v1/auth/refresh", body, "Content-Type", "application/json"), http.StatusOK)

	if st, b := c.AdminDo("POST", "/revocation/revoke", fmt.Sprintf(`{"token":%q}`, refresh)); st != http.StatusOK {
		t.Fatalf("admin revoke: %d %s", st, b)
	}
	hits := up.Hits()
	r := Do(t, "GET", c.URL+"/", "", "Cookie", "theme=dark; "+cookie)
	ExpectStatus(t, "revoked refresh cookie", r, http.StatusUnauthorized)
	if !strings.Contains(r.Header.Get("WWW-Authenticate"), "refresh token") {
		t.Fatalf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
	}
	ExpectStatus(t, "revoked refresh in a JSON body", Do(t, "POST", c.URL+"/v1/auth/refresh", body, "Content-Type", "application/json"), http.StatusUnauthorized)
	if up.Hits() != hits {
		t.Fatal("a request with a revoked refresh token reached the upstream")
	}
	// Bodies that are passed on arrive intact.
	other := `{"refreshToken":"opaque-but-not-revoked","n":1}`
	ExpectStatus(t, "other body", Do(t, "POST", c.URL+"/v1/auth/refresh", other, "Content-Type", "application/json"), http.StatusOK)
	if !up.Saw("opaque-but-not-revoked") {
		t.Fatal("inspected body did not reach the upstream intact")
	}
}

func TestRequireToken(t *testing.T) {
	t.Parallel()
	up := StartUpstream(t)
	c := StartCaddy(t, basicConfig("", up, "require_token"))
	r := Get(t, c.URL+"/", "")
	ExpectStatus(t, "no token", r, http.StatusUnauthorized)
	if r.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("WWW-Authenticate %q, want a bare challenge", r.Header.Get("WWW-Authenticate"))
	}
	// Signed with another secret: a forgery that no encoding trick can
	// turn valid.
	forged := testtoken.HS256With(t, "not-the-secret-not-the-secret-000", jwt.MapClaims{"sub": "alice", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	ExpectStatus(t, "bad signature", Get(t, c.URL+"/", forged), http.StatusUnauthorized)
	expired := testtoken.HS256(t, jwt.MapClaims{"iat": time.Now().Add(-time.Hour).Unix(), "exp": time.Now().Add(-time.Minute).Unix()})
	ExpectStatus(t, "expired", Get(t, c.URL+"/", expired), http.StatusUnauthorized)
	ExpectStatus(t, "valid", Get(t, c.URL+"/", testtoken.HS256(t, nil)), http.StatusOK)
	if up.Hits() != 1 {
		t.Fatalf("%d requests reached the upstream, want only the valid one", up.Hits())
	}
}

// A reload keeps the embedded denylist, and does not reconnect to Redis.
func TestReloadKeepsState(t *testing.T) {
	t.Parallel()
	t.Run("embedded", func(t *testing.T) {
		up := StartUpstream(t)
		c := StartCaddy(t, basicConfig("", up, ""))
		tok := testtoken.HS256(t, nil)
		c.AdminDo("POST", "/revocation/revoke", fmt.Sprintf(`{"token":%q}`, tok))
		ExpectStatus(t, "before reload", Get(t, c.URL+"/", tok), http.StatusUnauthorized)
		c.Reload(basicConfig("", up, "log_blocked debug\n\t\tsession_ttl 48h"))
		ExpectStatus(t, "after reload", Get(t, c.URL+"/", tok), http.StatusUnauthorized)
		if !strings.Contains(c.Logs(), "load complete") {
			t.Fatal("the reload did not happen")
		}
	})
	t.Run("redis", func(t *testing.T) {
		srv := testredis.Start(t)
		up := StartUpstream(t)
		c := StartCaddy(t, basicConfig("redis "+srv.URL(), up, ""))
		c.WaitReady()
		before := clientIDs(t, srv)
		if len(before) == 0 {
			t.Fatal("no caddy-revocation connection to redis")
		}
		tok := testtoken.HS256(t, nil)
		c.AdminDo("POST", "/revocation/revoke", fmt.Sprintf(`{"token":%q}`, tok))
		c.Reload(basicConfig("redis "+srv.URL(), up, "log_blocked debug"))
		ExpectStatus(t, "after reload", Get(t, c.URL+"/", tok), http.StatusUnauthorized)
		// The connections open before the reload are still the ones in
		// use, and the denylist was loaded once: the store was kept.
		after := clientIDs(t, srv)
		for id := range before {
			if !after[id] {
				t.Fatalf("reload closed redis connection %s (before %v, after %v)", id, before, after)
			}
		}
		if n := strings.Count(c.Logs(), "denylist loaded from redis"); n != 1 {
			t.Fatalf("denylist loaded %d times, want once", n)
		}
		if !strings.Contains(c.Logs(), "load complete") {
			t.Fatal("the reload did not happen")
		}
	})
}

// clientIDs returns the ids of the connections caddy-revocation holds.
func clientIDs(t *testing.T, srv *testredis.Server) map[string]bool {
	t.Helper()
	out, err := srv.Do("CLIENT", "LIST")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "name=caddy-revocation") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "id=") {
				ids[f] = true
			}
		}
	}
	return ids
}

func TestValidateRejectsBadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "notpem.txt")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	privPEM := filepath.Join(dir, "private.pem")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(privPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)

	cfg := func(inner string) string {
		return fmt.Sprintf(":8080 {\n\trevocation {\n%s\n\t}\n\trespond ok\n}\n", inner)
	}
	jwtOK := "jwt {\n hmac_secret " + testtoken.Secret + "\n}"
	cases := []struct {
		name, inner, want string
		env               []string
	}{
		{"unknown option", jwtOK + "\nfrobnicate on", `unknown option "frobnicate"`, nil},
		{"duplicate option", jwtOK + "\nsession_ttl 1h\nsession_ttl 2h", `duplicate option "session_ttl"`, nil},
		{"bad duration", jwtOK + "\nsession_ttl forever", `session_ttl: bad duration "forever"`, nil},
		{"unreadable key file", "jwt {\n public_key " + filepath.Join(dir, "missing.pem") + "\n}", "jwt public_key " + filepath.Join(dir, "missing.pem"), nil},
		{"key file not PEM", "jwt {\n public_key " + notPEM + "\n}", "jwt public_key " + notPEM + ": no PEM block", nil},
		{"private key file", "jwt {\n public_key " + privPEM + "\n}", "configure the public key instead", nil},
		{"algorithms none", "jwt {\n hmac_secret " + testtoken.Secret + "\n algorithms HS256 none\n}", `jwt algorithms: "none" can never be allowed`, nil},
		{"algorithm without key", "jwt {\n hmac_secret " + testtoken.Secret + "\n algorithms RS256\n}", "algorithm RS256 is allowed but no configured key can verify it", nil},
		{"no key with endpoints", "app_id demo", "no verification key is configured", nil},
		{"malformed redis url", jwtOK + "\nredis redis://127.0.0.1:notaport", "redis: malformed url", nil},
		{"redis url with wrong scheme", jwtOK + "\nredis http://127.0.0.1:6379", "redis: url http://127.0.0.1:6379: scheme must be", nil},
		{"redis url without scheme", jwtOK + "\nredis 127.0.0.1:6379", "write redis://127.0.0.1:6379", nil},
		{"redis port out of range", jwtOK + "\nredis redis://127.0.0.1:63790000", `port "63790000": want a number from 1 to 65535`, nil},
		{"redis option typo", jwtOK + "\nsesion_ttl 1h", `did you mean session_ttl?`, nil},
		{"unknown endpoint", jwtOK + "\nendpoints logout seppuku", `endpoints: unknown dialect "seppuku"`, nil},
		{"bad on_store_down", jwtOK + "\non_store_down shrug", "on_store_down", nil},
		{"revoke_refresh without app_id", jwtOK + "\nendpoints revoke_refresh", "revoke_refresh needs app_id", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ok, out := Validate(t, cfg(c.inner), c.env...)
			if ok {
				t.Fatalf("accepted:\n%s", out)
			}
			if !strings.Contains(strings.ReplaceAll(out, `\"`, `"`), c.want) {
				t.Fatalf("error does not say %q:\n%s", c.want, out)
			}
		})
	}
	t.Run("password never in errors", func(t *testing.T) {
		ok, out := Validate(t, cfg(jwtOK+"\nredis redis://user:hunter2-secret@127.0.0.1:bad"))
		if ok || strings.Contains(out, "hunter2-secret") {
			t.Fatalf("ok=%v, output shows the password:\n%s", ok, out)
		}
	})
}

// caddy validate checks a configuration without opening a connection:
// a Redis that is down, or a listener that would answer (as Redis or as
// the JWKS server), is never dialed, and the output has no error and no
// stack trace.
func TestValidateOpensNoConnection(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var dialed atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialed.Add(1)
			c.Close()
		}
	}()
	// The JWKS URL points at the same listener: a key set is not
	// fetched by validation either.
	cfg := func(url string) string {
		return fmt.Sprintf(":8080 {\n\trevocation {\n\t\tjwt {\n\t\t\thmac_secret %s\n\t\t\tjwks_url http://%s/jwks.json\n\t\t}\n\t\tredis %s\n\t}\n\trespond ok\n}\n", testtoken.Secret, ln.Addr(), url)
	}
	for _, url := range []string{"redis://" + ln.Addr().String(), "redis://127.0.0.1:1"} {
		ok, out := Validate(t, cfg(url))
		if !ok || !strings.Contains(out, "Valid configuration") {
			t.Fatalf("%s: not valid:\n%s", url, out)
		}
		for _, bad := range []string{`"level":"error"`, "goroutine ", ".go:"} {
			if strings.Contains(out, bad) {
				t.Fatalf("%s: output has %q:\n%s", url, bad, out)
			}
		}
	}
	time.Sleep(100 * time.Millisecond) // a late dial would land by now
	if n := dialed.Load(); n != 0 {
		t.Fatalf("caddy validate opened %d connection(s) to Redis", n)
	}
}

func TestExampleValidates(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(repoRoot, "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	if ok, out := Validate(t, string(data), "REDIS_URL="); !ok {
		t.Fatalf("Caddyfile.example without REDIS_URL:\n%s", out)
	} else if strings.Contains(out, "not formatted") {
		t.Fatalf("Caddyfile.example is not caddy fmt clean:\n%s", out)
	}
	srv := testredis.Start(t)
	if ok, out := Validate(t, string(data), "REDIS_URL="+srv.URL()); !ok {
		t.Fatalf("Caddyfile.example with REDIS_URL:\n%s", out)
	}
}

// With Redis reachable at start, the denylist is loaded and confirmed
// before the server listens: the first request is served, not refused as
// stale (fail_closed is the default).
func TestRedisStoreServesAtOnce(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	up := StartUpstream(t)
	tok := testtoken.HS256(t, nil)
	// Revoked before this instance starts: loaded at start.
	seed := StartCaddy(t, basicConfig("redis "+srv.URL(), up, ""))
	if st, b := seed.AdminDo("POST", "/revocation/revoke", fmt.Sprintf(`{"token":%q}`, tok)); st != http.StatusOK {
		t.Fatalf("admin revoke: %d %s", st, b)
	}
	c := StartCaddy(t, basicConfig("redis "+srv.URL(), up, ""))
	ExpectStatus(t, "first request after start", Get(t, c.URL+"/", testtoken.HS256(t, nil)), http.StatusOK)
	ExpectStatus(t, "token revoked before start", Get(t, c.URL+"/", tok), http.StatusUnauthorized)
}

// An upstream may read any of the credentials a request carries, so every
// one of them is checked: each Authorization header, each refresh cookie,
// each refresh token in a body, however the body spells its name.
func TestGuardSeesEveryCredential(t *testing.T) {
	t.Parallel()
	up := StartUpstream(t)
	c := StartCaddy(t, basicConfig("", up, ""))
	good := testtoken.HS256(t, jwt.MapClaims{"sid": "good"})
	revoked := testtoken.HS256(t, jwt.MapClaims{"sid": "gone"})
	if st, b := c.AdminDo("POST", "/revocation/revoke", fmt.Sprintf(`{"token":%q}`, revoked)); st != http.StatusOK {
		t.Fatalf("admin revoke: %d %s", st, b)
	}
	hits := up.Hits()
	cases := []struct {
		name    string
		method  string
		body    string
		headers []string
	}{
		{"second Authorization header", "GET", "", []string{"Authorization", "Bearer " + good, "Authorization", "Bearer " + revoked}},
		{"DPoP scheme", "GET", "", []string{"Authorization", "DPoP " + revoked}},
		{"second refresh cookie", "GET", "", []string{"Cookie", "__Host-refresh_demo=" + good, "Cookie", "__Host-refresh_demo=" + revoked}},
		{"escaped member name", "POST", `{"refresh\u0054oken":"` + revoked + `"}`, []string{"Content-Type", "application/json"}},
		{"other letter case", "POST", `{"RefreshToken":"` + revoked + `"}`, []string{"Content-Type", "application/json"}},
		{"duplicate member", "POST", `{"refreshToken":"` + good + `","refreshToken":"` + revoked + `"}`, []string{"Content-Type", "application/json"}},
		{"OAuth refresh grant (form)", "POST", "grant_type=refresh_token&refresh_token=" + revoked, []string{"Content-Type", "application/x-www-form-urlencoded"}},
		{"tab after the scheme", "GET", "", []string{"Authorization", "Bearer\t" + revoked}},
		{"second token in one header", "GET", "", []string{"Authorization", "Bearer " + good + " " + revoked}},
		{"space before the cookie's '='", "GET", "", []string{"Cookie", "__Host-refresh_demo =" + revoked}},
		{"percent-encoded cookie value", "GET", "", []string{"Cookie", "__Host-refresh_demo=%" + fmt.Sprintf("%02X", revoked[0]) + revoked[1:]}},
		{"form with a malformed pair", "POST", "refresh_token=" + revoked + "&x=%zz", []string{"Content-Type", "application/x-www-form-urlencoded"}},
		{"JSON with a byte-order mark", "POST", "\xEF\xBB\xBF" + `{"refreshToken":"` + revoked + `"}`, []string{"Content-Type", "application/json"}},
		{"JSON with NaN", "POST", `{"a":NaN,"refreshToken":"` + revoked + `"}`, []string{"Content-Type", "application/json"}},
		{"multipart field", "POST", "--XX\r\nContent-Disposition: form-data; name=\"refresh_token\"\r\n\r\n" + revoked + "\r\n--XX--\r\n", []string{"Content-Type", "multipart/form-data; boundary=XX"}},
		{"access_token form field (RFC 6750 2.2)", "POST", "access_token=" + revoked, []string{"Content-Type", "application/x-www-form-urlencoded"}},
	}
	for _, tc := range cases {
		ExpectStatus(t, tc.name, Do(t, tc.method, c.URL+"/v1/auth/refresh", tc.body, tc.headers...), http.StatusUnauthorized)
	}
	// In the query: RFC 6750's access_token, and a refresh token.
	ExpectStatus(t, "access_token query parameter (RFC 6750 2.3)", Get(t, c.URL+"/orders?access_token="+revoked, ""), http.StatusUnauthorized)
	ExpectStatus(t, "refresh_token query parameter", Get(t, c.URL+"/v1/auth/refresh?refresh_token="+revoked, ""), http.StatusUnauthorized)
	// A gzip-encoded body (body-parser inflates it).
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	fmt.Fprintf(zw, `{"refreshToken":%q}`, revoked)
	zw.Close()
	ExpectStatus(t, "gzip-encoded JSON body", Do(t, "POST", c.URL+"/v1/auth/refresh", gz.String(), "Content-Type", "application/json", "Content-Encoding", "gzip"), http.StatusUnauthorized)
	if up.Hits() != hits {
		t.Fatalf("%d requests carrying a revoked credential reached the upstream", up.Hits()-hits)
	}
	ExpectStatus(t, "two clean Authorization headers", Do(t, "GET", c.URL+"/", "", "Authorization", "Bearer "+good, "Authorization", "Bearer "+testtoken.HS256(t, nil)), http.StatusOK)
}

// The signature segment of a JWS can be re-encoded without the key: an
// ECDSA signature (r, s) is as valid as (r, n-s), and non-canonical
// base64 hides bits in the last character. Revoking a token revokes every
// such encoding of it.
func TestReencodedTokenStaysRevoked(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubFile := filepath.Join(t.TempDir(), "es256.pem")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	up := StartUpstream(t)
	c := StartCaddy(t, guarded(fmt.Sprintf(`
		jwt {
			hmac_secret %s
			public_key %s
		}
		require_token`, testtoken.Secret, pubFile), up.Addr()))

	// ES256 without a jti: only the token entry can stop it.
	es := testtoken.Sign(t, jwt.SigningMethodES256, key, jwt.MapClaims{"sub": "alice", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	malleated := malleateES256(t, es)
	hs := testtoken.HS256(t, jwt.MapClaims{"jti": nil, "sid": nil})
	padded := flipPaddingBits(t, hs)
	for _, alt := range []string{malleated, padded} {
		if alt == es || alt == hs {
			t.Fatal("the re-encoding changed nothing")
		}
	}
	// Both re-encodings are valid tokens: the proxy lets them through.
	ExpectStatus(t, "malleated ES256 signature, before revocation", Get(t, c.URL+"/", malleated), http.StatusOK)
	ExpectStatus(t, "non-canonical HS256 signature, before revocation", Get(t, c.URL+"/", padded), http.StatusOK)

	for _, orig := range []string{es, hs} {
		if st, b := c.AdminDo("POST", "/revocation/revoke", fmt.Sprintf(`{"token":%q}`, orig)); st != http.StatusOK {
			t.Fatalf("admin revoke: %d %s", st, b)
		}
	}
	ExpectStatus(t, "malleated ES256 signature, after revocation", Get(t, c.URL+"/", malleated), http.StatusUnauthorized)
	ExpectStatus(t, "non-canonical HS256 signature, after revocation", Get(t, c.URL+"/", padded), http.StatusUnauthorized)
}

// malleateES256 replaces the signature (r, s) with (r, n-s).
func malleateES256(t *testing.T, tok string) string {
	t.Helper()
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("ES256 signature: %v", err)
	}
	n := elliptic.P256().Params().N
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(n, s)
	out := make([]byte, 64)
	copy(out, sig[:32])
	s.FillBytes(out[32:])
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(out)
}

// flipPaddingBits changes the unused low bits of the signature's last
// base64 character (a 32-byte HMAC leaves two of them).
func flipPaddingBits(t *testing.T, tok string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, tok[len(tok)-1])
	if last < 0 {
		t.Fatal("not base64url")
	}
	return tok[:len(tok)-1] + string(alphabet[last^1])
}

// oversized_body reject refuses what cannot be inspected; the default
// passes it on, unexamined, as documented.
func TestOversizedBody(t *testing.T) {
	t.Parallel()
	up := StartUpstream(t)
	revoked := testtoken.HS256(t, nil)
	padded := `{"pad":"` + strings.Repeat("x", 2048) + `","refreshToken":"` + revoked + `"}`
	for _, mode := range []string{"pass", "reject"} {
		t.Run(mode, func(t *testing.T) {
			c := StartCaddy(t, basicConfig("", up, "inspect_body_limit 1KiB\n\t\toversized_body "+mode))
			if st, b := c.AdminDo("POST", "/revocation/revoke", fmt.Sprintf(`{"token":%q}`, revoked)); st != http.StatusOK {
				t.Fatalf("admin revoke: %d %s", st, b)
			}
			r := Do(t, "POST", c.URL+"/v1/auth/refresh", padded, "Content-Type", "application/json")
			want := http.StatusOK
			if mode == "reject" {
				want = http.StatusRequestEntityTooLarge
			}
			ExpectStatus(t, "body over inspect_body_limit", r, want)
			ExpectStatus(t, "small body", Do(t, "POST", c.URL+"/v1/auth/refresh", `{"refreshToken":"`+revoked+`"}`, "Content-Type", "application/json"), http.StatusUnauthorized)
		})
	}
}

// The key set of jwks_url is fetched when the configuration starts (not
// only on first use), and only then: validation fetched nothing above.
func TestJWKSFetchedAtStart(t *testing.T) {
	t.Parallel()
	var fetched atomic.Int32
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"keys":[]}`)
	}))
	defer jwks.Close()
	up := StartUpstream(t)
	StartCaddy(t, guarded("jwt {\n\thmac_secret "+testtoken.Secret+"\n\tjwks_url "+jwks.URL+"/jwks.json\n}\nendpoints none", up.Addr()))
	Eventually(t, "the key set fetched at start", func() bool { return fetched.Load() >= 1 })
}
