package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/caddy-revocation/caddy-revocation/revocation"
)

// stores holds one store per distinct store configuration in this
// process, shared by every handler that names it and kept across config
// reloads: a reload neither empties the embedded denylist nor reconnects
// to Redis. The last handler to let go closes it.
var stores = caddy.NewUsagePool()

// sharedStore is a pooled store with what the admin API needs to act on
// it without a handler at hand.
type sharedStore struct {
	revocation.Store
	key    string
	prefix string
	desc   string
	// redis identifies the Redis the store uses (RedisConfig.Identity),
	// to find the store a reload replaces.
	redis string
	// remote is the store itself when it is a Redis store (nil for the
	// embedded one): what only a Redis store does (start, check the hash
	// key, confirm often enough, carry a copy over) is reached through
	// it, not by asserting Store's type.
	remote *revocation.RedisStore
	// sessionTTL is the longest session_ttl of the handlers using the
	// store, in nanoseconds: what an operator's revocation keeps.
	sessionTTL atomic.Int64
	// staleAfter is the shortest stale_after of the handlers using the
	// store, in nanoseconds: the readiness bound.
	staleAfter atomic.Int64
	// failClosed is set when any handler using the store refuses
	// requests once it is stale (on_store_down fail_closed): only then
	// does staleness make the instance unready.
	failClosed atomic.Bool
	// started is closed once the store has tried its first load: at
	// once for the embedded store; for Redis, after start.
	started   <-chan struct{}
	startOnce sync.Once
	// hasher derives the keys of identities (nil: unkeyed): one per
	// store, since the store's record of the key is what it is checked
	// against.
	hasher *revocation.Hasher
	// tracker holds the open streams of every handler using the store
	// (streams.go): it lives as long as the store, so a reload that
	// keeps the store keeps the streams tracked.
	tracker *revocation.Tracker
	// streams keeps the openStreams of requests that returned young for
	// the next requests (*openStream); members holds a weak pointer to
	// every openStream it made, for the store's sweep of the requests not
	// yet old enough to be tracked (streams.go: sweepYoung), and sweeping
	// is set while the sweep runs. epoch is what a young request's birth
	// counts from.
	streams   sync.Pool
	membersMu sync.Mutex
	members   []weak.Pointer[openStream]
	sweeping  atomic.Bool
	epoch     time.Time
}

// track makes every entry applied to the store's denylist, from a local
// commit, the change feed, a load or a snapshot, reach the open streams.
func (s *sharedStore) track() {
	s.tracker = revocation.NewTracker()
	dl := s.Denylist()
	dl.SetApplied(func(entries []revocation.Entry) {
		s.tracker.Applied(dl, entries, time.Now().Unix())
	})
}

// unkeyedRollout is how long after a hash key's first use replicas of an
// older build, which write unkeyed entries, may still run: unkeyed
// entries are checked for session_ttl past it.
const unkeyedRollout = 24 * time.Hour

// startChecked is start, at Caddy's start of a configuration, after a
// check of the hash key against the one the Redis store's identities are
// keyed with: a replica with another key (or none among keyed ones)
// fails to start with the reason, rather than let their revocations
// through. When Redis does not answer in time the store starts anyway,
// and checks before its first load.
func (s *sharedStore) startChecked() error {
	if s.remote != nil {
		ctx, cancel := context.WithTimeout(context.Background(), hashKeyCheckTimeout)
		err := s.remote.CheckHashKey(ctx)
		cancel()
		if errors.Is(err, revocation.ErrHashKeyMismatch) {
			return fmt.Errorf("revocation store: %w", err)
		}
	}
	s.start()
	return nil
}

// hashKeyCheckTimeout bounds the hash key check at start: a busy or
// paused Redis must not hold Caddy's start (and with it the listener)
// for long; the store checks again before its first load anyway.
const hashKeyCheckTimeout = time.Second

// start begins the store's work in the background: for Redis, the first
// load and then following the feed. It is called when Caddy starts a
// configuration (never when it only validates one) and, as a fallback,
// by the first request. Only the first call does anything.
func (s *sharedStore) start() {
	if s.remote != nil {
		s.startOnce.Do(func() { go s.remote.Start() })
	}
}

