package integration

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-revocation/caddy-revocation/internal/testtoken"
)

// A DPoP-bound access token (cnf.jkt) proves nothing at the bearer
// endpoints without the DPoP scheme and a proof of possession of its key
// that names it (ath): a thief holding only the token cannot revoke its
// owner's sessions.
func TestDPoPBoundAccessTokenAtEndpoints(t *testing.T) {
	t.Parallel()
	e := startSeedEnv(t, "")
	key := newSeedDPoPKey(t)
	bound := func(sid string) string {
		return testtoken.HS256(t, jwt.MapClaims{"sub": "alice", "sid": sid, "cnf": map[string]any{"jkt": key.jkt}})
	}
	ath := func(tok string) string {
		sum := sha256.Sum256([]byte(tok))
		return base64.RawURLEncoding.EncodeToString(sum[:])
	}
	logoutURL := e.C.URL + "/v1/auth/logout"

	tok := bound("d1")
	// The token alone, as a thief would use it: refused, nothing revoked.
	expectSeedJSON(t, "bound token without a proof", e.logout(t, tok, ""), http.StatusUnauthorized,
		map[string]string{"code": "INVALID_AUTH", "message": "Invalid or expired access token."})
	// A proof without ath, or with the ath of another token.
	noAth := key.proof(t, "POST", logoutURL, nil)
	ExpectStatus(t, "proof without ath", Do(t, "POST", logoutURL, "", "Authorization", "DPoP "+tok, "DPoP", noAth), http.StatusUnauthorized)
	otherAth := key.proof(t, "POST", logoutURL, func(_, c map[string]any) { c["ath"] = ath(bound("other")) })
	ExpectStatus(t, "proof for another token", Do(t, "POST", logoutURL, "", "Authorization", "DPoP "+tok, "DPoP", otherAth), http.StatusUnauthorized)
	// Another key's proof, with the right ath.
	thief := newSeedDPoPKey(t)
	wrongKey := thief.proof(t, "POST", logoutURL, func(_, c map[string]any) { c["ath"] = ath(tok) })
	ExpectStatus(t, "proof with another key", Do(t, "POST", logoutURL, "", "Authorization", "DPoP "+tok, "DPoP", wrongKey), http.StatusUnauthorized)
	e.passes(t, "bound token after refused logouts", tok)

	// A bound token presented as a plain bearer token is refused, even
	// with a valid proof (RFC 9449 section 7.2).
	asBearer := key.proof(t, "POST", logoutURL, func(_, c map[string]any) { c["ath"] = ath(tok) })
	ExpectStatus(t, "bound token with the Bearer scheme", Do(t, "POST", logoutURL, "", "Authorization", "Bearer "+tok, "DPoP", asBearer), http.StatusUnauthorized)
	e.passes(t, "bound token after refused logouts", tok)

	// The holder of the key logs out.
	good := key.proof(t, "POST", logoutURL, func(_, c map[string]any) { c["ath"] = ath(tok) })
	r := Do(t, "POST", logoutURL, "", "Authorization", "DPoP "+tok, "DPoP", good)
	ExpectStatus(t, "logout with a valid proof", r, http.StatusOK)
	if r.Body != "true" {
		t.Fatalf("logout body %q", r.Body)
	}
	e.blocked(t, "bound token after its logout", tok)

	// 001 and 002 need the proof too.
	tok2 := bound("d2")
	sessionsURL := e.C.URL + "/v1/session/me/revoke?target=mine"
	ExpectStatus(t, "001 without a proof", Do(t, "POST", sessionsURL, "", "Authorization", "DPoP "+tok2), http.StatusUnauthorized)
	ExpectStatus(t, "002 without a proof", Do(t, "DELETE", e.C.URL+"/v1/auth/session", "", "Authorization", "DPoP "+tok2), http.StatusUnauthorized)
	e.passes(t, "second bound token after refused calls", tok2)
	p := key.proof(t, "POST", e.C.URL+"/v1/session/me/revoke", func(_, c map[string]any) { c["ath"] = ath(tok2) })
	expectSeedNoContent(t, "001 with a proof", Do(t, "POST", sessionsURL, "", "Authorization", "DPoP "+tok2, "DPoP", p))
	e.blocked(t, "second bound token after target=mine", tok2)
}
