package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// The parsers of the endpoints read whatever a client sends. These fuzz
// targets check that they never panic and that what they accept meets
// the documented constraints. Run one with, for example:
//
//	go test -run='^$' -fuzz=FuzzDecodeStringFields -fuzztime=10s ./caddymodule/

var bodySeeds = []string{
	``, ` `, `{}`, `{"session_id":"s1"}`, `{"refreshToken":"rt"}`, `{"refreshToken":""}`,
	`{"refreshToken":null}`, `{"refreshToken":1}`, `{"refreshToken":["a"]}`, `{"refreshToken":{"a":1}}`,
	`{"refreshToken":"a","refreshToken":"b"}`, `{"refreshToken":"a"} {}`, `{"refreshToken":"a"}x`,
	`[]`, `"s"`, `null`, `{"a":1,}`, `{"a" "x"}`, `{"session\u005fid":"s"}`, `{"session_id":"\ud800"}`,
	"{\"session_id\":\"\xff\"}", `{"other":{"deep":[1,2,{"x":null}]},"session_id":"s"}`, `{`, `}`,
}

func FuzzDecodeStringFields(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fields := []string{"session_id", "refreshToken"}
		out, err := decodeStringFields(data, fields...)
		if err != nil {
			if !errors.Is(err, errBodyInvalid) {
				t.Fatalf("error %v does not wrap errBodyInvalid", err)
			}
			if out != nil {
				t.Fatal("values returned with an error")
			}
			return
		}
		// Accepted: valid UTF-8 JSON, one object and nothing else.
		if !utf8.Valid(data) || !json.Valid(data) {
			t.Fatalf("accepted %q, which is not valid UTF-8 JSON", data)
		}
		var generic any
		if err := json.Unmarshal(data, &generic); err != nil {
			t.Fatalf("accepted %q: %v", data, err)
		}
		obj, ok := generic.(map[string]any)
		if !ok {
			t.Fatalf("accepted %q, which is not an object", data)
		}
		for k, v := range out {
			if k != "session_id" && k != "refreshToken" {
				t.Fatalf("returned unasked field %q", k)
			}
			// No duplicates were accepted, so the standard decoder (last
			// value wins) agrees on every returned field.
			if s, ok := obj[k].(string); !ok || s != v {
				t.Fatalf("field %q = %q, json.Unmarshal says %#v", k, v, obj[k])
			}
		}
		for _, k := range fields {
			if _, present := obj[k]; present {
				if _, returned := out[k]; !returned {
					t.Fatalf("field %q present in %q but not returned", k, data)
				}
			}
		}
		// Round trip: the returned fields, encoded, decode to themselves.
		enc, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeStringFields(enc, fields...)
		if err != nil || len(again) != len(out) {
			t.Fatalf("round trip of %q: %v, %v", enc, again, err)
		}
		for k, v := range out {
			if again[k] != v {
				t.Fatalf("round trip changed %q: %q -> %q", k, v, again[k])
			}
		}
	})
}

func FuzzReadBody(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s), true)
	}
	f.Add(bytes.Repeat([]byte("a"), maxBody), true)
	f.Add(bytes.Repeat([]byte(" "), maxBody+1), false)
	f.Fuzz(func(t *testing.T, data []byte, knownLength bool) {
		r := httptest.NewRequest(http.MethodPost, "/v1/auth/logout", nil)
		r.Body = io.NopCloser(bytes.NewReader(data))
		r.ContentLength = -1 // chunked
		if knownLength {
			r.ContentLength = int64(len(data))
		}
		body, err := readBody(r)
		switch {
		case len(data) > maxBody:
			if !errors.Is(err, errBodyTooLarge) || body != nil {
				t.Fatalf("%d bytes: %v, want errBodyTooLarge", len(data), err)
			}
		case err != nil:
			t.Fatalf("%d bytes refused: %v", len(data), err)
		case len(bytes.TrimSpace(data)) == 0:
			if body != nil {
				t.Fatalf("whitespace-only body %q read as %q, want none", data, body)
			}
		case !bytes.Equal(body, data):
			t.Fatalf("body %q read as %q", data, body)
		}
	})
}

// b64token is RFC 6750's grammar of a bearer token.
var b64token = regexp.MustCompile(`^[A-Za-z0-9\-._~+/]+=*$`)

