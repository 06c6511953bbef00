package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

// SPEC section 8: a legacy app that keeps its session in an opaque
// cookie, guarded without a line of change in it.

// startSessionApp starts an app that behaves like a cookie-session app
// (a servlet container, PHP, Express): /login sets JSESSIONID to a fresh
// opaque id; any path starting with /logout clears it and answers the
// status given in ?status= (200 by default; a 3xx redirects to /login);
// everything else answers 200 when a session cookie (or a bearer token)
// came, 401 otherwise.
// It records every request it receives, as StartUpstream does.
func startSessionApp(t *testing.T) *Upstream {
	t.Helper()
	u := &Upstream{}
	var mu sync.Mutex
	n := 0
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, seenRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(body)})
		u.mu.Unlock()
		switch {
		case r.URL.Path == "/login":
			mu.Lock()
			n++
			id := fmt.Sprintf("%032X", time.Now().UnixNano()+int64(n))
			mu.Unlock()
			http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: id, Path: "/", HttpOnly: true})
			fmt.Fprint(w, "welcome")
		case strings.HasPrefix(r.URL.Path, "/logout"):
			status := http.StatusOK
			if s := r.URL.Query().Get("status"); s != "" {
				status, _ = strconv.Atoi(s)
			}
			if status < 400 {
				http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: "", Path: "/", MaxAge: -1})
			}
			if status >= 300 && status < 400 {
				w.Header().Set("Location", "/login")
			}
			w.WriteHeader(status)
			fmt.Fprint(w, "bye")
		default:
			if _, err := r.Cookie("JSESSIONID"); err != nil && r.Header.Get("Authorization") == "" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			fmt.Fprint(w, "your orders")
		}
	}))
	t.Cleanup(u.Close)
	upstreams.Lock()
	upstreams.all = append(upstreams.all, u)
	upstreams.Unlock()
	return u
}

// legacyConfig guards a session app: the JSESSIONID cookie and an
// X-Auth-Token header, /logout as the app's logout.
func legacyConfig(redisURL string, app *Upstream, extra, site string) string {
	return fmt.Sprintf(`{
	admin {{ADMIN}}
	metrics
}
:{{PORT}} {
	bind 127.0.0.1
	revocation {
		redis %s
		jwt {
			hmac_secret %s
		}
		endpoints none
		credential cookie JSESSIONID
		credential header X-Auth-Token
		app_logout /logout
		%s
	}
	%s
	reverse_proxy %s
}
`, redisURL, testtoken.Secret, extra, site, app.Addr())
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// call sends a request without following redirects; headers alternate
// name, value. Like send, it tags the request with a probe id.
func call(t testing.TB, method, url string, headers ...string) Response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	probe := randomID()
	req.Header.Set(probeHeader, probe)
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: string(b), Probe: probe}
}

// login logs in through a replica and returns the session id the app set.
func login(t *testing.T, c *Caddy) string {
	t.Helper()
	r := call(t, "POST", c.URL+"/login")
	for _, sc := range (&http.Response{Header: r.Header}).Cookies() {
		if sc.Name == "JSESSIONID" && sc.Value != "" {
			return sc.Value
		}
	}
	t.Fatalf("login: no session cookie: %d %v", r.Status, r.Header)
	return ""
}

// expectSessionWorks asserts every replica passes the session to the app.
func expectSessionWorks(t *testing.T, what string, cs []*Caddy, cookie string) {
	t.Helper()
	for i, c := range cs {
		r := call(t, "GET", c.URL+"/orders", "Cookie", cookie)
		if r.Status != http.StatusOK || r.Body != "your orders" {
			t.Fatalf("%s at replica %d: %d %q", what, i, r.Status, r.Body)
		}
	}
}

// expectSessionBlocked asserts the replica that took the revocation
// blocks the session at once, every other one within moments, and that
// the app never receives it again.
func expectSessionBlocked(t *testing.T, what string, cs []*Caddy, at int, cookie string) {
	t.Helper()
	ExpectBlocked(t, what+" at the replica that revoked it", call(t, "GET", cs[at].URL+"/orders", "Cookie", cookie))
	for i, c := range cs {
		var last Response
		Eventually(t, fmt.Sprintf("%s at replica %d", what, i), func() bool {
			last = call(t, "GET", c.URL+"/orders", "Cookie", cookie)
			return last.Status == http.StatusUnauthorized
		})
		ExpectBlocked(t, fmt.Sprintf("%s at replica %d", what, i), last)
		for _, variant := range []string{`JSESSIONID="%s"`, "lang=en; JSESSIONID=%s", "JSESSIONID = %s"} {
			v := strings.Replace(cookie, "JSESSIONID=", "", 1)
			ExpectBlocked(t, fmt.Sprintf("%s, as %q, at replica %d", what, variant, i), call(t, "GET", c.URL+"/orders", "Cookie", fmt.Sprintf(variant, v)))
		}
	}
}

