package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"
)

// The dry run agrees with the guard on every request: it runs the same
// extraction and the same inspection. And it never prints a credential.
func TestExplainAgreesWithGuard(t *testing.T) {
	h := legacyHandler(t, func(h *Handler) { h.AppLogout = []string{"/logout"} })
	ctx := context.Background()
	const sid = "explain-opaque-session-0001"
	revokedTok := guardTokens.Mint(t, jwt.MapClaims{"sub": "fay", "sid": "fs", "jti": "fj"})
	if _, err := h.revoker.RevokeToken(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if _, err := h.revoker.RevokeSession(ctx, "fay", "fs"); err != nil {
		t.Fatal(err)
	}
	fine := guardTokens.Mint(t, jwt.MapClaims{"sub": "gus", "sid": "gs"})
	cases := []struct {
		name    string
		req     ExplainRequest
		verdict string
		reason  string
	}{
		{"revoked session cookie", ExplainRequest{Headers: map[string][]string{"Cookie": {"a=1; JSESSIONID=" + sid}}}, "block", "token"},
		{"revoked JWT session, header", ExplainRequest{Headers: map[string][]string{"X-Auth-Token": {revokedTok}}}, "block", "session"},
		{"clean bearer", ExplainRequest{Method: "POST", Path: "/logout", Headers: map[string][]string{"Authorization": {"Bearer " + fine}}}, "pass", ""},
		{"revoked refresh token in a body", ExplainRequest{Method: "POST", Path: "/api", Headers: map[string][]string{"Content-Type": {"application/json"}}, Body: `{"refresh_token":"` + revokedTok + `"}`}, "block", "session"},
		{"nothing", ExplainRequest{Path: "/?q=1"}, "pass", ""},
	}
	for _, c := range cases {
		r, err := explainTarget(c.req, httptest.NewRequest("POST", "/revocation/explain", nil))
		if err != nil {
			t.Fatal(err)
		}
		got := h.explain(r.Clone(ctx))
		if got.Verdict != c.verdict {
			t.Errorf("%s: verdict %s (%s), want %s", c.name, got.Verdict, got.Why, c.verdict)
		}
		if c.reason != "" && !strings.Contains(got.Why, "("+c.reason+")") {
			t.Errorf("%s: why %q, want reason %s", c.name, got.Why, c.reason)
		}
		if got.AppLogout != (c.req.Path == "/logout") {
			t.Errorf("%s: app_logout %v", c.name, got.AppLogout)
		}
		r2, _ := explainTarget(c.req, httptest.NewRequest("POST", "/revocation/explain", nil))
		st, reached := serve(t, h, r2)
		if guardVerdict := map[bool]string{true: "pass", false: "block"}[reached]; guardVerdict != c.verdict || (!reached && st != http.StatusUnauthorized) {
			t.Errorf("%s: the guard answered %d, the dry run said %s", c.name, st, got.Verdict)
		}
		var out bytes.Buffer
		_ = printExplain(&out, ExplainResponse{Handlers: []ExplainedHandler{got}})
		js, _ := json.Marshal(got)
		for _, secret := range []string{sid, revokedTok, fine} {
			if strings.Contains(out.String(), secret) || strings.Contains(string(js), secret) {
				t.Fatalf("%s: a credential was printed:\n%s", c.name, out.String())
			}
		}
	}
}

// The admin route finds every provisioned handler and answers with each
// one's verdict; bad input is a 400, never a 500.
func TestAdminExplain(t *testing.T) {
	h := legacyHandler(t, nil)
	if _, err := h.revoker.RevokeToken(context.Background(), "admin-explain-sid"); err != nil {
		t.Fatal(err)
	}
	a := &adminAPI{app: h.app}
	body := `{"headers":{"Cookie":["JSESSIONID=admin-explain-sid"]}}`
	w := httptest.NewRecorder()
	if err := a.handleExplain(w, httptest.NewRequest("POST", "/revocation/explain", strings.NewReader(body))); err != nil {
		t.Fatal(err)
	}
	var resp ExplainResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, eh := range resp.Handlers {
		if eh.KeyPrefix == h.KeyPrefix {
			found = true
			if eh.Verdict != "block" || len(eh.Credentials) != 1 || eh.Credentials[0].Source != "cookie" || eh.Credentials[0].Reason != "token" {
				t.Fatalf("explained %+v", eh)
			}
		}
	}
	if !found {
		t.Fatalf("handler not found in %s", w.Body)
	}
	for _, bad := range []string{`{"path":"no-slash"}`, `{"method":"BAD METHOD"}`, `{"nope":1}`, `[`,
		`{"method":""}`, `{"path":" "}`, `{"method":null}`, `{"path":""}`} {
		err := a.handleExplain(httptest.NewRecorder(), httptest.NewRequest("POST", "/revocation/explain", strings.NewReader(bad)))
		var ae caddy.APIError
		if !errors.As(err, &ae) || ae.HTTPStatus != http.StatusBadRequest {
			t.Errorf("%s: error %v, want a 400", bad, err)
		}
	}
}

func TestReadExplainRequest(t *testing.T) {
	whole := "POST /logout?x=1 HTTP/1.1\r\nHost: app\r\nCookie: JSESSIONID=abc\r\nContent-Length: 4\r\n\r\nbody"
	req, note, err := readExplainRequest(strings.NewReader(whole))
	if err != nil || note != "" {
		t.Fatal(err, note)
	}
	if req.Method != "POST" || req.Path != "/logout?x=1" || req.Headers["Cookie"][0] != "JSESSIONID=abc" || req.Body != "body" {
		t.Fatalf("whole request read as %+v", req)
	}
	req, _, err = readExplainRequest(strings.NewReader("GET / HTTP/1.1\nCookie: a=b\n"))
	if err != nil || req.Headers["Cookie"][0] != "a=b" {
		t.Fatalf("request without blank line: %+v, %v", req, err)
	}
	req, _, err = readExplainRequest(strings.NewReader("cookie: JSESSIONID=abc\nX-Auth-Token:  tok \n\nCookie: b=c\n"))
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "" || len(req.Headers["Cookie"]) != 2 || req.Headers["X-Auth-Token"][0] != "tok " {
		t.Fatalf("header lines read as %+v", req)
	}
	for _, bad := range []string{"", "not a header", "Bad Name: x"} {
		if _, _, err := readExplainRequest(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	// A pasted request often has no Content-Length: its body is read to
	// the end of input, and the note says so.
	pasted := "POST /refresh HTTP/1.1\nHost: app\nContent-Type: application/x-www-form-urlencoded\n\nrefresh_token=abc\n"
	req, note, err = readExplainRequest(strings.NewReader(pasted))
	if err != nil || req.Body != "refresh_token=abc\n" || !strings.Contains(note, "no Content-Length") {
		t.Fatalf("body without Content-Length: %+v, note %q, %v", req, note, err)
	}
}
