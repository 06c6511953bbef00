package caddymodule

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
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

// AdminRevokeRequest is one revocation in the body of POST
// /revocation/revoke, which takes one of them or a JSON array of them.
type AdminRevokeRequest struct {
	Subject string `json:"subject,omitempty"`
	Session string `json:"session,omitempty"`
	JTI     string `json:"jti,omitempty"`
	Token   string `json:"token,omitempty"`
	// Expires bounds a jti revocation; default: the session TTL.
	Expires When `json:"expires,omitempty"`
	// All with Before is the global cutoff: every token of every subject
	// issued at or before Before.
	All    bool `json:"all,omitempty"`
	Before When `json:"before,omitempty"`
}

// AdminRevokeResponse is the answer to POST /revocation/revoke.
type AdminRevokeResponse struct {
	// Revoked is the kind of revocation: subject, session, jti, token,
	// all (the global cutoff) or bulk (an array).
	Revoked string `json:"revoked"`
	Stores  int    `json:"stores"`
	Entries int    `json:"entries"`
	// Applied counts the revocations applied: 1, or for an array how
	// many of its elements, from the first.
	Applied int `json:"applied"`
	// Cutoff is the global cutoff now in force, for "all".
	Cutoff *time.Time `json:"cutoff,omitempty"`
	// RequestID is the request_id of the audit log line.
	RequestID string `json:"request_id"`
}

func apiErr(status int, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

// When is a moment as the admin API and the CLI take it: unix seconds (a
// JSON number, or a string of digits), an RFC 3339 time, a duration from
// now ("15m", "-1h"), or "now".
type When string

// UnmarshalJSON takes a JSON string or a JSON integer.
func (w *When) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*w = When(s)
		return nil
	}
	if _, err := strconv.ParseInt(string(b), 10, 64); err != nil {
		return fmt.Errorf("time %s: want unix seconds or a string (RFC 3339, a duration from now, or \"now\")", b)
	}
	*w = When(b)
	return nil
}

