package caddymodule

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves the operator's routes on Caddy's admin endpoint:
//
//	POST /revocation/revoke   {"subject": "..."}                    every token of a subject, now
//	                          {"subject": "...", "session": "..."}  one session of a subject
//	                          {"jti": "...", "expires": <unix s>}   one jti (expires optional)
//	                          {"token": "..."}                      one exact token
//	POST /revocation/explain  {"method","path","headers","body"}    what the guard sees in a request (explain.go)
//	GET  /revocation/status   the stores in use, their entry counts and health
//	GET  /revocation/ready    200 when every store is loaded and current (or, under
//	                          fail_open, loaded), else 503 and why
//	GET  /revocation/live     200 while the process answers
//
// A revocation applies to every store in use in this process (normally
// one), the same way an endpoint's does: atomically, shared through Redis.
type adminAPI struct {
	log *zap.Logger
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
	return nil
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

// AdminRevokeRequest is the body of POST /revocation/revoke.
type AdminRevokeRequest struct {
	Subject string `json:"subject,omitempty"`
	Session string `json:"session,omitempty"`
	JTI     string `json:"jti,omitempty"`
	Token   string `json:"token,omitempty"`
	// Expires bounds a jti revocation (unix seconds); default: the
	// session TTL.
	Expires int64 `json:"expires,omitempty"`
}

// AdminRevokeResponse is the answer to POST /revocation/revoke.
type AdminRevokeResponse struct {
	Revoked string `json:"revoked"`
	Stores  int    `json:"stores"`
	Entries int    `json:"entries"`
	// RequestID is the request_id of the audit log line.
	RequestID string `json:"request_id"`
}

func apiErr(status int, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

func (a *adminAPI) handleRevoke(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return apiErr(http.StatusMethodNotAllowed, "method %s not allowed; use POST", r.Method)
	}
	var req AdminRevokeRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return apiErr(http.StatusBadRequest, "decode request: %v", err)
	}
	if dec.More() {
		return apiErr(http.StatusBadRequest, "decode request: data after the JSON object")
	}
	kind := ""
	switch {
	case req.Token != "" && req.Subject == "" && req.Session == "" && req.JTI == "":
		kind = "token"
	case req.JTI != "" && req.Subject == "" && req.Session == "" && req.Token == "":
		kind = "jti"
	case req.Subject != "" && req.Session != "" && req.JTI == "" && req.Token == "":
		kind = "session"
	case req.Subject != "" && req.Session == "" && req.JTI == "" && req.Token == "":
		kind = "subject"
	default:
		return apiErr(http.StatusBadRequest, `give exactly one of: {"subject"}, {"subject","session"}, {"jti"[,"expires"]}, {"token"}`)
	}
	if req.Expires != 0 && kind != "jti" {
		return apiErr(http.StatusBadRequest, "expires applies to jti revocations only")
	}

	var (
		n, entries int
		written    []revocation.Entry
		errs       []error
	)
	eachStore(func(s *sharedStore) {
		rv := s.revoker()
		var res revocation.Result
		var err error
		switch kind {
		case "token":
			res, err = rv.RevokeToken(r.Context(), req.Token)
		case "jti":
			res, err = rv.RevokeJTI(r.Context(), req.JTI, req.Expires)
		case "session":
			res, err = rv.RevokeSession(r.Context(), req.Subject, req.Session)
		case "subject":
			res, err = rv.RevokeSubject(r.Context(), req.Subject)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.desc, err))
			return
		}
		n++
		entries += len(res.Entries)
		written = append(written, res.Entries...)
		countRevocation("admin", res.Entries)
	})
	reqID := adminRequestID(r)
	logFields := []zap.Field{
		zap.String("endpoint", "admin"),
		zap.String("kind", kind),
		zap.String("remote_ip", hostOnly(r.RemoteAddr)),
		zap.String("request_id", reqID),
		zap.Int("stores", n),
		zap.Int("entries", entries),
		zap.Strings("kinds", entryKinds(written)),
	}
	switch kind {
	case "token":
		logFields = append(logFields, zap.String("token_hash", revocation.HashToken(req.Token).Short()))
	case "jti":
		logFields = append(logFields, zap.String("jti", req.JTI))
	default:
		logFields = append(logFields, zap.String("subject", req.Subject), zap.String("session_id", req.Session))
	}
	if len(errs) > 0 {
		a.log.Error("revocation not applied everywhere", append(logFields, zap.Error(errors.Join(errs...)))...)
		return apiErr(http.StatusServiceUnavailable, "revocation store unavailable: %v", errors.Join(errs...))
	}
	if n == 0 {
		return apiErr(http.StatusConflict, "no revocation handler is configured in this instance")
	}
	a.log.Info("revocation", logFields...)
	return writeAdminJSON(w, http.StatusOK, AdminRevokeResponse{Revoked: kind, Stores: n, Entries: entries, RequestID: reqID})
}

