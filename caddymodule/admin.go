package caddymodule

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves the operator's routes on Caddy's admin endpoint:
//
//	POST /revocation/revoke   {"subject": "..."}                    every token of a subject, now
//	                          {"subject": "...", "session": "..."}  one session of a subject
//	                          {"jti": "...", "expires": <time>}     one jti (expires optional)
//	                          {"token": "..."}                      one exact token
//	                          [ ...any of the above... ]            bulk, applied in batches
//	                          {"all": true, "before": <time>}       the global cutoff
//	POST /revocation/explain  {"method","path","headers","body"}    what the guard sees in a request (explain.go)
//	GET  /revocation/status   the stores in use, their entry counts and health
//	GET  /revocation/ready    200 when every store is loaded and current (or, under
//	                          fail_open, loaded), else 503 and why
//	GET  /revocation/live     200 while the process answers
//
// A <time> is unix seconds, an RFC 3339 time, a duration from now or
// "now" (see When).
//
// A revocation applies to every store of the running configuration's
// revocation app (normally one), the same way an endpoint's does:
// atomically, shared through Redis.
type adminAPI struct {
	log *zap.Logger
	// app is the revocation app of the configuration the admin endpoint
	// was started with: what the routes act on.
	app *App
}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.revocation",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Provision sets up the admin routes.
func (a *adminAPI) Provision(ctx caddy.Context) error {
	// Caddy provisions admin routers outside any module ancestry, so the
	// module must be named for its log lines to carry a logger name.
	a.log = ctx.Logger(a)
	// The app of the configuration, loaded here as caddypki's admin API
	// loads its app: Caddy starts the admin endpoint before it loads the
	// apps, so a request (a readiness probe during a reload) must never
	// be the one to look the app up while the configuration's
	// provisioning adds apps to it. A configuration without the global
	// option gets the app its handlers would load anyway, empty when it
	// has none. An app that fails here fails the configuration's own
	// load of it, with its error.
	if v, err := ctx.App("revocation"); err == nil {
		a.app, _ = v.(*App)
	}
	return nil
}

// revocationApp returns the revocation app the routes act on: that of
// the configuration the admin endpoint was started with; nil when there
// is none.
func (a *adminAPI) revocationApp() *App { return a.app }

// eachStore calls f for every store of the configuration.
func (a *adminAPI) eachStore(f func(*sharedStore)) {
	if app := a.revocationApp(); app != nil {
		app.eachStore(f)
	}
}

// Routes implements caddy.AdminRouter.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/revocation/revoke", Handler: caddy.AdminHandlerFunc(a.handleRevoke)},
		{Pattern: "/revocation/status", Handler: caddy.AdminHandlerFunc(a.handleStatus)},
		{Pattern: "/revocation/explain", Handler: caddy.AdminHandlerFunc(a.handleExplain)},
		{Pattern: "/revocation/ready", Handler: caddy.AdminHandlerFunc(a.handleReady)},
		{Pattern: "/revocation/live", Handler: caddy.AdminHandlerFunc(a.handleLive)},
	}
}

func apiErr(status int, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

// adminRequestID names one admin request in the audit log: the caller's
// X-Request-Id when it is a short plain token, else a random one.
func adminRequestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 64 && strings.Trim(id, idChars) == "" {
		return id
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

const idChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."

// hostOnly strips the port of a host:port address.
func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

var (
	_ caddy.Provisioner = (*adminAPI)(nil)
	_ caddy.AdminRouter = (*adminAPI)(nil)
)
