package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	for _, d := range dialects {
		caddy.RegisterModule(EndpointHandler{dialect: d.name})
	}
}

// EndpointHandler serves one endpoint dialect or receiver: the module
// http.handlers.revocation_<dialect> (revocation_logout,
// revocation_backchannel_logout, ...), one per dialect, each placed on
// its path by a route's matcher. The site-level revocation directive
// writes these routes ahead of the guard (see expand); so do the legacy
// endpoint options of a guard written in JSON.
//
// A request of another method than the dialect's goes on to the next
// handler when the dialect is a seed endpoint (its path may be the app's
// own for other methods), and gets the dialect's 405 when it is a
// receiver: a receiver's path belongs to the proxy and never reaches the
// upstream.
type EndpointHandler struct {
	// AppID names the refresh cookie, __Host-refresh_<app_id>, which
	// revoke_refresh requires.
	AppID string `json:"app_id,omitempty"`

	// Store names a store of the revocation app; else StoreConfig's
	// options, else the app's "default" store, else the embedded one, as
	// for the guard.
	Store string `json:"store,omitempty"`

	// StoreConfig is the handler's own store options, as the guard's.
	StoreConfig

	// JWT verifies the callers' tokens (the seed endpoints,
	// token_revocation) and is a receiver's default keys and issuer.
	JWT *JWTConfig `json:"jwt,omitempty"`

	// BackchannelLogout configures revocation_backchannel_logout.
	BackchannelLogout *BackchannelLogoutConfig `json:"backchannel_logout,omitempty"`

	// TokenRevocation configures revocation_token_revocation.
	TokenRevocation *TokenRevocationConfig `json:"token_revocation,omitempty"`

	// SecurityEvents configures revocation_security_events.
	SecurityEvents *SecurityEventsConfig `json:"security_events,omitempty"`

	dialect string
	ep      endpoint
	// core holds what the dialect's code reads (dialect_*.go): the
	// store, the verifier, the revoker, the receiver's keys.
	core *Handler
}

// CaddyModule returns the Caddy module information of the dialect.
func (e EndpointHandler) CaddyModule() caddy.ModuleInfo {
	d := e.dialect
	return caddy.ModuleInfo{
		ID:  caddy.ModuleID("http.handlers.revocation_" + d),
		New: func() caddy.Module { return &EndpointHandler{dialect: d} },
	}
}

// Provision takes the store and the verifier from the app, and sets up
// the receiver's keys.
func (e *EndpointHandler) Provision(ctx caddy.Context) error {
	ep, ok := findDialect(e.dialect)
	if !ok {
		return fmt.Errorf("revocation endpoint: unknown dialect %q", e.dialect)
	}
	e.ep = ep
	if err := e.checkBlocks(); err != nil {
		return err
	}
	e.core = &Handler{AppID: e.AppID, Store: e.Store, StoreConfig: e.StoreConfig, JWT: e.JWT}
	e.core.BackchannelLogout, e.core.TokenRevocation, e.core.SecurityEvents = e.BackchannelLogout, e.TokenRevocation, e.SecurityEvents
	repl := caddy.NewReplacer()
	if err := e.core.provisionCore(ctx, repl); err != nil {
		return err
	}
	if ep.name == "revoke_refresh" && e.core.cookieName == "" {
		return errors.New("revoke_refresh needs app_id (its cookie is __Host-refresh_<app_id>)")
	}
	if e.core.verifier == nil && (!ep.receiver || ep.name == "token_revocation") {
		return errors.New("jwt: endpoints are served but no verification key is configured; set jwt { hmac_secret | public_key | jwks_url }, or endpoints none")
	}
	return e.core.provisionReceivers(ctx, repl)
}

// checkBlocks says whether the receiver blocks given are the dialect's:
// a receiver needs its own, and no handler takes another's.
func (e *EndpointHandler) checkBlocks() error {
	blocks := LegacyEndpoints{BackchannelLogout: e.BackchannelLogout, TokenRevocation: e.TokenRevocation, SecurityEvents: e.SecurityEvents}
	for _, d := range dialects {
		if !d.receiver {
			continue
		}
		switch has := blocks.receiverConfigured(d.name); {
		case d.name == e.dialect && !has:
			return fmt.Errorf("revocation_%s: its %s block is required", d.name, d.name)
		case d.name != e.dialect && has:
			return fmt.Errorf("revocation_%s: a %s block belongs to revocation_%s", e.dialect, d.name, d.name)
		}
	}
	return nil
}

// Validate checks the store options and the jwt block, as the guard's.
func (e *EndpointHandler) Validate() error {
	var errs []error
	errs = append(errs, e.StoreConfig.Validate())
	if j := e.JWT; j != nil {
		if j.Leeway < 0 {
			errs = append(errs, errors.New("jwt leeway: must not be negative"))
		}
		errs = append(errs, checkAlgorithms(j.Algorithms))
	}
	return errors.Join(errs...)
}

// ServeHTTP answers the dialect's requests.
func (e *EndpointHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.Method != e.ep.method {
		if !e.ep.receiver {
			return next.ServeHTTP(w, r)
		}
		w.Header().Set("Allow", e.ep.method)
		return answerError(w, e.ep.name, http.StatusMethodNotAllowed, e.ep.shape, "invalid_request", "use "+e.ep.method)
	}
	if err := e.core.store.awaitStart(r.Context()); err != nil {
		return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("waiting for the revocation store: %w", err))
	}
	return e.ep.serve(e.core, w, r)
}

// Cleanup lets go of the app of the handler's own, when it has one.
func (e *EndpointHandler) Cleanup() error {
	if e.core == nil {
		return nil
	}
	return e.core.Cleanup()
}

