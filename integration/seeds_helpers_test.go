package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// Helpers of the seed conformance tests (seed000_test.go to
// seed003_test.go): one caddy with a real Redis in front of one upstream,
// the four endpoints called as the seeds' clients call them, and checks
// of what the proxy lets through afterwards.

// seedCookieName is the refresh cookie of app_id demo (seed 000).
const seedCookieName = "__Host-refresh_demo"

// seedEnv is a redis-server, an upstream and a caddy guarding it with
// every endpoint served.
type seedEnv struct {
	Redis *testredis.Server
	Up    *Upstream
	C     *Caddy
}

// startSeedEnv starts the three; extra goes into the revocation block.
// stale_after is long, so that a test that stops Redis still sees the
// proxy enforce its local copy (on_store_down is not under test here);
// the leeway lets a test mint a token issued after a revocation with
// nextSecond instead of sleeping into that second.
func startSeedEnv(t *testing.T, extra string) *seedEnv {
	t.Helper()
	e := &seedEnv{Redis: testredis.Start(t), Up: StartUpstream(t)}
	e.C = StartCaddy(t, withLeeway(seedConfig(e.Redis.URL(), e.Up, extra)))
	e.C.WaitReady()
	return e
}

func seedConfig(redisURL string, up *Upstream, extra string) string {
	return guarded(fmt.Sprintf(`
		app_id demo
		redis %s
		stale_after 10m
		jwt {
			hmac_secret %s
		}
		%s`, redisURL, testtoken.Secret, extra), up.Addr())
}

// The four endpoints at their default paths.

func (e *seedEnv) revokeRefresh(t *testing.T, cookie string, headers ...string) Response {
	t.Helper()
	if cookie != "" {
		headers = append([]string{"Cookie", seedCookieName + "=" + cookie}, headers...)
	}
	return Do(t, http.MethodPost, e.C.URL+"/v1/session/revoke", "", headers...)
}

func (e *seedEnv) revokeSessions(t *testing.T, token, query string) Response {
	t.Helper()
	return Do(t, http.MethodPost, e.C.URL+"/v1/session/me/revoke?"+query, "", seedBearer(token)...)
}

func (e *seedEnv) invalidateSession(t *testing.T, token, body string) Response {
	t.Helper()
	return Do(t, http.MethodDelete, e.C.URL+"/v1/auth/session", body, append(seedBearer(token), "Content-Type", "application/json")...)
}

func (e *seedEnv) logout(t *testing.T, token, body string) Response {
	t.Helper()
	return Do(t, http.MethodPost, e.C.URL+"/v1/auth/logout", body, append(seedBearer(token), "Content-Type", "application/json")...)
}

func seedBearer(token string) []string {
	if token == "" {
		return nil
	}
	return []string{"Authorization", "Bearer " + token}
}

// doChunked sends a request whose body has no declared length, so that
// it goes chunked. headers alternate name, value.
func doChunked(t *testing.T, method, url, body string, headers ...string) Response {
	t.Helper()
	// A MultiReader hides the length from http.NewRequest: the request
	// declares none, and the transport sends the body chunked.
	req, err := http.NewRequest(method, url, io.MultiReader(strings.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	if req.ContentLength != 0 {
		t.Fatalf("request body of declared length %d", req.ContentLength)
	}
	return send(t, req, headers...)
}

// What the proxy does with a credential afterwards.

// passes checks that a request carrying the access token reaches the
// upstream.
func (e *seedEnv) passes(t *testing.T, what, token string) {
	t.Helper()
	r := Get(t, e.C.URL+"/api/orders", token)
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `"upstream":"reached"`) {
		t.Fatalf("%s: status %d, body %s; want it passed to the upstream", what, r.Status, r.Body)
	}
}

// blocked checks that a request carrying the access token is stopped
// with the RFC 6750 answer and never reaches the upstream.
func (e *seedEnv) blocked(t *testing.T, what, token string) {
	t.Helper()
	expectSeedBlocked(t, what, Get(t, e.C.URL+"/api/orders", token))
}

// cookiePasses and cookieBlocked do the same for a refresh cookie.
func (e *seedEnv) cookiePasses(t *testing.T, what, refresh string) {
	t.Helper()
	r := Do(t, http.MethodGet, e.C.URL+"/api/profile", "", "Cookie", "theme=dark; "+seedCookieName+"="+refresh)
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `"upstream":"reached"`) {
		t.Fatalf("%s: status %d, body %s; want it passed to the upstream", what, r.Status, r.Body)
	}
}

