package caddymodule

import (
	"errors"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-revocation/caddy-revocation/extract"
)

// deny answers a proxied request that the guard stops. As basic_auth and
// the rate limiter do, it sets its placeholders and returns a Caddy error,
// so that handle_errors can answer instead (a login page for a browser):
//
//	{http.revocation.reason}      token, jti, session, subject (what is revoked),
//	                              or token_required, store_stale,
//	                              body_uninspectable, logout_not_recorded
//	                              (why the request is refused)
//	{http.revocation.credential}  where the credential was found: authorization,
//	                              basic, query, cookie, header, body, path
//	                              (empty for a refusal)
//
// The headers set before (WWW-Authenticate, Retry-After) stay on the
// answer either way. When no handle_errors route of the server takes the
// error, Caddy would answer with an empty body; the guard writes its JSON
// answer (RFC 6750's for a 401) itself instead, as it always has.
func deny(w http.ResponseWriter, r *http.Request, status int, reason, source string, body map[string]string) error {
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.revocation.reason", reason)
		repl.Set("http.revocation.credential", source)
	}
	err := caddyhttp.Error(status, errors.New("revocation: "+reason))
	if errorRouteTakes(r, err) {
		return err
	}
	return writeJSON(w, status, body)
}

// errorRouteTakes reports whether an error route of the request's server
// would handle err: one whose matchers match the request once the error's
// placeholders are set (as the server sets them before running them), and
// that is not a subroute none of whose routes match.
func errorRouteTakes(r *http.Request, err error) bool {
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok || srv.Errors == nil || len(srv.Errors.Routes) == 0 {
		return false
	}
	return routesTake(srv.Errors.WithError(r, err), srv.Errors.Routes, 0)
}

func routesTake(r *http.Request, routes caddyhttp.RouteList, depth int) bool {
	if depth > 8 {
		return true // deeper than any Caddyfile nests: trust the routes
	}
	for _, rt := range routes {
		if match, err := rt.MatcherSets.AnyMatchWithError(r); err != nil || !match {
			continue
		}
		for _, mh := range rt.Handlers {
			sub, ok := mh.(*caddyhttp.Subroute)
			if !ok || routesTake(r, sub.Routes, depth+1) {
				return true
			}
		}
		if rt.Terminal {
			return false
		}
	}
	return false
}

// loggedPath is a request path as the guard's logs show it: the guard
// reads credentials in paths too (a ";jsessionid=" parameter, a reset
// token as a segment), and a raw credential is never logged. So path
// parameters are dropped and every segment that could be a credential
// (extract.ValueShaped: 16 bytes or more, no space) is shown as "*".
func loggedPath(p string) string {
	segs := strings.Split(p, "/")
	changed := false
	for i, s := range segs {
		if j := strings.IndexByte(s, ';'); j >= 0 {
			s, changed = s[:j], true
		}
		if extract.ValueShaped(s) {
			s, changed = "*", true
		}
		segs[i] = s
	}
	if !changed {
		return p
	}
	return strings.Join(segs, "/")
}
