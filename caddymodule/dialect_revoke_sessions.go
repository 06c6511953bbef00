package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// Seed 001: POST /v1/session/me/revoke?target=all|others|mine|session
// [&session_id=...], with a bearer access token. Success is 204; errors
// are {"code": ..., "type": ...}: 400 bad_request, 401 unauthorized,
// 500 internal.
//
//   - all: every session of the caller, the current one included;
//   - others: every session but the current one;
//   - mine: the current session;
//   - session: the caller's session named by session_id (a session ID
//     always names a session of the caller's own subject).
//
// The seed defines no request body: one of up to 1 KiB is ignored, a
// larger one is bad_request and revokes nothing.

func (h *Handler) serveRevokeSessions(w http.ResponseWriter, r *http.Request) error {
	const dialect = "revoke_sessions"
	fail := func(status int, code, typ string) error {
		return answerError(w, dialect, status, codeTypeError, code, typ)
	}
	cred, state, _ := h.authenticate(r)
	if state == authUnavailable {
		return fail(http.StatusInternalServerError, "internal", "internal")
	}
	if state != authOK {
		w.Header().Set("WWW-Authenticate", wwwAuthenticate(state))
		return fail(http.StatusUnauthorized, "unauthorized", "unauthorized")
	}
	target, sessionID, err := parseRevokeQuery(r.URL.RawQuery)
	if err == nil && unwantedBody(r) {
		err = errBodyTooLarge
	}
	if err != nil {
		h.log.Debug("revoke sessions refused", zap.Error(err))
		return fail(http.StatusBadRequest, "bad_request", "bad_request")
	}

	res, err := h.revoker.RevokeSessions(r.Context(), cred, target, sessionID)
	switch {
	case errors.Is(err, revocation.ErrUnknownSession):
		// No replica has seen that session of the caller in use: there is
		// nothing of theirs to revoke, and nothing is stored (so a token
		// naming made-up sessions cannot fill the store). The caller's
		// intent holds: no such session of theirs is valid.
		h.audit(r, dialect, cred, revocation.Result{}, zap.String("target", string(target)), zap.Bool("session_known", false))
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
		return nil
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

// maxSessionID bounds a session ID named by a caller.
const maxSessionID = 1024

var errBadQuery = errors.New("invalid query")

// validSessionID says whether a session ID named by a caller is usable:
// non-empty, bounded, UTF-8.
func validSessionID(sid string) bool {
	return sid != "" && len(sid) <= maxSessionID && utf8.ValidString(sid)
}

// parseRevokeQuery reads the query of seed 001: target exactly once and
// one of the four values; session_id at most once, required (non-empty)
// for target=session and ignored otherwise. Other parameters are ignored.
func parseRevokeQuery(rawQuery string) (revocation.Target, string, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", "", fmt.Errorf("%w: %v", errBadQuery, err)
	}
	if len(q["target"]) != 1 {
		return "", "", fmt.Errorf("%w: target must be given once, not %d times", errBadQuery, len(q["target"]))
	}
	if len(q["session_id"]) > 1 {
		return "", "", fmt.Errorf("%w: session_id given %d times", errBadQuery, len(q["session_id"]))
	}
	target := revocation.Target(q.Get("target"))
	switch target {
	case revocation.TargetAll, revocation.TargetOthers, revocation.TargetMine:
		return target, "", nil
	case revocation.TargetSession:
		sid := q.Get("session_id")
		if !validSessionID(sid) {
			return "", "", fmt.Errorf("%w: target=session needs a session_id of 1 to %d bytes of UTF-8", errBadQuery, maxSessionID)
		}
		return target, sid, nil
	}
	return "", "", fmt.Errorf("%w: unknown target %q", errBadQuery, target)
}

// wwwAuthenticate is the RFC 6750 challenge for a refused bearer token.
func wwwAuthenticate(state authState) string {
	if state == authMissing {
		return "Bearer"
	}
	return `Bearer error="invalid_token"`
}
