package revocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps the denylist in Redis, shared by every replica, and a
// local copy of it in memory for the request path.
//
// Layout, all under one hash tag so that a change is one atomic script on
// one Cluster slot (the denylist is small; Cluster gives it failover, not
// sharding):
//
//	<prefix>{dl}:e:<b>[:<a>]        plain (t, j, s) entries expiring in bucket b,
//	                                in small hashes (see commitScript), EXAT the bucket's end
//	<prefix>{dl}:ebuckets           the live buckets (a load's progress estimate)
//	<prefix>{dl}:<u|g>:<key>        a subject or the global entry, value as Entry.Value, EXAT its expiry
//	<prefix>{dl}:<t|j|s>:<key>      a plain entry as earlier versions wrote it (still loaded)
//	<prefix>{dl}:feed               the change feed, a stream trimmed by age (FeedRetention), capped at FeedMaxLen
//	<prefix>{dl}:snap               the header of the latest snapshot of the denylist
//	<prefix>{dl}:snap:<id>:<n|x>    its chunks: fixed-size plain records, and cutoff records
//	<prefix>{dl}:n                  the state of the session notes' shards (see noteScript)
//	<prefix>{dl}:n:<a>              sessions in use, for subject revocations: small hashes
//	                                of subject+session -> expiry (unix s), EXPIRE their latest
//	<prefix>{dl}:seen:<subject>     sessions in use as earlier versions note them (still read):
//	                                a sorted set scored by expiry (unix s)
//	<prefix>{dl}:once:<name>        one-time values (DPoP proof jtis)
//
// Every key expires, and the feed is capped (XADD MAXLEN ~), so Redis
// memory is bounded by the live revocations (about 30 bytes a plain
// entry, which stays up to one bucket width past its expiry), one
// snapshot of them (20 bytes a plain entry), and the feed's retention.
//
// A replica loads the latest snapshot, when the feed still holds its
// position, else every entry key (SCAN, then HGETALL of bucket shards and
// MGET of one-key entries, on every master in Cluster mode), then follows the feed with a blocking XREAD. Each read
// is pipelined behind a check, on the same connection, that the feed
// still holds the last entry applied: so a read that lands on another
// server (a reconnect, a Sentinel or Cluster failover, a Redis restart)
// either resumes exactly where it left off or, when the feed was trimmed
// past that entry or recreated, is replaced by a full reload that merges
// with the local copy and never forgets a revocation.
//
// Its code is in four files by concern: this one (connection, health,
// life cycle), redis_commit.go (commits and their batching, session
// notes, one-time values), redis_feed.go (following the change feed) and
// redis_load.go (the full load: scan and shard reads).
type RedisStore struct {
	client redis.UniversalClient
	base   string
	feed   string
	maxLen int64
	retain time.Duration
	// snapEvery is how often a snapshot is written (negative: never).
	snapEvery time.Duration
	// loadSource says where the last full load read: "snapshot",
	// "compact snapshot" or "keys".
	loadSource string
	block      atomic.Int64 // XREAD BLOCK, nanoseconds; see LimitBlock
	ioTimeout  time.Duration
	// waitFor is RedisOptions.WaitReplicas; replicas is the count of
	// replicas the master last reported (auto mode), -1 before it did.
	waitFor     int
	failover    bool
	waitTimeout time.Duration
	replicas    atomic.Int64
	healing     atomic.Bool // a heal is under way
	// afterScan, when set (tests only), runs when a key-by-key load has
	// read every key, or a compact snapshot load every chunk: what is
	// committed then is missing from the copy.
	afterScan func()
	dl        *Denylist
	log       *slog.Logger
	now       func() time.Time
	hooks     Hooks
	// hasher is the replica's identity hasher (nil: unkeyed), checked
	// against the store's record of the key (see checkHashKey);
	// hashErr holds the mismatch found, which stops loads and commits.
	hasher  *Hasher
	hashErr atomic.Pointer[error]

	mu      sync.Mutex
	own     map[string]struct{} // feed ids this replica wrote, not yet read back
	lastID  string              // last feed entry applied ("" before the first load)
	applied int64               // feed entries added up to lastID (XINFO entries-added)
	loaded  bool
	state   int // linkUnknown, linkUp or linkDown

	// Progress of the full load under way, if any.
	loading    atomic.Bool
	loadRead   atomic.Int64  // entries read so far
	loadExpect atomic.Int64  // keys in the database when it began: an upper estimate
	loadStart  atomic.Int64  // unix nanoseconds
	firstLoad  chan struct{} // closed at the first confirmation
	firstDone  atomic.Bool
	lastErr    string
	confirmed  atomic.Int64 // unix nanoseconds; read on every request

	notes    chan note
	recent   map[[2]Key]int64 // notes queued here lately: session -> expiry
	commits  chan *pendingCommit
	done     context.Context // ends when the store closes
	stop     context.CancelFunc
	finished sync.WaitGroup

	// Start's state: the context the loops run in, the first load's
	// bound, and a channel closed once the first load has been tried.
	ctx         context.Context
	initialLoad time.Duration
	sweepEvery  time.Duration
	startOnce   sync.Once
	started     chan struct{}
}

