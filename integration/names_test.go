package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

// Issue 17: the guard finds a credential by its value, whatever name a
// framework reads it under. Each class an attacker tried from outside,
// sent as raw bytes through the real binary with Redis: the request is
// blocked and the upstream never sees it.

// rawCall sends one HTTP/1.1 request written by hand (request line and
// headers, without the final blank line; body after it), tagged with a
// probe id, and reads the answer.
func rawCall(t *testing.T, c *Caddy, head, body string) Response {
	t.Helper()
	u, err := url.Parse(c.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	probe := randomID()
	msg := head + "\r\nHost: app\r\n" + probeHeader + ": " + probe + "\r\nConnection: close\r\n"
	if body != "" {
		msg += fmt.Sprintf("Content-Length: %d\r\n", len(body))
	}
	if _, err := io.WriteString(conn, msg+"\r\n"+body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%q: %v", head, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: string(b), Probe: probe}
}

// startRoutingApp starts an app that routes paths as Tomcat and Express
// do (path parameters dropped, dot segments resolved, repeated and
// trailing slashes ignored, any case): its logout clears the session and
// answers 200; anything else answers 200.
func startRoutingApp(t *testing.T) *Upstream {
	t.Helper()
	u := &Upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, seenRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(body)})
		u.mu.Unlock()
		var segs []string
		for _, s := range strings.Split(r.URL.EscapedPath(), "/") {
			s, _, _ = strings.Cut(s, ";")
			segs = append(segs, s)
		}
		routed := strings.ToLower(strings.TrimSuffix(path.Clean("/"+strings.Join(segs, "/")), "/"))
		if routed == "/logout" {
			http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: "", Path: "/", MaxAge: -1})
			fmt.Fprint(w, "bye")
			return
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(u.Close)
	upstreams.Lock()
	upstreams.all = append(upstreams.all, u)
	upstreams.Unlock()
	return u
}

func namesConfig(redisURL string, app *Upstream) string {
	return fmt.Sprintf(`{
	admin {{ADMIN}}
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
		app_logout /logout
	}
	reverse_proxy %s
}
`, redisURL, testtoken.Secret, app.Addr())
}

func TestNamesEveryClassBlockedByValue(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	app := startRoutingApp(t)
	c := StartCaddy(t, namesConfig(srv.URL(), app))
	c.WaitReady()

	// A JWT revoked by its jti (so its claims must be read wherever it
	// sits), and an opaque session id revoked on the operator's word.
	jti := "names-" + randomID()
	tok := testtoken.HS256(t, jwt.MapClaims{"sub": "mallory", "sid": "m1", "jti": jti})
	adminRevoke(t, c, fmt.Sprintf(`{"jti":%q}`, jti))
	sid := strings.ToUpper(strings.ReplaceAll(randomID()+randomID()+randomID(), "-", ""))
	for len(sid) < 32 {
		sid += "0"
	}
	adminRevoke(t, c, fmt.Sprintf(`{"token":%q}`, sid))

	form := func(body string) (string, string) {
		return "POST /api HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded", body
	}
	multipart := func(partHead, value string) (string, string) {
		return "POST /api HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=XX",
			"--XX\r\n" + partHead + "\r\n\r\n" + value + "\r\n--XX--\r\n"
	}
	type req struct{ head, body string }
	cases := map[string]req{}
	add := func(name, head, body string) { cases[name] = req{head, body} }
	for _, v := range []struct{ what, val string }{{"JWT", tok}, {"session id", sid}} {
		q := url.QueryEscape(v.val)
		// Percent-encoded names (Express, PHP, Rack, Tomcat, Go).
		add(v.what+": query, access_%74oken", "GET /api?access_%74oken="+q+" HTTP/1.1", "")
		add(v.what+": query, %4ASESSIONID", "GET /api?%4ASESSIONID="+q+" HTTP/1.1", "")
		// PHP's name mangling: an unmatched '[', a NUL, '.', a space.
		for _, name := range []string{"access[token", "access_token%00x", "access.token", "access+token", "refresh[token"} {
			add(v.what+": query, PHP "+name, "GET /api?"+name+"="+q+" HTTP/1.1", "")
			h, b := form(name + "=" + q)
			add(v.what+": form, PHP "+name, h, b)
		}
		h, b := multipart("Content-Disposition: form-data; name=\"access[token\"", v.val)
		add(v.what+": multipart, PHP [", h, b)
		h, b = multipart("Content-Disposition: form-data; name=\"access_token\x00x\"", v.val)
		add(v.what+": multipart, PHP NUL", h, b)
		// Multipart part headers Go refuses: a parameter name in another
		// case, a part-header line without a colon.
		h, b = multipart("Content-Disposition: form-data; NAME=\"access_token\"", v.val)
		add(v.what+": multipart, NAME in upper case", h, b)
		h, b = multipart("Content-Disposition: form-data; name=\"x\"\r\nthis line has no colon", v.val)
		add(v.what+": multipart, a part-header line without a colon", h, b)
		// Servlet path parameters.
		add(v.what+": path, ;jsessionid=", "GET /app;jsessionid="+v.val+" HTTP/1.1", "")
		add(v.what+": path, ;JSESSIONID= in an inner segment", "GET /app;JSESSIONID="+v.val+"/orders HTTP/1.1", "")
		add(v.what+": path, any ;name=", "GET /a;x="+v.val+"/b HTTP/1.1", "")
		// Places no name marks at all.
		add(v.what+": cookie of another name", "GET /api HTTP/1.1\r\nCookie: lang=en; PHPSESSID="+v.val, "")
		add(v.what+": header of any name", "GET /api HTTP/1.1\r\nX-Whatever-Token: "+v.val, "")
		add(v.what+": JSON, any member, any depth", "POST /api HTTP/1.1\r\nContent-Type: application/json", `{"a":[{"b":{"c":"`+v.val+`"}}]}`)
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			ExpectBlocked(t, name, rawCall(t, c, r.head, r.body))
		})
	}
	// And the same requests with a clean credential pass.
	clean := testtoken.HS256(t, jwt.MapClaims{"sub": "mallory", "sid": "m1"})
	for _, head := range []string{
		"GET /api?access_%74oken=" + clean + " HTTP/1.1",
		"GET /app;jsessionid=" + strings.Repeat("A", 32) + " HTTP/1.1",
	} {
		ExpectStatus(t, head, rawCall(t, c, head, ""), http.StatusOK)
	}
}

