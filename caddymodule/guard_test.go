package caddymodule

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

func utf16Bytes(s string, bigEndian, bom bool) string {
	var b []byte
	if bom {
		b = map[bool][]byte{true: {0xFE, 0xFF}, false: {0xFF, 0xFE}}[bigEndian]
	}
	for _, u := range utf16.Encode([]rune(s)) {
		if bigEndian {
			b = append(b, byte(u>>8), byte(u))
		} else {
			b = append(b, byte(u), byte(u>>8))
		}
	}
	return string(b)
}

func utf32Bytes(s string, bigEndian, bom bool) string {
	var b []byte
	if bom {
		b = map[bool][]byte{true: {0, 0, 0xFE, 0xFF}, false: {0xFF, 0xFE, 0, 0}}[bigEndian]
	}
	for _, r := range s {
		if bigEndian {
			b = append(b, byte(r>>24), byte(r>>16), byte(r>>8), byte(r))
		} else {
			b = append(b, byte(r), byte(r>>8), byte(r>>16), byte(r>>24))
		}
	}
	return string(b)
}

func compressed(kind, s string) string {
	var buf bytes.Buffer
	var w io.WriteCloser
	switch kind {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "zlib":
		w = zlib.NewWriter(&buf)
	case "flate":
		w, _ = flate.NewWriter(&buf, flate.DefaultCompression)
	}
	_, _ = io.WriteString(w, s)
	_ = w.Close()
	return buf.String()
}

// testExtractor reads the refresh cookie of app_id "app".
func testExtractor() *extractor {
	return &extractor{
		cookies:     []string{cookieNameKey("__Host-refresh_app")},
		inspectBody: true, limit: defaultInspectBody, maxInflation: 4 * defaultInspectBody,
	}
}

