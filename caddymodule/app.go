package caddymodule

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the revocation app (apps.revocation): what the revocation
// handlers of a configuration share. It holds the stores they use (those
// it names, and those the handlers' own store options describe), starts
// them when Caddy starts the configuration, releases them when the
// configuration is unloaded, and is what the admin API reaches
// (ctx.AppIfConfigured). The stores themselves live in a process-wide
// pool (stores.go), so that a reload which keeps a store's settings
// keeps its local copy, its connection and the streams it tracks.
//
// Configure it with the global Caddyfile option
//
//	{
//	    revocation {
//	        <store options>          # the default store
//	        store <name> {
//	            <store options>
//	        }
//	    }
//	}
//
// where the store options are those of the site-level revocation block
// (redis, key_prefix, hash_key, session_ttl, on_store_down, stale_after,
// feed_max_len, feed_retention, snapshot_every, memory_budget,
// redis_timeout, redis_wait_replicas, redis_wait_timeout). Without it,
// each site-level revocation block fills the app with the store its
// options describe, as before the app had a configuration.
type App struct {
	// Stores are store configurations by name. A handler uses the store
	// it names (store <name>); one without a name and without store
	// options of its own uses the store named "default" when there is
	// one. Several names may share one Redis under different key
	// prefixes.
	Stores map[string]*StoreConfig `json:"stores,omitempty"`

	log *zap.Logger
	// mu guards what follows; a pointer, since Caddy copies the module
	// value (CaddyModule) before Provision.
	mu *sync.Mutex
	// held are the stores this configuration uses, by pool key: each
	// acquired once, released in Cleanup.
	held map[string]*sharedStore
	// named are Stores, opened.
	named map[string]*sharedStore
	// guards are the configuration's guards, for the dry run (explain).
	guards []*Handler
	// verifiers are the jwt blocks' verifiers, by the block's JSON: the
	// guard and the endpoint handlers a site-level block expands into
	// share one, and so one JWKS fetcher.
	verifiers map[string]*revocation.Verifier
	// inspectors and revokers are shared the same way: one per store,
	// verifier and the options they take, so that handlers on one store
	// share what is learned about tokens.
	inspectors map[inspectorKey]*revocation.Inspector
	revokers   map[revokerKey]*revocation.Revoker
	starts     []func() error
}

// inspectorKey and revokerKey say what makes two handlers' inspectors or
// revokers the same.
type (
	inspectorKey struct {
		store      *sharedStore
		verifier   *revocation.Verifier
		sessionTTL time.Duration
		cacheSize  int
	}
	revokerKey struct {
		store      *sharedStore
		verifier   *revocation.Verifier
		sessionTTL time.Duration
	}
)

// defaultStoreName is the store a handler uses when it names none and
// has no store options of its own.
const defaultStoreName = "default"

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "revocation",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision opens the named stores (no connection is made before Start).
func (a *App) Provision(ctx caddy.Context) error {
	a.log = ctx.Logger()
	a.mu = new(sync.Mutex)
	a.held = map[string]*sharedStore{}
	a.named = map[string]*sharedStore{}
	for _, name := range sortedKeys(a.Stores) {
		cfg := a.Stores[name]
		if cfg == nil {
			return fmt.Errorf("store %q: no configuration", name)
		}
		cfg.applyDefaults()
		s, err := a.open(*cfg)
		if err != nil {
			return fmt.Errorf("store %q: %w", name, err)
		}
		a.named[name] = s
	}
	return nil
}