func (e *seedEnv) cookieBlocked(t *testing.T, what, refresh string) {
	t.Helper()
	r := Do(t, http.MethodGet, e.C.URL+"/api/profile", "", "Cookie", "theme=dark; "+seedCookieName+"="+refresh)
	expectSeedBlocked(t, what, r)
	if !strings.Contains(r.Header.Get("WWW-Authenticate"), "refresh token") {
		t.Fatalf("%s: WWW-Authenticate %q does not name the refresh token", what, r.Header.Get("WWW-Authenticate"))
	}
}

// refreshBodyBlocked checks that the refresh token, sent in a JSON body to
// the app's own refresh endpoint, is stopped too.
func (e *seedEnv) refreshBodyBlocked(t *testing.T, what, refresh string) {
	t.Helper()
	r := Do(t, http.MethodPost, e.C.URL+"/v1/auth/refresh", fmt.Sprintf(`{"refreshToken":%q}`, refresh), "Content-Type", "application/json")
	expectSeedBlocked(t, what, r)
}

func expectSeedBlocked(t *testing.T, what string, r Response) {
	t.Helper()
	if r.Status != http.StatusUnauthorized || strings.Contains(r.Body, "upstream") {
		t.Fatalf("%s: status %d, body %s; want 401 from the proxy", what, r.Status, r.Body)
	}
	if got := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Bearer error="invalid_token", error_description="`) {
		t.Fatalf("%s: WWW-Authenticate %q", what, got)
	}
	NeverReached(t, what, r)
}

// waitSeen waits until the proxy has noted, in Redis, that a session of a
// subject is in use (it does so asynchronously, after a verified token of
// that session went through).
func (e *seedEnv) waitSeen(t *testing.T, sub, sid string) {
	t.Helper()
	seedWaitSeen(t, e.Redis, sub, sid)
}

func seedWaitSeen(t *testing.T, srv *testredis.Server, sub, sid string) {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	ctx := context.Background()
	base := revocation.KeyBase("revocation:")
	subj, sess := revocation.SubjectKey(sub), revocation.SessionKey(sub, sid)
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The notes' shard is the subject's under linear hashing on its
		// key's first four bytes (see the store's noteScript).
		L, p := 0, 0
		if v, err := rc.Get(ctx, base+"n").Result(); err == nil {
			fmt.Sscanf(v, "%d %d", &L, &p)
		}
		h := uint64(binary.BigEndian.Uint32(subj[:4]))
		a := h % (1 << L)
		if a < uint64(p) {
			a = h % (1 << (L + 1))
		}
		n, err := rc.HExists(ctx, base+"n:"+strconv.FormatUint(a, 10), string(subj[:])+string(sess[:])).Result()
		if err == nil && n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s of %s never noted as seen (%v)", sid, sub, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Responses.

// expectSeedJSON checks the status, the JSON content type and that the body
// is exactly the object want: no field more, no field less.
func expectSeedJSON(t *testing.T, what string, r Response, status int, want map[string]string) {
	t.Helper()
	ExpectStatus(t, what, r, status)
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: Content-Type %q, want application/json", what, ct)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.Body), &got); err != nil {
		t.Fatalf("%s: body %q is not a JSON object: %v", what, r.Body, err)
	}
	exp := make(map[string]any, len(want))
	for k, v := range want {
		exp[k] = v
	}
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("%s: body %s, want %v", what, r.Body, want)
	}
}

// expectSeedNoContent checks a 204 with an empty body.
func expectSeedNoContent(t *testing.T, what string, r Response) {
	t.Helper()
	ExpectStatus(t, what, r, http.StatusNoContent)
	if r.Body != "" {
		t.Fatalf("%s: 204 with a body %q", what, r.Body)
	}
}

// Tokens.

// seedSess mints an access token of sub for session sid, issued now.
func seedSess(t *testing.T, sub, sid string) string {
	t.Helper()
	return testtoken.HS256(t, jwt.MapClaims{"sub": sub, "sid": sid})
}