// isZero reports whether no legacy endpoint option is set.
func (l *LegacyEndpoints) isZero() bool {
	return l.Endpoints == nil && l.Paths == nil && l.BackchannelLogout == nil && l.TokenRevocation == nil && l.SecurityEvents == nil
}

// endpointRoutes are the routes of the endpoints l enables, each with
// the handler of its dialect on its path, configured from the guard's
// options (app_id, store, jwt).
func (h *Handler) endpointRoutes(l *LegacyEndpoints) (caddyhttp.RouteList, error) {
	eps, err := l.routes(h.AppID)
	if err != nil {
		return nil, err
	}
	var routes caddyhttp.RouteList
	for _, ep := range eps {
		eh := EndpointHandler{AppID: h.AppID, Store: h.Store, StoreConfig: h.StoreConfig, JWT: h.JWT}
		switch ep.name {
		case "backchannel_logout":
			eh.BackchannelLogout = l.BackchannelLogout
		case "token_revocation":
			eh.TokenRevocation = l.TokenRevocation
		case "security_events":
			eh.SecurityEvents = l.SecurityEvents
		}
		path, err := json.Marshal([]string{ep.path})
		if err != nil {
			return nil, fmt.Errorf("endpoint %s: %w", ep.name, err)
		}
		routes = append(routes, caddyhttp.Route{
			MatcherSetsRaw: caddyhttp.RawMatcherSets{{"path": path}},
			HandlersRaw:    []json.RawMessage{caddyconfig.JSONModuleObject(eh, "handler", "revocation_"+ep.name, nil)},
		})
	}
	return routes, nil
}

// provisionLegacyRoutes expands the legacy endpoint options of a guard
// written in JSON into the routes the Caddyfile writes (expandedRoutes),
// whose first the guard holds ahead of itself. own is the guard's
// options as written (before its store's defaults were read back).
func (h *Handler) provisionLegacyRoutes(ctx caddy.Context, own *Handler) error {
	if own.LegacyEndpoints.isZero() {
		return nil
	}
	routes, err := own.expandedRoutes()
	if err != nil {
		return err
	}
	if len(routes) == 1 {
		return nil
	}
	h.legacy = routes[:1]
	if err := h.legacy.Provision(ctx); err != nil {
		return fmt.Errorf("endpoints: %w", err)
	}
	return nil
}

// guardNext is the guard behind the legacy routes.
type guardNext struct {
	h    *Handler
	next caddyhttp.Handler
}

func (g guardNext) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	if err := g.h.store.awaitStart(r.Context()); err != nil {
		return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("waiting for the revocation store: %w", err))
	}
	return g.h.guard(w, r, g.next)
}

// expand writes the routes of a site-level revocation block (see
// expandedRoutes). A block with a matcher puts them in a subroute under
// it.
func (h *Handler) expand(hp httpcaddyfile.Helper, matcherSet caddy.ModuleMap) ([]httpcaddyfile.ConfigValue, error) {
	routes, err := h.expandedRoutes()
	if err != nil {
		return nil, hp.Err(err.Error())
	}
	if len(routes) == 1 {
		return hp.NewRoute(matcherSet, h), nil
	}
	if matcherSet != nil {
		return hp.NewRoute(matcherSet, &caddyhttp.Subroute{Routes: routes}), nil
	}
	// Both routes come from one directive: Caddy keeps the one with a
	// path matcher first.
	return []httpcaddyfile.ConfigValue{{Class: "route", Value: routes[0]}, {Class: "route", Value: routes[1]}}, nil
}

// expandedRoutes are the routes of a guard whose options enable
// endpoints (the site-level block's, or the legacy JSON options): a
// route that matches the endpoints' paths, holding one route per
// endpoint (its handler on its path), then the guard without those
// options. A request on none of those paths costs one path match before
// the guard (MatchEndpoints, when the paths are plain); the endpoints'
// own routes run only on their paths. A guard
// that enables no endpoint is its own one route.
func (h *Handler) expandedRoutes() (caddyhttp.RouteList, error) {
	legacy := h.LegacyEndpoints
	h.LegacyEndpoints = LegacyEndpoints{}
	guard := caddyhttp.Route{HandlersRaw: []json.RawMessage{caddyconfig.JSONModuleObject(h, "handler", "revocation", nil)}}
	eps, err := legacy.routes(h.AppID)
	if err != nil || len(eps) == 0 {
		return caddyhttp.RouteList{guard}, err
	}
	endpoints, err := h.endpointRoutes(&legacy)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, ep := range eps {
		if !slices.Contains(paths, ep.path) {
			paths = append(paths, ep.path)
		}
	}
	pathsRaw, err := json.Marshal(paths)
	if err != nil {
		return nil, fmt.Errorf("endpoint paths: %w", err)
	}
	// Every proxied request passes this matcher: for plain paths ours
	// matches as Caddy's path matcher does, with one lookup.
	matcher := "path"
	if literalPaths(paths) {
		matcher = "revocation_endpoints"
	}
	return caddyhttp.RouteList{
		{
			MatcherSetsRaw: caddyhttp.RawMatcherSets{{matcher: pathsRaw}},
			HandlersRaw:    []json.RawMessage{caddyconfig.JSONModuleObject(&caddyhttp.Subroute{Routes: endpoints}, "handler", "subroute", nil)},
		},
		guard,
	}, nil
}

var (
	_ caddy.Provisioner           = (*EndpointHandler)(nil)
	_ caddy.Validator             = (*EndpointHandler)(nil)
	_ caddy.CleanerUpper          = (*EndpointHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*EndpointHandler)(nil)
)
