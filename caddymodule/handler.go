// Package caddymodule is the Caddy side of caddy-revocation: the
// revocation app (apps.revocation, app.go), which owns the stores; the
// http.handlers.revocation handler, which guards requests; the
// http.handlers.revocation_<dialect> handlers, which serve the endpoint
// dialects and receivers (endpoint.go); the Caddyfile directive
// "revocation", which expands into their routes; the
// admin.api.revocation routes; the metrics; and the "caddy
// revocation" command. docs/architecture.md draws how they fit.
package caddymodule

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-revocation/caddy-revocation/extract"
	"github.com/caddy-revocation/caddy-revocation/revocation"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler stops every proxied request that carries a revoked credential.
// The revocation endpoints that apps and their clients call are handlers
// of their own (EndpointHandler), placed ahead of it by routes.
//
// Put it in front of reverse_proxy (the Caddyfile directive orders itself
// there). A request whose access token, refresh token, jti, session or
// subject is revoked gets 401 with an RFC 6750 error and never reaches
// the upstream; anything else passes through untouched.
type Handler struct {
	// AppID names the refresh-token cookie, __Host-refresh_<app_id>,
	// checked on proxied requests and required by the revoke_refresh
	// endpoint. Empty: no refresh cookie is looked at, and revoke_refresh
	// is not served by default.
	AppID string `json:"app_id,omitempty"`

	// Store names a store of the revocation app (apps.revocation) to use
	// instead of store options of the handler's own. Default: the
	// handler's own store options, else the app's store named "default",
	// else the embedded store.
	Store string `json:"store,omitempty"`

	// StoreConfig is the handler's own store options (redis, key_prefix,
	// hash_key, session_ttl, on_store_down, stale_after, feed_max_len,
	// feed_retention, snapshot_every, memory_budget, redis_timeout,
	// redis_wait_replicas, redis_wait_timeout), which the app then holds.
	// Embedded: in JSON they sit beside the other options.
	StoreConfig

	// JWT configures token verification: the first access token of a
	// request is verified with it. Required when require_token is set
	// (and by the endpoint handlers, which take the same block).
	JWT *JWTConfig `json:"jwt,omitempty"`

	// RequireToken refuses (401) proxied requests without a valid bearer
	// access token, instead of letting the upstream decide.
	RequireToken bool `json:"require_token,omitempty"`

	// ReadConfig is where and how far the guard looks for credentials
	// (inspect_body, inspect_body_limit, oversized_body, max_credentials,
	// token_cache_size, credentials). Embedded: in JSON they sit beside
	// the other options.
	ReadConfig

	// LogBlocked is the level of the log line written for each blocked
	// request: debug, info (default), warn, error, or off.
	LogBlocked string `json:"log_blocked,omitempty"`

	// AppLogout lists the paths of the app's own logout routes. A
	// proxied request to one of them (compared as apps route paths: see
	// logoutPathKey) that the upstream
	// answers with a 2xx or 3xx revokes every credential it carried,
	// committed to the store before the answer is passed back; when the
	// store cannot take it, the client gets 503 instead. Default: none.
	AppLogout []string `json:"app_logout,omitempty"`

	// CloseStreamsAtExpiry ends an open stream (a WebSocket, an event
	// stream, a long response) when the access token that opened it
	// expires, for apps that check tokens only when a socket opens.
	// Revocations end streams whatever this says. Default false.
	CloseStreamsAtExpiry bool `json:"close_streams_at_expiry,omitempty"`

	// LegacyEndpoints are the endpoint options the guard once served
	// itself (endpoints, paths and the receiver blocks). Accepted in JSON
	// for the configurations written before the endpoints became handlers
	// of their own: when any is set, Provision expands them into the
	// routes the Caddyfile writes (see legacyRoutes). Embedded: in JSON
	// they sit beside the other options.
	LegacyEndpoints

	log            *zap.Logger
	blockLevel     zapcore.Level
	logBlocks      bool
	app            *App
	ownApp         bool // an app of the handler's own (a bare context): Cleanup cleans it up
	store          *sharedStore
	verifier       *revocation.Verifier
	inspector      *revocation.Inspector
	values         *revocation.ValueChecker // values found by value, by hash
	headerValues   *revocation.ValueChecker // header values whose every reading was clean
	revoker        *revocation.Revoker
	cookieName     string
	failOpen       bool
	staleAfter     time.Duration
	extractor      extract.Extractor
	maxCredentials int
	appLogout      map[string]bool
	legacy         caddyhttp.RouteList // the routes of the legacy endpoint options, ahead of the guard
	backchannel    *eventSource
	secEvents      *eventSource
	secAuthToken   string
	clients        map[string]revocationClient
}

