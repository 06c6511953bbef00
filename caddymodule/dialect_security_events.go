package caddymodule

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/http"

	"go.uber.org/zap"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// Shared Signals push receiver (RFC 8935): a transmitter POSTs one
// Security Event Token (RFC 8417) with Content-Type
// application/secevent+jwt, optionally with Authorization: Bearer
// <auth_token>. The SET is verified like a logout token (typ absent, JWT
// or secevent+jwt; iss; aud one of audience; iat; exp when present; a jti
// no replica has acted on before). CAEP session-revoked revokes the named
// session, or every session of the named user; CAEP credential-change and
// RISC sessions-revoked revoke every session of the user, for tokens
// issued until the event's event_timestamp. Other events are accepted and
// ignored.
//
// Success is 202 with no body. Errors are 400 {"err":...,"description":...}
// with the codes of RFC 8935 section 2.3: invalid_request, invalid_key,
// invalid_issuer, invalid_audience, authentication_failed. A push without
// the configured bearer token is 401 authentication_failed; a store that
// cannot take the revocation is 503, which the transmitter retries.

// SecurityEventsConfig configures the Shared Signals push receiver.
type SecurityEventsConfig struct {
	// Audience lists the values a SET's aud must contain one of. Required.
	Audience []string `json:"audience,omitempty"`
	// Issuer must equal the SET's iss. Default: the jwt block's issuer.
	Issuer string `json:"issuer,omitempty"`
	// JWKSURL is the transmitter's key set. Default: the jwt block's keys.
	JWKSURL string `json:"jwks_url,omitempty"`
	// AuthToken, when set, must come as Authorization: Bearer <token>.
	// Placeholders such as {env.SSF_TOKEN} work.
	AuthToken string `json:"auth_token,omitempty"`
}

// securityEventsError is the error body of RFC 8935 section 2.4.
func securityEventsError(code, desc string) map[string]string {
	return map[string]string{"err": code, "description": desc}
}

func (h *Handler) serveSecurityEvents(w http.ResponseWriter, r *http.Request) error {
	const dialect = "security_events"
	fail := func(status int, code, desc string) error {
		return answerError(w, dialect, status, securityEventsError, code, desc)
	}
	if h.secAuthToken != "" {
		tok, ok := strictBearer(r)
		if !ok || !secretEqual(tok, h.secAuthToken) {
			// RFC 8935 section 2.3: the transmitter could not be
			// authenticated from the request, a 400 like every other error.
			h.log.Info("security event push refused: bad or missing bearer token", zap.String("remote_ip", clientIP(r)))
			return fail(http.StatusBadRequest, "authentication_failed", "the push must carry the configured bearer token")
		}
	}
	raw, err := setBody(r)
	if err != nil {
		return fail(http.StatusBadRequest, "invalid_request", err.Error())
	}
	ctx := r.Context()
	src := h.secEvents
	claims, err := src.verifier.VerifyEvent(ctx, raw, revocation.EventCheck{
		Issuer:   src.check.Issuer,
		Audience: src.check.Audience,
		Types:    []string{"", "jwt", "secevent+jwt"},
	})
	if err != nil {
		h.refuseEvent(dialect, raw, err)
		code := "invalid_request"
		switch {
		case errors.Is(err, revocation.ErrEventIssuer):
			code = "invalid_issuer"
		case errors.Is(err, revocation.ErrEventAudience):
			code = "invalid_audience"
		case errors.Is(err, revocation.ErrEventKey):
			code = "invalid_key"
		case errors.Is(err, revocation.ErrEventSignature):
			code = "authentication_failed"
		}
		return fail(http.StatusBadRequest, code, "SET refused: "+eventDescription(err))
	}
	events, jti, err := revocation.SecurityEvent(claims)
	if err != nil {
		h.refuseEvent(dialect, raw, err)
		return fail(http.StatusBadRequest, "invalid_request", "SET refused: "+eventDescription(err))
	}
	iss, _ := claims["iss"].(string)
	exp := revocation.ClaimMillis(claims, "exp")
	// As for a logout token (dialect_backchannel_logout.go): the jti is
	// claimed for this SET before anything is revoked.
	switch owns, err := h.claimJTI(ctx, dialect, iss, jti, raw, exp); {
	case err != nil:
		h.commitFailed(r, dialect, err)
		return receiverUnavailable(w, dialect, securityEventsError)
	case !owns:
		h.refuseEvent(dialect, raw, errors.New("jti already received with another SET"))
		return fail(http.StatusBadRequest, "invalid_request", "SET refused: jti already received")
	}
	res, err := h.revoker.RevokeProviderEvents(ctx, events)
	if err != nil {
		if errors.Is(err, revocation.ErrBadRequest) {
			h.refuseEvent(dialect, raw, err)
			return fail(http.StatusBadRequest, "invalid_request", "SET refused: "+err.Error())
		}
		h.commitFailed(r, dialect, err)
		return receiverUnavailable(w, dialect, securityEventsError)
	}
	fresh, err := h.rememberJTI(ctx, dialect, iss, jti, exp)
	switch {
	case err != nil:
		h.log.Warn("security event applied, but its jti could not be remembered", zap.String("endpoint", dialect), zap.Error(err))
	case !fresh:
		h.refuseEvent(dialect, raw, errors.New("jti already received"))
		return fail(http.StatusBadRequest, "invalid_request", "SET refused: jti already received")
	}
	if len(events) == 0 {
		h.log.Info("security event accepted and ignored: no event this receiver acts on", zap.String("endpoint", dialect), zap.String("event_hash", revocation.HashToken(raw).Short()))
	} else {
		h.auditEvents(r, dialect, raw, res, events)
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// setBody reads the SET of a push: Content-Type application/secevent+jwt
// and a compact JWS of at most maxBody bytes. Encrypted SETs (JWE, five
// parts) are not supported.
func setBody(r *http.Request) (string, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/secevent+jwt" {
		return "", errors.New("content type must be application/secevent+jwt")
	}
	body, err := readBody(r)
	if err != nil {
		return "", err
	}
	return parseSETBody(body)
}

func parseSETBody(body []byte) (string, error) {
	body = bytes.TrimSpace(body)
	switch {
	case len(body) == 0:
		return "", errors.New("the body must be a SET")
	case bytes.Count(body, []byte(".")) != 2:
		return "", fmt.Errorf("the body must be a signed SET (compact JWS), not %d parts", bytes.Count(body, []byte("."))+1)
	}
	for _, c := range body {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return "", errors.New("the body must be a compact JWS (base64url parts)")
		}
	}
	return string(body), nil
}