const (
	linkUnknown = iota
	linkUp
	linkDown
)

type note struct {
	subject, session Key
	ttl              time.Duration
}

// Hooks let the caller observe the store (metrics). Every field is
// optional.
type Hooks struct {
	// RemoteApplied is called after entries written by another replica
	// were applied from the feed; lag is from the feed entry's Redis time
	// to now.
	RemoteApplied func(entries int, lag time.Duration)
	// Error is called for every failed store operation.
	Error func(op string, err error)
	// Transition is called when the store becomes reachable or not.
	Transition func(connected bool)
	// Reloaded is called after a full load, with the number of entries.
	Reloaded func(entries int, took time.Duration)
}

// RedisOptions configures a RedisStore.
type RedisOptions struct {
	// Client is the connection, standalone, Sentinel or Cluster. The store
	// closes it on Close.
	Client redis.UniversalClient
	// KeyPrefix starts every key. Default "revocation:". A hash tag ("{x}")
	// in it replaces the default one.
	KeyPrefix string
	// FeedRetention is how long the change feed keeps an entry: long
	// enough for a replica to load (from the snapshot or key by key) and
	// resume from where its load began. Default five minutes.
	FeedRetention time.Duration
	// SnapshotEvery is how often one of the replicas writes a snapshot
	// of the denylist into Redis, from which another loads with a few
	// large reads. Default one minute; negative: never.
	SnapshotEvery time.Duration
	// MemoryBudget is the most memory, in bytes, the process may hold
	// for this store's local copy and the Go runtime (Denylist.
	// SetMemoryBudget); zero for none. Past it, revocations are not held
	// and the copy counts as unconfirmed (Staleness) until they expire.
	MemoryBudget int64
	// FeedMaxLen caps the change feed (approximate, XTRIM MAXLEN ~) when
	// a storm outgrows FeedRetention.
	// Default DefaultFeedMaxLen. A replica that falls further behind
	// reloads in full.
	FeedMaxLen int64
	// Block is how long one XREAD waits for news; it is also the longest
	// quiet interval between two confirmations that the local copy is
	// current. It must be shorter than the client's read timeout, since
	// the read is pipelined. Default one second; LimitBlock lowers it.
	Block time.Duration
	// IOTimeout bounds one feed read beyond its Block: a read that gets
	// no answer within Block+IOTimeout (a partition that drops packets
	// rather than refusing them) fails, and the store reports itself
	// disconnected. Default two seconds.
	IOTimeout time.Duration
	// WaitReplicas is how many Redis replicas must hold a commit before
	// it is answered (WAIT, on the commit's connection), so that an
	// acknowledged revocation survives the loss of the master. Zero
	// (auto): one when the master reports connected replicas, none when
	// it has none; negative: never wait.
	WaitReplicas int
	// WaitTimeout bounds that wait: a commit the replicas have not
	// confirmed by then fails with ErrUnavailable (the caller retries;
	// the commit is idempotent). Default one second.
	WaitTimeout time.Duration
	// Failover says that Client finds the master anew after a failover
	// (Sentinel, Cluster): a commit that could not reach a master is then
	// sent again, within IOTimeout, instead of failing at once.
	Failover bool
	// InitialLoad is how long NewRedisStore waits for the first full load
	// before it returns. The load never stops for it: a store that returns
	// before its first load completes goes on loading in the background
	// (Health reports the progress), and retries while Redis is
	// unreachable. Default one second; negative: do not wait.
	InitialLoad time.Duration
	// SweepEvery is how often expired local entries are dropped. Default
	// one minute.
	SweepEvery time.Duration
	// Deferred leaves the store idle, with no connection opened and no
	// goroutine started, until Start is called: a configuration that is
	// only validated never touches Redis.
	Deferred bool
	// Logger receives transitions and reloads; slog.Default when nil.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now   func() time.Time
	Hooks Hooks
	// Hasher is the identity hasher of the replicas using the store (nil:
	// unkeyed). Before it loads, the store compares it with the record of
	// the key in Redis and refuses to load or commit when they differ
	// (ErrHashKeyMismatch), and tells it since when unkeyed entries may
	// be live there.
	Hasher *Hasher
	// Compact holds the local copy's plain entries as fingerprints of 4
	// bytes instead of whole keys, and confirms a match in Redis before
	// it blocks (Denylist.SetCompact). Replicas in this mode write no
	// snapshot, since fingerprints cannot be written back as entries.
	Compact bool
	// CarryFrom is a loaded store on the same Redis and KeyPrefix, about
	// to be replaced (a configuration reload that changes other store
	// settings): the new store shares its local copy and starts reading
	// the feed from its position instead of loading in full, so a reload
	// neither reloads everything nor leaves a gap in the copy. Ignored
	// when the prefixes differ or that store is not loaded.
	CarryFrom *RedisStore
}

