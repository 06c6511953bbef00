package caddymodule

import (
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// Seed 000: POST /v1/session/revoke. The caller proves itself with the
// refresh cookie __Host-refresh_<app_id> (plus a DPoP proof when the
// refresh token is DPoP-bound). The refresh token, and its session when
// it is a verified JWT naming one, are revoked; the cookie is cleared.
// Success is 204; errors are {"code": ..., "type": ...}.

func (h *Handler) serveRevokeRefresh(w http.ResponseWriter, r *http.Request) error {
	const dialect = "revoke_refresh"
	fail := func(status int, code, typ string) error {
		countEndpointError(dialect, code)
		return writeJSON(w, status, map[string]string{"code": code, "type": typ})
	}
	var raw string
	for _, c := range r.Cookies() {
		if c.Name != h.cookieName {
			continue
		}
		if raw != "" && raw != c.Value {
			return fail(http.StatusBadRequest, "bad_request", "bad_request") // two different refresh cookies
		}
		raw = c.Value
	}
	if raw == "" || len(raw) > maxBody {
		return fail(http.StatusUnauthorized, "unauthorized", "unauthorized")
	}

	ctx := r.Context()
	cred := &revocation.Credential{Hash: revocation.HashToken(raw)}
	if revocation.LooksLikeJWT(raw) {
		// A JWT refresh token must verify: an expired or forged one
		// proves nothing.
		claims, err := h.verifier.Verify(ctx, raw)
		if err != nil {
			h.log.Debug("refresh cookie refused", zap.String("token_hash", cred.Hash.Short()), zap.Error(err))
			return fail(http.StatusUnauthorized, "unauthorized", "unauthorized")
		}
		cred.Claims, cred.Verified = claims, true
	}
	if h.revoker.Revoked(cred) != revocation.NotBlocked {
		return fail(http.StatusUnauthorized, "unauthorized", "unauthorized")
	}
	if cred.Claims != nil && cred.Claims.Confirmation != "" {
		proofs := r.Header.Values("DPoP")
		if len(proofs) != 1 {
			return fail(http.StatusUnauthorized, "invalid_dpop_proof", "unauthorized")
		}
		err := h.dpop().Check(ctx, proofs[0], r.Method, requestURL(r), cred.Claims.Confirmation)
		switch {
		case errors.Is(err, revocation.ErrUnavailable):
			h.commitFailed(r, dialect, err)
			return fail(http.StatusInternalServerError, "internal", "internal")
		case err != nil:
			h.log.Debug("DPoP proof refused", zap.String("token_hash", cred.Hash.Short()), zap.Error(err))
			return fail(http.StatusUnauthorized, "invalid_dpop_proof", "unauthorized")
		}
	}

	res, err := h.revoker.RevokeRefresh(ctx, cred)
	if err != nil {
		h.commitFailed(r, dialect, err)
		return fail(http.StatusInternalServerError, "internal", "internal")
	}
	h.audit(r, dialect, cred, res)
	http.SetCookie(w, &http.Cookie{Name: h.cookieName, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true})
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) dpop() *revocation.DPoPChecker {
	return &revocation.DPoPChecker{Store: h.store}
}

// requestURL is the URL the client used, as DPoP's htu names it: scheme,
// host and path. Behind a trusted proxy (Caddy's trusted_proxies), the
// X-Forwarded-Proto and X-Forwarded-Host it sets are believed.
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
	return scheme + "://" + host + r.URL.EscapedPath()
}
