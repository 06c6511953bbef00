package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// endpoint is one served dialect: where it answers and how.
type endpoint struct {
	name   string // the name in the endpoints option
	seed   string // the API it follows, as docs/endpoints.md describes it
	method string
	path   string // default path
	serve  func(h *Handler, w http.ResponseWriter, r *http.Request) error
	// shape is the dialect's error body, the one every error answer of
	// the dialect uses.
	shape errorShape
	// receiver: an identity provider's logouts come in here; served when
	// its block is configured, whatever the endpoints option says.
	receiver bool
}

// dialects are the four seed endpoints and the three receivers, each
// implemented in its own file.
var dialects = []endpoint{
	{name: "revoke_refresh", seed: "000", method: http.MethodPost, path: "/v1/session/revoke", serve: (*Handler).serveRevokeRefresh, shape: codeTypeError},
	{name: "revoke_sessions", seed: "001", method: http.MethodPost, path: "/v1/session/me/revoke", serve: (*Handler).serveRevokeSessions, shape: codeTypeError},
	{name: "invalidate_session", seed: "002", method: http.MethodDelete, path: "/v1/auth/session", serve: (*Handler).serveInvalidateSession, shape: invalidateSessionError},
	{name: "logout", seed: "003", method: http.MethodPost, path: "/v1/auth/logout", serve: (*Handler).serveLogout, shape: logoutError},
	{name: "backchannel_logout", method: http.MethodPost, path: "/oidc/backchannel-logout", serve: (*Handler).serveBackchannelLogout, shape: oauthError, receiver: true},
	{name: "token_revocation", method: http.MethodPost, path: "/oauth2/revoke", serve: (*Handler).serveTokenRevocation, shape: oauthError, receiver: true},
	{name: "security_events", method: http.MethodPost, path: "/ssf/events", serve: (*Handler).serveSecurityEvents, shape: securityEventsError, receiver: true},
}

// receiverConfigured reports whether a receiver's block is present.
func (l *LegacyEndpoints) receiverConfigured(name string) bool {
	switch name {
	case "backchannel_logout":
		return l.BackchannelLogout != nil
	case "token_revocation":
		return l.TokenRevocation != nil
	case "security_events":
		return l.SecurityEvents != nil
	}
	return false
}

func dialectNames() []string {
	names := make([]string, len(dialects))
	for i, d := range dialects {
		names[i] = d.name
	}
	return names
}

func findDialect(name string) (endpoint, bool) {
	for _, d := range dialects {
		if d.name == name {
			return d, true
		}
	}
	return endpoint{}, false
}

// routes returns the endpoints the options enable, each on its path, in
// the order their routes are tried: the seed endpoints, then the
// receivers. With endpoints absent, the seed endpoints are enabled
// (revoke_refresh only when appID is set); a receiver is enabled by its
// block.
func (l *LegacyEndpoints) routes(appID string) ([]endpoint, error) {
	var enabled []endpoint
	switch {
	case len(l.Endpoints) == 1 && l.Endpoints[0] == "none":
	case l.Endpoints == nil:
		for _, d := range dialects {
			if d.receiver || d.name == "revoke_refresh" && appID == "" {
				continue // needs app_id to know its cookie
			}
			enabled = append(enabled, d)
		}
	default:
		seen := map[string]bool{}
		for _, name := range l.Endpoints {
			if name == "none" {
				return nil, errors.New(`endpoints: "none" cannot be combined with other dialects`)
			}
			d, ok := findDialect(name)
			if !ok {
				return nil, fmt.Errorf("endpoints: unknown dialect %q (known: %s, none)", name, strings.Join(dialectNames(), ", "))
			}
			if seen[name] {
				return nil, fmt.Errorf("endpoints: dialect %q listed twice", name)
			}
			seen[name] = true
			if name == "revoke_refresh" && appID == "" {
				return nil, errors.New("endpoints: revoke_refresh needs app_id (its cookie is __Host-refresh_<app_id>)")
			}
			if d.receiver && !l.receiverConfigured(name) {
				return nil, fmt.Errorf("endpoints: %s is served when its %s block is present; add the block", name, name)
			}
			if !d.receiver {
				enabled = append(enabled, d)
			}
		}
	}
	for _, d := range dialects {
		if d.receiver && l.receiverConfigured(d.name) {
			enabled = append(enabled, d)
		}
	}
	for name, path := range l.Paths {
		if _, ok := findDialect(name); !ok {
			return nil, fmt.Errorf("paths: unknown dialect %q (known: %s)", name, strings.Join(dialectNames(), ", "))
		}
		if !slices.ContainsFunc(enabled, func(d endpoint) bool { return d.name == name }) {
			return nil, fmt.Errorf("paths: dialect %q is not enabled", name)
		}
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "?# ") {
			return nil, fmt.Errorf("paths: %s: %q must be an absolute path without query", name, path)
		}
	}
	answers := map[[2]string]string{} // method and path -> dialect
	for i, d := range enabled {
		if p, ok := l.Paths[d.name]; ok {
			enabled[i].path = p
		}
		key := [2]string{d.method, enabled[i].path}
		if other, dup := answers[key]; dup {
			return nil, fmt.Errorf("paths: %s and %s both answer %s %s", other, d.name, d.method, enabled[i].path)
		}
		answers[key] = d.name
	}
	return enabled, nil
}