// The defaults of RedisOptions.KeyPrefix, FeedRetention, SnapshotEvery
// and FeedMaxLen.
const (
	DefaultKeyPrefix     = "revocation:"
	DefaultFeedRetention = 5 * time.Minute
	DefaultSnapshotEvery = time.Minute
	DefaultFeedMaxLen    = 1_000_000
)

// KeyBase returns the common start of every key for a prefix.
func KeyBase(prefix string) string {
	if strings.Contains(prefix, "{") && strings.Contains(prefix, "}") {
		return prefix
	}
	return prefix + "{dl}:"
}

// NewRedisStore opens a store on a Redis client and, unless
// opts.Deferred, starts it (see Start).
func NewRedisStore(opts RedisOptions) *RedisStore {
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = DefaultKeyPrefix
	}
	if opts.FeedMaxLen <= 0 {
		opts.FeedMaxLen = DefaultFeedMaxLen
	}
	if opts.FeedRetention <= 0 {
		opts.FeedRetention = DefaultFeedRetention
	}
	if opts.SnapshotEvery == 0 {
		opts.SnapshotEvery = DefaultSnapshotEvery
	}
	if opts.Block <= 0 {
		opts.Block = time.Second
	}
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = time.Second
	}
	if opts.IOTimeout <= 0 {
		opts.IOTimeout = 2 * time.Second
	}
	if opts.InitialLoad == 0 {
		opts.InitialLoad = time.Second
	}
	if opts.SweepEvery <= 0 {
		opts.SweepEvery = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	base := KeyBase(opts.KeyPrefix)
	ctx, cancel := context.WithCancel(context.Background())
	s := &RedisStore{
		client:      opts.Client,
		base:        base,
		feed:        base + "feed",
		maxLen:      opts.FeedMaxLen,
		retain:      opts.FeedRetention,
		snapEvery:   opts.SnapshotEvery,
		dl:          newBudgetDenylist(opts.MemoryBudget),
		log:         opts.Logger,
		now:         opts.Now,
		hooks:       opts.Hooks,
		hasher:      opts.Hasher,
		notes:       make(chan note, 4096),
		own:         make(map[string]struct{}),
		stop:        cancel,
		firstLoad:   make(chan struct{}),
		commits:     make(chan *pendingCommit),
		done:        ctx,
		ctx:         ctx,
		initialLoad: opts.InitialLoad,
		sweepEvery:  opts.SweepEvery,
		started:     make(chan struct{}),
		ioTimeout:   opts.IOTimeout,
		waitFor:     opts.WaitReplicas,
		failover:    opts.Failover,
		waitTimeout: opts.WaitTimeout,
	}
	s.replicas.Store(-1)
	s.block.Store(int64(max(opts.Block, minBlock)))
	s.setCompact(opts.Compact)
	if from := opts.CarryFrom; from != nil && from.base == base && from.dl.Compact() == opts.Compact {
		s.carryFrom(from)
	}
	// The commit workers open no connection until a revocation comes.
	s.finished.Add(commitWorkers)
	for range commitWorkers {
		go s.commitLoop(ctx)
	}
	if !opts.Deferred {
		s.Start()
	}
	return s
}