func FuzzStrictBearer(f *testing.F) {
	for _, s := range []string{
		"Bearer abc.def.ghi", "bearer abc", "BEARER a=", "Bearer  abc", "Bearer", "Bearer ", "Bearer a b",
		"Basic dXNlcjpwdw==", "Bearer a=b", "Bearer ==", "DPoP abc", "Bearer\tabc", "Bearer abc\x00", "Bearer é",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		tok, ok := parseBearer(header)
		if !ok {
			if tok != "" {
				t.Fatal("token returned with a refusal")
			}
			return
		}
		if len(tok) == 0 || len(tok) > maxBearer || !b64token.MatchString(tok) {
			t.Fatalf("accepted %q from %q, not a b64token of at most %d bytes", tok, header, maxBearer)
		}
		scheme, rest, _ := strings.Cut(header, " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimLeft(rest, " ") != tok {
			t.Fatalf("accepted %q from %q", tok, header)
		}
		// Round trip: the canonical header gives the same token.
		if again, ok := parseBearer("Bearer " + tok); !ok || again != tok {
			t.Fatalf("canonical form of %q refused", tok)
		}
		// Through a request: one header is accepted, two never are.
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		if got, ok := strictBearer(r); !ok || got != tok {
			t.Fatalf("strictBearer refused %q", tok)
		}
		r.Header.Add("Authorization", "Bearer "+tok)
		if _, ok := strictBearer(r); ok {
			t.Fatal("two Authorization headers accepted")
		}
	})
}

func FuzzRevokeQuery(f *testing.F) {
	for _, s := range []string{
		"target=all", "target=others", "target=mine", "target=session&session_id=ses_01jqebhswje1ka1z7ahr9rfsgt",
		"", "target=", "target=ALL", "target=all&target=mine", "target=session", "target=session&session_id=",
		"target=session&session_id=a&session_id=b", "target=%zz", "target=all;x=1", "target=all&session_id=x",
		"target=session&session_id=%ff", "target=session&session_id=" + strings.Repeat("s", maxSessionID+1),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		target, sid, err := parseRevokeQuery(raw)
		if err != nil {
			if !errors.Is(err, errBadQuery) || target != "" || sid != "" {
				t.Fatalf("%q: refused with %v, %q, %q", raw, err, target, sid)
			}
			return
		}
		q, qerr := url.ParseQuery(raw)
		if qerr != nil || len(q["target"]) != 1 || len(q["session_id"]) > 1 || string(target) != q.Get("target") {
			t.Fatalf("%q accepted as %q", raw, target)
		}
		switch target {
		case revocation.TargetAll, revocation.TargetOthers, revocation.TargetMine:
			if sid != "" {
				t.Fatalf("%q: session_id %q returned for target %s", raw, sid, target)
			}
		case revocation.TargetSession:
			if !validSessionID(sid) || sid != q.Get("session_id") {
				t.Fatalf("%q: session_id %q accepted", raw, sid)
			}
		default:
			t.Fatalf("%q: unknown target %q accepted", raw, target)
		}
		// Round trip: the canonical query gives the same answer.
		v := url.Values{"target": {string(target)}}
		if sid != "" {
			v.Set("session_id", sid)
		}
		t2, s2, err := parseRevokeQuery(v.Encode())
		if err != nil || t2 != target || s2 != sid {
			t.Fatalf("round trip of %q: %q %q %v", v.Encode(), t2, s2, err)
		}
	})
}

func FuzzRefreshCookie(f *testing.F) {
	const name = "__Host-refresh_demo"
	for _, s := range []string{
		name + "=abc", name + "=abc; " + name + "=abc", name + "=abc; " + name + "=def", "theme=dark; " + name + `="q.u.o"`,
		name + "=", name, "x" + name + "=a", name + "=a b", name + "=" + strings.Repeat("t", maxRefreshCookie+1), ";;;=;",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest(http.MethodPost, "/v1/session/revoke", nil)
		r.Header.Set("Cookie", header)
		raw, problem := refreshCookie(r, name)
		var values []string
		for _, c := range r.Cookies() {
			if c.Name == name && c.Value != "" {
				values = append(values, c.Value)
			}
		}
		switch problem {
		case cookieOK:
			if raw == "" || len(raw) > maxRefreshCookie {
				t.Fatalf("%q: accepted %q", header, raw)
			}
			for _, v := range values {
				if v != raw {
					t.Fatalf("%q: accepted %q though the request also carries %q", header, raw, v)
				}
			}
		case cookieMissing:
			if len(values) != 0 {
				t.Fatalf("%q: reported missing, but carries %q", header, values)
			}
		case cookieConflict:
			if len(values) < 2 {
				t.Fatalf("%q: reported a conflict among %q", header, values)
			}
		case cookieTooLarge:
			if len(values) == 0 || len(values[0]) <= maxRefreshCookie {
				t.Fatalf("%q: reported too large", header)
			}
		}
		if problem != cookieOK && raw != "" {
			t.Fatal("value returned with a problem")
		}
	})
}

