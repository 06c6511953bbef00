package caddymodule

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-revocation/caddy-revocation/extract"
	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// The app's own logout made real: a proxied request to an app_logout
// path that the upstream answers with a 2xx or 3xx revokes every
// credential the request carried, and the revocation is committed before
// a byte of the upstream's answer goes back. The decision is taken when
// the upstream's status is written (the ResponseRecorder asks before it
// writes the headers), so a successful logout streams through untouched.
//
// When the store cannot take the revocation, the client must not be told
// that logout worked while its credentials still pass anywhere: the
// upstream's answer is dropped (its Set-Cookie headers with it, so the
// browser keeps the session it can retry the logout with) and the client
// gets 503 with Retry-After.

// logoutPathKey is a path as apps route it, the key app_logout paths are
// compared by: path parameters (";..." in any segment) removed, each
// segment percent-decoded, empty segments dropped (so repeated slashes
// and a trailing slash do not count), dot segments resolved, and letters
// in one case. Tomcat routes /logout;x=1, //logout and /./logout to
// /logout; Express routes /logout/ and /LOGOUT there. Matching more
// paths than the app does only ever revokes what the one who asked
// presented.
func logoutPathKey(u *url.URL) string {
	p := u.EscapedPath()
	if plainPath(p) {
		return p // already its own key: no allocation on the common request
	}
	return normalizeLogoutPath(p)
}

// plainPath reports whether normalizeLogoutPath would return p itself:
// no path parameter, escape, upper-case letter, dot segment, repeated or
// trailing slash.
func plainPath(p string) bool {
	if p == "" || p[0] != '/' || (len(p) > 1 && p[len(p)-1] == '/') {
		return p == "/"
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == ';' || c == '%' || c >= 'A' && c <= 'Z' || c >= 0x80:
			return false
		case c == '/' && i+1 < len(p) && (p[i+1] == '/' || p[i+1] == '.'):
			return false
		}
	}
	return true
}

func normalizeLogoutPath(p string) string {
	var segs []string
	for raw := range strings.SplitSeq(p, "/") {
		if i := strings.IndexByte(raw, ';'); i >= 0 {
			raw = raw[:i]
		}
		// An escaped slash counts as one: a router that decodes first
		// sees two segments, and matching more only revokes more of what
		// the one who asked presented.
		for seg := range strings.SplitSeq(extract.LenientUnescape(raw, false), "/") {
			if i := strings.IndexByte(seg, ';'); i >= 0 {
				seg = seg[:i] // an escaped ';' too, alike
			}
			switch seg {
			case "", ".":
				continue
			case "..":
				if len(segs) > 0 {
					segs = segs[:len(segs)-1]
				}
				continue
			}
			segs = append(segs, strings.ToLower(seg))
		}
	}
	return "/" + strings.Join(segs, "/")
}

// App logout results, the values of the result label.
const (
	logoutRevoked    = "revoked"
	logoutFailed     = "failed"
	logoutNotSuccess = "not_success"
)

// serveAppLogout passes a logout request on and revokes what it carried
// when the upstream says it logged the user out.
func (h *Handler) serveAppLogout(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, creds []extract.Credential) error {
	var (
		result  string
		res     revocation.Result
		failure error
	)
	decide := func(status int, _ http.Header) bool {
		if status < 200 {
			return false // informational: not the answer yet
		}
		if status >= 400 {
			result = logoutNotSuccess
			return false
		}
		res, failure = h.revokePresented(r, creds)
		if failure != nil {
			result = logoutFailed
			return true // hold the answer back; it is replaced below
		}
		result = logoutRevoked
		return false
	}
	// The upstream's headers go into w's header map as it sets them: keep
	// what was there before, to answer with if the logout is refused.
	before := w.Header().Clone()
	var buf bytes.Buffer
	rec := caddyhttp.NewResponseRecorder(w, &buf, decide)
	err := next.ServeHTTP(rec, r)
	if err == nil && result == "" {
		// Nothing written: net/http would answer 200, a success.
		rec.WriteHeader(http.StatusOK)
	}
	if result == "" {
		return err // the upstream failed before answering: Caddy reports it
	}
	metrics.appLogouts.WithLabelValues(result).Inc()
	fields := []zap.Field{
		zap.String("path", loggedPath(r.URL.Path)),
		zap.Int("status", rec.Status()),
		zap.Int("credentials", len(creds)),
		zap.Strings("token_hashes", credentialHashes(creds)),
		zap.String("remote_ip", clientIP(r)),
		zap.String("request_id", requestID(r)),
	}
	switch result {
	case logoutFailed:
		h.log.Error("app logout: revocation store unavailable; the logout is refused so that the client retries", append(fields, zap.Error(failure))...)
		buf.Reset()
		hdr := w.Header()
		clear(hdr)
		maps.Copy(hdr, before)
		hdr.Set("Retry-After", "5")
		return deny(w, r, http.StatusServiceUnavailable, "logout_not_recorded", "", map[string]string{
			"error":             "temporarily_unavailable",
			"error_description": "the logout could not be recorded; try again shortly",
		})
	case logoutRevoked:
		countRevocation("app_logout", res.Entries)
		h.log.Info("app logout: credentials revoked", append(fields, zap.Int("entries", len(res.Entries)))...)
	default:
		h.log.Debug("app logout: the upstream did not log out; nothing revoked", fields...)
	}
	return err
}

// revokePresented revokes the credentials of a logout request. Those the
// client presented as access or refresh tokens, in a configured cookie or
// header, or in the body count; Basic authorization does not (a password
// that a site-wide basic_auth checks would lock the user out of the whole
// site). A verified JWT is revoked as the logout endpoint revokes it
// (itself, its jti, its session), anything else as its exact string only.
func (h *Handler) revokePresented(r *http.Request, creds []extract.Credential) (revocation.Result, error) {
	// The upstream has logged the user out: finish even when the client
	// hangs up, within the store's own timeouts.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 2*time.Duration(h.RedisTimeout))
	defer cancel()
	presented := make([]*revocation.Credential, 0, len(creds))
	for _, c := range creds {
		if c.Source == extract.SourceBasic {
			continue
		}
		presented = append(presented, h.revoker.Examine(ctx, c.Raw))
	}
	res, err := h.revoker.RevokePresented(ctx, presented)
	if err != nil {
		return res, fmt.Errorf("revoke %d credentials: %w", len(presented), err)
	}
	return res, nil
}

// credentialHashes are the short hashes of the credentials, for logs.
func credentialHashes(creds []extract.Credential) []string {
	out := make([]string, 0, len(creds))
	for _, c := range creds {
		out = append(out, revocation.HashToken(c.Raw).Short())
	}
	return out
}
