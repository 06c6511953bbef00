package integration

import (
	"net/http"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

// Seeds 000 and 001 define no request body. A stray small one ("{}") is
// ignored; anything over 1 KiB is malformed input (SPEC section 4): the
// dialect's 400, and nothing revoked, whether its length is declared or
// it comes chunked.
func TestSeedBodylessEndpointsRefuseBodies(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	tok := seedSess(t, "alice", "body-s1")
	refresh := seedRefresh(t, "alice", "body-s1", nil)
	huge := strings.Repeat("x", 10<<20)
	chunked := strings.Repeat("y", 64<<10)

	cases := []struct {
		name string
		send func() Response
	}{
		{"000, 10 MiB declared", func() Response {
			return Do(t, http.MethodPost, e.C.URL+"/v1/session/revoke", huge, "Cookie", seedCookieName+"="+refresh)
		}},
		{"000, 64 KiB chunked", func() Response {
			return doChunked(t, http.MethodPost, e.C.URL+"/v1/session/revoke", chunked, "Cookie", seedCookieName+"="+refresh)
		}},
		{"001, 10 MiB declared", func() Response {
			return Do(t, http.MethodPost, e.C.URL+"/v1/session/me/revoke?target=all", huge, seedBearer(tok)...)
		}},
		{"001, 64 KiB chunked", func() Response {
			return doChunked(t, http.MethodPost, e.C.URL+"/v1/session/me/revoke?target=all", chunked, seedBearer(tok)...)
		}},
	}
	for _, c := range cases {
		expectSeedJSON(t, c.name, c.send(), http.StatusBadRequest, map[string]string{"code": "bad_request", "type": "bad_request"})
	}
	e.passes(t, "access token after refused calls", tok)
	e.cookiePasses(t, "refresh cookie after refused calls", refresh)

	// A small stray body is ignored.
	r := Do(t, http.MethodPost, e.C.URL+"/v1/session/me/revoke?target=mine", "{}", seedBearer(testtoken.HS256(t, jwt.MapClaims{"sid": "body-s2"}))...)
	expectSeedNoContent(t, "001 with {}", r)
}