// Each way a credential may travel is read, whatever its encoding. The
// differential corpus (differential_test.go) checks the same against the
// frameworks' real parsers; these cases pin the guard's own rules.
func TestExtractFindsEveryCredential(t *testing.T) {
	const tok = "tok-123"
	cases := []struct {
		name    string
		target  string
		headers map[string][]string
		body    string
		want    credKind
	}{
		{"bearer", "/", map[string][]string{"Authorization": {"Bearer " + tok}}, "", credAccess},
		{"bearer, lower case, tab", "/", map[string][]string{"Authorization": {"bearer\t" + tok}}, "", credAccess},
		{"bearer, NO-BREAK SPACE", "/", map[string][]string{"Authorization": {"Bearer\u00a0" + tok}}, "", credAccess},
		{"bearer, IDEOGRAPHIC SPACE", "/", map[string][]string{"Authorization": {"Bearer\u3000" + tok}}, "", credAccess},
		{"bearer, two fields", "/", map[string][]string{"Authorization": {"Bearer other " + tok}}, "", credAccess},
		{"bearer, colon", "/", map[string][]string{"Authorization": {"Bearer:" + tok}}, "", credAccess},
		{"no scheme", "/", map[string][]string{"Authorization": {tok}}, "", credAccess},
		{"second header", "/", map[string][]string{"Authorization": {"Bearer a", "Bearer " + tok}}, "", credAccess},
		{"dpop", "/", map[string][]string{"Authorization": {"DPoP " + tok}}, "", credAccess},
		{"basic user", "/", map[string][]string{"Authorization": {"Basic dG9rLTEyMzo="}}, "", credRefresh},
		{"query access_token", "/?access_token=" + tok, nil, "", credAccess},
		{"query, encoded", "/?access%5Ftoken=tok%2D123", nil, "", credAccess},
		{"query, semicolon", "/?a=1;refresh_token=" + tok, nil, "", credRefresh},
		{"query, bad escape elsewhere", "/?x=%zz&refresh_token=" + tok, nil, "", credRefresh},
		{"cookie", "/", map[string][]string{"Cookie": {"a=1; __Host-refresh_app=" + tok}}, "", credRefresh},
		{"cookie, quoted", "/", map[string][]string{"Cookie": {`__Host-refresh_app="` + tok + `"`}}, "", credRefresh},
		{"cookie, backslash escape", "/", map[string][]string{"Cookie": {`__Host-refresh_app="tok\-123"`}}, "", credRefresh},
		{"cookie, octal escape", "/", map[string][]string{"Cookie": {`__Host-refresh_app="tok\055123"`}}, "", credRefresh},
		{"cookie, comma separated", "/", map[string][]string{"Cookie": {"a=1, __Host-refresh_app=" + tok}}, "", credRefresh},
		{"cookie, space separated", "/", map[string][]string{"Cookie": {"a=1 __Host-refresh_app=" + tok}}, "", credRefresh},
		{"cookie, space before =", "/", map[string][]string{"Cookie": {"__Host-refresh_app =" + tok}}, "", credRefresh},
		{"cookie, percent-encoded", "/", map[string][]string{"Cookie": {"__Host-refresh_app=tok%2D123"}}, "", credRefresh},
		{"cookie, encoded name", "/", map[string][]string{"Cookie": {"%5F_Host-refresh_app=" + tok}}, "", credRefresh},
		{"cookie, PHP's dot", "/", map[string][]string{"Cookie": {"__Host-refresh.app=" + tok}}, "", credRefresh},
		{"cookie, Express JSON", "/", map[string][]string{"Cookie": {`__Host-refresh_app=j:{"refreshToken":"` + tok + `"}`}}, "", credRefresh},
		{"cookie, Express JSON encoded", "/", map[string][]string{"Cookie": {"__Host-refresh_app=" + url.QueryEscape(`j:{"t":"`+tok+`"}`)}}, "", credRefresh},
		{"cookie, Express signed", "/", map[string][]string{"Cookie": {"__Host-refresh_app=s:" + tok + ".c2ln"}}, "", credRefresh},
		{"cookie, second header", "/", map[string][]string{"Cookie": {"a=1", "__Host-refresh_app=" + tok}}, "", credRefresh},
		{"json", "/", map[string][]string{"Content-Type": {"application/json"}}, `{"refreshToken":"` + tok + `"}`, credRefresh},
		{"json, long s", "/", nil, `{"refreſh_token":"` + tok + `"}`, credRefresh},
		{"json, KELVIN SIGN", "/", nil, `{"refresh_to` + "\u212a" + `en":"` + tok + `"}`, credRefresh},
		{"json, escaped key", "/", nil, `{"refresh\u0054oken":"` + tok + `"}`, credRefresh},
		{"json, nested, duplicated", "/", nil, `{"a":{"refresh_token":"x"},"b":[{"refreshToken":"` + tok + `"}]}`, credRefresh},
		{"json, NaN and comments", "/", nil, `{"a":NaN, /* c */ "refreshToken":"` + tok + `"}`, credRefresh},
		{"json, single quotes", "/", nil, `{'refreshToken':'` + tok + `'}`, credRefresh},
		{"json, number", "/", nil, `{"refreshToken":12345}`, credRefresh},
		{"json access_token", "/", nil, `{"access_token":"` + tok + `"}`, credAccess},
		{"json, UTF-8 BOM", "/", nil, "\xEF\xBB\xBF" + `{"refreshToken":"` + tok + `"}`, credRefresh},
		{"json, UTF-16LE BOM", "/", nil, utf16Bytes(`{"refreshToken":"`+tok+`"}`, false, true), credRefresh},
		{"json, UTF-16BE BOM", "/", nil, utf16Bytes(`{"refreshToken":"`+tok+`"}`, true, true), credRefresh},
		{"json, UTF-16LE", "/", nil, utf16Bytes(`{"refreshToken":"`+tok+`"}`, false, false), credRefresh},
		{"json, UTF-16BE", "/", nil, utf16Bytes(`{"refreshToken":"`+tok+`"}`, true, false), credRefresh},
		{"json, UTF-32LE", "/", nil, utf32Bytes(`{"refreshToken":"`+tok+`"}`, false, false), credRefresh},
		{"json, UTF-32BE BOM", "/", nil, utf32Bytes(`{"refreshToken":"`+tok+`"}`, true, true), credRefresh},
		{"json, UTF-16 by charset", "/", map[string][]string{"Content-Type": {"application/json; charset=utf-16le"}}, utf16Bytes(`x{"refreshToken":"`+tok+`"}`, false, false)[2:], credRefresh},
		{"json as multipart", "/", map[string][]string{"Content-Type": {"multipart/form-data"}}, `{"refreshToken":"` + tok + `"}`, credRefresh},
		{"json as multipart with boundary", "/", map[string][]string{"Content-Type": {"multipart/form-data; boundary=XX"}}, `{"refreshToken":"` + tok + `"}`, credRefresh},
		{"json as text", "/", map[string][]string{"Content-Type": {"text/plain"}}, `{"refreshToken":"` + tok + `"}`, credRefresh},
		{"form", "/", map[string][]string{"Content-Type": {"application/x-www-form-urlencoded"}}, "grant_type=refresh_token&refresh_token=" + tok, credRefresh},
		{"form access_token", "/", nil, "access_token=" + tok, credAccess},
		{"form, PHP array", "/", nil, "refresh_token[]=" + tok, credRefresh},
		{"form, malformed pair", "/", nil, "a=%zz&refresh_token=" + tok, credRefresh},
		{"multipart field", "/", map[string][]string{"Content-Type": {"multipart/form-data; boundary=XX"}}, "--XX\r\nContent-Disposition: form-data; name=\"refresh_token\"\r\n\r\n" + tok + "\r\n--XX--\r\n", credRefresh},
		{"multipart file", "/", map[string][]string{"Content-Type": {"multipart/form-data; boundary=XX"}}, "--XX\r\nContent-Disposition: form-data; name=\"refresh_token\"; filename=\"a\"\r\n\r\n" + tok + "\r\n--XX--\r\n", credRefresh},
		{"multipart, base64 part", "/", map[string][]string{"Content-Type": {"multipart/form-data; boundary=XX"}}, "--XX\r\nContent-Disposition: form-data; name=\"refresh_token\"\r\nContent-Transfer-Encoding: base64\r\n\r\ndG9rLTEyMw==\r\n--XX--\r\n", credRefresh},
		{"multipart, wrong boundary", "/", map[string][]string{"Content-Type": {"multipart/form-data; boundary=YY"}}, "--XX\r\nContent-Disposition: form-data; name=\"refresh_token\"\r\n\r\n" + tok + "\r\n--XX--\r\n", credRefresh},
		{"gzip", "/", map[string][]string{"Content-Encoding": {"gzip"}}, compressed("gzip", `{"refreshToken":"`+tok+`"}`), credRefresh},
		{"deflate (zlib)", "/", map[string][]string{"Content-Encoding": {"deflate"}}, compressed("zlib", `{"refreshToken":"`+tok+`"}`), credRefresh},
		{"deflate (raw)", "/", map[string][]string{"Content-Encoding": {"deflate"}}, compressed("flate", `{"refreshToken":"`+tok+`"}`), credRefresh},
		{"gzip twice", "/", map[string][]string{"Content-Encoding": {"gzip, gzip"}}, compressed("gzip", compressed("gzip", `{"refreshToken":"`+tok+`"}`)), credRefresh},
		{"gzip UTF-16", "/", map[string][]string{"Content-Encoding": {"gzip"}}, compressed("gzip", utf16Bytes(`{"refreshToken":"`+tok+`"}`, true, false)), credRefresh},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body io.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			}
			r := httptest.NewRequest(http.MethodPost, c.target, body)
			for k, vs := range c.headers {
				r.Header[k] = vs
			}
			x := testExtractor().extract(r, nil, nil)
			if x.uninspected {
				t.Fatal("uninspected")
			}
			i := slices.IndexFunc(x.creds, func(c credential) bool { return c.raw == tok || c.raw == "12345" })
			if i < 0 {
				t.Fatalf("not found among %q", x.creds)
			}
			if x.creds[i].kind != c.want {
				t.Errorf("kind %v, want %v", x.creds[i].kind, c.want)
			}
			if c.body != "" {
				rest, _ := io.ReadAll(r.Body)
				if string(rest) != c.body {
					t.Fatal("the body was not passed on as it came")
				}
			}
		})
	}
}