// The app's logout revokes what the client presented on every path the
// app routes to it.
func TestNamesAppLogoutPathVariants(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	app := startRoutingApp(t)
	c := StartCaddy(t, namesConfig(srv.URL(), app))
	c.WaitReady()
	for i, target := range []string{"/logout;x=1", "/logout;jsessionid=abc", "//logout", "/./logout", "/app/../logout", "/logout/", "/LOGOUT", "/Logout/"} {
		bearer := testtoken.HS256(t, jwt.MapClaims{"sub": fmt.Sprintf("lv-%d", i), "sid": fmt.Sprintf("lv-%d", i)})
		sid := fmt.Sprintf("%032X", time.Now().UnixNano()+int64(i))
		cookie := "JSESSIONID=" + sid
		ExpectStatus(t, target+": before", rawCall(t, c, "GET /orders HTTP/1.1\r\nCookie: "+cookie+"\r\nAuthorization: Bearer "+bearer, ""), http.StatusOK)
		r := rawCall(t, c, "POST "+target+" HTTP/1.1\r\nCookie: "+cookie+"\r\nAuthorization: Bearer "+bearer, "")
		if r.Status != http.StatusOK || r.Body != "bye" {
			t.Fatalf("%s: the app did not log out: %d %q", target, r.Status, r.Body)
		}
		ExpectBlocked(t, target+": the session cookie", rawCall(t, c, "GET /orders HTTP/1.1\r\nCookie: "+cookie, ""))
		ExpectBlocked(t, target+": the bearer token", rawCall(t, c, "GET /orders HTTP/1.1\r\nAuthorization: Bearer "+bearer, ""))
	}
	// Another path is not the logout.
	bearer := testtoken.HS256(t, jwt.MapClaims{"sub": "lv-other", "sid": "lv-other"})
	ExpectStatus(t, "/logout-all", rawCall(t, c, "POST /logout-all HTTP/1.1\r\nAuthorization: Bearer "+bearer, ""), http.StatusOK)
	ExpectStatus(t, "after /logout-all", rawCall(t, c, "GET /orders HTTP/1.1\r\nAuthorization: Bearer "+bearer, ""), http.StatusOK)
}

// One planted cookie, however many strings or pairs it holds, never
// locks its victim out: the victim's own valid token gets through, and
// the victim's own revoked token is still blocked beside it.
func TestNamesPlantedCookieCannotLockOut(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	app := startRoutingApp(t)
	c := StartCaddy(t, namesConfig(srv.URL(), app))
	c.WaitReady()
	var strs []string
	for i := range 40 {
		strs = append(strs, fmt.Sprintf(`"planted-string-%02d-%s"`, i, strings.Repeat("x", 20)))
	}
	var jwts []string
	for i := range 80 {
		jwts = append(jwts, `"`+testtoken.HS256(t, jwt.MapClaims{"sub": fmt.Sprintf("junk-%d", i)})+`"`)
	}
	var pairs []string
	for i := range 33 {
		pairs = append(pairs, fmt.Sprintf("JSESSIONID=%032d", i))
	}
	planted := map[string]string{
		"40 strings":            "JSESSIONID=" + url.QueryEscape("j:["+strings.Join(strs, ",")+"]"),
		"33 pairs":              strings.Join(pairs, "; "),
		"80 JWTs in one cookie": "JSESSIONID=" + url.QueryEscape("j:["+strings.Join(jwts, ",")+"]"),
		"80 JWTs, another name": "pref=" + url.QueryEscape("j:["+strings.Join(jwts, ",")+"]"),
	}
	victim := testtoken.HS256(t, jwt.MapClaims{"sub": "victim", "sid": "v1"})
	revoked := testtoken.HS256(t, jwt.MapClaims{"sub": "victim", "sid": "v2"})
	adminRevoke(t, c, `{"subject":"victim","session":"v2"}`)
	for name, cookie := range planted {
		r := rawCall(t, c, "GET /orders HTTP/1.1\r\nAuthorization: Bearer "+victim+"\r\nCookie: "+cookie, "")
		if r.Status != http.StatusOK || r.Body != "ok" {
			t.Fatalf("%s: the victim got %d %q", name, r.Status, r.Body)
		}
		ExpectBlocked(t, name+": a revoked token beside it", rawCall(t, c, "GET /orders HTTP/1.1\r\nAuthorization: Bearer "+revoked+"\r\nCookie: "+cookie, ""))
	}
}