// resolve reads the moment; "now" gives now.
func (w When) resolve(now time.Time) (time.Time, error) {
	s := strings.TrimSpace(string(w))
	if s == "now" {
		return now, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q: want unix seconds, an RFC 3339 time, a duration from now such as 1h or -10m, or now", s)
}

// parseExpires reads when a jti revocation may be dropped: a unix time,
// an RFC 3339 time or a positive duration from now.
func parseExpires(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d <= 0 {
		return time.Time{}, fmt.Errorf("expires %q: want a positive duration", s)
	}
	if strings.TrimSpace(s) == "now" {
		return time.Time{}, fmt.Errorf("expires %q: an entry that expires now revokes nothing", s)
	}
	t, err := When(s).resolve(now)
	if err != nil {
		return time.Time{}, fmt.Errorf("expires %w", err)
	}
	return t, nil
}

// maxCutoffAhead is how far in the future a global cutoff may lie: room
// for clocks that disagree a little, not a way to refuse logins for hours.
const maxCutoffAhead = time.Minute

// parseBefore reads the moment of a global cutoff: "now" (the zero time,
// which the store reads as its own clock), unix seconds, an RFC 3339 time
// or a duration from now (negative: in the past).
func parseBefore(s string, now time.Time) (time.Time, error) {
	if strings.TrimSpace(s) == "now" {
		return time.Time{}, nil
	}
	t, err := When(s).resolve(now)
	if err != nil {
		return time.Time{}, fmt.Errorf("before %w", err)
	}
	if t.After(now.Add(maxCutoffAhead)) {
		return time.Time{}, fmt.Errorf("before %q is %s in the future: a cutoff revokes tokens issued until then, new logins included; give now or a past time", s, t.Sub(now).Round(time.Second))
	}
	if t.UnixMilli() <= 0 {
		return time.Time{}, fmt.Errorf("before %q: not after 1970", s)
	}
	return t, nil
}

// order turns one revocation object into an order, its expiry resolved.
func (req *AdminRevokeRequest) order(now time.Time) (revocation.Order, error) {
	if req.All || req.Before != "" {
		return revocation.Order{}, errors.New(`"all" and "before" make a global cutoff, which stands alone: {"all": true, "before": <time>}`)
	}
	o := revocation.Order{Subject: req.Subject, Session: req.Session, JTI: req.JTI, Token: req.Token}
	if req.Expires != "" {
		t, err := parseExpires(string(req.Expires), now)
		if err != nil {
			return o, err
		}
		o.Expires = revocation.ExpiryOfTime(t)
	}
	if _, err := o.OrderKind(); err != nil {
		return o, errors.New(strings.TrimPrefix(err.Error(), revocation.ErrBadRequest.Error()+": "))
	}
	return o, nil
}

// The limits of one POST /revocation/revoke. The CLI sends larger bulk
// revocations in parts well under them.
const (
	maxAdminBody   = 32 << 20
	maxBulkOrders  = 100_000
	cliBulkPart    = 10_000
	adminBulkBatch = revocation.BulkBatch
)

func (a *adminAPI) handleRevoke(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return apiErr(http.StatusMethodNotAllowed, "method %s not allowed; use POST", r.Method)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	if err != nil {
		return apiErr(http.StatusBadRequest, "read request: %v", err)
	}
	if len(body) > maxAdminBody {
		return apiErr(http.StatusRequestEntityTooLarge, "request larger than %d MiB; send a bulk revocation in parts", maxAdminBody>>20)
	}
	now := time.Now()
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var raws []json.RawMessage
		if err := decodeStrict(trimmed, &raws); err != nil {
			return apiErr(http.StatusBadRequest, "decode request: %v", err)
		}
		reqs := make([]AdminRevokeRequest, len(raws))
		for i, raw := range raws {
			if err := decodeRevokeRequest(raw, &reqs[i]); err != nil {
				return apiErr(http.StatusBadRequest, "element %d: %v", i+1, err)
			}
		}
		if len(reqs) == 0 {
			return apiErr(http.StatusBadRequest, "empty array: no revocation given")
		}
		if len(reqs) > maxBulkOrders {
			return apiErr(http.StatusRequestEntityTooLarge, "%d revocations in one request; at most %d, send the rest in another", len(reqs), maxBulkOrders)
		}
		orders := make([]revocation.Order, len(reqs))
		for i := range reqs {
			if orders[i], err = reqs[i].order(now); err != nil {
				return apiErr(http.StatusBadRequest, "element %d: %v", i+1, err)
			}
		}
		return a.revokeOrders(w, r, "bulk", orders)
	}
	var req AdminRevokeRequest
	if err := decodeRevokeRequest(trimmed, &req); err != nil {
		return apiErr(http.StatusBadRequest, "decode request: %v", err)
	}
	if req.All || req.Before != "" {
		return a.revokeAll(w, r, &req, now)
	}
	o, err := req.order(now)
	if err != nil {
		return apiErr(http.StatusBadRequest, "%v", err)
	}
	kind, _ := o.OrderKind() // checked by order
	return a.revokeOrders(w, r, kind, []revocation.Order{o})
}

// decodeRevokeRequest decodes one revocation object, refusing a member
// that is present but empty, blank or null: decoded into a plain string
// it would read as absent, and {"subject":"a","session":""} would revoke
// every session of the subject instead of one.
func decodeRevokeRequest(data []byte, req *AdminRevokeRequest) error {
	if err := decodeStrict(data, req); err != nil {
		return err
	}
	return noBlankMembers(data)
}

// noBlankMembers refuses an object member whose value is null or a
// string of nothing but white space, naming the member. Members of other
// types are left to the decoder.
func noBlankMembers(data []byte, except ...string) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return nil // not an object: the strict decode says why
	}
	names := make([]string, 0, len(members))
	for name := range members {
		names = append(names, name)
	}
	sort.Strings(names) // the first one named is always the same
	for _, name := range names {
		if slices.Contains(except, name) {
			continue
		}
		raw := bytes.TrimSpace(members[name])
		if string(raw) == "null" {
			return fmt.Errorf("%q is null: give a value, or leave the member out", name)
		}
		var str string
		if json.Unmarshal(raw, &str) == nil && strings.TrimSpace(str) == "" {
			return fmt.Errorf("%q is empty: give a value, or leave the member out (an empty member never widens a revocation)", name)
		}
	}
	return nil
}

// decodeStrict decodes exactly one JSON value with no unknown fields.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}