func TestExtractLimits(t *testing.T) {
	t.Run("a body over the limit passes on whole, uninspected", func(t *testing.T) {
		body := `{"refreshToken":"rt","pad":"` + strings.Repeat("x", defaultInspectBody) + `"}`
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.ContentLength = -1 // chunked: the size is learned by reading
		x := testExtractor().extract(r, nil, nil)
		if !x.uninspected {
			t.Fatal("counted as inspected")
		}
		if rest, _ := io.ReadAll(r.Body); string(rest) != body {
			t.Fatal("not passed on whole")
		}
	})
	t.Run("a gzip body inflating past 4x the limit is uninspected", func(t *testing.T) {
		body := compressed("gzip", `{"refreshToken":"rt","pad":"`+strings.Repeat("x", 4*defaultInspectBody)+`"}`)
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.Header.Set("Content-Encoding", "gzip")
		if x := testExtractor().extract(r, nil, nil); !x.uninspected {
			t.Fatal("counted as inspected")
		}
	})
	t.Run("an encoding it cannot undo is uninspected", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("whatever"))
		r.Header.Set("Content-Encoding", "br")
		if x := testExtractor().extract(r, nil, nil); !x.uninspected {
			t.Fatal("counted as inspected")
		}
	})
	t.Run("every candidate is kept, however many", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("[")
		for i := range 100 {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`{"refreshToken":"t` + strings.Repeat("x", i) + `"}`)
		}
		b.WriteString("]")
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(b.String()))
		x := testExtractor().extract(r, nil, nil)
		for i := range 100 {
			if !slices.ContainsFunc(x.creds, func(c credential) bool { return c.raw == "t"+strings.Repeat("x", i) && c.kind == credRefresh }) {
				t.Fatalf("refresh token %d missing among %d candidates", i, len(x.creds))
			}
		}
	})
	t.Run("no credentials, no candidates by name, short values none", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/?page=2", strings.NewReader(`{"note":"refreshToken","x":"y"}`))
		r.Header.Set("Cookie", "theme=dark; __Host-refresh_app_other=x")
		r.Header.Set("Authorization", "Bearer")
		r.Header.Set("Accept-Language", "en-GB,en;q=0.8")
		x := testExtractor().extract(r, nil, nil)
		if len(x.named()) != 0 {
			t.Fatalf("found by name %q", x.named())
		}
		// The body whole is the one value as long as a credential.
		if len(x.creds) != 1 || x.creds[0].raw != `{"note":"refreshToken","x":"y"}` {
			t.Fatalf("found by value %q", x.creds)
		}
	})
}

