package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-revocation/caddy-revocation/revocation"
	"go.uber.org/zap"
)

// POST /revocation/revoke: the operator revokes a subject, a session, a
// jti, a token, a batch of them, or everything issued before a moment
// (the global cutoff), in every store of the instance.

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
	a.eachStore(func(s *sharedStore) {
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
	a.eachStore(func(s *sharedStore) {
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

// The limits of one POST /revocation/revoke. The CLI sends larger bulk
// revocations in parts well under them.
const (
	maxAdminBody   = 32 << 20
	maxBulkOrders  = 100_000
	cliBulkPart    = 10_000
	adminBulkBatch = revocation.BulkBatch
)