// awaitStart waits, on a store's first request, until its first load has
// been tried (at most the store's InitialLoad), so that an instance
// never answers from an empty denylist that Redis could have filled.
func (s *sharedStore) awaitStart(ctx context.Context) error {
	select {
	case <-s.started:
		return nil
	default:
	}
	s.start()
	select {
	case <-s.started:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// adopt records a handler's settings that the admin API needs, and makes
// a Redis store confirm its local copy often enough for the handler's
// stale_after: at least four times within it, so that a healthy store is
// never taken for a stale one.
func (s *sharedStore) adopt(sessionTTL, staleAfter time.Duration, failOpen bool) {
	if !failOpen {
		s.failClosed.Store(true)
	}
	if s.remote != nil && staleAfter > 0 {
		s.remote.LimitBlock(staleAfter / 4)
	}
	for {
		cur := s.sessionTTL.Load()
		if int64(sessionTTL) <= cur || s.sessionTTL.CompareAndSwap(cur, int64(sessionTTL)) {
			break
		}
	}
	// Unkeyed entries live at most the longest session_ttl, written up
	// to a day after the key's first use (a rolling upgrade's older
	// replicas write them until they are replaced).
	s.hasher.SetUnkeyedWindow(time.Duration(s.sessionTTL.Load()) + unkeyedRollout)
	for {
		cur := s.staleAfter.Load()
		if (cur != 0 && int64(staleAfter) >= cur) || s.staleAfter.CompareAndSwap(cur, int64(staleAfter)) {
			break
		}
	}
}

// Destruct implements caddy.Destructor.
func (s *sharedStore) Destruct() error { return s.Close() }

// revoker returns a Revoker for operator actions on this store.
func (s *sharedStore) revoker() *revocation.Revoker {
	return &revocation.Revoker{Store: s, SessionTTL: time.Duration(s.sessionTTL.Load()), Hasher: s.hasher}
}

// storeSettings is everything that makes two stores different.
type storeSettings struct {
	Redis     revocation.RedisConfig `json:"redis"`
	KeyPrefix string                 `json:"key_prefix"`
	// HashKey is the hash key's fingerprint (never the key): replicas
	// with different keys never share a store.
	HashKey     string        `json:"hash_key"`
	FeedMaxLen  int64         `json:"feed_max_len"`
	DialTimeout time.Duration `json:"dial_timeout"`
	IOTimeout   time.Duration `json:"io_timeout"`
	Retention   time.Duration `json:"feed_retention"`
	SnapEvery   time.Duration `json:"snapshot_every"`
	// MemoryBudget is RedisOptions' (0: none).
	MemoryBudget int64 `json:"memory_budget"`
	// Compact is RedisOptions'.
	Compact bool `json:"compact,omitempty"`
	// WaitReplicas and WaitTimeout are RedisOptions' (0: auto).
	WaitReplicas int           `json:"wait_replicas"`
	WaitTimeout  time.Duration `json:"wait_timeout"`
}

// validate checks the feed and snapshot settings: a snapshot is usable
// only while the feed still holds its position, so the feed must keep
// revocations longer than the time between two snapshots.
func (s storeSettings) validate() error {
	ret, snap := s.Retention, s.SnapEvery
	if ret == 0 {
		ret = revocation.DefaultFeedRetention
	}
	if snap == 0 {
		snap = revocation.DefaultSnapshotEvery
	}
	if err := checkFeedRetention(ret); err != nil {
		return fmt.Errorf("feed_retention %v: %w, for a replica to load and resume from the feed", ret, err)
	}
	if err := checkSnapshotEvery(snap); snap > 0 && err != nil {
		return fmt.Errorf("snapshot_every %v: %w", snap, err)
	}
	if snap > 0 && ret <= snap {
		return fmt.Errorf("feed_retention %v must be longer than snapshot_every %v: a snapshot is only usable while the feed holds its position", ret, snap)
	}
	return nil
}

func (s storeSettings) poolKey() string {
	b, _ := json.Marshal(s) // plain data; cannot fail
	return "revocation-store:" + string(b)
}

// acquireStore returns the shared store for settings, opening it on first
// use. Every successful call must be matched by releaseStore(key).
func acquireStore(settings storeSettings, hasher *revocation.Hasher, log *zap.Logger) (*sharedStore, error) {
	key := settings.poolKey()
	// Looked up before LoadOrNew: the pool's Range waits on an entry
	// under construction, this one included.
	prev := predecessor(key, settings)
	val, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		return openStore(key, settings, hasher, prev, log)
	})
	if err != nil {
		return nil, err
	}
	return val.(*sharedStore), nil
}

// predecessor returns the Redis store in use on the same Redis and key
// prefix as settings under other store settings (a reload that changed
// redis_timeout, say), whose local copy the new store carries over; nil
// when there is none.
func predecessor(key string, settings storeSettings) *revocation.RedisStore {
	if settings.Redis.IsZero() {
		return nil
	}
	var found *revocation.RedisStore
	eachStore(func(s *sharedStore) {
		if rs := s.remote; rs != nil && found == nil && s.key != key && s.redis == settings.Redis.Identity() && s.prefix == settings.KeyPrefix {
			found = rs
		}
	})
	return found
}

func releaseStore(key string) error {
	if _, err := stores.Delete(key); err != nil {
		return fmt.Errorf("release revocation store: %w", err)
	}
	return nil
}