// ReadConfig is where, and how far, the guard looks for credentials.
type ReadConfig struct {
	// InspectBody looks for refresh tokens in request bodies of up to
	// 64 KiB, so that a revoked refresh token cannot be used at the
	// upstream's refresh endpoint: members named refreshToken or
	// refresh_token (any case, any depth) of a JSON body, and fields of
	// those names of a form (the OAuth refresh grant). Default true.
	InspectBody *bool `json:"inspect_body,omitempty"`

	// InspectBodyLimit is the largest request body inspected, in bytes.
	// Default 65536.
	InspectBodyLimit int64 `json:"inspect_body_limit,omitempty"`

	// OversizedBody says what happens to a request body that cannot be
	// inspected (larger than inspect_body_limit, or in a content encoding
	// other than gzip or deflate): "pass" (default) sends it on unexamined;
	// "reject" answers 413, so that no refresh token can hide in padding.
	OversizedBody string `json:"oversized_body,omitempty"`

	// MaxCredentials bounds the JWT-shaped candidates decoded for their
	// claims in one proxied request (access tokens first, then those
	// found by name, then values). Any further one is still checked by
	// hash (its exact string, and all its claims when it was decoded
	// before); no request is refused for how many values it carries.
	// Default 64.
	MaxCredentials int `json:"max_credentials,omitempty"`

	// TokenCacheSize bounds how many tokens the handler remembers what it
	// learned about (keys, verification), so that a token seen before
	// costs one hash and a few lookups. Default 100000.
	TokenCacheSize int `json:"token_cache_size,omitempty"`

	// Credentials are more places a credential is read from: the session
	// cookie of a legacy app (JSESSIONID, PHPSESSID, connect.sid, ...) or
	// a custom header (X-Auth-Token, ...). Each value is checked exactly
	// by hash, and as a JWT (jti, session, subject) when it is one, read
	// the way any framework would read it. Default: none (the guard
	// reads Authorization, access_token parameters, the refresh cookie
	// and refresh tokens in bodies).
	Credentials []CredentialSource `json:"credentials,omitempty"`
}

// LegacyEndpoints are the endpoint options of a guard written before each
// endpoint became a handler of its own (endpoint.go).
type LegacyEndpoints struct {
	// Endpoints lists the dialects served: revoke_refresh (seed 000),
	// revoke_sessions (001), invalidate_session (002), logout (003), or
	// the single value "none". Default: all of them (revoke_refresh only
	// when app_id is set). The receivers (backchannel_logout,
	// token_revocation, security_events) are served when their blocks are
	// present; listing one here only allows a path for it.
	Endpoints []string `json:"endpoints,omitempty"`

	// Paths overrides the path of a dialect, by dialect name.
	Paths map[string]string `json:"paths,omitempty"`

	// BackchannelLogout, when present, serves the OpenID Connect
	// Back-Channel Logout receiver (dialect backchannel_logout).
	BackchannelLogout *BackchannelLogoutConfig `json:"backchannel_logout,omitempty"`

	// TokenRevocation, when present, serves the RFC 7009 token revocation
	// endpoint (dialect token_revocation).
	TokenRevocation *TokenRevocationConfig `json:"token_revocation,omitempty"`

	// SecurityEvents, when present, serves the Shared Signals push
	// receiver of RFC 8935 (dialect security_events).
	SecurityEvents *SecurityEventsConfig `json:"security_events,omitempty"`
}

// CredentialSource is one cookie or one header (exactly one of the two)
// that may carry a credential.
type CredentialSource struct {
	// Cookie is a cookie name, matched as frameworks match it (see
	// extract.CookieNameKey).
	Cookie string `json:"cookie,omitempty"`
	// Header is a header name, matched in any case, '-' and '_' alike.
	Header string `json:"header,omitempty"`
}

