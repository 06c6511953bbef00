package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// endpointPatterns are lists of endpoint paths as a site could enable
// them: the seed defaults, a receiver's, upper case, a trailing slash,
// non-ASCII, a dot segment (which no cleaned path equals).
var endpointPatterns = [][]string{
	{"/v1/auth/revoke-refresh", "/v1/auth/revoke-sessions", "/v1/auth/invalidate-session", "/v1/auth/logout"},
	{"/oauth2/revoke", "/.well-known/ssf/push", "/backchannel-logout"},
	{"/API/Logout", "/logout/"},
	{"/ÄPI/ausloggen", "/İ/x"},
	{"/a/./b", "/a/../b", "/", "relative"},
}

// hostilePaths are request targets meant to slip past a path matcher:
// case, doubled and trailing slashes, dot segments, escapes (%2F, %2E,
// upper- and lower-case hex), a path parameter, non-ASCII.
var hostilePaths = []string{
	"/v1/auth/logout", "/V1/AUTH/LOGOUT", "/v1/auth/Logout", "//v1/auth/logout", "/v1//auth///logout",
	"/v1/auth/logout/", "/v1/auth/logout//", "/v1/./auth/logout", "/v1/auth/./logout/.", "/x/../v1/auth/logout",
	"/../v1/auth/logout", "/v1/auth/logout/..", "/v1/auth/logout/../logout", "/v1%2Fauth%2Flogout", "/v1/auth%2flogout",
	"/v1/auth/%6Cogout", "/v1/auth/logout%2F", "/v1/auth/logout;x=1", "/v1/auth/logout%00", "/v1/auth/logout?x=1",
	"/oauth2/revoke", "/OAUTH2/REVOKE/", "/oauth2//revoke", "/.well-known/ssf/push", "/%2E%2E/oauth2/revoke",
	"/.well-known/./ssf/../ssf/push", "/backchannel-logout/.", "/api/logout", "/Api/LogOut", "/logout", "/logout/",
	"/LOGOUT//", "/äpi/ausloggen", "/ÄPI/AUSLOGGEN", "/%C3%84PI/ausloggen", "/i̇/x", "/İ/x", "/a/b", "/a/./b", "/b",
	"/", "//", "/.", "/..", "", "relative", "/relative", "*", "/v1/auth/logout\\", "/v1\\auth\\logout",
}

// newEndpointMatchers provisions Caddy's path matcher and ours over the
// same paths.
func newEndpointMatchers(t testing.TB, paths []string) (caddyhttp.MatchPath, *MatchEndpoints) {
	t.Helper()
	caddyM := caddyhttp.MatchPath(append([]string(nil), paths...))
	if err := caddyM.Provision(caddy.Context{}); err != nil {
		t.Fatal(err)
	}
	ours := &MatchEndpoints{Paths: append([]string(nil), paths...)}
	if err := ours.Provision(caddy.Context{}); err != nil {
		t.Fatal(err)
	}
	return caddyM, ours
}

// requestFor builds the request a server would hand the matchers for the
// target raw: its path unescaped, as net/http parses it, or taken as is
// when it does not parse.
func requestFor(raw string) *http.Request {
	u, err := url.ParseRequestURI(raw)
	if err != nil {
		u = &url.URL{Path: raw}
	}
	return asServed(&http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}})
}

// TestMatchEndpointsAsCaddyPath holds revocation_endpoints to Caddy's
// path matcher: over the same plain paths, both answer the same for
// every hostile request path, so the directive's expansion matches the
// same requests with either.
func TestMatchEndpointsAsCaddyPath(t *testing.T) {
	matched := 0
	for _, paths := range endpointPatterns {
		caddyM, ours := newEndpointMatchers(t, paths)
		for _, raw := range hostilePaths {
			for _, r := range []*http.Request{requestFor(raw), asServed(&http.Request{URL: &url.URL{Path: raw}})} {
				want, _ := caddyM.MatchWithError(r)
				got, err := ours.MatchWithError(r)
				if err != nil || got != want {
					t.Errorf("paths %q, request path %q: revocation_endpoints %v (%v), path %v", paths, r.URL.Path, got, err, want)
				}
				if want {
					matched++
				}
			}
		}
	}
	// The hostile paths that Caddy cleans onto an endpoint must be among
	// them, or the comparison proves little.
	if matched < 20 {
		t.Errorf("only %d requests matched an endpoint path", matched)
	}
}