// seedSessLater mints an access token of sub for session sid issued in
// the next second: after every revocation made so far (see nextSecond).
func seedSessLater(t *testing.T, sub, sid string) string {
	t.Helper()
	return testtoken.HS256(t, nextSecond(), jwt.MapClaims{"sub": sub, "sid": sid})
}

// seedRefresh mints a JWT refresh token of sub for session sid.
func seedRefresh(t *testing.T, sub, sid string, claims jwt.MapClaims) string {
	t.Helper()
	c := jwt.MapClaims{"sub": sub, "sid": sid, "typ": "refresh", "exp": time.Now().Add(24 * time.Hour).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	return testtoken.HS256(t, c)
}

// seedExpired, seedForged and seedUnsigned mint tokens refused by every
// verifier: past exp, signed with a secret the proxy does not know, and
// alg none.
func seedExpired(t *testing.T, sub, sid string) string {
	t.Helper()
	return testtoken.HS256(t, jwt.MapClaims{"sub": sub, "sid": sid, "iat": time.Now().Add(-time.Hour).Unix(), "exp": time.Now().Add(-time.Minute).Unix()})
}

func seedForged(t *testing.T, sub, sid string) string {
	t.Helper()
	return testtoken.HS256With(t, "not-the-proxy-secret-0123456789abcdef", testtoken.With(testtoken.Claims(), jwt.MapClaims{"sub": sub, "sid": sid}))
}

func seedUnsigned(t *testing.T, sub, sid string) string {
	t.Helper()
	return testtoken.Unsigned(t, testtoken.With(testtoken.Claims(), jwt.MapClaims{"sub": sub, "sid": sid}))
}

// seedBadBearers are Authorization headers that do not carry a usable bearer
// token, whatever the token: each dialect answers them with its 401.
func seedBadBearers(t *testing.T, sub, sid string) []struct{ name, header string } {
	t.Helper()
	good := seedSess(t, sub, sid)
	return []struct{ name, header string }{
		{"basic scheme", "Basic dXNlcjpwYXNzd29yZA=="},
		{"bearer without token", "Bearer"},
		{"bearer with two words", "Bearer " + good + " extra"},
		{"dpop scheme", "DPoP " + good},
		{"token without scheme", good},
	}
}

// seedInvalidBearers are well-formed bearer tokens that must not authenticate.
func seedInvalidBearers(t *testing.T, sub, sid string) []struct{ name, token string } {
	t.Helper()
	return []struct{ name, token string }{
		{"expired", seedExpired(t, sub, sid)},
		{"wrongly signed", seedForged(t, sub, sid)},
		{"alg none", seedUnsigned(t, sub, sid)},
		{"no subject", testtoken.HS256(t, jwt.MapClaims{"sub": nil, "sid": sid})},
		{"not a JWT", "opaque-access-token"},
	}
}

// DPoP (RFC 9449) for seed 000.

// seedDPoPKey is a client's proof-of-possession key.
type seedDPoPKey struct {
	priv *ecdsa.PrivateKey
	jwk  revocation.JWK
	jkt  string // RFC 7638 thumbprint: the cnf.jkt of tokens bound to it
}

func newSeedDPoPKey(t *testing.T) *seedDPoPKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	j, err := revocation.JWKFromPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := j.Thumbprint()
	if err != nil {
		t.Fatal(err)
	}
	return &seedDPoPKey{priv: priv, jwk: j, jkt: jkt}
}

// proof signs an ES256 DPoP proof for a request; change edits its
// header and claims before signing.
func (k *seedDPoPKey) proof(t *testing.T, htm, htu string, change func(header, claims map[string]any)) string {
	t.Helper()
	claims := jwt.MapClaims{"htm": htm, "htu": htu, "iat": time.Now().Unix(), "jti": randomID()}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["typ"] = "dpop+jwt"
	tok.Header["jwk"] = k.jwk
	if change != nil {
		change(tok.Header, claims)
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// boundRefresh mints a refresh token bound to k (cnf.jkt).
func (k *seedDPoPKey) boundRefresh(t *testing.T, sub, sid string) string {
	t.Helper()
	return seedRefresh(t, sub, sid, jwt.MapClaims{"cnf": map[string]any{"jkt": k.jkt}})
}