// Start starts loading the denylist and following the change feed, and
// waits up to InitialLoad for the first load: a replica with a small
// denylist starts with all of it, while a long load goes on in the
// background, with no deadline that would abort it and start it again
// from zero. Only the first call does anything; later calls return at
// once. A deferred store (RedisOptions.Deferred) opens no connection
// before it.
func (s *RedisStore) Start() {
	s.startOnce.Do(func() {
		defer close(s.started)
		if s.ctx.Err() != nil {
			return // closed before it was started
		}
		s.finished.Add(3)
		go s.follow(s.ctx)
		go s.writeNotes(s.ctx)
		go s.sweep(s.ctx, s.sweepEvery)
		if s.snapEvery > 0 {
			s.finished.Add(1)
			go s.snapshotLoop(s.ctx)
		}
		if s.waitFor == 0 {
			s.finished.Add(1)
			go s.watchReplicas(s.ctx)
		}
		if s.initialLoad > 0 {
			t := time.NewTimer(s.initialLoad)
			select {
			case <-s.firstLoad:
			case <-t.C:
				if s.loading.Load() {
					s.log.Info("denylist still loading from redis; serving meanwhile as on_store_down says",
						"entries_so_far", s.loadRead.Load(), "keys_in_db", s.loadExpect.Load())
				}
			}
			t.Stop()
		}
	})
}

// carryFrom takes over another store's local copy and feed position.
// The copy is shared, not copied: both stores only ever add to it, and
// the old one stops when its last handler lets go.
func (s *RedisStore) carryFrom(from *RedisStore) {
	// The confirmation is read before the position: the position then
	// covers at least what the confirmation vouches for (both only move
	// forward), and the first read from it confirms the rest.
	confirmed := from.confirmed.Load()
	from.mu.Lock()
	loaded, id, applied := from.loaded, from.lastID, from.applied
	from.mu.Unlock()
	if !loaded || id == "" || from.dl.mem.dropped.Load() > 0 {
		// Nothing to carry, or a copy missing what its budget could not
		// hold: a full load under the new budget holds what fits now.
		return
	}
	budget := s.dl.MemoryBudget()
	s.dl = from.dl
	s.dl.SetMemoryBudget(budget)
	s.setCompact(s.dl.Compact())
	s.lastID, s.applied, s.loaded = id, applied, true
	s.loadSource = "carried"
	s.confirmed.Store(confirmed)
	s.log.Info("denylist carried over from the store it replaces", "position", id)
}

// Started is closed once Start has tried the first load (whether or not
// Redis answered).
func (s *RedisStore) Started() <-chan struct{} { return s.started }

// Denylist implements Store.
func (s *RedisStore) Denylist() *Denylist { return s.dl }

func (s *RedisStore) entryKey(k Key) string {
	return s.base + string(rune(k.Kind())) + ":" + k.String()
}