// JWTConfig configures token verification.
type JWTConfig struct {
	// HMACSecret verifies HS256/384/512 tokens. Prefix "base64:" for a
	// base64-encoded secret. Placeholders such as {env.JWT_SECRET} work.
	HMACSecret string `json:"hmac_secret,omitempty"`
	// PublicKeys are PEM files (RSA, ECDSA or Ed25519 public keys, or
	// certificates), each tried for tokens of its key type.
	PublicKeys []string `json:"public_keys,omitempty"`
	// JWKSURL is a remote key set, cached and fetched again when a token
	// names an unknown kid (at most once per JWKSRefetchInterval) or when
	// the copy is an hour old.
	JWKSURL string `json:"jwks_url,omitempty"`
	// JWKSRefetchInterval bounds how often an unknown kid may trigger a
	// fetch. Default 30s.
	JWKSRefetchInterval caddy.Duration `json:"jwks_refetch_interval,omitempty"`
	// Issuer, when set, must equal the iss claim.
	Issuer string `json:"issuer,omitempty"`
	// Audience, when set, must share a value with the aud claim.
	Audience []string `json:"audience,omitempty"`
	// Algorithms is the allow-list; default: what the keys can verify.
	// "none" is refused.
	Algorithms []string `json:"algorithms,omitempty"`
	// Leeway tolerates clock skew on exp, nbf and iat. Default 0.
	Leeway caddy.Duration `json:"leeway,omitempty"`
	// SessionClaim names the session claim. Default "sid".
	SessionClaim string `json:"session_claim,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.revocation",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Defaults.
const (
	defaultKeyPrefix      = revocation.DefaultKeyPrefix
	defaultSessionTTL     = 720 * time.Hour
	defaultStaleAfter     = 5 * time.Second
	defaultRedisTimeout   = 2 * time.Second
	defaultInspectBody    = extract.DefaultLimit
	defaultMaxCredentials = 64
	defaultOnStoreDown    = "fail_closed"
	defaultOversizedBody  = "pass"
	defaultLogBlocked     = "info"
)

// defaultRedisWaitTimeout is far above a replica's usual lag (well under
// a millisecond on a LAN), so only a replica that is really behind or
// gone turns a revocation into a 5xx.
const defaultRedisWaitTimeout = time.Second

// Provision sets the handler up: defaults, keys, the shared store.
// memoryBudget resolves the memory_budget option: the cgroup's limit by
// default, none when negative.
func memoryBudget(v int64) int64 {
	switch {
	case v < 0:
		return 0
	case v == 0:
		return revocation.CgroupMemoryLimit()
	}
	return v
}

func (h *Handler) Provision(ctx caddy.Context) error {
	own := *h
	repl := caddy.NewReplacer()
	if err := h.provisionCore(ctx, repl); err != nil {
		return err
	}
	limit := h.InspectBodyLimit
	if limit == 0 {
		limit = defaultInspectBody
	}
	h.extractor = extract.Extractor{
		InspectBody:  h.InspectBody == nil || *h.InspectBody,
		Limit:        limit,
		MaxInflation: 4 * limit,
	}
	h.maxCredentials = h.MaxCredentials
	if h.maxCredentials == 0 {
		h.maxCredentials = defaultMaxCredentials
	}
	// What Validate refuses is only read here, never acted on: Caddy
	// validates a module once it is provisioned.
	h.blockLevel, h.logBlocks, _ = logLevel(h.LogBlocked)
	if h.cookieName != "" {
		h.extractor.Cookies = append(h.extractor.Cookies, extract.CookieNameKey(h.cookieName))
	}
	h.provisionCredentials()
	if h.verifier == nil && h.RequireToken {
		return errors.New("require_token needs a verification key: set jwt { hmac_secret | public_key | jwks_url }")
	}
	h.staleAfter = time.Duration(h.StaleAfter)
	h.failOpen = h.OnStoreDown == "fail_open"
	h.app.addGuard(h)
	h.inspector = h.app.inspectorFor(h.store, h.verifier, time.Duration(h.SessionTTL), h.TokenCacheSize)
	h.values = revocation.NewValueChecker(0)
	h.headerValues = revocation.NewValueChecker(4096)
	return h.provisionLegacyRoutes(ctx, &own)
}

// provisionCore sets up what the guard and the endpoint handlers alike
// need: the app, the refresh cookie's name, the verifier, a receiver's
// sources, the store and the revoker.
func (h *Handler) provisionCore(ctx caddy.Context, repl *caddy.Replacer) error {
	// The endpoint handlers log as the guard's module, as they did when
	// the guard served them: a log configuration that includes
	// http.handlers.revocation keeps their audit lines.
	h.log = ctx.Logger(Handler{})
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("revocation metrics: %w", err)
	}
	app, own, err := revocationApp(ctx)
	if err != nil {
		return err
	}
	h.app, h.ownApp = app, own
	if h.AppID != "" {
		h.AppID = repl.ReplaceKnown(h.AppID, "")
		if !validCookieSuffix(h.AppID) {
			return fmt.Errorf("app_id %q: only letters, digits, '-', '_' and '.' may appear in a cookie name", h.AppID)
		}
		h.cookieName = "__Host-refresh_" + h.AppID
	}
	if err := h.provisionVerifier(ctx, repl); err != nil {
		return err
	}
	store, cfg, err := app.storeFor(h.Store, h.StoreConfig)
	if err != nil {
		return fmt.Errorf("revocation store: %w", err)
	}
	h.store = store
	// The handler reads back its store's options, defaults applied (the
	// named store's, when it names one).
	h.StoreConfig = cfg
	h.revoker = app.revokerFor(store, h.verifier, time.Duration(h.SessionTTL))
	return nil
}

// provisionCredentials adds the configured cookies and headers to what
// the extractor reads, and indexes the app's logout paths (checked by
// checkCredentials).
func (h *Handler) provisionCredentials() {
	for _, c := range h.Credentials {
		switch {
		case c.Cookie != "":
			if k := extract.CookieNameKey(c.Cookie); !slices.Contains(h.extractor.Cookies, k) {
				h.extractor.Cookies = append(h.extractor.Cookies, k)
			}
		case c.Header != "":
			if k := extract.HeaderNameKey(c.Header); !slices.Contains(h.extractor.Headers, k) {
				h.extractor.Headers = append(h.extractor.Headers, k)
			}
		}
	}
	for _, p := range h.AppLogout {
		if h.appLogout == nil {
			h.appLogout = map[string]bool{}
		}
		h.appLogout[normalizeLogoutPath(p)] = true
	}
}

// validToken reports whether s is an RFC 9110 token: what a header name,
// and a cookie name, may be made of.
func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

func (h *Handler) provisionVerifier(ctx caddy.Context, repl *caddy.Replacer) error {
	if h.JWT == nil {
		return nil
	}
	key, err := json.Marshal(h.JWT)
	if err != nil {
		return fmt.Errorf("jwt: %w", err)
	}
	h.verifier, err = h.app.verifierFor(string(key), func() (*revocation.Verifier, error) { return h.newVerifier(ctx, repl) })
	return err
}

func (h *Handler) newVerifier(ctx caddy.Context, repl *caddy.Replacer) (*revocation.Verifier, error) {
	j := h.JWT
	cfg := revocation.VerifierConfig{
		Issuer:       j.Issuer,
		Audience:     j.Audience,
		Algorithms:   j.Algorithms,
		Leeway:       time.Duration(j.Leeway),
		SessionClaim: j.SessionClaim,
	}
	if secret := repl.ReplaceKnown(j.HMACSecret, ""); secret != "" {
		if enc, ok := strings.CutPrefix(secret, "base64:"); ok {
			b, err := base64.StdEncoding.DecodeString(enc)
			if err != nil {
				return nil, fmt.Errorf("jwt hmac_secret: base64: %w", err)
			}
			cfg.HMACSecret = b
		} else {
			cfg.HMACSecret = []byte(secret)
		}
		if len(cfg.HMACSecret) < 32 {
			h.log.Warn("jwt hmac_secret is shorter than 32 bytes; HS256 wants at least 256 bits of key")
		}
	}
	for _, file := range j.PublicKeys {
		file = repl.ReplaceKnown(file, "")
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("jwt public_key %s: %w", file, err)
		}
		pub, err := revocation.ParsePublicKeyPEM(data)
		if err != nil {
			return nil, fmt.Errorf("jwt public_key %s: %w", file, err)
		}
		cfg.PublicKeys = append(cfg.PublicKeys, pub)
	}
	if u := repl.ReplaceKnown(j.JWKSURL, ""); u != "" {
		ks, err := h.remoteKeySet(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("jwt: %w", err)
		}
		cfg.JWKS = ks
	}
	v, err := revocation.NewVerifier(cfg)
	if err != nil {
		return nil, fmt.Errorf("jwt: %w", err)
	}
	return v, nil
}

// remoteKeySet fetches the JWKS at u (waiting for the first fetch, up to
// its 5s timeout) and keeps it current until the config is unloaded.
func (h *Handler) remoteKeySet(ctx caddy.Context, u string) (*revocation.RemoteKeySet, error) {
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return nil, fmt.Errorf("jwks_url %q: want an http(s) URL", u)
	}
	var refetch time.Duration
	if h.JWT != nil {
		refetch = time.Duration(h.JWT.JWKSRefetchInterval)
	}
	ks, err := revocation.NewRemoteKeySet(ctx, revocation.RemoteKeySetConfig{
		URL:        u,
		MinRefetch: refetch,
		MaxAge:     time.Hour,
		Log:        ctx.Slogger(),
	})
	if err != nil {
		return nil, err
	}
	// The first fetch waits for Caddy to start the configuration, so that
	// validating it opens no connection; a token that needs a key before
	// then fetches it itself.
	h.app.onStart(func() error { go func() { _ = ks.Start() }(); return nil })
	return ks, nil
}

// Cleanup cleans up the app of the handler's own, when it has one (a
// bare context); the configuration's app releases its stores itself.
func (h *Handler) Cleanup() error {
	if h.ownApp && h.app != nil {
		return h.app.Cleanup()
	}
	return nil
}

// ServeHTTP guards the request: the endpoints are handlers of their own
// (endpoint.go), placed on their paths by routes. Only a guard written
// with the legacy endpoint options has routes of its own, ahead of it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.legacy != nil {
		return h.legacy.Compile(guardNext{h, next}).ServeHTTP(w, r)
	}
	if err := h.store.awaitStart(r.Context()); err != nil {
		return storeNotStarted(err)
	}
	return h.guard(w, r, next)
}

// storeNotStarted is the error of a request whose context ended while it
// waited for the store's first load.
//
//go:noinline
func storeNotStarted(err error) error {
	return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("waiting for the revocation store: %w", err))
}

// guard checks every credential a proxied request carries, as package
// extract finds them: an upstream may read any one of them, so
// every one of them must be clean. A candidate seen before costs a hash
// and a few lookups; one never seen costs one decoding, and the request's
// first access token one verification.
func (h *Handler) guard(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	dl := h.store.Denylist()
	mark := dl.Mark()
	x := h.extractor.Extract(r, h.headerValues, dl)
	if h.passesUnread(&x) {
		return next.ServeHTTP(w, r)
	}
	now := time.Now()
	var d decision
	h.decide(r.Context(), &d, &x, dl, now, nil)
	if d.verdict != refuseBody && len(d.named) > 0 {
		metrics.checked.Inc()
	}
	if d.verdict != pass && d.verdict != refuseUnverified {
		return h.answerRefusal(w, r, &d)
	}
	if len(x.Creds) == 0 {
		return next.ServeHTTP(w, r)
	}
	if d.skipped > 0 || x.ValuesCapped || len(x.Groups) > 0 {
		h.noteValues(&x, d.skipped, mark)
	}
	if d.verdict == refuseUnverified {
		return h.refuse(w, r, d.hasAccess, "the access token is invalid or expired")
	}
	if len(h.appLogout) > 0 && h.appLogout[logoutPathKey(r.URL)] {
		return h.serveAppLogout(w, r, next, d.named)
	}
	return h.proxy(w, r, next, &x, now)
}

// answerRefusal answers a request decide refused or blocked, apart from
// refuseUnverified (the guard's own, once the request's values are
// noted). It is out of guard's line, as noteValues is: a proxied request
// that passes runs none of it, and the guard's cost is mostly the cache
// lines its code takes (docs/performance.md).
//
//go:noinline
func (h *Handler) answerRefusal(w http.ResponseWriter, r *http.Request, d *decision) error {
	switch d.verdict {
	case refuseBody:
		metrics.refused.WithLabelValues("body_uninspectable").Inc()
		return deny(w, r, http.StatusRequestEntityTooLarge, "body_uninspectable", "", map[string]string{
			"error":             "invalid_request",
			"error_description": "the request body is too large or encoded in a way that cannot be checked for revoked credentials",
		})
	case refuseNoToken:
		return h.refuse(w, r, false, "a valid access token is required")
	case refuseStale:
		metrics.refused.WithLabelValues("store_stale").Inc()
		w.Header().Set("Retry-After", "5")
		return deny(w, r, http.StatusServiceUnavailable, "store_stale", "", map[string]string{
			"error":             "temporarily_unavailable",
			"error_description": "revocation state cannot be confirmed; try again shortly",
		})
	}
	return h.block(w, r, d.cred, d.reason, d.info)
}

// noteValues counts a passed request's candidates that were checked by
// hash only or not at all, or else remembers its header values as clean
// in the denylist's state at mark: every reading of them is (a JWT past
// the decoding budget would not have been read in full, hence the
// condition).
//
//go:noinline
func (h *Handler) noteValues(x *extract.Extraction, skipped int, mark revocation.Mark) {
	if x.ValuesCapped {
		metrics.valuesCapped.Inc()
	}
	if skipped > 0 || x.ValuesCapped {
		metrics.hashOnly.Add(float64(skipped))
		return
	}
	for _, g := range x.Groups {
		h.headerValues.Remember(mark, g)
	}
}

// budget bounds the costly work of one request. Hashing a candidate is
// cheap and has no bound: it is linear in the request's size, which the
// server's header limit and inspect_body_limit bound. A signature check
// is spent on the first JWT presented as an access token only, and
// decoding a JWT not met before is spent on the first max_credentials
// JWT-shaped candidates (access tokens first, then credentials found by
// name, then values, in the order of the request); any further one is
// checked by hash: its exact string, and every claim when the guard has
// decoded it before. So the request's own credentials are always read
// in full, and values planted beside them cost a hash each, never a
// refusal.
type budget struct {
	verify, decode int
	// skipped counts JWT-shaped candidates checked by hash only.
	skipped int
}

func (h *Handler) newBudget() budget { return budget{verify: 1, decode: h.maxCredentials} }

// inspect says whether one candidate is revoked, and what the guard
// knows of it: the one answer to "is this revoked?", for the guard and
// for the dry run (explain.go). A value found by value that is not a JWT
// is checked by its hash alone, not remembered, and its info is nil
// unless it is revoked. verified says whether info is a verified token's
// (info.Verified), which the guard's path learns without reading info.
func (h *Handler) inspect(ctx context.Context, dl *revocation.Denylist, c *extract.Credential, unix int64, b *budget) (info *revocation.TokenInfo, reason revocation.Reason, verified bool) {
	isJWT := revocation.LooksLikeJWT(c.Raw) && (c.Kind != extract.Value || jwtShaped(c.Raw))
	if !isJWT {
		if c.Kind == extract.Value {
			reason, hash := h.values.Check(dl, c.Raw, unix)
			if reason == revocation.NotBlocked {
				return nil, reason, false
			}
			return &revocation.TokenInfo{ID: revocation.Identity{Token: hash.Key()}, Hash: hash}, reason, false
		}
		return h.inspector.Check(ctx, dl, c.Raw, unix, false)
	}
	verify := c.Kind == extract.Access && b.verify > 0
	if verify {
		b.verify--
	} else if info := h.inspector.Cached(c.Raw, unix); info != nil {
		return info, dl.CheckInfo(info, unix), info.Verified
	}
	if b.decode <= 0 && !verify {
		b.skipped++
		info, reason := checkJWSHash(dl, c.Raw, unix)
		return info, reason, false
	}
	b.decode--
	return h.inspector.Check(ctx, dl, c.Raw, unix, verify)
}

// checkJWSHash checks a JWT past the decoding budget by its hashes: the
// exact string's, and the canonical one an operator's revocation of the
// token writes (HashToken, which stops every encoding of it). Its claims
// are not read and it is not remembered, so that a request of many JWTs
// cannot crowd the tokens of other clients out of the inspector's cache.
func checkJWSHash(dl *revocation.Denylist, raw string, unix int64) (*revocation.TokenInfo, revocation.Reason) {
	c := revocation.NewCredential(raw)
	reason := dl.CheckInfo(c, unix)
	if reason == revocation.NotBlocked {
		return nil, reason
	}
	return c, reason
}

// jwtShaped reports whether a value found by value may be a JWS: three
// dot-separated parts of base64 characters, the first at least four
// long. A host name or a version string with two dots is not decoded.
func jwtShaped(v string) bool {
	part := 0
	n := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '.':
			if part == 0 && n < 4 {
				return false
			}
			part++
			n = 0
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '+' || c == '/' || c == '=':
			n++
		default:
			return false
		}
	}
	return part == 2
}

// block answers 401 for a revoked credential (RFC 6750 section 3.1).
func (h *Handler) block(w http.ResponseWriter, r *http.Request, c *extract.Credential, reason revocation.Reason, info *revocation.TokenInfo) error {
	what, label := "access_token", blockedLabel(c.Kind, reason)
	if c.Kind != extract.Access {
		what = "refresh_token"
	}
	if m, ok := metrics.blockedByWhat[label]; ok {
		m.Inc()
	}
	if h.logBlocks {
		if ce := h.log.Check(h.blockLevel, "request blocked: revoked credential"); ce != nil {
			ce.Write(
				zap.String("credential", what),
				zap.String("source", c.Source),
				zap.String("reason", label),
				zap.String("token_hash", info.Hash.Short()),
				zap.String("remote_ip", clientIP(r)),
				zap.String("method", r.Method),
				zap.String("path", loggedPath(r.URL.Path)),
				zap.String("request_id", requestID(r)),
			)
		}
	}
	desc := "The access token has been revoked"
	if what == "refresh_token" {
		desc = "The refresh token has been revoked"
	}
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+desc+`"`)
	return deny(w, r, http.StatusUnauthorized, reason.String(), c.Source, map[string]string{"error": "invalid_token", "error_description": desc})
}

