package caddymodule

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// An endpoint handler written in JSON serves its dialect wherever its
// route places it, on the guard's store: a logout on a custom path
// blocks the token at the guard. A seed endpoint's path with another
// method, and the default path nobody routed, reach the upstream; a
// receiver's path with another method gets its 405 and never does; a
// guard without endpoint options serves no endpoint.
func TestEndpointHandlersPlacedByRoutes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	jwtCfg := fmt.Sprintf(`"jwt": {"hmac_secret": %q}, "key_prefix": "endpoint-routes:"`, testSecret)
	config := `{"apps": {"http": {"servers": {"srv0": {"listen": ["` + addr + `"], "routes": [
		{"match": [{"path": ["/api/logout"]}], "handle": [{"handler": "revocation_logout", ` + jwtCfg + `}]},
		{"match": [{"path": ["/oauth2/revoke"]}], "handle": [{"handler": "revocation_token_revocation", ` + jwtCfg + `,
			"token_revocation": {"clients": [{"id": "spa"}]}}]},
		{"handle": [{"handler": "revocation", "log_blocked": "off", ` + jwtCfg + `}]},
		{"handle": [{"handler": "static_response", "status_code": 200, "body": "upstream"}]}
	]}}}}}`
	if _, err := runConfig(t, config); err != nil {
		t.Fatal(err)
	}
	tok := guardTokens.Mint(t, jwt.MapClaims{"sub": "routes", "sid": "routes-session", "jti": "routes-jti"})
	do := func(method, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/logout"},         // a seed endpoint's path, another method
		{"POST", "/v1/auth/logout"},    // the default path, not routed
		{"POST", "/v1/session/revoke"}, // a dialect nobody placed
	} {
		if st, body := do(c.method, c.path); st != http.StatusOK || body != "upstream" {
			t.Fatalf("%s %s: %d %q, want the upstream's answer", c.method, c.path, st, body)
		}
	}
	if st, body := do("GET", "/oauth2/revoke"); st != http.StatusMethodNotAllowed || strings.Contains(body, "upstream") || !strings.Contains(body, `"error":"invalid_request"`) {
		t.Fatalf("GET on the receiver's path: %d %q, want its 405", st, body)
	}
	if st, body := do("POST", "/api/logout"); st != http.StatusOK || body != "true" {
		t.Fatalf("logout on its route: %d %q", st, body)
	}
	if st, _ := do("GET", "/orders"); st != http.StatusUnauthorized {
		t.Fatalf("the logged-out token at the guard: %d, want 401", st)
	}
}

// An endpoint handler refuses what it cannot serve: a receiver without
// its block, a block of another dialect, a seed endpoint without keys.
func TestEndpointHandlerRefusesConfig(t *testing.T) {
	for name, c := range map[string]struct{ handler, want string }{
		"receiver without its block": {`{"handler": "revocation_security_events", "jwt": {"hmac_secret": "` + testSecret + `"}}`, "its security_events block is required"},
		"another dialect's block":    {`{"handler": "revocation_logout", "jwt": {"hmac_secret": "` + testSecret + `"}, "token_revocation": {"clients": [{"id": "a"}]}}`, "belongs to revocation_token_revocation"},
		"no keys":                    {`{"handler": "revocation_revoke_sessions"}`, "no verification key"},
		"revoke_refresh, no app_id":  {`{"handler": "revocation_revoke_refresh", "jwt": {"hmac_secret": "` + testSecret + `"}}`, "needs app_id"},
	} {
		t.Run(name, func(t *testing.T) {
			config := `{"apps": {"http": {"servers": {"srv0": {"listen": ["127.0.0.1:0"], "routes": [{"handle": [` + c.handler + `]}]}}}}}`
			_, err := runConfig(t, config)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
		})
	}
}