// TestMatchEndpointsRefusesPatterns: a path Caddy's matcher would read
// as a pattern (wildcard, placeholder, escape, doubled slash) is refused
// by revocation_endpoints, and the expansion keeps the path matcher for
// a block that has one.
func TestMatchEndpointsRefusesPatterns(t *testing.T) {
	for _, p := range []string{"/logout*", "/a/?", "/[ab]", "/{http.vars.x}", "/a%2Fb", "//logout", `/a\*`, ""} {
		m := &MatchEndpoints{Paths: []string{"/ok", p}}
		if err := m.Provision(caddy.Context{}); err == nil {
			t.Errorf("revocation_endpoints accepted %q", p)
		}
	}
	if err := (&MatchEndpoints{}).Provision(caddy.Context{}); err == nil {
		t.Error("revocation_endpoints accepted no path")
	}

	for _, c := range []struct {
		path, matcher string
	}{{"/v1/auth/logout", "revocation_endpoints"}, {"/v1/auth/*", "path"}, {"/v1/{env.LOGOUT}", "path"}} {
		h := &Handler{JWT: &JWTConfig{HMACSecret: "0123456789abcdef0123456789abcdef"}, LegacyEndpoints: LegacyEndpoints{Endpoints: []string{"logout"}, Paths: map[string]string{"logout": c.path}}}
		routes, err := h.expandedRoutes()
		if err != nil {
			t.Fatal(err)
		}
		if len(routes) != 2 || routes[0].MatcherSetsRaw[0][c.matcher] == nil {
			t.Errorf("endpoint path %q: the endpoints' route matches by %v, want %s", c.path, routes[0].MatcherSetsRaw, c.matcher)
		}
	}
}

// TestMatchEndpointsJSON: the matcher reads and writes the list of paths
// as Caddy's path matcher does.
func TestMatchEndpointsJSON(t *testing.T) {
	var m MatchEndpoints
	if err := json.Unmarshal([]byte(`["/a","/B"]`), &m); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(m)
	if err != nil || string(out) != `["/a","/B"]` {
		t.Fatalf("marshalled %s, %v", out, err)
	}
}

// TestMatchEndpointsCaddyfile: a named matcher of a Caddyfile reads its
// paths, and refuses a block.
func TestMatchEndpointsCaddyfile(t *testing.T) {
	var m MatchEndpoints
	if err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser("revocation_endpoints /a /B/c")); err != nil {
		t.Fatal(err)
	}
	if len(m.Paths) != 2 || m.Paths[0] != "/a" || m.Paths[1] != "/B/c" {
		t.Fatalf("read %q", m.Paths)
	}
	if err := new(MatchEndpoints).UnmarshalCaddyfile(caddyfile.NewTestDispenser("revocation_endpoints /a {\n\tx\n}")); err == nil {
		t.Fatal("a block was accepted")
	}
}

// FuzzMatchEndpoints compares revocation_endpoints with Caddy's path
// matcher on arbitrary request paths and one arbitrary plain pattern.
//
//	go test -run='^$' -fuzz=FuzzMatchEndpoints -fuzztime=30s ./caddymodule/
func FuzzMatchEndpoints(f *testing.F) {
	for _, p := range hostilePaths {
		f.Add(p, "/v1/auth/logout")
	}
	f.Add("/A/b/", "/a/B/")
	f.Add("/x/../İ", "/i̇")
	f.Fuzz(func(t *testing.T, reqPath, pattern string) {
		if !literalPath(pattern) {
			return
		}
		paths := []string{pattern, "/v1/auth/logout"}
		caddyM, ours := newEndpointMatchers(t, paths)
		r := asServed(&http.Request{URL: &url.URL{Path: reqPath}})
		want, _ := caddyM.MatchWithError(r)
		if got, _ := ours.MatchWithError(r); got != want {
			t.Fatalf("paths %q, request path %q: revocation_endpoints %v, path %v", paths, reqPath, got, want)
		}
	})
}

// BenchmarkEndpointsMatch is what the endpoints' route costs each
// proxied request to decide that it is not an endpoint request: Caddy's
// path matcher over the four seed endpoints' paths against
// revocation_endpoints over the same, on the same request, in the same
// run.
//
//	go test -run '^$' -bench EndpointsMatch -benchmem ./caddymodule/
func BenchmarkEndpointsMatch(b *testing.B) {
	caddyM, ours := newEndpointMatchers(b, endpointPatterns[0])
	r := asServed(&http.Request{URL: &url.URL{Path: "/api/item"}})
	for _, c := range []struct {
		name string
		m    caddyhttp.RequestMatcherWithError
	}{{"path", caddyM}, {"revocation_endpoints", ours}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ok, _ := c.m.MatchWithError(r); ok {
					b.Fatal("matched")
				}
			}
		})
	}
}
