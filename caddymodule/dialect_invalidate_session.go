package caddymodule

import (
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// Seed 002: DELETE /v1/auth/session with a bearer access token and an
// optional body {"session_id": "..."}; without it, the current session.
// Success is 200 {"message": "Session invalidated successfully.",
// "session_id": ...}; errors are {"error": ..., "message": ...}:
//
//   - 401 unauthorized: missing, invalid or revoked access token;
//   - 401 invalid_session: the caller's own session is already revoked
//     (its token is blocked by its session);
//   - 404 invalid_session: the named session is already revoked, or no
//     replica has seen it in use (so nothing can be revoked, and naming
//     made-up sessions cannot fill the store);
//   - 400 invalid_request: a malformed body (the seed names no 400; this
//     keeps its error shape);
//   - 500 internal_error: the store could not be reached; nothing was
//     revoked (likewise not in the seed, in its shape).

const (
	msgInvalidated    = "Session invalidated successfully."
	msgUnauthorized   = "Missing or invalid access token."
	msgInvalidSession = "Session not found or already invalidated."
	msgInvalidRequest = "Invalid request body."
	msgInternal       = "The session could not be invalidated; try again."
)

// invalidateSessionError is seed 002's error body.
func invalidateSessionError(code, msg string) map[string]string {
	return map[string]string{"error": code, "message": msg}
}

func (h *Handler) serveInvalidateSession(w http.ResponseWriter, r *http.Request) error {
	const dialect = "invalidate_session"
	fail := func(status int, code, msg string) error {
		return answerError(w, dialect, status, invalidateSessionError, code, msg)
	}
	cred, state, reason := h.authenticate(r)
	switch state {
	case authUnavailable:
		return fail(http.StatusInternalServerError, "internal_error", msgInternal)
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
	sessionID, err := invalidateSessionBody(r)
	if err != nil {
		h.log.Debug("invalidate session refused", zap.Error(err))
		return fail(http.StatusBadRequest, "invalid_request", msgInvalidRequest)
	}

	inv, err := h.revoker.InvalidateSession(r.Context(), cred, sessionID)
	sessionID, res := inv.SessionID, inv.Result
	if errors.Is(err, revocation.ErrUnknownSession) {
		// No replica has seen that session in use: nothing to revoke.
		return fail(http.StatusNotFound, "invalid_session", msgInvalidSession)
	}
	if err != nil {
		h.commitFailed(r, dialect, err)
		return fail(http.StatusInternalServerError, "internal_error", msgInternal)
	}
	if inv.AlreadyRevoked {
		// Writing it again changed nothing: it was revoked already.
		return fail(http.StatusNotFound, "invalid_session", msgInvalidSession)
	}
	h.audit(r, dialect, cred, res, zap.String("target_session_id", sessionID))
	out := map[string]string{"message": msgInvalidated}
	if sessionID != "" {
		out["session_id"] = sessionID
	}
	return writeJSON(w, http.StatusOK, out)
}

// invalidateSessionBody reads the optional body of seed 002: nothing, or
// a JSON object whose session_id, when present, is a non-empty string.
func invalidateSessionBody(r *http.Request) (string, error) {
	body, err := readBody(r)
	if err != nil || body == nil {
		return "", err
	}
	fields, err := decodeStringFields(body, "session_id")
	if err != nil {
		return "", err
	}
	sid, given := fields["session_id"]
	if given && !validSessionID(sid) {
		return "", fmt.Errorf("%w: session_id must be 1 to %d bytes", errBodyInvalid, maxSessionID)
	}
	return sid, nil
}