// cli runs the caddy binary with stdin and returns its output and status.
func cli(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(caddyBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// An app's opaque session id, revoked through the admin API or the CLI,
// never reaches the app again through any replica; the dry run says why.
func TestLegacySessionCookieRevoked(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	app := startSessionApp(t)
	cs := startReplicas(t, 2, legacyConfig(srv.URL(), app, "", ""))

	sid := login(t, cs[0])
	expectSessionWorks(t, "a fresh session", cs, "JSESSIONID="+sid)
	adminRevoke(t, cs[0], fmt.Sprintf(`{"token":%q}`, sid))
	expectSessionBlocked(t, "a session revoked through the admin API", cs, 0, "JSESSIONID="+sid)

	sid2 := login(t, cs[1])
	expectSessionWorks(t, "another session", cs, "JSESSIONID="+sid2)
	if out, err := cli(t, sid2+"\n", "revocation", "revoke", "--token", "-", "--address", cs[1].Admin); err != nil || strings.Contains(out, sid2) {
		t.Fatalf("caddy revocation revoke --token -: %v\n%s", err, out)
	}
	expectSessionBlocked(t, "a session revoked through the CLI", cs, 1, "JSESSIONID="+sid2)

	// A custom header, the same way.
	const header = "opaque-api-key-4b1d"
	ExpectStatus(t, "a custom header", call(t, "GET", cs[0].URL+"/orders", "X-Auth-Token", header, "Cookie", "JSESSIONID=x"), http.StatusOK)
	adminRevoke(t, cs[1], fmt.Sprintf(`{"token":%q}`, header))
	Eventually(t, "the header blocked at replica 0", func() bool {
		return call(t, "GET", cs[0].URL+"/orders", "X_Auth_Token", header).Status == http.StatusUnauthorized
	})

	// The dry run: the guard's view, hash prefixes only.
	out, err := cli(t, "GET /orders HTTP/1.1\r\nHost: app\r\nCookie: lang=en; JSESSIONID="+sid+"\r\n\r\n", "revocation", "explain", "--address", cs[1].Admin)
	if err != nil || !strings.Contains(out, "verdict: block") || !strings.Contains(out, "yes (token)") || !strings.Contains(out, "cookie") || strings.Contains(out, sid) {
		t.Fatalf("caddy revocation explain: %v\n%s", err, out)
	}
	out, err = cli(t, "Cookie: JSESSIONID=never-revoked\n", "revocation", "explain", "--address", cs[0].Admin)
	if err != nil || !strings.Contains(out, "verdict: pass") || strings.Contains(out, "never-revoked") {
		t.Fatalf("caddy revocation explain, clean session: %v\n%s", err, out)
	}
}

// The app's own logout revokes the session cookie and the bearer token's
// session on every replica when the app says it logged the user out
// (2xx, 3xx), and nothing when it did not, or on another path.
func TestLegacyAppLogout(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	app := startSessionApp(t)
	cs := startReplicas(t, 2, legacyConfig(srv.URL(), app, "", ""))
	cases := []struct {
		target  string
		status  int
		revokes bool
	}{
		{"/logout", 200, true},
		{"/logout?status=302", 302, true},
		{"/logout?status=403", 403, false},
		{"/logout?status=500", 500, false},
		{"/logout/now", 200, false},
		{"/logout-all", 200, false},
	}
	for i, c := range cases {
		at := i % 2
		sid := login(t, cs[at])
		cookie := "JSESSIONID=" + sid
		bearer := testtoken.HS256(t, jwt.MapClaims{"sub": "legacy-" + strconv.Itoa(i), "sid": "ls-" + strconv.Itoa(i)})
		sibling := testtoken.HS256(t, jwt.MapClaims{"sub": "legacy-" + strconv.Itoa(i), "sid": "ls-" + strconv.Itoa(i)})
		expectSessionWorks(t, c.target+": before", cs, cookie)
		r := call(t, "POST", cs[at].URL+c.target, "Cookie", cookie, "Authorization", "Bearer "+bearer)
		if r.Status != c.status || r.Body != "bye" {
			t.Fatalf("%s: the app's answer was not passed on: %d %q", c.target, r.Status, r.Body)
		}
		if c.status == 302 && r.Header.Get("Location") != "/login" {
			t.Fatalf("%s: Location %q", c.target, r.Header.Get("Location"))
		}
		if !c.revokes {
			expectSessionWorks(t, c.target+": nothing revoked", cs, cookie)
			expectAll(t, c.target+": bearer not revoked", cs, sibling, http.StatusOK)
			continue
		}
		// Blocked at once where the logout was served, and at the other
		// replica once the change feed brings it (a poll there may reach
		// the app before that: milliseconds).
		ExpectBlocked(t, c.target+": the session cookie, at once", call(t, "GET", cs[at].URL+"/orders", "Cookie", cookie))
		ExpectBlocked(t, c.target+": the bearer token", Get(t, cs[at].URL+"/orders", bearer))
		expectSessionBlocked(t, c.target+": the session cookie", cs, at, cookie)
		eventuallyAll(t, c.target+": another token of the bearer's session", cs, sibling, http.StatusUnauthorized)
		// From then on, no copy of the cookie reaches the app anywhere.
		seen := countCookie(app, sid)
		for _, r := range cs {
			ExpectBlocked(t, c.target+": the session cookie, later", call(t, "GET", r.URL+"/orders", "Cookie", cookie))
		}
		if n := countCookie(app, sid); n != seen {
			t.Fatalf("%s: the revoked cookie reached the app %d more times", c.target, n-seen)
		}
	}
	m := metricsText(t, cs[0]) + metricsText(t, cs[1])
	for _, want := range []string{`caddy_revocation_app_logout_total{result="revoked"} 1`, `caddy_revocation_app_logout_total{result="not_success"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// countCookie counts the requests that reached the app with s in a cookie.
func countCookie(u *Upstream, s string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, r := range u.seen {
		if strings.Contains(strings.Join(r.Header.Values("Cookie"), ";"), s) {
			n++
		}
	}
	return n
}

func metricsText(t *testing.T, c *Caddy) string {
	t.Helper()
	st, body := c.AdminDo("GET", "/metrics", "")
	if st != http.StatusOK {
		t.Fatalf("metrics: %d", st)
	}
	return body
}

// With the store down when the app logs a user out, the client is told
// the logout failed (503, Retry-After, and not the app's Set-Cookie that
// would drop the session it needs to retry with); once the store is back,
// the retried logout revokes everywhere.
func TestLegacyAppLogoutStoreDown(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	app := startSessionApp(t)
	cs := startReplicas(t, 2, legacyConfig(srv.URL(), app, "on_store_down fail_open\n\t\tredis_timeout 500ms", ""))
	sid := login(t, cs[0])
	cookie := "JSESSIONID=" + sid
	expectSessionWorks(t, "before the outage", cs, cookie)

	srv.Stop()
	before := app.Hits()
	r := call(t, "POST", cs[0].URL+"/logout", "Cookie", cookie)
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || r.Header.Get("Set-Cookie") != "" || !strings.Contains(r.Body, "temporarily_unavailable") {
		t.Fatalf("logout with the store down: %d %v %q", r.Status, r.Header, r.Body)
	}
	if app.Hits() != before+1 {
		t.Fatal("the logout did not reach the app")
	}
	if !strings.Contains(metricsText(t, cs[0]), `caddy_revocation_app_logout_total{result="failed"} 1`) {
		t.Error("the failed logout was not counted")
	}
	if !strings.Contains(cs[0].Logs(), "app logout: revocation store unavailable") || strings.Contains(cs[0].Logs(), sid) {
		t.Error("the failed logout was not logged, or the session id was")
	}

	srv.Resume()
	for _, c := range cs {
		c.WaitReady()
	}
	r = call(t, "POST", cs[1].URL+"/logout", "Cookie", cookie)
	if r.Status != http.StatusOK || r.Body != "bye" {
		t.Fatalf("retried logout: %d %q", r.Status, r.Body)
	}
	expectSessionBlocked(t, "after the retried logout", cs, 1, cookie)
}

// handle_errors restyles a block (a browser gets a redirect to the login
// page, with the placeholders); without a handle_errors route that takes
// it, the RFC 6750 JSON answer stays.
func TestLegacyHandleErrors(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	app := startSessionApp(t)
	styled := StartCaddy(t, legacyConfig(srv.URL(), app, "", `handle_errors 401 {
		redir * /login?expired=1&why={http.revocation.reason}&via={http.revocation.credential} 302
	}
	handle_errors 404 {
		respond "not here" 404
	}`))
	plain := StartCaddy(t, legacyConfig(srv.URL(), app, "", `handle_errors 404 {
		respond "not here" 404
	}`))
	for _, c := range []*Caddy{styled, plain} {
		c.WaitReady()
	}
	sid := login(t, styled)
	adminRevoke(t, styled, fmt.Sprintf(`{"token":%q}`, sid))

	r := call(t, "GET", styled.URL+"/orders", "Cookie", "JSESSIONID="+sid)
	if r.Status != http.StatusFound || r.Header.Get("Location") != "/login?expired=1&why=token&via=cookie" {
		t.Fatalf("handle_errors 401: %d Location %q body %q", r.Status, r.Header.Get("Location"), r.Body)
	}
	NeverReached(t, "a restyled block", r)

	var last Response
	Eventually(t, "blocked at the replica without a 401 route", func() bool {
		last = call(t, "GET", plain.URL+"/orders", "Cookie", "JSESSIONID="+sid)
		return last.Status == http.StatusUnauthorized
	})
	ExpectBlocked(t, "a block no handle_errors route takes", last)
	if body := last.JSON(t); body["error"] != "invalid_token" || last.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("the RFC 6750 JSON answer was lost: %v %q", last.Header, last.Body)
	}
}