// errorShape makes a dialect's error body from an error code and a
// description (each dialect names the two as its API does).
type errorShape func(code, desc string) map[string]string

// oauthError is the error body of OAuth 2.0 (RFC 6749 section 5.2), which
// the back-channel logout and token revocation receivers answer with.
func oauthError(code, desc string) map[string]string {
	return map[string]string{"error": code, "error_description": desc}
}

// answerError writes an endpoint's error answer, in its dialect's shape,
// and counts it.
func answerError(w http.ResponseWriter, dialect string, status int, shape errorShape, code, desc string) error {
	countEndpointError(dialect, code)
	return writeJSON(w, status, shape(code, desc))
}

// maxBody bounds an endpoint request body.
const maxBody = 16 << 10

var (
	errBodyTooLarge = errors.New("request body too large")
	errBodyInvalid  = errors.New("invalid request body")
)

// readBody reads an optional body: nil when there is none (or only
// whitespace), errBodyTooLarge past maxBody.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > maxBody {
		return nil, errBodyTooLarge
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBodyInvalid, err)
	}
	if len(data) > maxBody {
		return nil, errBodyTooLarge
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	return data, nil
}

// maxIgnoredBody bounds the body of an endpoint whose seed defines none
// (000 and 001): a client's stray "{}" is ignored, anything larger is
// malformed input and revokes nothing (shared SPEC section 4).
const maxIgnoredBody = 1 << 10

// unwantedBody reports whether a body-less endpoint got a body over
// maxIgnoredBody (or one that could not be read).
func unwantedBody(r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return false
	}
	if r.ContentLength > maxIgnoredBody {
		return true
	}
	n, err := io.Copy(io.Discard, io.LimitReader(r.Body, maxIgnoredBody+1))
	return err != nil || n > maxIgnoredBody
}

// decodeStringFields decodes a JSON object strictly: valid UTF-8, one
// object and nothing after it, each named field at most once and, when
// present, a string (null is a wrong type, not an absence). Other fields
// are ignored, as a tolerant reader should; a repeated known field is
// refused, since two readers of the same body could otherwise disagree
// on its value.
func decodeStringFields(data []byte, fields ...string) (map[string]string, error) {
	if !utf8.Valid(data) {
		// encoding/json would quietly replace the bad bytes.
		return nil, fmt.Errorf("%w: not UTF-8", errBodyInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBodyInvalid, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", errBodyInvalid)
	}
	out := make(map[string]string)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBodyInvalid, err)
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%w: %v", errBodyInvalid, err)
		}
		if !slices.Contains(fields, key) {
			continue
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%w: field %q given twice", errBodyInvalid, key)
		}
		var s string
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			return nil, fmt.Errorf("%w: field %q must be a string", errBodyInvalid, key)
		}
		out[key] = s
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, fmt.Errorf("%w: %v", errBodyInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", errBodyInvalid)
	}
	return out, nil
}

// authState classifies the bearer token of an endpoint call.
type authState int

const (
	authMissing     authState = iota // absent or malformed header
	authInvalid                      // bad signature, expired, alg none...
	authRevoked                      // valid but revoked
	authUnavailable                  // a DPoP replay check could not reach the store
	authOK
)