// revokeOrders applies one order (kind names it) or many (kind "bulk") to
// every store in use, and answers with what it applied.
func (a *adminAPI) revokeOrders(w http.ResponseWriter, r *http.Request, kind string, orders []revocation.Order) error {
	var (
		n, entries int
		applied    = len(orders)
		kinds      = map[revocation.Kind]int{}
		errs       []error
	)
	eachStore(func(s *sharedStore) {
		res, err := s.revoker().RevokeBulk(r.Context(), orders, adminBulkBatch)
		applied = min(applied, res.Applied)
		entries += res.Entries
		for k, c := range res.Kinds {
			kinds[k] += c
		}
		countRevocationKinds("admin", res.Kinds)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.desc, err))
			return
		}
		n++
	})
	reqID := adminRequestID(r)
	logFields := []zap.Field{
		zap.String("endpoint", "admin"),
		zap.String("kind", kind),
		zap.String("remote_ip", hostOnly(r.RemoteAddr)),
		zap.String("request_id", reqID),
		zap.Int("stores", n),
		zap.Int("entries", entries),
		zap.Strings("kinds", kindNames(kinds)),
	}
	if kind == "bulk" {
		logFields = append(logFields, zap.Int("orders", len(orders)), zap.Int("applied", applied))
	} else {
		o := orders[0]
		switch kind {
		case revocation.OrderToken:
			logFields = append(logFields, zap.String("token_hash", revocation.HashToken(o.Token).Short()))
		case revocation.OrderJTI:
			logFields = append(logFields, zap.String("jti", o.JTI))
		default:
			logFields = append(logFields, zap.String("subject", o.Subject), zap.String("session_id", o.Session))
		}
	}
	if len(errs) > 0 {
		a.log.Error("revocation not applied everywhere", append(logFields, zap.Error(errors.Join(errs...)))...)
		// applied counts the orders, from the first, committed in every
		// store; the caller resends the rest (or everything: harmless).
		w.Header().Set("Retry-After", "1")
		return writeAdminJSON(w, http.StatusServiceUnavailable, map[string]any{
			"error":       fmt.Sprintf("revocation store unavailable: %v", errors.Join(errs...)),
			"applied":     applied,
			"orders":      len(orders),
			"resend_from": applied,
			"request_id":  reqID,
		})
	}
	if n == 0 {
		return apiErr(http.StatusConflict, "no revocation handler is configured in this instance")
	}
	a.log.Info("revocation", logFields...)
	return writeAdminJSON(w, http.StatusOK, AdminRevokeResponse{Revoked: kind, Stores: n, Entries: entries, Applied: applied, RequestID: reqID})
}

// revokeAll sets the global cutoff in every store in use.
func (a *adminAPI) revokeAll(w http.ResponseWriter, r *http.Request, req *AdminRevokeRequest, now time.Time) error {
	if !req.All || req.Before == "" || req.Subject != "" || req.Session != "" || req.JTI != "" || req.Token != "" || req.Expires != "" {
		return apiErr(http.StatusBadRequest, `a global cutoff is {"all": true, "before": <time>} and nothing else; before is now, unix seconds, an RFC 3339 time or a duration from now such as -10m`)
	}
	before, err := parseBefore(string(req.Before), now)
	if err != nil {
		return apiErr(http.StatusBadRequest, "%v", err)
	}
	var (
		n, entries int
		cutoff     revocation.UnixMillis
		errs       []error
	)
	eachStore(func(s *sharedStore) {
		res, err := s.revoker().RevokeAll(r.Context(), before)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.desc, err))
			return
		}
		n++
		entries += len(res.Entries)
		for _, e := range res.Entries {
			cutoff = max(cutoff, e.Cutoff)
		}
		countRevocation("admin", res.Entries)
	})
	reqID := adminRequestID(r)
	logFields := []zap.Field{
		zap.String("endpoint", "admin"),
		zap.String("kind", "all"),
		zap.String("remote_ip", hostOnly(r.RemoteAddr)),
		zap.String("request_id", reqID),
		zap.Int("stores", n),
		zap.String("before", string(req.Before)),
		zap.Time("cutoff", cutoff.Time()),
	}
	if len(errs) > 0 {
		a.log.Error("global cutoff not applied everywhere", append(logFields, zap.Error(errors.Join(errs...)))...)
		return apiErr(http.StatusServiceUnavailable, "revocation store unavailable: %v", errors.Join(errs...))
	}
	if n == 0 {
		return apiErr(http.StatusConflict, "no revocation handler is configured in this instance")
	}
	a.log.Warn("global cutoff: every token of every subject issued at or before the cutoff is revoked", logFields...)
	c := cutoff.Time().UTC()
	return writeAdminJSON(w, http.StatusOK, AdminRevokeResponse{Revoked: "all", Stores: n, Entries: entries, Applied: 1, Cutoff: &c, RequestID: reqID})
}