// Health implements Store.
func (s *RedisStore) Health() Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := Health{
		Store:      StoreRedis,
		Loaded:     s.loaded,
		Connected:  s.state == linkUp,
		Confirmed:  s.confirmedAt(),
		LastError:  s.lastErr,
		LoadedFrom: s.loadSource,
	}
	if b := s.dl.Budget(s.now().Unix()); b.Budget > 0 {
		h.Memory = &b
	}
	if s.loading.Load() {
		h.Load = &LoadProgress{
			Entries:  s.loadRead.Load(),
			Expected: s.loadExpect.Load(),
			Started:  time.Unix(0, s.loadStart.Load()),
		}
	}
	return h
}

func (s *RedisStore) confirmedAt() time.Time {
	n := s.confirmed.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Staleness implements Store.
func (s *RedisStore) Staleness(now time.Time) time.Duration {
	n := s.confirmed.Load()
	if n == 0 || s.dl.mem.dropped.Load() > 0 && s.dl.Budget(now.Unix()).Over() {
		// Never confirmed, or missing revocations it had no room for.
		return 1<<63 - 1 // never confirmed
	}
	return now.Sub(time.Unix(0, n))
}

// Close implements Store.
func (s *RedisStore) Close() error {
	s.stop()
	// A deferred store that was never started must not start now.
	s.startOnce.Do(func() { close(s.started) })
	// Closing the client ends a blocked XREAD at once, instead of when its
	// block times out; the loops then see their context is done.
	err := s.client.Close()
	s.finished.Wait()
	if err != nil {
		return fmt.Errorf("close redis client: %w", err)
	}
	return nil
}

// LimitBlock lowers the longest quiet interval between two confirmations
// that the local copy is current (the XREAD BLOCK), so that a handler's
// stale_after is never reached by a healthy store. It never raises it.
func (s *RedisStore) LimitBlock(d time.Duration) {
	d = max(d, minBlock)
	for {
		cur := s.block.Load()
		if int64(d) >= cur || s.block.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// minBlock keeps XREAD BLOCK away from zero, which would mean forever.
const minBlock = 10 * time.Millisecond

func (s *RedisStore) sweep(ctx context.Context, d time.Duration) {
	defer s.finished.Done()
	every(ctx, d, func() { s.dl.Sweep(s.now().Unix()) })
}

// confirm records that the local copy held every revocation committed
// before at. The first confirmation ends NewRedisStore's wait.
func (s *RedisStore) confirm(at time.Time) {
	n := at.UnixNano()
	for {
		old := s.confirmed.Load()
		if n <= old || s.confirmed.CompareAndSwap(old, n) {
			break
		}
	}
	if s.firstDone.CompareAndSwap(false, true) {
		close(s.firstLoad)
	}
}

// setUp and setDown record reachability and log each transition once.
func (s *RedisStore) setUp() {
	s.mu.Lock()
	was := s.state
	s.state = linkUp
	s.lastErr = ""
	s.mu.Unlock()
	if was != linkUp {
		s.log.Info("revocation store reachable", "store", "redis")
		if s.hooks.Transition != nil {
			s.hooks.Transition(true)
		}
	}
}

func (s *RedisStore) setDown(op string, err error) {
	if err == nil {
		err = errors.New("unknown error")
	}
	s.mu.Lock()
	was := s.state
	s.state = linkDown
	s.lastErr = op + ": " + err.Error()
	s.mu.Unlock()
	if s.hooks.Error != nil {
		s.hooks.Error(op, err)
	}
	if was != linkDown {
		s.log.Error("revocation store unreachable; enforcing the local copy", "store", "redis", "op", op, "error", err)
		if s.hooks.Transition != nil {
			s.hooks.Transition(false)
		}
	}
}

func (s *RedisStore) opError(op string, err error) {
	s.mu.Lock()
	s.lastErr = op + ": " + err.Error()
	s.mu.Unlock()
	if s.hooks.Error != nil {
		s.hooks.Error(op, err)
	}
}

var _ Store = (*RedisStore)(nil)