// revokedTokenHashes returns the short hash (revocation.TokenHash.Short)
// of every exact token a revocation wrote, for its audit line: a token
// entry's key starts with the token's hash, so nothing else is needed.
func revokedTokenHashes(entries []revocation.Entry) []string {
	var out []string
	for _, e := range entries {
		if e.Kind() != revocation.KindToken {
			continue
		}
		if h := e.Key.String()[:12]; !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
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

// StoreStatus describes one store in GET /revocation/status.
type StoreStatus struct {
	Store      string           `json:"store"`
	Describe   string           `json:"describe"`
	KeyPrefix  string           `json:"key_prefix"`
	Entries    map[string]int64 `json:"entries"`
	Loaded     bool             `json:"loaded"`
	Connected  bool             `json:"connected"`
	Confirmed  *time.Time       `json:"confirmed,omitempty"`
	StaleFor   float64          `json:"stale_seconds"`
	StaleAfter float64          `json:"stale_after_seconds"`
	Ready      bool             `json:"ready"`
	// Reason says why the store is not ready, or, when it is ready but
	// stale under fail_open, why it is degraded.
	Reason    string `json:"reason,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

func statuses() []StoreStatus {
	now := time.Now()
	var out []StoreStatus
	eachStore(func(s *sharedStore) {
		h := s.Health()
		st := StoreStatus{
			Store: h.Store, Describe: s.desc, KeyPrefix: s.prefix,
			Entries: map[string]int64{}, Loaded: h.Loaded, Connected: h.Connected,
			LastError: h.LastError,
		}
		for _, k := range revocation.Kinds {
			st.Entries[k.String()] = s.Denylist().Len(k)
		}
		if !h.Confirmed.IsZero() && h.Store != "embedded" {
			c := h.Confirmed.UTC()
			st.Confirmed = &c
		}
		stale := s.Staleness(now)
		staleAfter := time.Duration(s.staleAfter.Load())
		st.StaleFor, st.StaleAfter = min(stale, 100*365*24*time.Hour).Seconds(), staleAfter.Seconds()
		st.Ready, st.Reason = readiness(h, stale, staleAfter, s.failClosed.Load())
		out = append(out, st)
	})
	return out
}

// readiness says whether an instance should get traffic for a store,
// and if not, why. It follows on_store_down: a stale store makes the
// instance unready only when some handler refuses requests for it
// (failClosed); with fail_open every handler keeps serving what it
// knows, so pulling every replica out of a Service during a Redis
// outage would refuse the very traffic fail_open asks to let through.
// A store that never loaded knows nothing, and is never ready. The
// reason is also given for a store that is ready but stale (fail_open).
func readiness(h revocation.Health, stale, staleAfter time.Duration, failClosed bool) (bool, string) {
	switch {
	case !h.Loaded && h.LastError != "":
		return false, "denylist not loaded yet: " + h.LastError
	case !h.Loaded:
		return false, "denylist not loaded yet"
	case staleAfter > 0 && stale > staleAfter:
		why := fmt.Sprintf("denylist not confirmed current for %s (stale_after %s)", stale.Round(time.Millisecond), staleAfter)
		if !h.Connected && h.LastError != "" {
			why += "; store unreachable: " + h.LastError
		}
		if !failClosed {
			// Ready, but say why it is degraded, for status pages.
			return true, why + "; serving what is known (on_store_down fail_open)"
		}
		return false, why
	}
	// A store that dropped its connection moments ago is still current
	// until stale_after: a blip must not pull every replica out of
	// service at once. /revocation/status shows the connection.
	return true, ""
}

func (a *adminAPI) handleStatus(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return apiErr(http.StatusMethodNotAllowed, "method %s not allowed; use GET", r.Method)
	}
	return writeAdminJSON(w, http.StatusOK, StatusResponse{Stores: statuses()})
}

// ReadyResponse is the answer to GET /revocation/ready.
type ReadyResponse struct {
	Ready bool `json:"ready"`
	// Reasons says, per store, why the instance is not ready; absent
	// when it is.
	Reasons []string `json:"reasons,omitempty"`
}

// StatusResponse is the answer to GET /revocation/status.
type StatusResponse struct {
	Stores []StoreStatus `json:"stores"`
}

func (a *adminAPI) handleReady(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return apiErr(http.StatusMethodNotAllowed, "method %s not allowed; use GET", r.Method)
	}
	status, answer := readyAnswer(statuses())
	return writeAdminJSON(w, status, answer)
}

// readyAnswer is the status and body of GET /revocation/ready for the
// stores of the instance.
func readyAnswer(sts []StoreStatus) (int, ReadyResponse) {
	answer := ReadyResponse{Ready: len(sts) > 0}
	if len(sts) == 0 {
		answer.Reasons = append(answer.Reasons, "no revocation handler is configured")
	}
	for _, s := range sts {
		if !s.Ready {
			answer.Ready = false
			answer.Reasons = append(answer.Reasons, s.Describe+": "+s.Reason)
		}
	}
	if !answer.Ready {
		return http.StatusServiceUnavailable, answer
	}
	return http.StatusOK, answer
}

func (a *adminAPI) handleLive(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return apiErr(http.StatusMethodNotAllowed, "method %s not allowed; use GET", r.Method)
	}
	return writeAdminJSON(w, http.StatusOK, map[string]bool{"live": true})
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
