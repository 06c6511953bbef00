package caddymodule

import (
	"net/http"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// Seed 003: POST /v1/auth/logout with a bearer access token and an
// optional body {"refreshToken": "..."} (a non-empty string when given).
// The refresh token, the access token and its session are revoked at
// once; success is 200 with the body true, also for a refresh token that
// was already revoked. Errors are {"code": ..., "message": ...}:
// MISSING_AUTH (401), INVALID_AUTH (401), INVALID_INPUT (400).

func (h *Handler) serveLogout(w http.ResponseWriter, r *http.Request) error {
	const dialect = "logout"
	fail := func(status int, code, msg string) error {
		countEndpointError(dialect, code)
		return writeJSON(w, status, map[string]string{"code": code, "message": msg})
	}
	cred, state, _ := h.authenticate(r)
	switch state {
	case authMissing:
		w.Header().Set("WWW-Authenticate", wwwAuthenticate(state))
		return fail(http.StatusUnauthorized, "MISSING_AUTH", "Missing bearer access token.")
	case authInvalid, authRevoked:
		w.Header().Set("WWW-Authenticate", wwwAuthenticate(state))
		return fail(http.StatusUnauthorized, "INVALID_AUTH", "Invalid or expired access token.")
	}
	body, err := readBody(r)
	if err != nil {
		return fail(http.StatusBadRequest, "INVALID_INPUT", "Invalid logout request payload.")
	}
	var refresh *revocation.Credential
	if body != nil {
		fields, err := decodeStringFields(body, "refreshToken")
		if err != nil {
			return fail(http.StatusBadRequest, "INVALID_INPUT", "Invalid logout request payload.")
		}
		if rt, given := fields["refreshToken"]; given {
			if rt == "" {
				return fail(http.StatusBadRequest, "INVALID_INPUT", "Invalid logout request payload.")
			}
			refresh = h.revoker.Examine(r.Context(), rt)
		}
	}

	res, err := h.revoker.Logout(r.Context(), cred, refresh)
	if err != nil {
		h.commitFailed(r, dialect, err)
		return fail(http.StatusInternalServerError, "INTERNAL_ERROR", "Logout could not be completed; try again.")
	}
	h.audit(r, dialect, cred, res)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("true"))
	return nil
}