// blockedLabel is the reason label of requests_blocked_total and of the
// block's log line: what was revoked, except that a credential other than
// an access token revoked by its own hash counts as "refresh_token", the
// value the docs and the dashboard have always shown for it. The reason
// itself (deny's placeholder) stays what was revoked.
func blockedLabel(kind extract.Kind, reason revocation.Reason) string {
	if kind != extract.Access && reason == revocation.BlockedToken {
		return "refresh_token"
	}
	return reason.String()
}

// refuse answers 401 when require_token is on and no valid token came.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, tokenGiven bool, desc string) error {
	metrics.refused.WithLabelValues("token_required").Inc()
	if !tokenGiven {
		// RFC 6750 section 3.1: no error code when no credentials came.
		w.Header().Set("WWW-Authenticate", `Bearer`)
		return deny(w, r, http.StatusUnauthorized, "token_required", "", map[string]string{"error": "unauthorized", "error_description": desc})
	}
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+desc+`"`)
	return deny(w, r, http.StatusUnauthorized, "token_required", "", map[string]string{"error": "invalid_token", "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("encode response: %w", err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return nil
}

// clientIP is the client address as Caddy resolved it (trusted proxies
// applied), else the peer address.
func clientIP(r *http.Request) string {
	if v, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && v != "" {
		return v
	}
	return r.RemoteAddr
}

// requestID is Caddy's per-request UUID placeholder.
func requestID(r *http.Request) string {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return ""
	}
	v, _ := repl.GetString("http.request.uuid")
	return v
}

func validCookieSuffix(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return s != ""
}

var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

// parseWaitReplicas reads redis_wait_replicas as RedisOptions.WaitReplicas
// takes it: 0 for auto, -1 for off, else the count.
func parseWaitReplicas(v string) (int, error) {
	switch v {
	case "", "auto":
		return 0, nil
	case "off":
		return -1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 16 {
		return 0, fmt.Errorf("redis_wait_replicas: %q: want auto, off or a number of replicas from 1 to 16", v)
	}
	return n, nil
}
