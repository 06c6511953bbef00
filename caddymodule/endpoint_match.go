package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(MatchEndpoints{})
}

// MatchEndpoints matches a request whose path is one of a list of exact
// paths, as Caddy's path matcher matches that list (case-insensitive,
// the request's path cleaned and its doubled slashes merged) but with
// one lookup instead of one cleaning and one glob match per path: the
// module http.matchers.revocation_endpoints. The site-level revocation
// directive puts it on the route of its endpoints, which every proxied
// request passes, when every endpoint path is a plain path (see
// literalPaths); otherwise that route keeps Caddy's path matcher.
//
//	{"match": [{"revocation_endpoints": ["/v1/auth/logout", "/oauth2/revoke"]}]}
type MatchEndpoints struct {
	// Paths are the exact paths, each a plain path (no wildcard,
	// placeholder, escape or doubled slash).
	Paths []string `json:"-"`

	set map[string]struct{}
	// fallback is Caddy's path matcher over the same paths, for the
	// system where Caddy's matcher also rewrites Windows paths.
	fallback caddyhttp.MatchPath
}

// CaddyModule returns the Caddy module information.
func (MatchEndpoints) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.matchers.revocation_endpoints",
		New: func() caddy.Module { return new(MatchEndpoints) },
	}
}

// MarshalJSON writes the matcher as its list of paths, as Caddy's path
// matcher is written.
func (m MatchEndpoints) MarshalJSON() ([]byte, error) { return json.Marshal(m.Paths) }

// UnmarshalJSON reads the list of paths.
func (m *MatchEndpoints) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &m.Paths) }

// UnmarshalCaddyfile reads `revocation_endpoints <path...>`.
func (m *MatchEndpoints) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	for d.Next() {
		m.Paths = append(m.Paths, d.RemainingArgs()...)
		if d.NextBlock(0) {
			return d.Err("revocation_endpoints: want no block")
		}
	}
	return nil
}

// Provision builds the set of paths, lower-cased as Caddy's path matcher
// lowers its patterns.
func (m *MatchEndpoints) Provision(caddy.Context) error {
	if len(m.Paths) == 0 {
		return fmt.Errorf("revocation_endpoints: want at least one path")
	}
	m.set = make(map[string]struct{}, len(m.Paths))
	for _, p := range m.Paths {
		if !literalPath(p) {
			return fmt.Errorf("revocation_endpoints: %q is not a plain path (a wildcard, placeholder, escape or doubled slash needs the path matcher)", p)
		}
		m.set[strings.ToLower(p)] = struct{}{}
	}
	m.fallback = caddyhttp.MatchPath(append([]string(nil), m.Paths...))
	return m.fallback.Provision(caddy.Context{})
}

// Match reports whether r's path is one of the paths.
func (m *MatchEndpoints) Match(r *http.Request) bool {
	ok, _ := m.MatchWithError(r)
	return ok
}

// MatchWithError reports whether r's path is one of the paths. For a
// plain pattern Caddy's path matcher compares the pattern with the
// request's path lower-cased and cleaned (caddyhttp.CleanPath, doubled
// slashes merged), which is what this does once for all the paths:
// neither step allocates for a path already clean and lower-case.
func (m *MatchEndpoints) MatchWithError(r *http.Request) (bool, error) {
	if runtime.GOOS == "windows" {
		return m.fallback.MatchWithError(r)
	}
	_, ok := m.set[caddyhttp.CleanPath(strings.ToLower(r.URL.Path), true)]
	return ok, nil
}

// literalPath reports whether Caddy's path matcher reads p as one exact
// path: no wildcard or other glob character (path.Match's), no
// placeholder, no escape (a '%' compares in escaped space) and no
// doubled slash (which keeps the request's doubled slashes).
func literalPath(p string) bool {
	return p != "" && !strings.ContainsAny(p, `*?[\{%`) && !strings.Contains(p, "//")
}

// literalPaths reports whether every path is plain (literalPath).
func literalPaths(paths []string) bool {
	for _, p := range paths {
		if !literalPath(p) {
			return false
		}
	}
	return true
}

var (
	_ caddy.Provisioner                 = (*MatchEndpoints)(nil)
	_ caddyhttp.RequestMatcherWithError = (*MatchEndpoints)(nil)
	_ caddyfile.Unmarshaler             = (*MatchEndpoints)(nil)
)
