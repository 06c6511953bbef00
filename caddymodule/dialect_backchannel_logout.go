package caddymodule

import (
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// OpenID Connect Back-Channel Logout 1.0: the provider POSTs a form with
// one logout_token, a JWT it signed, validated as section 2.6 says:
// signature with the issuer's keys (never "none"), typ absent, JWT or
// logout+jwt, iss, aud (one of client_id), iat, exp, the back-channel
// logout event, sub and/or sid, no nonce, and a jti no replica has acted
// on before. Then:
//
//   - sid only: that provider session, keyed by issuer and sid, whatever
//     its subject: any proxied token with that iss and sid is refused;
//   - sub and sid: that session (by subject and sid, and by issuer and sid);
//   - sub only: every token of the subject issued until the logout
//     token's iat.
//
// Success is 200 with Cache-Control: no-store and no body. An invalid
// token is 400 {"error":"invalid_request","error_description":...} and
// revokes nothing; a store that cannot take the revocation is 503, which
// the provider retries.

// BackchannelLogoutConfig configures the back-channel logout receiver.
type BackchannelLogoutConfig struct {
	// ClientID lists the client IDs the proxy answers for: a logout
	// token's aud must contain one. Required.
	ClientID []string `json:"client_id,omitempty"`
	// Issuer must equal the logout token's iss. Default: the jwt block's
	// issuer.
	Issuer string `json:"issuer,omitempty"`
	// JWKSURL is the provider's key set. Default: the jwt block's keys.
	JWKSURL string `json:"jwks_url,omitempty"`
}

func (h *Handler) serveBackchannelLogout(w http.ResponseWriter, r *http.Request) error {
	const dialect = "backchannel_logout"
	fail := func(desc string) error {
		return answerError(w, dialect, http.StatusBadRequest, oauthError, "invalid_request", desc)
	}
	raw, err := logoutTokenParam(r)
	if err != nil {
		h.log.Debug("back-channel logout refused", zap.Error(err))
		return fail(err.Error())
	}
	ctx := r.Context()
	src := h.backchannel
	claims, err := src.verifier.VerifyEvent(ctx, raw, revocation.EventCheck{
		Issuer:     src.check.Issuer,
		Audience:   src.check.Audience,
		Types:      []string{"", "jwt", "logout+jwt"},
		RequireExp: true,
	})
	if err != nil {
		h.refuseEvent(dialect, raw, err)
		return fail("logout token refused: " + eventDescription(err))
	}
	ev, jti, err := revocation.LogoutToken(claims)
	if err != nil {
		h.refuseEvent(dialect, raw, err)
		return fail("logout token refused: " + eventDescription(err))
	}
	events := []revocation.ProviderEvent{ev}
	// The jti is claimed for this token before anything is revoked: a
	// token that reuses another's jti is refused whole. Then commit, and
	// remember the jti as acted on after: a provider retrying after a 503
	// must not be told its token was replayed.
	exp := revocation.ClaimMillis(claims, "exp")
	switch owns, err := h.claimJTI(ctx, dialect, ev.Issuer, jti, raw, exp); {
	case err != nil:
		h.commitFailed(r, dialect, err)
		return receiverUnavailable(w, dialect, oauthError)
	case !owns:
		h.refuseEvent(dialect, raw, errors.New("jti already received with another token"))
		return fail("logout token refused: jti already received")
	}
	res, err := h.revoker.RevokeProviderEvents(ctx, events)
	if err != nil {
		h.commitFailed(r, dialect, err)
		return receiverUnavailable(w, dialect, oauthError)
	}
	fresh, err := h.rememberJTI(ctx, dialect, ev.Issuer, jti, exp)
	switch {
	case err != nil:
		h.log.Warn("logout token applied, but its jti could not be remembered", zap.String("endpoint", dialect), zap.Error(err))
	case !fresh:
		h.refuseEvent(dialect, raw, errors.New("jti already received"))
		return fail("logout token refused: jti already received")
	}
	h.auditEvents(r, dialect, raw, res, events)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return nil
}

// logoutTokenParam reads the one logout_token of the form.
func logoutTokenParam(r *http.Request) (string, error) {
	form, err := readForm(r)
	if err != nil {
		return "", err
	}
	raw := form.Get("logout_token")
	if raw == "" {
		return "", errors.New("logout_token is required")
	}
	if !revocation.LooksLikeJWT(raw) {
		return "", errors.New("logout_token is not a signed JWT")
	}
	return raw, nil
}

// receiverUnavailable answers a store failure with 503, which a provider
// retries, in the receiver's error shape.
func receiverUnavailable(w http.ResponseWriter, dialect string, shape errorShape) error {
	w.Header().Set("Retry-After", "5")
	return answerError(w, dialect, http.StatusServiceUnavailable, shape, "temporarily_unavailable", "the revocation could not be stored; try again")
}