// guardHandler provisions a handler with the embedded store and HS256
// tokens, as a Caddyfile with app_id app and a jwt block would.
func guardHandler(t testing.TB, configure func(h *Handler)) *Handler {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	h := &Handler{AppID: "app", StoreConfig: StoreConfig{KeyPrefix: "guard-test-" + t.Name() + ":"}, JWT: &JWTConfig{HMACSecret: testSecret}, LogBlocked: "off",
		LegacyEndpoints: LegacyEndpoints{Endpoints: []string{"revoke_refresh", "revoke_sessions", "invalidate_session", "logout"}}}
	if configure != nil {
		configure(h)
	}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	return h
}

const testSecret = "guard-test-secret-0123456789abcdef"

func mintToken(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	now := time.Now()
	full := jwt.MapClaims{"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range claims {
		full[k] = v
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, full).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// asServed gives r what Caddy's server gives every request before its
// routes run: the replacer, which the endpoints' path matchers read.
func asServed(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
}

// serve runs the handler on r and reports the status and whether the next
// handler (the upstream) saw the request.
func serve(t testing.TB, h *Handler, r *http.Request) (int, bool) {
	t.Helper()
	reached := false
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		reached = true
		w.WriteHeader(http.StatusOK)
		return nil
	})
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, asServed(r), next); err != nil {
		t.Fatal(err)
	}
	if reached && w.Code != http.StatusOK {
		t.Fatalf("upstream reached and status %d", w.Code)
	}
	return w.Code, reached
}