// FuzzEndpointBodies drives the body readers of seeds 002 and 003 as the
// handlers call them.
func FuzzEndpointBodies(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req := func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(data))
			r.Header.Set("Content-Type", "application/json")
			return r
		}
		rt, given, err := logoutBody(req())
		switch {
		case err != nil:
			if rt != "" || given {
				t.Fatalf("%q: refused but returned %q", data, rt)
			}
			if !errors.Is(err, errBodyInvalid) && !errors.Is(err, errBodyTooLarge) {
				t.Fatalf("%q: unexpected error %v", data, err)
			}
		case given && rt == "":
			t.Fatalf("%q: empty refreshToken accepted", data)
		case !given && rt != "":
			t.Fatalf("%q: token returned though not given", data)
		}
		sid, err := invalidateSessionBody(req())
		if err == nil && sid != "" && !validSessionID(sid) {
			t.Fatalf("%q: session_id %q accepted", data, sid)
		}
		if err != nil && sid != "" {
			t.Fatalf("%q: refused but returned %q", data, sid)
		}
	})
}

// FuzzReceiverForms reads the form bodies of the back-channel logout and
// RFC 7009 receivers: never a panic, and an accepted form has each
// parameter once.
func FuzzReceiverForms(f *testing.F) {
	for _, s := range []string{
		"logout_token=a.b.c", "logout_token=a.b.c&logout_token=d.e.f", "token=x&token_type_hint=refresh_token",
		"client_id=spa&token=abc", "a=%zz", "=", "&&&", "logout_token=", "token=a%00b", "x=1;y=2",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		form, err := parseForm(data)
		if err != nil {
			return
		}
		for name, vals := range form {
			if len(vals) != 1 {
				t.Fatalf("parameter %q accepted %d times", name, len(vals))
			}
		}
		r := httptest.NewRequest(http.MethodPost, "/oidc/backchannel-logout", bytes.NewReader(data))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if raw, err := logoutTokenParam(r); err == nil && !revocation.LooksLikeJWT(raw) {
			t.Fatalf("logout_token %q accepted but not a JWS", raw)
		}
	})
}

// FuzzSETBody reads the body of a Shared Signals push: an accepted body
// is a compact JWS of base64url parts.
func FuzzSETBody(f *testing.F) {
	for _, s := range []string{"a.b.c", " a.b.c\n", "a.b.c.d.e", "", "a..c", "a.b.c d", "eyJ.eyJ.sig="} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		raw, err := parseSETBody(data)
		if err != nil {
			return
		}
		if strings.Count(raw, ".") != 2 || strings.ContainsAny(raw, " =+/\n") {
			t.Fatalf("body %q accepted as a compact JWS", raw)
		}
	})
}

// FuzzSecurityEventClaims reads the claims of a verified SET, which a
// trusted transmitter may still get wrong: never a panic, and every
// event returned names a session or a user.
func FuzzSecurityEventClaims(f *testing.F) {
	for _, s := range []string{
		`{"jti":"1","iss":"i","events":{"https://schemas.openid.net/secevent/caep/event-type/session-revoked":{"subject":{"format":"complex","user":{"format":"iss_sub","iss":"i","sub":"u"},"session":{"format":"opaque","id":"s"}}}}}`,
		`{"jti":"1","sub_id":{"format":"opaque","id":"u"},"events":{"https://schemas.openid.net/secevent/risc/event-type/sessions-revoked":{"event_timestamp":1e9}}}`,
		`{"jti":"1","events":{"x":{}}}`, `{"jti":"1","events":{"https://schemas.openid.net/secevent/caep/event-type/credential-change":{"subject":{"format":"complex"}}}}`,
		`{"jti":1}`, `{}`, `{"events":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var mc map[string]any
		if json.Unmarshal(data, &mc) != nil {
			return
		}
		events, jti, err := revocation.SecurityEvent(mc)
		if err != nil {
			return
		}
		if jti == "" {
			t.Fatal("SET without a jti accepted")
		}
		for _, ev := range events {
			if ev.Subject == "" && ev.Session == "" {
				t.Fatalf("event naming nothing accepted: %+v", ev)
			}
		}
		if _, _, err := revocation.LogoutToken(mc); err == nil {
			if _, ok := mc["nonce"]; ok {
				t.Fatal("logout token with a nonce accepted")
			}
		}
	})
}