func openStore(key string, settings storeSettings, hasher *revocation.Hasher, prev *revocation.RedisStore, log *zap.Logger) (*sharedStore, error) {
	if err := settings.validate(); err != nil {
		return nil, err
	}
	shared := &sharedStore{key: key, prefix: settings.KeyPrefix, redis: settings.Redis.Identity(), hasher: hasher, epoch: time.Now()}
	if settings.Redis.IsZero() {
		log.Warn("revocation store is embedded: revocations live in this process only, are lost on restart and are not shared with other instances; set redis for production")
		shared.Store = revocation.NewMemoryStore(revocation.MemoryOptions{})
		// An embedded store starts empty: it never holds unkeyed entries.
		hasher.SetUnkeyedSince(time.Time{})
		shared.desc = revocation.StoreEmbedded.String()
		started := make(chan struct{})
		close(started)
		shared.started = started
		shared.track()
		return shared, nil
	}
	opts, err := settings.Redis.Options(settings.DialTimeout, settings.IOTimeout)
	if err != nil {
		return nil, err
	}
	shared.desc = "redis " + settings.Redis.Describe()
	quietRedisLog()
	rs := revocation.NewRedisStore(revocation.RedisOptions{
		// Opening a client dials nothing; Deferred keeps the store from
		// loading until Caddy starts the configuration, so `caddy
		// validate` never connects.
		Deferred:   true,
		Client:     redis.NewUniversalClient(opts),
		KeyPrefix:  settings.KeyPrefix,
		FeedMaxLen: settings.FeedMaxLen,
		// Zero takes the store's defaults.
		FeedRetention: settings.Retention,
		SnapshotEvery: settings.SnapEvery,
		MemoryBudget:  settings.MemoryBudget,
		Compact:       settings.Compact,
		// The feed read is pipelined, so it must end within the read
		// timeout; adopt lowers it further for a short stale_after.
		Block:        min(time.Second, settings.IOTimeout/2),
		IOTimeout:    settings.IOTimeout,
		Failover:     settings.Redis.Mode() != "standalone",
		WaitReplicas: settings.WaitReplicas,
		WaitTimeout:  settings.WaitTimeout,
		Logger:       slog.New(storeLogHandler{name: "http.handlers.revocation.store"}),
		Hooks:        storeHooks(settings),
		// Nil unless a reload replaces a store on the same Redis.
		CarryFrom: prev,
		Hasher:    hasher,
	})
	shared.Store, shared.remote, shared.started = rs, rs, rs.Started()
	shared.track()
	return shared, nil
}

// redisLogOnce guards quietRedisLog.
var redisLogOnce sync.Once

// quietRedisLog sends go-redis's own log lines (one per failed dial, for
// instance) to Caddy's log at debug level. While Redis is down they would
// otherwise repeat on every attempt; the store logs each transition once,
// at error level, with the cause.
func quietRedisLog() {
	redisLogOnce.Do(func() { redis.SetLogger(redisLogger{}) })
}

// redisLogger is go-redis's logger, writing to Caddy's current default
// logger (which a config reload may replace).
type redisLogger struct{}

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	caddy.Log().Named("http.handlers.revocation.redis").Debug(fmt.Sprintf(format, v...))
}

// eachStore calls f for every store in use in this process: for the
// metrics, which count every store, and to find the store a reload
// replaces. The admin API acts on its configuration's stores
// (App.eachStore).
func eachStore(f func(*sharedStore)) {
	stores.Range(func(_, v any) bool {
		f(v.(*sharedStore))
		return true
	})
}

// storeLogHandler sends the store's logs to Caddy's current default
// logger. A store outlives the config that opened it, so it must not keep
// that config's logger (whose writers a reload may close).
type storeLogHandler struct {
	name  string
	attrs []slog.Attr
	group string
}

func (h storeLogHandler) handler() slog.Handler {
	// No stack traces: a store's errors are about Redis, not the code,
	// and one trace would fill a screen for "connection refused".
	var out slog.Handler = zapslog.NewHandler(caddy.Log().Core(), zapslog.WithName(h.name),
		zapslog.AddStacktraceAt(slog.Level(math.MaxInt)))
	if len(h.attrs) > 0 {
		out = out.WithAttrs(h.attrs)
	}
	if h.group != "" {
		out = out.WithGroup(h.group)
	}
	return out
}

func (h storeLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.handler().Enabled(ctx, l)
}

func (h storeLogHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.handler().Handle(ctx, r)
}

func (h storeLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return h
}

func (h storeLogHandler) WithGroup(name string) slog.Handler {
	if h.group != "" {
		name = h.group + "." + name
	}
	h.group = name
	return h
}

// storeLabel identifies a store in metrics: kind and prefix, both bounded
// by configuration.
func storeLabel(settings storeSettings) (string, string) {
	if settings.Redis.IsZero() {
		return revocation.StoreEmbedded.String(), settings.KeyPrefix
	}
	return revocation.StoreRedis.String(), settings.KeyPrefix
}