// In-process: each kind of revocation stops the request in every place
// and encoding a token can travel, and the next handler never runs.
func TestGuardBlocksEveryRevocationEverywhere(t *testing.T) {
	h := guardHandler(t, nil)
	ctx := context.Background()
	revokers := map[string]func(tok string, claims jwt.MapClaims){
		"token": func(tok string, _ jwt.MapClaims) {
			if _, err := h.revoker.RevokeToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
		},
		"jti": func(_ string, c jwt.MapClaims) {
			if _, err := h.revoker.RevokeJTI(ctx, c["jti"].(string), 0); err != nil {
				t.Fatal(err)
			}
		},
		"session": func(_ string, c jwt.MapClaims) {
			if _, err := h.revoker.RevokeSession(ctx, c["sub"].(string), c["sid"].(string)); err != nil {
				t.Fatal(err)
			}
		},
		"subject": func(_ string, c jwt.MapClaims) {
			if _, err := h.revoker.RevokeSubject(ctx, c["sub"].(string)); err != nil {
				t.Fatal(err)
			}
		},
	}
	carriers := map[string]func(tok string) *http.Request{
		"bearer": func(tok string) *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/api", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			return r
		},
		"bearer, padded signature, standard alphabet": func(tok string) *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/api", nil)
			r.Header.Set("Authorization", "Bearer\u00a0"+strings.NewReplacer("-", "+", "_", "/").Replace(tok)+"=")
			return r
		},
		"query": func(tok string) *http.Request {
			return httptest.NewRequest(http.MethodGet, "/api?access_token="+tok, nil)
		},
		"cookie, octal escape": func(tok string) *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/api", nil)
			r.Header.Set("Cookie", `__Host-refresh_app="`+strings.Replace(tok, ".", `\056`, 1)+`"`)
			return r
		},
		"json, UTF-32, folded key": func(tok string) *http.Request {
			return httptest.NewRequest(http.MethodPost, "/api", strings.NewReader(utf32Bytes(`{"refreſh_token":"`+tok+`"}`, false, false)))
		},
		"multipart declared, JSON sent": func(tok string) *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/api", strings.NewReader(`{"refreshToken":"`+tok+`"}`))
			r.Header.Set("Content-Type", "multipart/form-data")
			return r
		},
	}
	n := 0
	for kind, revoke := range revokers {
		for carrier, req := range carriers {
			n++
			claims := jwt.MapClaims{"sub": "user-" + kind + "-" + carrier, "sid": "s", "jti": "j-" + kind + "-" + carrier}
			tok := mintToken(t, claims)
			if st, reached := serve(t, h, req(tok)); st != http.StatusOK || !reached {
				t.Fatalf("%s via %s: a valid token was refused (%d)", kind, carrier, st)
			}
			revoke(tok, claims)
			if st, reached := serve(t, h, req(tok)); st != http.StatusUnauthorized || reached {
				t.Errorf("%s revoked, sent via %s: status %d, upstream reached %v", kind, carrier, st, reached)
			}
		}
	}
	if n != 24 {
		t.Fatalf("%d combinations", n)
	}
}

