package caddymodule

import (
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// Seed 003: POST /v1/auth/logout with a bearer access token and an
// optional body {"refreshToken": "..."} (a non-empty string when given).
// The refresh token, the access token and its session are revoked at
// once; success is 200 with the body true, also for a refresh token that
// was already revoked. Errors are {"code": ..., "message": ...}:
// MISSING_AUTH (401: no or a malformed Authorization header),
// INVALID_AUTH (401: an expired, wrongly signed or revoked token),
// INVALID_INPUT (400), and INTERNAL_ERROR (500, not in the seed: the
// store could not be reached and nothing was revoked).

const (
	msgMissingAuth  = "Missing bearer access token."
	msgInvalidAuth  = "Invalid or expired access token."
	msgInvalidInput = "Invalid logout request payload."
	msgLogoutFailed = "Logout could not be completed; try again."
)

// logoutError is seed 003's error body.
func logoutError(code, msg string) map[string]string {
	return map[string]string{"code": code, "message": msg}
}

func (h *Handler) serveLogout(w http.ResponseWriter, r *http.Request) error {
	const dialect = "logout"
	fail := func(status int, code, msg string) error {
		return answerError(w, dialect, status, logoutError, code, msg)
	}
	cred, state, _ := h.authenticate(r)
	switch state {
	case authUnavailable:
		return fail(http.StatusInternalServerError, "INTERNAL_ERROR", msgLogoutFailed)
	case authMissing:
		w.Header().Set("WWW-Authenticate", wwwAuthenticate(state))
		return fail(http.StatusUnauthorized, "MISSING_AUTH", msgMissingAuth)
	case authInvalid, authRevoked:
		w.Header().Set("WWW-Authenticate", wwwAuthenticate(state))
		return fail(http.StatusUnauthorized, "INVALID_AUTH", msgInvalidAuth)
	}
	rt, given, err := logoutBody(r)
	if err != nil {
		h.log.Debug("logout refused", zap.Error(err))
		return fail(http.StatusBadRequest, "INVALID_INPUT", msgInvalidInput)
	}
	var refresh *revocation.Credential
	if given {
		refresh = h.revoker.Examine(r.Context(), rt)
	}

	res, err := h.revoker.Logout(r.Context(), cred, refresh)
	if err != nil {
		h.commitFailed(r, dialect, err)
		return fail(http.StatusInternalServerError, "INTERNAL_ERROR", msgLogoutFailed)
	}
	h.audit(r, dialect, cred, res)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("true"))
	return nil
}

// logoutBody reads the optional body of seed 003: nothing, or a JSON
// object whose refreshToken, when present, is a non-empty string.
func logoutBody(r *http.Request) (refreshToken string, given bool, err error) {
	body, err := readBody(r)
	if err != nil || body == nil {
		return "", false, err
	}
	fields, err := decodeStringFields(body, "refreshToken")
	if err != nil {
		return "", false, err
	}
	rt, given := fields["refreshToken"]
	if given && rt == "" {
		return "", false, fmt.Errorf("%w: refreshToken is empty", errBodyInvalid)
	}
	return rt, given, nil
}
