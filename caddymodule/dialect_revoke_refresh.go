package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// Seed 000: POST /v1/session/revoke. The caller proves itself with the
// refresh cookie __Host-refresh_<app_id> (plus a DPoP proof when the
// refresh token is DPoP-bound). The refresh token, and its session when
// it is a verified JWT naming one, are revoked; the cookie is cleared.
// Success is 204; errors are {"code": ..., "type": ...}:
//
//   - 400 bad_request: two different refresh cookies, or one too large;
//   - 401 unauthorized: no refresh cookie, or one that does not verify
//     (a JWT) or is already revoked;
//   - 401 invalid_dpop_proof (type unauthorized): a DPoP-bound refresh
//     token without a valid proof;
//   - 500 internal: the store could not be reached; nothing was revoked.
//
// The seed defines no request body and no query: the query is ignored,
// and so is a body of up to 1 KiB; a larger body is bad_request and
// revokes nothing.

// codeTypeError is the error body of seeds 000 and 001.
func codeTypeError(code, typ string) map[string]string {
	return map[string]string{"code": code, "type": typ}
}

func (h *Handler) serveRevokeRefresh(w http.ResponseWriter, r *http.Request) error {
	const dialect = "revoke_refresh"
	fail := func(status int, code, typ string) error {
		return answerError(w, dialect, status, codeTypeError, code, typ)
	}
	raw, problem := refreshCookie(r, h.cookieName)
	switch problem {
	case cookieMissing:
		return fail(http.StatusUnauthorized, "unauthorized", "unauthorized")
	case cookieConflict, cookieTooLarge:
		return fail(http.StatusBadRequest, "bad_request", "bad_request")
	}
	if unwantedBody(r) {
		return fail(http.StatusBadRequest, "bad_request", "bad_request")
	}

	ctx := r.Context()
	cred, err := h.revoker.ExamineRefresh(ctx, raw)
	if err != nil {
		// A JWT refresh token must verify: an expired or forged one
		// proves nothing.
		h.log.Debug("refresh cookie refused", zap.String("token_hash", revocation.HashToken(raw).Short()), zap.Error(err))
		return fail(http.StatusUnauthorized, "unauthorized", "unauthorized")
	}
	if h.revoker.Revoked(cred) != revocation.NotBlocked {
		return fail(http.StatusUnauthorized, "unauthorized", "unauthorized")
	}
	if cred.Claims != nil && cred.Claims.Confirmation != "" {
		// RFC 9449 section 4.3: exactly one DPoP header.
		var err error
		if proofs := r.Header.Values("DPoP"); len(proofs) == 1 {
			err = h.dpop().Check(ctx, proofs[0], r.Method, requestURL(r), cred.Claims.Confirmation)
		} else {
			err = fmt.Errorf("%w: %d DPoP headers, want one", revocation.ErrInvalidDPoP, len(proofs))
		}
		switch {
		case errors.Is(err, revocation.ErrInvalidDPoP):
			h.log.Debug("DPoP proof refused", zap.String("token_hash", cred.Hash.Short()), zap.Error(err))
			w.Header().Set("WWW-Authenticate", `DPoP error="invalid_dpop_proof", algs="`+strings.Join(revocation.DPoPAlgorithms(), " ")+`"`)
			return fail(http.StatusUnauthorized, "invalid_dpop_proof", "unauthorized")
		case err != nil:
			h.commitFailed(r, dialect, err)
			return fail(http.StatusInternalServerError, "internal", "internal")
		}
	}

	res, err := h.revoker.RevokeRefresh(ctx, cred)
	if err != nil {
		h.commitFailed(r, dialect, err)
		return fail(http.StatusInternalServerError, "internal", "internal")
	}
	h.audit(r, dialect, cred, res)
	// __Host- cookies must be Secure, Path=/ and carry no Domain, or the
	// browser ignores the Set-Cookie that clears them.
	http.SetCookie(w, &http.Cookie{Name: h.cookieName, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true})
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) dpop() *revocation.DPoPChecker {
	return &revocation.DPoPChecker{Store: h.store}
}

// cookieProblem says what is wrong with the refresh cookie of a request.
type cookieProblem int

const (
	cookieOK cookieProblem = iota
	cookieMissing
	cookieConflict // two different values
	cookieTooLarge
)

// maxRefreshCookie bounds a refresh token handed in as a cookie.
const maxRefreshCookie = 16 << 10

// refreshCookie finds the refresh cookie. Browsers send a cookie once,
// but a request may carry it twice (a stale copy under another path):
// the same value twice is one cookie, two values are ambiguous.
func refreshCookie(r *http.Request, name string) (string, cookieProblem) {
	var raw string
	for _, c := range r.Cookies() {
		if c.Name != name || c.Value == "" {
			continue
		}
		if raw != "" && raw != c.Value {
			return "", cookieConflict
		}
		raw = c.Value
	}
	switch {
	case raw == "":
		return "", cookieMissing
	case len(raw) > maxRefreshCookie:
		return "", cookieTooLarge
	}
	return raw, cookieOK
}

// requestURL is the URL the client used, as DPoP's htu names it: scheme,
// host and path, the path as it came before any rewrite. Behind a trusted
// proxy (Caddy's trusted_proxies), the X-Forwarded-Proto and
// X-Forwarded-Host it sets are believed.
func requestURL(r *http.Request) string {
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
			scheme = p
		}
		if fh := r.Header.Get("X-Forwarded-Host"); fh != "" {
			host = fh
		}
	}
	path := r.URL.EscapedPath()
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil {
		path = orig.URL.EscapedPath()
	}
	return scheme + "://" + host + path
}
