package caddymodule

import (
	"errors"
	"net/http"
	"net/url"

	"go.uber.org/zap"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// Seed 001: POST /v1/session/me/revoke?target=all|others|mine|session
// [&session_id=...], with a bearer access token. Success is 204; errors
// are {"code": ..., "type": ...}.
//
//   - all: every session of the caller, the current one included;
//   - others: every session but the current one;
//   - mine: the current session;
//   - session: the caller's session named by session_id.

func (h *Handler) serveRevokeSessions(w http.ResponseWriter, r *http.Request) error {
	const dialect = "revoke_sessions"
	fail := func(status int, code, typ string) error {
		countEndpointError(dialect, code)
		return writeJSON(w, status, map[string]string{"code": code, "type": typ})
	}
	cred, state, _ := h.authenticate(r)
	if state != authOK {
		w.Header().Set("WWW-Authenticate", wwwAuthenticate(state))
		return fail(http.StatusUnauthorized, "unauthorized", "unauthorized")
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil || len(q["target"]) != 1 || len(q["session_id"]) > 1 {
		return fail(http.StatusBadRequest, "bad_request", "bad_request")
	}
	target := revocation.Target(q.Get("target"))
	sessionID := q.Get("session_id")
	if target == revocation.TargetSession && (sessionID == "" || len(sessionID) > 1024) {
		return fail(http.StatusBadRequest, "bad_request", "bad_request")
	}

	res, err := h.revoker.RevokeSessions(r.Context(), cred, target, sessionID)
	switch {
	case errors.Is(err, revocation.ErrBadRequest):
		h.log.Debug("revoke sessions refused", zap.Error(err))
		return fail(http.StatusBadRequest, "bad_request", "bad_request")
	case err != nil:
		h.commitFailed(r, dialect, err)
		return fail(http.StatusInternalServerError, "internal", "internal")
	}
	h.audit(r, dialect, cred, res, zap.String("target", string(target)))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// wwwAuthenticate is the RFC 6750 challenge for a refused bearer token.
func wwwAuthenticate(state authState) string {
	if state == authMissing {
		return "Bearer"
	}
	return `Bearer error="invalid_token"`
}
