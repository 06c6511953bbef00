package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testbody"
	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

// End to end, with the real binary and real Redis: whatever the encoding,
// a revoked credential never reaches the app. Every blocked case is
// checked against the upstream's record of what it received.

// TestGuardRunsInEveryLayout: the directive orders itself with the
// authentication directives, so it runs before handle, handle_path,
// route, respond, file_server and reverse_proxy in the everyday layouts,
// and the endpoints are served there too. redir sorts before it in
// Caddy's order: the redirect answers without any upstream.
func TestGuardRunsInEveryLayout(t *testing.T) {
	t.Parallel()
	up := StartUpstream(t)
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "index.html"), []byte("static"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := StartCaddy(t, fmt.Sprintf(`{
	admin {{ADMIN}}
}
:{{PORT}} {
	bind 127.0.0.1
	handle /api/* {
		reverse_proxy %[1]s
	}
	handle_path /static/* {
		root * %[2]s
		file_server
	}
	route /r/* {
		reverse_proxy %[1]s
	}
	redir /old /new
	respond /health 200
	revocation {
		jwt {
			hmac_secret %[3]s
		}
	}
	file_server {
		root %[2]s
	}
}
`, up.Addr(), root, testtoken.Secret))
	tok := testtoken.HS256(t, nil)
	for _, path := range []string{"/api/x", "/static/index.html", "/r/x", "/health", "/index.html"} {
		ExpectStatus(t, "a valid token at "+path, Get(t, c.URL+path, tok), http.StatusOK)
	}
	// The logout endpoint is served though nothing routes /v1/ elsewhere.
	ExpectStatus(t, "logout", Do(t, "POST", c.URL+"/v1/auth/logout", "", "Authorization", "Bearer "+tok), http.StatusOK)
	for _, path := range []string{"/api/x", "/static/index.html", "/r/x", "/health", "/index.html"} {
		ExpectBlocked(t, "a logged-out token at "+path, Get(t, c.URL+path, tok))
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", c.URL+"/old", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	probe := randomID()
	req.Header.Set(probeHeader, probe)
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("redir: status %d", resp.StatusCode)
	}
	NeverReached(t, "redir", Response{Status: resp.StatusCode, Probe: probe})
}

// reencodings are ways a JWT is written that some mainstream library
// still accepts (see testdata/differential): the guard reads each as the
// token it is.
func reencodings(tok string) map[string]string {
	seg := strings.Split(tok, ".")
	pad := func(s string) string {
		for len(s)%4 != 0 {
			s += "="
		}
		return s
	}
	std := strings.NewReplacer("-", "+", "_", "/")
	return map[string]string{
		"as minted":                 tok,
		"signature padded":          seg[0] + "." + seg[1] + "." + seg[2] + "=",
		"standard alphabet":         std.Replace(tok),
		"header and payload padded": pad(seg[0]) + "." + pad(seg[1]) + "." + seg[2],
		"newline in the signature":  seg[0] + "." + seg[1] + "." + seg[2][:10] + "\n" + seg[2][10:],
	}
}

// sendVariants sends each re-encoding of tok in the Authorization header
// (after a NO-BREAK SPACE too) and as the access_token parameter, and
// checks that each is blocked and never reaches the upstream.
func expectVariantsBlocked(t *testing.T, what, url, tok string) {
	t.Helper()
	for name, v := range reencodings(tok) {
		if strings.ContainsAny(v, "\n") {
			// Not valid in a header line: as a form parameter.
			ExpectBlocked(t, what+", "+name+" (form)", Do(t, "POST", url, "access_token="+urlEscape(v), "Content-Type", "application/x-www-form-urlencoded"))
			continue
		}
		ExpectBlocked(t, what+", "+name, Do(t, "GET", url, "", "Authorization", "Bearer "+v))
		ExpectBlocked(t, what+", "+name+" after NO-BREAK SPACE", Do(t, "GET", url, "", "Authorization", "Bearer\u00a0"+v))
		ExpectBlocked(t, what+", "+name+" (query)", Do(t, "GET", url+"?access_token="+urlEscape(v), ""))
	}
}

func urlEscape(s string) string {
	return strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D", "\n", "%0A").Replace(s)
}