// authenticate verifies the bearer token of an endpoint call.
//
// A DPoP-bound access token (cnf.jkt) must come with the DPoP scheme and
// a proof of possession of its key that names it (RFC 9449 section 7): a
// thief holding only the token must not be able to revoke its owner's
// sessions, and a bound token presented as a plain bearer token is refused
// (section 7.2). A token that is not bound must use the Bearer scheme.
func (h *Handler) authenticate(r *http.Request) (*revocation.Credential, authState, revocation.Reason) {
	raw, dpopScheme, ok := strictAuthorization(r)
	if !ok {
		return nil, authMissing, revocation.NotBlocked
	}
	cred, err := h.revoker.Authenticate(r.Context(), raw)
	var rev *revocation.RevokedError
	switch {
	case errors.As(err, &rev):
		return cred, authRevoked, rev.Reason
	case err != nil:
		h.log.Debug("endpoint caller's token refused", zap.String("token_hash", revocation.HashToken(raw).Short()), zap.Error(err))
		return nil, authInvalid, revocation.NotBlocked
	}
	jkt := cred.Claims.Confirmation
	switch {
	case jkt == "" && dpopScheme:
		return nil, authMissing, revocation.NotBlocked
	case jkt == "":
		return cred, authOK, revocation.NotBlocked
	case !dpopScheme:
		h.log.Debug("DPoP-bound access token presented as a bearer token", zap.String("token_hash", cred.Hash.Short()))
		return nil, authInvalid, revocation.NotBlocked
	}
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		h.log.Debug("DPoP-bound access token without exactly one proof", zap.String("token_hash", cred.Hash.Short()))
		return nil, authInvalid, revocation.NotBlocked
	}
	err = h.dpop().CheckAccess(r.Context(), proofs[0], r.Method, requestURL(r), jkt, raw)
	switch {
	case errors.Is(err, revocation.ErrUnavailable):
		h.commitFailed(r, "dpop", err)
		return nil, authUnavailable, revocation.NotBlocked
	case err != nil:
		h.log.Debug("DPoP proof of an access token refused", zap.String("token_hash", cred.Hash.Short()), zap.Error(err))
		return nil, authInvalid, revocation.NotBlocked
	}
	return cred, authOK, revocation.NotBlocked
}

// strictBearer reads "Authorization: Bearer <token>" (RFC 6750 section
// 2.1): exactly one header, the Bearer scheme (any case), spaces, and a
// b64token of at most 16 KiB.
func strictBearer(r *http.Request) (string, bool) {
	tok, dpop, ok := strictAuthorization(r)
	return tok, ok && !dpop
}

// strictAuthorization reads exactly one Authorization header with the
// Bearer scheme or the DPoP scheme of RFC 9449 (same token grammar), and
// says which scheme came.
func strictAuthorization(r *http.Request) (tok string, dpop bool, ok bool) {
	vals := r.Header.Values("Authorization")
	if len(vals) != 1 {
		return "", false, false
	}
	if tok, ok := parseBearer(vals[0]); ok {
		return tok, false, true
	}
	if scheme, rest, found := strings.Cut(vals[0], " "); found && strings.EqualFold(scheme, "DPoP") {
		if tok, ok := parseBearer("Bearer " + rest); ok {
			return tok, true, true
		}
	}
	return "", false, false
}

// maxBearer bounds a bearer token, far above any real JWT.
const maxBearer = 16 << 10

func parseBearer(v string) (string, bool) {
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimLeft(tok, " ")
	if len(tok) > maxBearer || !isB64Token(tok) {
		return "", false
	}
	return tok, true
}

// isB64Token reports whether s is an RFC 6750 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// commitFailed logs a store failure of an endpoint; the caller answers
// with its dialect's 500.
func (h *Handler) commitFailed(r *http.Request, dialect string, err error) {
	h.log.Error("revocation not applied: store error",
		zap.String("endpoint", dialect),
		zap.String("remote_ip", clientIP(r)),
		zap.String("request_id", requestID(r)),
		zap.Error(err))
}

// audit writes the one log line of a revocation.
func (h *Handler) audit(r *http.Request, dialect string, cred *revocation.Credential, res revocation.Result, extra ...zap.Field) {
	countRevocation(dialect, res.Entries)
	fields := []zap.Field{
		zap.String("endpoint", dialect),
		zap.String("remote_ip", clientIP(r)),
		zap.String("request_id", requestID(r)),
		zap.Int("entries", len(res.Entries)),
		zap.Strings("kinds", entryKinds(res.Entries)),
		zap.Strings("revoked_token_hashes", revokedTokenHashes(res.Entries)),
	}
	if cred != nil {
		fields = append(fields, zap.String("token_hash", cred.Hash.Short()))
		if cred.Claims != nil {
			fields = append(fields, zap.String("subject", cred.Claims.Subject), zap.String("session_id", cred.Claims.Session))
		}
	}
	h.log.Info("revocation", append(fields, extra...)...)
}

func entryKinds(entries []revocation.Entry) []string {
	var kinds []string
	for _, e := range entries {
		if k := e.Kind().String(); !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	return kinds
}