// Validate implements caddy.Validator.
func (a *App) Validate() error {
	var errs []error
	for _, name := range sortedKeys(a.Stores) {
		if cfg := a.Stores[name]; cfg != nil {
			if err := cfg.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("store %q: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Start implements caddy.App. Each start returns at once: a store loads
// in the background, and a handler's first request waits for it (see
// awaitStart), so that Caddy's start is not held up by an unreachable
// Redis. Caddy provisions a configuration both to run it and to
// validate it, but starts apps only to run it: so `caddy validate` opens
// no connection.
func (a *App) Start() error {
	a.mu.Lock()
	starts := slices.Clone(a.starts)
	a.mu.Unlock()
	for _, start := range starts {
		if err := start(); err != nil {
			return err
		}
	}
	return nil
}

// Stop implements caddy.App. The stores outlive a configuration that
// stops (see stores): Cleanup lets go of them, also for a configuration
// that failed before it started.
func (a *App) Stop() error { return nil }

// Cleanup releases the stores of the configuration; the last
// configuration to let go of one closes it.
func (a *App) Cleanup() error {
	if a.mu == nil {
		return nil // never provisioned
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for key := range a.held {
		errs = append(errs, releaseStore(key))
	}
	a.held, a.named, a.guards, a.verifiers = nil, nil, nil, nil
	a.inspectors, a.revokers = nil, nil
	return errors.Join(errs...)
}

// open returns the store cfg describes, acquired once for this
// configuration, and registers its start.
func (a *App) open(cfg StoreConfig) (*sharedStore, error) {
	settings, hasher, err := cfg.settings(caddy.NewReplacer())
	if err != nil {
		return nil, err
	}
	key := settings.poolKey()
	a.mu.Lock()
	s, ok := a.held[key]
	a.mu.Unlock()
	if !ok {
		if s, err = acquireStore(settings, hasher, a.log); err != nil {
			return nil, err
		}
		a.mu.Lock()
		a.held[key] = s
		// A store opens no connection before Caddy starts the
		// configuration.
		a.starts = append(a.starts, s.startChecked)
		a.mu.Unlock()
	}
	s.adopt(time.Duration(cfg.SessionTTL), time.Duration(cfg.StaleAfter), cfg.OnStoreDown == "fail_open")
	return s, nil
}

// storeFor returns the store a handler uses and the configuration it
// was opened with: the one the handler names; else the handler's own
// store options when it has any; else the app's default store, when
// configured; else the store of every default (the embedded one).
func (a *App) storeFor(name string, own StoreConfig) (*sharedStore, StoreConfig, error) {
	switch {
	case name != "" && !own.isZero():
		return nil, StoreConfig{}, fmt.Errorf("store %q: a handler that names a store takes no store options of its own; set them on the store", name)
	case name != "":
		s, ok := a.named[name]
		if !ok {
			return nil, StoreConfig{}, fmt.Errorf("store %q: no such store in the revocation app (known: %v)", name, sortedKeys(a.Stores))
		}
		return s, *a.Stores[name], nil
	case own.isZero():
		if s, ok := a.named[defaultStoreName]; ok {
			return s, *a.Stores[defaultStoreName], nil
		}
	}
	own.applyDefaults()
	s, err := a.open(own)
	return s, own, err
}

// onStart registers f to run when Caddy starts the configuration.
func (a *App) onStart(f func() error) {
	a.mu.Lock()
	a.starts = append(a.starts, f)
	a.mu.Unlock()
}

// verifierFor returns the verifier the app holds under key, else the
// one build makes, which it then holds.
func (a *App) verifierFor(key string, build func() (*revocation.Verifier, error)) (*revocation.Verifier, error) {
	return heldFor(a.mu, &a.verifiers, key, build)
}

// inspectorFor returns the inspector the app holds for a store, a
// verifier and the inspector's options, else a new one, which it then
// holds.
func (a *App) inspectorFor(store *sharedStore, v *revocation.Verifier, sessionTTL time.Duration, cacheSize int) *revocation.Inspector {
	in, _ := heldFor(a.mu, &a.inspectors, inspectorKey{store, v, sessionTTL, cacheSize}, func() (*revocation.Inspector, error) {
		return revocation.NewInspector(revocation.InspectorConfig{
			Verifier: v, Store: store, SessionTTL: sessionTTL, CacheSize: cacheSize, Hasher: store.hasher,
		}), nil
	})
	return in
}

// revokerFor returns the revoker the app holds for a store, a verifier
// and a session TTL, else a new one, which it then holds.
func (a *App) revokerFor(store *sharedStore, v *revocation.Verifier, sessionTTL time.Duration) *revocation.Revoker {
	rv, _ := heldFor(a.mu, &a.revokers, revokerKey{store, v, sessionTTL}, func() (*revocation.Revoker, error) {
		return &revocation.Revoker{Store: store, Verifier: v, SessionTTL: sessionTTL, Hasher: store.hasher}, nil
	})
	return rv
}

// heldFor returns (*m)[key], else what build makes, which it keeps in *m:
// one value per key for the configuration's handlers to share.
func heldFor[K comparable, V any](mu *sync.Mutex, m *map[K]V, key K, build func() (V, error)) (V, error) {
	mu.Lock()
	v, ok := (*m)[key]
	mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := build()
	if err != nil {
		return v, err
	}
	mu.Lock()
	defer mu.Unlock()
	if held, ok := (*m)[key]; ok {
		return held, nil // built meanwhile by another handler
	}
	if *m == nil {
		*m = map[K]V{}
	}
	(*m)[key] = v
	return v, nil
}

// addGuard records a provisioned guard, for the dry run.
func (a *App) addGuard(h *Handler) {
	a.mu.Lock()
	a.guards = append(a.guards, h)
	a.mu.Unlock()
}

// eachStore calls f for every store the configuration uses.
func (a *App) eachStore(f func(*sharedStore)) {
	a.mu.Lock()
	held := make([]*sharedStore, 0, len(a.held))
	for _, key := range sortedKeys(a.held) {
		held = append(held, a.held[key])
	}
	a.mu.Unlock()
	for _, s := range held {
		f(s)
	}
}

// eachGuard calls f for every guard of the configuration.
func (a *App) eachGuard(f func(*Handler)) {
	a.mu.Lock()
	guards := slices.Clone(a.guards)
	a.mu.Unlock()
	for _, h := range guards {
		f(h)
	}
}

// revocationApp returns the revocation app of ctx's configuration. A
// bare context (caddy.NewContext, as in benchmarks) belongs to no
// configuration: it gets an app of its own, which the caller cleans up,
// and whose stores start with their first request.
func revocationApp(ctx caddy.Context) (app *App, own bool, err error) {
	defer func() {
		// Context.App dereferences the configuration, which a bare
		// context lacks.
		if recover() != nil {
			app, own = &App{}, true
			err = app.Provision(ctx)
		}
	}()
	v, err := ctx.App("revocation")
	if err != nil {
		return nil, false, fmt.Errorf("revocation app: %w", err)
	}
	return v.(*App), false, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)

// StoreConfig is one store: where the shared denylist lives and how a
// replica keeps its local copy of it. Its options are those of the
// site-level revocation block, under the same names.
type StoreConfig struct {
	// Redis is where the shared denylist lives. Absent (or an empty url):
	// the embedded store, which keeps revocations in this process only.
	Redis *revocation.RedisConfig `json:"redis,omitempty"`

	// KeyPrefix starts every Redis key. Default "revocation:". It also
	// separates embedded stores: handlers with the same prefix share one.
	KeyPrefix string `json:"key_prefix,omitempty"`

	// HashKey keys the hashes under which jtis, sessions and subjects are
	// stored (HMAC-SHA256), so that reading Redis does not tell whether a
	// known user was revoked. Placeholders such as {env.REVOCATION_HASH_KEY}
	// are replaced; at least 16 bytes. Every replica on one Redis must
	// share it: one with another key, or none where the others have one,
	// refuses to start. Default: none (identities hashed unkeyed, as
	// before). Token hashes are never keyed.
	HashKey string `json:"hash_key,omitempty"`

	// SessionTTL is how long a session or subject revocation is kept
	// (and a noted session remembered). Default 720h: set it to the
	// longest life of a refresh token.
	SessionTTL caddy.Duration `json:"session_ttl,omitempty"`

	// OnStoreDown says what a token-bearing proxied request gets once the
	// local denylist has not been confirmed current for StaleAfter:
	// "fail_closed" (default: 503, nothing unverified gets through) or
	// "fail_open" (keep enforcing what is known and let the rest pass).
	OnStoreDown string `json:"on_store_down,omitempty"`

	// StaleAfter is how long the local denylist may go without
	// confirmation from Redis before OnStoreDown applies. Default 5s: a
	// partitioned replica stops trusting its copy within seconds, while
	// the feed confirms it every second and an ordinary hiccup (a
	// reconnect, a slow fork) stays well under it.
	StaleAfter caddy.Duration `json:"stale_after,omitempty"`

	// FeedMaxLen bounds the Redis change feed. Default
	// revocation.DefaultFeedMaxLen; at least 100.
	FeedMaxLen int64 `json:"feed_max_len,omitempty"`

	// FeedRetention is how long the Redis change feed keeps a revocation:
	// a replica loading for longer reloads. Default 5m; at least 1m, and
	// longer than SnapshotEvery.
	FeedRetention caddy.Duration `json:"feed_retention,omitempty"`

	// SnapshotEvery is how often a replica writes a snapshot of the
	// denylist into Redis, from which the others load. Default 1m;
	// negative: never ("off").
	SnapshotEvery caddy.Duration `json:"snapshot_every,omitempty"`

	// MemoryBudget is the most memory, in bytes, the process may use for
	// the Redis store's local copy and the Go runtime: past it, the
	// replica holds no more revocations, refuses readiness and treats
	// its copy as unconfirmed (on_store_down decides) until the ones it
	// could not hold expire. Default: the memory limit of the cgroup the
	// process runs in, when there is one; negative: none ("off").
	MemoryBudget int64 `json:"memory_budget,omitempty"`

	// CompactDenylist holds the Redis store's local copy of token, jti
	// and session revocations as 4-byte fingerprints instead of whole
	// keys (about 4.3 bytes per entry instead of 24 to 30), and confirms
	// a fingerprint that matches in Redis before it blocks: a clean
	// credential is still answered locally. A match Redis does not
	// answer for is blocked. It needs redis.
	CompactDenylist bool `json:"compact_denylist,omitempty"`

	// RedisTimeout bounds each Redis operation of a revocation, so that an
	// unreachable Redis gets a prompt 500 rather than a hung client.
	// Default 2s.
	RedisTimeout caddy.Duration `json:"redis_timeout,omitempty"`

	// RedisWaitReplicas is how many Redis replicas must hold a revocation
	// before it is acknowledged, so that a failover cannot lose it: "auto"
	// (default: one whenever the master reports a connected replica,
	// none when it has none), "off", or a number. A revocation the
	// replicas do not confirm within RedisWaitTimeout fails with a 5xx
	// (it may still be applied; sending it again is harmless).
	RedisWaitReplicas string `json:"redis_wait_replicas,omitempty"`

	// RedisWaitTimeout bounds that wait: shorter than RedisTimeout.
	// Default 1s, or half of RedisTimeout when that is shorter.
	RedisWaitTimeout caddy.Duration `json:"redis_wait_timeout,omitempty"`
}

// isZero reports whether no store option is set.
func (c StoreConfig) isZero() bool { return c == StoreConfig{} }

// applyDefaults fills in the defaults a handler reads back.
func (c *StoreConfig) applyDefaults() {
	if c.KeyPrefix == "" {
		c.KeyPrefix = defaultKeyPrefix
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = caddy.Duration(defaultSessionTTL)
	}
	if c.StaleAfter == 0 {
		c.StaleAfter = caddy.Duration(defaultStaleAfter)
	}
	if c.RedisTimeout == 0 {
		c.RedisTimeout = caddy.Duration(defaultRedisTimeout)
	}
	if c.OnStoreDown == "" {
		c.OnStoreDown = defaultOnStoreDown
	}
}

// Validate checks the store options' meaning.
func (c StoreConfig) Validate() error {
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	check(checkChoice("on_store_down", c.OnStoreDown, defaultOnStoreDown, "fail_open"))
	if c.FeedMaxLen != 0 {
		check(checkFeedMaxLen(c.FeedMaxLen))
	}
	if c.MemoryBudget > 0 {
		check(checkMemoryBudget(c.MemoryBudget))
	}
	for _, d := range []struct {
		name string
		v    caddy.Duration
	}{
		{"session_ttl", c.SessionTTL}, {"stale_after", c.StaleAfter}, {"redis_timeout", c.RedisTimeout},
		{"redis_wait_timeout", c.RedisWaitTimeout}, {"feed_retention", c.FeedRetention},
	} {
		if d.v < 0 {
			check(fmt.Errorf("%s: %v must not be negative", d.name, time.Duration(d.v)))
		}
	}
	if _, err := parseWaitReplicas(c.RedisWaitReplicas); err != nil {
		check(err)
	}
	check(storeSettings{Retention: time.Duration(c.FeedRetention), SnapEvery: time.Duration(c.SnapshotEvery)}.validate())
	check(c.checkWaitTimeout())
	if c.CompactDenylist && (c.Redis == nil || c.Redis.IsZero()) {
		// Its matches are confirmed in Redis: the embedded store has none.
		check(errors.New("compact_denylist: it needs redis"))
	}
	return errors.Join(errs...)
}

// checkWaitTimeout checks redis_wait_timeout against redis_timeout, as
// their defaults resolve.
func (c StoreConfig) checkWaitTimeout() error {
	timeout := time.Duration(c.RedisTimeout)
	if timeout == 0 {
		timeout = defaultRedisTimeout
	}
	wait := waitTimeout(time.Duration(c.RedisWaitTimeout), timeout)
	if wait < 0 || wait >= timeout {
		return fmt.Errorf("redis_wait_timeout %v: want more than zero and less than redis_timeout %v", wait, timeout)
	}
	return nil
}

// settings resolves the store's placeholders and defaults into what
// identifies a pooled store, with its hasher.
func (c StoreConfig) settings(repl *caddy.Replacer) (storeSettings, *revocation.Hasher, error) {
	wait, err := parseWaitReplicas(c.RedisWaitReplicas)
	if err != nil {
		return storeSettings{}, nil, err
	}
	settings := storeSettings{
		WaitReplicas: wait,
		WaitTimeout:  waitTimeout(time.Duration(c.RedisWaitTimeout), time.Duration(c.RedisTimeout)),
		KeyPrefix:    c.KeyPrefix,
		FeedMaxLen:   c.FeedMaxLen,
		DialTimeout:  time.Duration(c.RedisTimeout),
		IOTimeout:    time.Duration(c.RedisTimeout),
		Retention:    time.Duration(c.FeedRetention),
		SnapEvery:    time.Duration(c.SnapshotEvery),
		MemoryBudget: memoryBudget(c.MemoryBudget),
		Compact:      c.CompactDenylist,
	}
	if c.Redis != nil {
		settings.Redis = *c.Redis
		settings.Redis.URL = repl.ReplaceKnown(settings.Redis.URL, "")
		settings.Redis.Password = repl.ReplaceKnown(settings.Redis.Password, "")
		settings.Redis.Username = repl.ReplaceKnown(settings.Redis.Username, "")
		settings.Redis.SentinelPassword = repl.ReplaceKnown(settings.Redis.SentinelPassword, "")
		if !settings.Redis.IsZero() {
			// Check now so that a bad URL fails `caddy validate` with a
			// message naming the option, before anything is opened.
			if _, err := settings.Redis.Options(time.Second, time.Second); err != nil {
				return storeSettings{}, nil, err
			}
		}
	}
	var hasher *revocation.Hasher
	if c.HashKey != "" {
		secret := repl.ReplaceKnown(c.HashKey, "")
		if secret == "" {
			return storeSettings{}, nil, fmt.Errorf("hash_key %q is empty once its placeholders are replaced: is the variable set?", c.HashKey)
		}
		if hasher, err = revocation.NewHasher([]byte(secret)); err != nil {
			return storeSettings{}, nil, err
		}
		settings.HashKey = hasher.Fingerprint()
	}
	return settings, hasher, nil
}