// Item 1 of the attack: every kind of revocation holds for every
// re-encoding of the token.
func TestRevocationsHoldForEveryEncoding(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	api := e.C.URL + "/api/orders"
	n := 0
	user := func() (string, func(sid string, extra jwt.MapClaims) string) {
		n++
		sub := fmt.Sprintf("enc-user-%d", n)
		return sub, func(sid string, extra jwt.MapClaims) string {
			c := jwt.MapClaims{"sub": sub, "sid": sid, "iat": time.Now().Add(-time.Second).Unix()}
			for k, v := range extra {
				c[k] = v
			}
			return testtoken.HS256(t, c)
		}
	}
	cases := []struct {
		name   string
		revoke func(mint func(string, jwt.MapClaims) string, sub string) string // returns the token that must be blocked
	}{
		{"target=all", func(mint func(string, jwt.MapClaims) string, _ string) string {
			victim := mint("other", nil)
			expectSeedNoContent(t, "all", e.revokeSessions(t, mint("cur", nil), "target=all"))
			return victim
		}},
		{"target=others", func(mint func(string, jwt.MapClaims) string, _ string) string {
			victim := mint("other", nil)
			expectSeedNoContent(t, "others", e.revokeSessions(t, mint("cur", nil), "target=others"))
			return victim
		}},
		{"target=mine", func(mint func(string, jwt.MapClaims) string, _ string) string {
			cur := mint("cur", nil)
			expectSeedNoContent(t, "mine", e.revokeSessions(t, cur, "target=mine"))
			return mint("cur", nil) // another token of the session
		}},
		{"target=session", func(mint func(string, jwt.MapClaims) string, sub string) string {
			victim := mint("tablet", nil)
			ExpectStatus(t, "tablet in use", Get(t, api, victim), http.StatusOK)
			e.waitSeen(t, sub, "tablet")
			expectSeedNoContent(t, "session", e.revokeSessions(t, mint("cur", nil), "target=session&session_id=tablet"))
			return victim
		}},
		{"invalidate_session", func(mint func(string, jwt.MapClaims) string, _ string) string {
			cur := mint("cur", nil)
			ExpectStatus(t, "invalidate", e.invalidateSession(t, cur, ""), http.StatusOK)
			return cur
		}},
		{"logout", func(mint func(string, jwt.MapClaims) string, _ string) string {
			cur := mint("cur", nil)
			ExpectStatus(t, "logout", e.logout(t, cur, ""), http.StatusOK)
			return cur
		}},
		{"admin jti", func(mint func(string, jwt.MapClaims) string, sub string) string {
			victim := mint("cur", jwt.MapClaims{"jti": "jti-of-" + sub})
			adminRevoke(t, e.C, fmt.Sprintf(`{"jti":%q}`, "jti-of-"+sub))
			return victim
		}},
		{"admin subject", func(mint func(string, jwt.MapClaims) string, sub string) string {
			victim := mint("cur", nil)
			adminRevoke(t, e.C, fmt.Sprintf(`{"subject":%q}`, sub))
			return victim
		}},
		{"admin token", func(mint func(string, jwt.MapClaims) string, _ string) string {
			victim := mint("cur", jwt.MapClaims{"jti": nil})
			adminRevoke(t, e.C, fmt.Sprintf(`{"token":%q}`, victim))
			return victim
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sub, mint := user()
			victim := c.revoke(mint, sub)
			expectVariantsBlocked(t, c.name, api, victim)
		})
	}
	ExpectStatus(t, "another user", Get(t, api, testtoken.HS256(t, jwt.MapClaims{"sub": "bystander"})), http.StatusOK)
}

