package caddymodule

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// RFC 7009 token revocation: a client POSTs a form with token and an
// optional token_type_hint, authenticated as configured: a confidential
// client with client_secret_basic or client_secret_post, a public client
// with its client_id alone. The token is one of the jwt block's tokens:
//
//   - a verified JWT issued to this client (its client_id, azp or cid
//     claim names it) is revoked: an access token, the token and its jti;
//     a refresh token (token_type_hint refresh_token, or a typ claim of
//     Refresh, or token_use refresh) also its session (section 2.1);
//   - a token issued to another client, one that does not verify, and an
//     opaque token (this proxy cannot tell whose it is, and recording
//     every string a public client sends would let anyone fill the
//     denylist) revoke nothing, and still get 200 (section 2.2).
//
// Success is 200 with no body. Errors are RFC 6749 section 5.2 JSON:
// invalid_request (400), invalid_client (401 with WWW-Authenticate:
// Basic); a store that cannot take the revocation is 503 (section
// 2.2.1: the client retries).

// TokenRevocationConfig configures the RFC 7009 endpoint.
type TokenRevocationConfig struct {
	// Clients may call the endpoint. At least one.
	Clients []RevocationClient `json:"clients,omitempty"`
}

// RevocationClient is one OAuth client of the revocation endpoint.
type RevocationClient struct {
	// ID is the client_id.
	ID string `json:"id"`
	// Secret authenticates a confidential client (client_secret_basic or
	// client_secret_post); empty for a public client. Placeholders such
	// as {env.CLIENT_SECRET} work.
	Secret string `json:"secret,omitempty"`
}

type revocationClient struct {
	secret string
	public bool
}

func (h *Handler) serveTokenRevocation(w http.ResponseWriter, r *http.Request) error {
	const dialect = "token_revocation"
	fail := func(status int, code, desc string) error {
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="token_revocation"`)
		}
		return answerError(w, dialect, status, oauthError, code, desc)
	}
	form, err := readForm(r)
	if err != nil {
		return fail(http.StatusBadRequest, "invalid_request", err.Error())
	}
	clientID, status, err := h.authenticateClient(r, form)
	if err != nil {
		h.log.Info("token revocation: client refused", zap.String("client_id", clientID), zap.String("remote_ip", clientIP(r)), zap.Error(err))
		code := "invalid_client"
		if status == http.StatusBadRequest {
			code = "invalid_request"
		}
		return fail(status, code, err.Error())
	}
	raw := form.Get("token")
	if raw == "" {
		return fail(http.StatusBadRequest, "invalid_request", "token is required")
	}
	ctx := r.Context()
	log := h.log.With(zap.String("endpoint", dialect), zap.String("client_id", clientID), zap.String("token_hash", revocation.HashToken(raw).Short()))
	ok := func() error {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	if !revocation.LooksLikeJWT(raw) {
		log.Info("token revocation: opaque token, nothing revoked")
		return ok()
	}
	cred, err := h.revoker.ExamineRefresh(ctx, raw)
	if err != nil {
		log.Info("token revocation: token does not verify, nothing revoked", zap.Error(err))
		return ok()
	}
	extra, err := tokenClientClaims(raw)
	if err != nil || !extra.issuedTo(clientID) {
		log.Info("token revocation: token not issued to this client, nothing revoked")
		return ok()
	}
	var res revocation.Result
	refresh := form.Get("token_type_hint") == "refresh_token" || extra.isRefresh()
	if refresh {
		res, err = h.revoker.RevokeRefresh(ctx, cred)
	} else {
		res, err = h.revoker.RevokeAccess(ctx, cred)
	}
	if err != nil {
		h.commitFailed(r, dialect, err)
		return receiverUnavailable(w, dialect, oauthError)
	}
	kind := "access_token"
	if refresh {
		kind = "refresh_token"
	}
	h.audit(r, dialect, cred, res, zap.String("client_id", clientID), zap.String("token_type", kind))
	return ok()
}

// authenticateClient authenticates the caller as RFC 6749 section 2.3.1
// says: HTTP Basic or client_id and client_secret in the form, never
// both; a public client names itself with client_id alone. It returns
// the client ID, and on failure the status to answer (400 or 401).
func (h *Handler) authenticateClient(r *http.Request, form url.Values) (string, int, error) {
	formID, formSecret := form.Get("client_id"), form.Get("client_secret")
	_, hasSecret := form["client_secret"]
	auths := r.Header.Values("Authorization")
	var id, secret string
	var withSecret bool
	switch {
	case len(auths) > 1:
		return "", http.StatusBadRequest, errors.New("more than one Authorization header")
	case len(auths) == 1:
		if hasSecret {
			return "", http.StatusBadRequest, errors.New("use one client authentication method, not two")
		}
		var ok bool
		if id, secret, ok = parseBasic(auths[0]); !ok {
			return "", http.StatusUnauthorized, errors.New("malformed Basic credentials")
		}
		if formID != "" && formID != id {
			return "", http.StatusBadRequest, errors.New("client_id differs from the authenticated client")
		}
		withSecret = true
	default:
		if formID == "" {
			return "", http.StatusUnauthorized, errors.New("client authentication required")
		}
		id, secret, withSecret = formID, formSecret, hasSecret
	}
	c, known := h.clients[id]
	switch {
	case !known:
		// Spend a comparison anyway, so that timing does not tell known
		// client IDs from unknown ones.
		secretEqual(secret, "\x00unknown")
		return id, http.StatusUnauthorized, errors.New("client authentication failed")
	case c.public && withSecret, !c.public && !withSecret:
		return id, http.StatusUnauthorized, errors.New("client authentication failed")
	case !c.public && !secretEqual(secret, c.secret):
		return id, http.StatusUnauthorized, errors.New("client authentication failed")
	}
	return id, 0, nil
}

// parseBasic reads HTTP Basic credentials, whose parts RFC 6749 section
// 2.3.1 form-encodes.
func parseBasic(v string) (id, secret string, ok bool) {
	scheme, enc, found := strings.Cut(v, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return "", "", false
	}
	rawID, rawSecret, found := strings.Cut(string(dec), ":")
	if !found {
		return "", "", false
	}
	if id, err = url.QueryUnescape(rawID); err != nil || id == "" {
		return "", "", false
	}
	if secret, err = url.QueryUnescape(rawSecret); err != nil {
		return "", "", false
	}
	return id, secret, true
}

// clientClaims are the claims that say whom a token was issued to and
// what it is. Providers spell them differently: client_id (RFC 9068,
// Auth0), azp (OpenID Connect, Keycloak), cid (Okta); a Keycloak refresh
// token says typ Refresh, a Cognito one token_use refresh.
type clientClaims struct {
	ClientID string `json:"client_id"`
	AZP      string `json:"azp"`
	CID      string `json:"cid"`
	Typ      string `json:"typ"`
	TokenUse string `json:"token_use"`
}

// tokenClientClaims reads them from a token that has already verified.
func tokenClientClaims(raw string) (clientClaims, error) {
	var c struct {
		clientClaims
		jwt.RegisteredClaims
	}
	_, _, err := jwt.NewParser().ParseUnverified(raw, &c)
	return c.clientClaims, err
}

func (c clientClaims) issuedTo(id string) bool {
	return id != "" && (c.ClientID == id || c.AZP == id || c.CID == id)
}

func (c clientClaims) isRefresh() bool {
	return strings.EqualFold(c.Typ, "Refresh") || strings.EqualFold(c.TokenUse, "refresh")
}
