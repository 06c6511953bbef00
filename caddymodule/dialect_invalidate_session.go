package caddymodule

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// Seed 002: DELETE /v1/auth/session with a bearer access token and an
// optional body {"session_id": "..."}; without it, the current session.
// Success is 200 {"message": "Session invalidated successfully.",
// "session_id": ...}; errors are {"error": ..., "message": ...}:
// unauthorized (401), invalid_session (401 when the caller's own session
// is already revoked, 404 when the named one is).

const (
	msgInvalidated    = "Session invalidated successfully."
	msgUnauthorized   = "Missing or invalid access token."
	msgInvalidSession = "Session not found or already invalidated."
)

func (h *Handler) serveInvalidateSession(w http.ResponseWriter, r *http.Request) error {
	const dialect = "invalidate_session"
	fail := func(status int, code, msg string) error {
		countEndpointError(dialect, code)
		return writeJSON(w, status, map[string]string{"error": code, "message": msg})
	}
	cred, state, reason := h.authenticate(r)
	switch state {
	case authMissing, authInvalid:
		w.Header().Set("WWW-Authenticate", wwwAuthenticate(state))
		return fail(http.StatusUnauthorized, "unauthorized", msgUnauthorized)
	case authRevoked:
		w.Header().Set("WWW-Authenticate", wwwAuthenticate(state))
		if reason == revocation.BlockedSession {
			return fail(http.StatusUnauthorized, "invalid_session", msgInvalidSession)
		}
		return fail(http.StatusUnauthorized, "unauthorized", msgUnauthorized)
	}
	body, err := readBody(r)
	if err != nil {
		return fail(http.StatusBadRequest, "invalid_request", "Invalid request body.")
	}
	sessionID := ""
	if body != nil {
		fields, err := decodeStringFields(body, "session_id")
		if err != nil {
			return fail(http.StatusBadRequest, "invalid_request", "Invalid request body.")
		}
		sid, given := fields["session_id"]
		if given && (sid == "" || len(sid) > 1024) {
			return fail(http.StatusBadRequest, "invalid_request", "Invalid request body.")
		}
		sessionID = sid
	}

	sessionID, res, err := h.revoker.InvalidateSession(r.Context(), cred, sessionID)
	if err != nil {
		h.commitFailed(r, dialect, err)
		return fail(http.StatusInternalServerError, "internal_error", "The session could not be invalidated; try again.")
	}
	if res.Existed[0] {
		return fail(http.StatusNotFound, "invalid_session", msgInvalidSession)
	}
	h.audit(r, dialect, cred, res, zap.String("target_session_id", sessionID))
	return writeJSON(w, http.StatusOK, map[string]string{"message": msgInvalidated, "session_id": sessionID})
}