// Items 2-4 and issue 13: a revoked refresh token, however a cookie or a
// body carries it, never reaches the app; a clean one does.
func TestRevokedRefreshTokenInEveryCarrier(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	refresh := seedRefresh(t, "carrier-user", "s1", nil)
	expectSeedNoContent(t, "revoke_refresh", e.revokeRefresh(t, refresh))
	clean := seedRefresh(t, "carrier-user-2", "s2", nil)
	url := e.C.URL + "/v1/auth/refresh"
	const name = seedCookieName
	json := func(tok string) string { return `{"refreshToken":"` + tok + `"}` }
	type carrier struct {
		name    string
		body    func(tok string) string
		headers func(tok string) []string
	}
	none := func(string) string { return "" }
	carriers := []carrier{
		{"cookie, quoted with a backslash escape", none, func(tok string) []string {
			return []string{"Cookie", name + `="` + tok[:5] + `\` + tok[5:] + `"`}
		}},
		{"cookie, octal escape", none, func(tok string) []string {
			return []string{"Cookie", name + `="` + strings.Replace(tok, ".", `\056`, 1) + `"`}
		}},
		{"cookie, comma separated", none, func(tok string) []string { return []string{"Cookie", "theme=dark, " + name + "=" + tok} }},
		{"cookie, space separated", none, func(tok string) []string { return []string{"Cookie", "theme=dark " + name + "=" + tok} }},
		{"cookie, Express JSON", none, func(tok string) []string {
			return []string{"Cookie", name + "=j%3A%7B%22refreshToken%22%3A%22" + tok + "%22%7D"}
		}},
		{"cookie, second header line", none, func(tok string) []string { return []string{"Cookie", "a=1", "Cookie", name + "=" + tok} }},
		{"JSON, UTF-32", func(tok string) string { return testbody.UTF32(json(tok), false, false) }, func(string) []string { return []string{"Content-Type", "application/json"} }},
		{"JSON, long-s key", func(tok string) string { return `{"refreſh_token":"` + tok + `"}` }, func(string) []string { return []string{"Content-Type", "application/json"} }},
		{"JSON, KELVIN SIGN key", func(tok string) string { return `{"refresh_to` + "\u212a" + `en":"` + tok + `"}` }, func(string) []string { return []string{"Content-Type", "application/json"} }},
		{"JSON declared multipart, no boundary", json, func(string) []string { return []string{"Content-Type", "multipart/form-data"} }},
		{"JSON declared multipart, with boundary", json, func(string) []string { return []string{"Content-Type", "multipart/form-data; boundary=xyz"} }},
		{"JSON, deflate", func(tok string) string { return testbody.Compressed("zlib", json(tok)) }, func(string) []string {
			return []string{"Content-Type", "application/json", "Content-Encoding", "deflate"}
		}},
		{"JSON, raw deflate", func(tok string) string { return testbody.Compressed("flate", json(tok)) }, func(string) []string {
			return []string{"Content-Type", "application/json", "Content-Encoding", "deflate"}
		}},
		{"JSON, UTF-16BE with BOM", func(tok string) string { return testbody.UTF16(json(tok), true, true) }, func(string) []string { return []string{"Content-Type", "application/json"} }},
		{"JSON, UTF-16BE without BOM", func(tok string) string { return testbody.UTF16(json(tok), true, false) }, func(string) []string { return []string{"Content-Type", "application/json"} }},
		{"JSON, UTF-16LE without BOM", func(tok string) string { return testbody.UTF16(json(tok), false, false) }, func(string) []string { return []string{"Content-Type", "application/json"} }},
		{"form", func(tok string) string { return "grant_type=refresh_token&refresh_token=" + tok }, func(string) []string {
			return []string{"Content-Type", "application/x-www-form-urlencoded"}
		}},
		{"query", none, func(string) []string { return nil }},
	}
	for _, c := range carriers {
		send := func(tok string) Response {
			target := url
			if c.name == "query" {
				target += "?refresh_token=" + tok
			}
			return Do(t, "POST", target, c.body(tok), c.headers(tok)...)
		}
		ExpectBlocked(t, c.name, send(refresh))
		ExpectStatus(t, c.name+", a clean token", send(clean), http.StatusOK)
	}
}

// Item 4's gzip bomb: a body that inflates past 4x inspect_body_limit is
// not examined; oversized_body pass lets it through (as documented),
// reject refuses it.
func TestInflatedBodyOverTheLimit(t *testing.T) {
	t.Parallel()
	up := StartUpstream(t)
	revoked := testtoken.HS256(t, nil)
	body := gzipped(`{"refreshToken":"` + revoked + `","pad":"` + strings.Repeat("x", 300<<10) + `"}`)
	for _, mode := range []string{"pass", "reject"} {
		t.Run(mode, func(t *testing.T) {
			c := StartCaddy(t, basicConfig("", up, "oversized_body "+mode))
			adminRevoke(t, c, fmt.Sprintf(`{"token":%q}`, revoked))
			r := Do(t, "POST", c.URL+"/v1/auth/refresh", body, "Content-Type", "application/json", "Content-Encoding", "gzip")
			if mode == "reject" {
				ExpectStatus(t, "inflates past the limit", r, http.StatusRequestEntityTooLarge)
			} else {
				ExpectStatus(t, "inflates past the limit", r, http.StatusOK)
			}
		})
	}
}

// Item 5: knowing someone's header.payload (or their token with another
// signature) revokes nothing of theirs.
func TestForgedCredentialsRevokeOnlyThemselves(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	victim := testtoken.HS256(t, jwt.MapClaims{"sub": "victim", "sid": "v1"})
	signed := victim[:strings.LastIndexByte(victim, '.')]
	attacker := testtoken.HS256(t, jwt.MapClaims{"sub": "attacker", "sid": "a1"})
	expectSeedNoContent(t, "header.payload as an opaque refresh cookie", e.revokeRefresh(t, signed))
	for _, forged := range []string{signed + ".Zm9yZ2Vk", signed + ".!!!", signed} {
		ExpectStatus(t, "logout handing in a forgery", e.logout(t, attacker, `{"refreshToken":"`+forged+`"}`), http.StatusOK)
		attacker = testtoken.HS256(t, jwt.MapClaims{"sub": "attacker", "sid": fmt.Sprintf("a-%d", len(forged))})
	}
	ExpectStatus(t, "the victim's token", Get(t, e.C.URL+"/api/orders", victim), http.StatusOK)
	ExpectBlocked(t, "the forgery itself", Get(t, e.C.URL+"/api/orders", signed+".Zm9yZ2Vk"))
}

// Item 6: claims that are not strings are read as apps stringify them.
func TestNumericClaimsAreRevocable(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	bySub := testtoken.HS256(t, jwt.MapClaims{"sub": 12345, "sid": 7})
	byJTI := testtoken.HS256(t, jwt.MapClaims{"sub": "u", "jti": 99})
	bySession := testtoken.HS256(t, jwt.MapClaims{"sub": 54321, "sid": 8})
	for _, tok := range []string{bySub, byJTI, bySession} {
		ExpectStatus(t, "before", Get(t, e.C.URL+"/api/orders", tok), http.StatusOK)
	}
	adminRevoke(t, e.C, `{"subject":"12345"}`)
	adminRevoke(t, e.C, `{"jti":"99"}`)
	adminRevoke(t, e.C, `{"subject":"54321","session":"8"}`)
	ExpectBlocked(t, "numeric sub", Get(t, e.C.URL+"/api/orders", bySub))
	ExpectBlocked(t, "numeric jti", Get(t, e.C.URL+"/api/orders", byJTI))
	ExpectBlocked(t, "numeric sub and sid", Get(t, e.C.URL+"/api/orders", bySession))
	// And the endpoints act for such a caller.
	caller := testtoken.HS256(t, jwt.MapClaims{"sub": 777, "sid": 1})
	ExpectStatus(t, "logout of a numeric subject", e.logout(t, caller, ""), http.StatusOK)
	ExpectBlocked(t, "after its logout", Get(t, e.C.URL+"/api/orders", testtoken.HS256(t, jwt.MapClaims{"sub": "777", "sid": "1"})))
}

// Item 7, as issue 17 changed it: a request with thousands of
// credentials is not refused for their number (a planted cookie would
// lock its victim out); its work is bounded (the first max_credentials
// JWTs decoded, the rest checked by hash), a revoked one among them is
// still found, and it does not slow everyone else down.
func TestManyCredentialsAreBoundedNotRefused(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	body := func(last string) string {
		var b strings.Builder
		b.WriteString("[")
		// JWT-shaped and distinct, so that each would cost a decoding;
		// alike, so that 4000 of them gzip to a few kilobytes.
		for i := range 4000 {
			fmt.Fprintf(&b, `{"refreshToken":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln%d"},`, i)
		}
		fmt.Fprintf(&b, `{"refreshToken":%q}]`, last)
		return gzipped(b.String())
	}
	start := time.Now()
	r := Do(t, "POST", e.C.URL+"/v1/auth/refresh", body("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.bGFzdA"), "Content-Type", "application/json", "Content-Encoding", "gzip")
	took := time.Since(start)
	ExpectStatus(t, "4000 refresh tokens", r, http.StatusOK)
	t.Logf("passed in %v", took)
	revoked := testtoken.HS256(t, jwt.MapClaims{"sub": "many", "sid": "m1"})
	revokeTokenAt(t, e.C, revoked)
	ExpectBlocked(t, "a revoked token after 4000 others", Do(t, "POST", e.C.URL+"/v1/auth/refresh", body(revoked), "Content-Type", "application/json", "Content-Encoding", "gzip"))
	ExpectStatus(t, "an ordinary request", Get(t, e.C.URL+"/api/orders", testtoken.HS256(t, nil)), http.StatusOK)
}

// Item 8: naming made-up sessions stores nothing.
func TestMadeUpSessionsStoreNothing(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	caller := testtoken.HS256(t, jwt.MapClaims{"sub": "filler", "sid": "cur"})
	ExpectStatus(t, "caller in use", Get(t, e.C.URL+"/api/orders", caller), http.StatusOK)
	keys := func() string {
		out, err := e.Redis.Do("DBSIZE")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	e.waitSeen(t, "filler", "cur")
	before := keys()
	for i := range 50 {
		expectSeedNoContent(t, "a made-up session", e.revokeSessions(t, caller, fmt.Sprintf("target=session&session_id=made-up-%d", i)))
		ExpectStatus(t, "invalidate a made-up session", e.invalidateSession(t, caller, fmt.Sprintf(`{"session_id":"made-up-x%d"}`, i)), http.StatusNotFound)
	}
	if after := keys(); after != before {
		t.Fatalf("made-up sessions grew Redis from %s to %s keys", before, after)
	}
	ExpectStatus(t, "the caller", Get(t, e.C.URL+"/api/orders", caller), http.StatusOK)
}

// Item 9: the shipped log configuration keeps tokens in the query out of
// the access log.
func TestAccessLogHasNoTokens(t *testing.T) {
	t.Parallel()
	up := StartUpstream(t)
	logFile := filepath.Join(t.TempDir(), "access.log")
	c := StartCaddy(t, fmt.Sprintf(`{
	admin {{ADMIN}}
}
:{{PORT}} {
	bind 127.0.0.1
	log {
		output file %s
		format filter {
			request>uri regexp "(?i)([?&;#][^=&;#]*(?:token|%%)[^=&;#]*)=[^&;#]*" "$1=REDACTED"
			request>headers>Dpop delete
			request>headers>X-Auth-Token delete
		}
	}
	revocation {
		app_id demo
		jwt {
			hmac_secret %s
		}
	}
	reverse_proxy %s
}
`, logFile, testtoken.Secret, up.Addr()))
	tok := testtoken.HS256(t, nil)
	secrets := []string{tok, "opaque-refresh-1", "opaque-refresh-2", "opaque-refresh-3", "header-secret", "dpop-proof"}
	Get(t, c.URL+"/a?access_token="+tok+"&x=1", "")
	Get(t, c.URL+"/b?x=1;refresh_token=opaque-refresh-1", "")
	Get(t, c.URL+"/c?refresh%5Ftoken=opaque-refresh-2", "")
	Get(t, c.URL+"/d?x=%zz&REFRESH_TOKEN=opaque-refresh-3", "")
	Do(t, "GET", c.URL+"/e", "", "Authorization", "Bearer "+tok, "Cookie", seedCookieName+"="+tok, "X-Auth-Token", "header-secret", "DPoP", "dpop-proof")
	var data []byte
	Eventually(t, "five access log lines", func() bool {
		data, _ = os.ReadFile(logFile)
		return bytes.Count(data, []byte("\n")) >= 5
	})
	for _, s := range secrets {
		if bytes.Contains(data, []byte(s)) {
			t.Errorf("the access log holds %q:\n%s", s, data)
		}
	}
	if !bytes.Contains(data, []byte("REDACTED")) {
		t.Fatal("the filter did not run")
	}
}

func gzipped(s string) string { return testbody.Compressed("gzip", s) }