// kindNames lists the kinds of entries written, in report order.
func kindNames(kinds map[revocation.Kind]int) []string {
	var out []string
	for _, k := range revocation.Kinds {
		if kinds[k] > 0 {
			out = append(out, k.String())
		}
	}
	return out
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
	// HashKey is the fingerprint of the hash_key identities are keyed
	// with (never the key), absent when none is configured.
	HashKey string `json:"hash_key_fingerprint,omitempty"`
	// UnkeyedUntil is when unkeyed identity entries (written before the
	// key, or by older replicas) stop being checked, absent when they
	// are not.
	UnkeyedUntil *time.Time `json:"unkeyed_until,omitempty"`
	// Load is the progress of a full load under way, absent when none is.
	Load *LoadStatus `json:"load,omitempty"`
	// Memory is how the local copy stands against memory_budget, absent
	// when there is no budget.
	Memory *MemoryStatus `json:"memory,omitempty"`

	// streamsOpen adds up, over the stores, to StatusResponse.StreamsOpen.
	streamsOpen int64
}

// MemoryStatus is a store's local copy against its memory budget.
type MemoryStatus struct {
	Budget  int64 `json:"budget_bytes"`
	Tables  int64 `json:"table_bytes"`
	Process int64 `json:"process_bytes"`
	// NotHeld is how many revocations the copy lacks for want of memory
	// (until they expire, at NotHeldUntil).
	NotHeld      int64      `json:"entries_not_held"`
	NotHeldUntil *time.Time `json:"not_held_until,omitempty"`
}

// LoadStatus is the progress of a full load of the local copy.
type LoadStatus struct {
	Entries int64 `json:"entries"`
	// Expected is an upper estimate (revocation.LoadProgress), zero when
	// unknown.
	Expected int64   `json:"expected_entries"`
	Seconds  float64 `json:"seconds"`
}

func statuses() []StoreStatus {
	now := time.Now()
	var out []StoreStatus
	eachStore(func(s *sharedStore) {
		h := s.Health()
		st := StoreStatus{
			Store: h.Store.String(), Describe: s.desc, KeyPrefix: s.prefix,
			Entries: map[string]int64{}, Loaded: h.Loaded, Connected: h.Connected,
			LastError: h.LastError, streamsOpen: s.tracker.Len(),
			HashKey: s.hasher.Fingerprint(),
		}
		if u := s.hasher.UnkeyedUntil(); !u.IsZero() && s.hasher.ChecksUnkeyed() {
			st.UnkeyedUntil = &u
		}
		if p := h.Load; p != nil {
			st.Load = &LoadStatus{Entries: p.Entries, Expected: p.Expected, Seconds: now.Sub(p.Started).Seconds()}
		}
		for _, k := range revocation.Kinds {
			st.Entries[k.String()] = s.Denylist().Len(k)
		}
		if m := h.Memory; m != nil {
			st.Memory = &MemoryStatus{Budget: m.Budget, Tables: m.Tables, Process: m.Process, NotHeld: m.Dropped}
			if m.Over() {
				u := time.Unix(m.Until, 0).UTC()
				st.Memory.NotHeldUntil = &u
			}
		}
		if !h.Confirmed.IsZero() && h.Store.Shared() {
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
	case !h.Loaded && h.Load != nil && (h.Connected || h.LastError == ""):
		// Loading; once Redis has failed it, the reason is that it is
		// not loaded yet, and why.
		why := fmt.Sprintf("denylist loading: %d entries read", h.Load.Entries)
		if h.Load.Expected > 0 {
			why += fmt.Sprintf(" of at most %d", h.Load.Expected)
		}
		return false, why
	case !h.Loaded && h.LastError != "":
		return false, "denylist not loaded yet: " + h.LastError
	case !h.Loaded:
		return false, "denylist not loaded yet"
	case h.Memory != nil && h.Memory.Over():
		// Whatever on_store_down says: this replica alone lacks memory
		// (a restart with a larger limit helps), and its copy misses
		// revocations that others hold.
		return false, h.Memory.Reason()
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
	st := StatusResponse{Stores: statuses()}
	for _, s := range st.Stores {
		st.StreamsOpen += s.streamsOpen
	}
	return writeAdminJSON(w, http.StatusOK, st)
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
	// StreamsOpen is the number of open streams tracked: proxied
	// requests that carried a credential and are still open, which a
	// revocation of that credential ends.
	StreamsOpen int64 `json:"streams_open"`
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