// A credential that does not verify revokes nothing but its exact string:
// a stranger's header.payload with a made-up signature, or as an opaque
// string, leaves the stranger's token working.
func TestUnverifiedCredentialRevokesOnlyItself(t *testing.T) {
	h := guardHandler(t, nil)
	ctx := context.Background()
	victim := mintToken(t, jwt.MapClaims{"sub": "victim", "sid": "vs", "jti": "vj"})
	signed := victim[:strings.LastIndexByte(victim, '.')]
	attacker, err := h.revoker.Authenticate(ctx, mintToken(t, jwt.MapClaims{"sub": "victim", "sid": "other", "jti": "aj"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, forged := range []string{signed, signed + ".Zm9yZ2Vk", signed + ".!!"} {
		if _, err := h.revoker.Logout(ctx, attacker, h.revoker.Examine(ctx, forged)); err != nil {
			t.Fatal(err)
		}
		if _, err := h.revoker.RevokeRefresh(ctx, revocation.NewCredential(forged)); err != nil {
			t.Fatal(err)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/api", nil)
	r.Header.Set("Authorization", "Bearer "+victim)
	if st, reached := serve(t, h, r); st != http.StatusOK || !reached {
		t.Fatalf("the victim's token was revoked through a forgery: %d", st)
	}
	r = httptest.NewRequest(http.MethodGet, "/api", nil)
	r.Header.Set("Authorization", "Bearer "+signed+".Zm9yZ2Vk")
	if st, _ := serve(t, h, r); st != http.StatusUnauthorized {
		t.Fatalf("the forged string itself was not revoked: %d", st)
	}
}

// A request is never refused for how many values it carries: a planted
// cookie of many strings, or many pairs of a configured cookie, costs
// the victim nothing, and past the decoding budget a revoked token is
// still found by its exact string and, once decoded before, by its
// claims.
func TestGuardNeverRefusesForHowManyValues(t *testing.T) {
	h := guardHandler(t, func(h *Handler) {
		h.MaxCredentials = 4
		h.Credentials = []CredentialSource{{Cookie: "JSESSIONID"}}
	})
	victim := mintToken(t, jwt.MapClaims{"sub": "victim", "sid": "v1", "jti": "v-1"})
	var planted []string
	for i := range 40 {
		planted = append(planted, `"`+mintToken(t, jwt.MapClaims{"sub": "junk", "jti": fmt.Sprint("junk-", i)})+`"`)
	}
	jsonCookie := "JSESSIONID=" + url.QueryEscape("j:["+strings.Join(planted, ",")+"]")
	var pairs []string
	for i := range 33 {
		pairs = append(pairs, fmt.Sprintf("JSESSIONID=%032d", i))
	}
	for name, cookie := range map[string]string{"40 strings": jsonCookie, "33 pairs": strings.Join(pairs, "; ")} {
		r := httptest.NewRequest(http.MethodGet, "/api", nil)
		r.Header.Set("Authorization", "Bearer "+victim)
		r.Header.Set("Cookie", cookie)
		if st, reached := serve(t, h, r); st != http.StatusOK || !reached {
			t.Fatalf("%s: the victim got %d", name, st)
		}
	}

	// A revoked token behind more JWTs than the budget, in a place no
	// name marks: by its exact string, and by its jti once decoded.
	revoked := mintToken(t, jwt.MapClaims{"sub": "attacker", "jti": "a-1"})
	if _, err := h.revoker.RevokeToken(context.Background(), revoked); err != nil {
		t.Fatal(err)
	}
	behind := func(tok string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/api", nil)
		r.Header.Set("Cookie", "pad="+url.QueryEscape("j:["+strings.Join(planted, ",")+"]")+"; x_"+"tok="+tok)
		return r
	}
	if st, reached := serve(t, h, behind(revoked)); st != http.StatusUnauthorized || reached {
		t.Fatalf("a revoked token past the budget: status %d", st)
	}
	byJTI := mintToken(t, jwt.MapClaims{"sub": "attacker", "jti": "a-2"})
	r := httptest.NewRequest(http.MethodGet, "/api", nil)
	r.Header.Set("X-Anything", byJTI) // decoded: within the budget
	if st, _ := serve(t, h, r); st != http.StatusOK {
		t.Fatalf("before its revocation: %d", st)
	}
	if _, err := h.revoker.RevokeJTI(context.Background(), "a-2", 0); err != nil {
		t.Fatal(err)
	}
	if st, reached := serve(t, h, behind(byJTI)); st != http.StatusUnauthorized || reached {
		t.Fatalf("a token revoked by jti, met before, past the budget: status %d", st)
	}
}

func TestGuardOversizedBodyReject(t *testing.T) {
	h := guardHandler(t, func(h *Handler) { h.OversizedBody = "reject"; h.InspectBodyLimit = 64 })
	r := httptest.NewRequest(http.MethodPost, "/api", strings.NewReader(strings.Repeat("x", 65)))
	if st, reached := serve(t, h, r); st != http.StatusRequestEntityTooLarge || reached {
		t.Fatalf("status %d, upstream reached %v", st, reached)
	}
}

// jsonBindings returns every string value encoding/json would bind to a
// struct field tagged refreshToken or refresh_token, at any depth.
func jsonBindings(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && (strings.EqualFold(revocation.FoldName(k), revocation.FoldName("refreshToken")) || revocation.FoldName(k) == revocation.FoldName("refresh_token")) {
				*out = append(*out, s)
			}
			jsonBindings(e, out)
		}
	case []any:
		for _, e := range v {
			jsonBindings(e, out)
		}
	}
}

// FuzzJSONRefreshTokens: for every body encoding/json accepts, every
// string a struct-based reader would bind to refreshToken or
// refresh_token (by Go's case folding) is among the guard's findings.
func FuzzJSONRefreshTokens(f *testing.F) {
	for _, s := range []string{`{"refreshToken":"a"}`, `[{"a":{"refresh_token":"b"}}]`, `{"a":[1,{"b":"c"}],"refreshToken":"d"}`, `{"REFRESHTOKEN":"e"}`, `{"refreſh_token":"f"}`, `{"refreshToken":"\ud83d\ude00"}`, `{"refreshToken":"a\u0000b"}`, "{\"refreshToken\":\"\xff\"}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var doc any
		if json.Unmarshal([]byte(s), &doc) != nil {
			return
		}
		var want []string
		jsonBindings(doc, &want)
		var x extraction
		testExtractor().textCredentials(&x, []byte(s))
		for _, w := range want {
			if w != "" && len(w) <= maxCandidateLen && !slices.ContainsFunc(x.creds, func(c credential) bool { return c.raw == w }) {
				t.Fatalf("%q: encoding/json binds %q; the guard found %q", s, w, x.creds)
			}
		}
	})
}

// FuzzBodyCredentials drives the whole body search with any content type,
// encoding and body: it never panics, always puts the body back, and
// finds what encoding/json would bind in a JSON body of any declared type.
func FuzzBodyCredentials(f *testing.F) {
	f.Add("application/json", "", `{"refreshToken":"a"}`)
	f.Add("multipart/form-data; boundary=X", "", "--X\r\nContent-Disposition: form-data; name=\"refresh_token\"\r\n\r\nb\r\n--X--\r\n")
	f.Add("application/x-www-form-urlencoded", "", "refresh_token=c&x=%zz")
	f.Add("text/plain; charset=utf-16", "gzip", compressed("gzip", utf16Bytes(`{"refreshToken":"d"}`, false, true)))
	f.Add("", "deflate", compressed("zlib", `{"refreshToken":"e"}`))
	f.Fuzz(func(t *testing.T, ctype, encoding, body string) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		r.Header.Set("Content-Encoding", encoding)
		e := testExtractor()
		x := e.extract(r, nil, nil)
		if rest, _ := io.ReadAll(r.Body); string(rest) != body {
			t.Fatal("body not put back as it came")
		}
		if x.uninspected || strings.TrimSpace(encoding) != "" {
			return
		}
		var doc any
		if json.Unmarshal([]byte(body), &doc) != nil {
			return
		}
		var want []string
		jsonBindings(doc, &want)
		for _, w := range want {
			if w != "" && !slices.ContainsFunc(x.creds, func(c credential) bool { return c.raw == w }) {
				t.Fatalf("%q (%s): encoding/json binds %q; the guard found %q", body, ctype, w, x.creds)
			}
		}
	})
}

// FuzzCookieCredentials: every value Go's net/http gives a cookie of the
// name is among the guard's findings, whatever else the header holds.
func FuzzCookieCredentials(f *testing.F) {
	const name = "__Host-refresh_app"
	for _, s := range []string{name + "=a", "x=1; " + name + `="q"`, name + " = b ;" + name + "=c", "j=1," + name + "=d e", `a="b;` + name + `=c"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Cookie", line)
		x := testExtractor().extract(r, nil, nil)
		for _, c := range r.CookiesNamed(name) {
			if c.Value != "" && !slices.ContainsFunc(x.creds, func(cr credential) bool { return cr.raw == c.Value }) {
				t.Fatalf("%q: net/http reads %q; the guard found %q", line, c.Value, x.creds)
			}
		}
	})
}

// FuzzAuthorization: every field Go's strings.Fields gives after a Bearer
// scheme is among the guard's findings.
func FuzzAuthorization(f *testing.F) {
	for _, s := range []string{"Bearer a", "bearer\u00a0b", "Bearer  c d", "DPoP e", "Basic Zjpn", "Bearer:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["Authorization"] = []string{v}
		x := testExtractor().extract(r, nil, nil)
		fields := strings.Fields(v)
		if len(fields) < 2 || !strings.EqualFold(fields[0], "Bearer") {
			return
		}
		for _, fld := range fields[1:] {
			if len(fld) <= maxCandidateLen && !slices.ContainsFunc(x.creds, func(c credential) bool { return c.raw == fld }) {
				t.Fatalf("%q: field %q not found in %q", v, fld, x.creds)
			}
		}
	})
}

// countingBody records whether it was read.
type countingBody struct {
	io.Reader
	reads int
}

func (b *countingBody) Read(p []byte) (int, error) { b.reads++; return b.Reader.Read(p) }
func (b *countingBody) Close() error               { return nil }

// A request that declares an empty body is not read; one whose length is
// unknown (chunked) is.
func TestExtractSkipsDeclaredEmptyBodies(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	body := &countingBody{Reader: strings.NewReader("")}
	r.Body, r.ContentLength = body, 0
	testExtractor().extract(r, nil, nil)
	if body.reads != 0 {
		t.Fatalf("an empty body was read %d times", body.reads)
	}
	r = httptest.NewRequest(http.MethodPost, "/", nil)
	body = &countingBody{Reader: strings.NewReader(`{"refreshToken":"chunked"}`)}
	r.Body, r.ContentLength, r.TransferEncoding = body, -1, []string{"chunked"}
	x := testExtractor().extract(r, nil, nil)
	if body.reads == 0 || !slices.ContainsFunc(x.creds, func(c credential) bool { return c.raw == "chunked" }) {
		t.Fatalf("a chunked body was not examined: %d reads, %q", body.reads, x.creds)
	}
}
