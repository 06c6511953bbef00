package revocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"strconv"
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
type RedisStore struct {
	client redis.UniversalClient
	base   string
	feed   string
	maxLen int64
	retain time.Duration
	// snapEvery is how often a snapshot is written (negative: never).
	snapEvery time.Duration
	// loadSource says where the last full load read: "snapshot" or "keys".
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
	// read every key: what is committed then is missing from the copy.
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

// The defaults of RedisOptions.FeedRetention, SnapshotEvery and
// FeedMaxLen.
const (
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
		opts.KeyPrefix = "revocation:"
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

// Commit implements Store: the change joins the next script call (alone
// when Redis keeps up, with others committed meanwhile under load), then
// the local copy.
func (s *RedisStore) Commit(ctx context.Context, c Change) (Result, error) {
	if err := s.hashErr.Load(); err != nil {
		// Entries written under the wrong key would revoke nothing.
		return Result{}, fmt.Errorf("commit revocation: %w", *err)
	}
	p := &pendingCommit{ctx: ctx, puts: len(c.Puts), reply: make(chan commitReply, 1)}
	if err := s.encodeChange(&c, p); err != nil {
		return Result{}, err
	}
	select {
	case s.commits <- p:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("commit revocation: %w: %w", ErrUnavailable, ctx.Err())
	case <-s.done.Done():
		return Result{}, fmt.Errorf("commit revocation: %w: store closed", ErrUnavailable)
	}
	select {
	case r := <-p.reply:
		return r.res, r.err
	case <-ctx.Done():
		// The batch may still be applied: as with any request that timed
		// out, the caller cannot tell.
		return Result{}, fmt.Errorf("commit revocation: %w: %w", ErrUnavailable, ctx.Err())
	}
}

// pendingCommit is one change waiting for its batch.
type pendingCommit struct {
	ctx   context.Context
	keys  []string
	args  []any
	puts  int
	live  []bool // per put: live in the local copy before the commit
	cost  int
	reply chan commitReply
}

type commitReply struct {
	res Result
	err error
}

// The layout of plain entries in Redis (see commitScript).
//
// bucketWidth, in seconds, groups entries by expiry: all of a bucket's
// keys expire at its end, so an entry stays up to that long past its own
// expiry. Five minutes keeps that small beside short-lived access tokens
// (a revoked 5-minute token would otherwise be held twice or more its
// life), while a bucket still gathers enough entries for its shards'
// per-key overhead to vanish: memory per entry measured the same with
// widths of 1, 5 and 15 minutes (BenchmarkRedisLoad's redis-B/entry, expiries spread
// over an hour).
//
// shardLoad is the mean number of fields per shard that triggers a split.
// With linear hashing, a shard not yet split in the current round holds
// twice the mean just before the round ends: 2 x 40 = 80 fields, and 128
// (where Redis leaves the compact listpack encoding for good) is five
// standard deviations away.
const (
	bucketWidth = 300
	shardLoad   = 40
)

// The bounds of one commit batch: enough to carry a storm in few script
// calls, small enough that one call does not hold Redis up for long.
const (
	commitWorkers  = 4
	maxBatchCost   = 2000 // puts and cuts
	maxBatchChange = 512
)

// encodeChange writes a change's part of the script's keys and arguments.
func (s *RedisStore) encodeChange(c *Change, p *pendingCommit) error {
	p.args = append(p.args, len(c.Puts))
	now := s.now().Unix()
	p.live = make([]bool, len(c.Puts))
	for i, put := range c.Puts {
		if !put.Key.Kind().Valid() || put.Key.Kind().hasCutoff() {
			return fmt.Errorf("commit: put of a %s key; use SubjectCut or GlobalCut", put.Key.Kind())
		}
		exp := put.Expires
		if exp == 0 {
			exp = now + ttlSeconds(put.TTL)
		}
		p.keys = append(p.keys, s.base+"e:"+strconv.FormatInt(exp/bucketWidth, 10))
		p.args = append(p.args, string(rune(put.Key.Kind())), put.Key.String(), string(put.Key[:]), put.Expires, ttlSeconds(put.TTL))
		// The script sees the key's own bucket only: the same key
		// revoked before with another expiry is in another one.
		p.live[i] = s.dl.liveLocally(put.Key, now)
	}
	cuts := c.cuts()
	p.args = append(p.args, len(cuts))
	for _, sc := range cuts {
		if sc.Subject.Kind() != KindSubject || (!sc.Keep.IsZero() && sc.Keep.Kind() != KindSession) {
			return fmt.Errorf("commit: subject cut of a %s key keeping a %s key", sc.Subject.Kind(), sc.Keep.Kind())
		}
		keep := "-"
		if !sc.Keep.IsZero() {
			keep = sc.Keep.String()
		}
		also, alsoKeep := "-", "-"
		if !sc.Unkeyed.IsZero() && sc.Unkeyed.Kind() == KindSubject {
			also = sc.Unkeyed.String()
			if !sc.UnkeyedKeep.IsZero() && sc.UnkeyedKeep.Kind() == KindSession {
				alsoKeep = sc.UnkeyedKeep.String()
			}
		}
		p.keys = append(p.keys, s.entryKey(sc.Subject), s.base+"seen:"+sc.Subject.String(), s.base+"n")
		p.args = append(p.args, sc.Subject.String(), keep, ttlSeconds(sc.TTL), sc.At, also, alsoKeep)
	}
	if g := c.Global; g != nil {
		gk := GlobalKey()
		p.keys = append(p.keys, s.entryKey(gk))
		p.args = append(p.args, "1", gk.String(), max(g.Before, 0), ttlSeconds(g.TTL))
	} else {
		p.args = append(p.args, "0")
	}
	p.cost = 1 + len(c.Puts) + len(cuts)
	return nil
}

// commitLoop sends waiting changes to Redis: the first that comes, with
// whatever else is waiting by then, as one script call.
func (s *RedisStore) commitLoop(ctx context.Context) {
	defer s.finished.Done()
	for {
		var first *pendingCommit
		select {
		case <-ctx.Done():
			return
		case first = <-s.commits:
		}
		batch, cost := []*pendingCommit{first}, first.cost
	drain:
		for cost < maxBatchCost && len(batch) < maxBatchChange {
			select {
			case p := <-s.commits:
				batch = append(batch, p)
				cost += p.cost
			default:
				break drain
			}
		}
		s.commitBatch(batch)
	}
}

// commitBatch runs one script call for a batch and answers each change.
func (s *RedisStore) commitBatch(batch []*pendingCommit) {
	live := batch[:0]
	var deadline time.Time
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.reply <- commitReply{err: fmt.Errorf("commit revocation: %w: %w", ErrUnavailable, err)}
			continue
		}
		live = append(live, p)
		if d, ok := p.ctx.Deadline(); !ok {
			deadline = time.Now().Add(time.Minute)
		} else if d.After(deadline) {
			deadline = d
		}
	}
	if len(live) == 0 {
		return
	}
	// The batch lives as long as the most patient of its callers.
	ctx, cancel := context.WithDeadline(context.WithoutCancel(live[0].ctx), deadline)
	defer cancel()
	keys := []string{s.feed}
	args := []any{s.base, s.maxLen, s.retain.Milliseconds(), bucketWidth, shardLoad, len(live)}
	for _, p := range live {
		keys = append(keys, p.keys...)
		args = append(args, p.args...)
	}
	fail := func(err error) {
		for _, p := range live {
			p.reply <- commitReply{err: err}
		}
	}
	reply, err := s.runCommit(ctx, keys, args)
	if err != nil {
		s.opError("commit", err)
		fail(fmt.Errorf("commit revocation: %w: %w", ErrUnavailable, err))
		return
	}
	if len(reply) != 2+2*len(live) {
		fail(fmt.Errorf("commit revocation: unexpected reply of %d parts for %d changes", len(reply), len(live)))
		return
	}
	at, err := strconv.ParseInt(reply[1], 10, 64)
	if err != nil {
		fail(fmt.Errorf("commit revocation: server time %q: %w", reply[1], err))
		return
	}
	results := make([]commitReply, len(live))
	for i, p := range live {
		existed, recs := reply[2+2*i], reply[3+2*i]
		if len(existed) != p.puts {
			results[i].err = fmt.Errorf("commit revocation: %d existed flags for %d puts", len(existed), p.puts)
			continue
		}
		res := Result{Existed: make([]bool, p.puts), Time: at}
		for j := range res.Existed {
			res.Existed[j] = existed[j] == '1' || p.live[j]
		}
		if res.Entries, err = ParseRecords(recs); err != nil {
			results[i].err = fmt.Errorf("commit revocation: %w", err)
			continue
		}
		s.dl.Apply(res.Entries...)
		results[i].res = res
	}
	if reply[0] != "" {
		s.mu.Lock()
		if len(s.own) >= maxOwnIDs {
			clear(s.own) // only a metric depends on it
		}
		s.own[reply[0]] = struct{}{}
		s.mu.Unlock()
	}
	for i, p := range live {
		p.reply <- results[i]
	}
}

// noteLoad is the notes a note shard holds on average before one is
// split: well inside Redis's listpack limit for a hash (128 fields).
const noteLoad = 64

// maxOwnIDs bounds the feed ids remembered as this replica's own writes.
const maxOwnIDs = 4096

// NoteSession implements Store: queued, written in batches by writeNotes.
func (s *RedisStore) NoteSession(subject, session Key, ttl time.Duration) {
	s.mu.Lock()
	if len(s.recent) >= maxRecentNotes {
		clear(s.recent) // they are in Redis by now, or will be soon
	}
	if s.recent == nil {
		s.recent = make(map[[2]Key]int64)
	}
	s.recent[[2]Key{subject, session}] = s.now().Unix() + ttlSeconds(ttl)
	s.mu.Unlock()
	select {
	case s.notes <- note{subject, session, ttl}:
	default:
		// The queue is full only when Redis is down or far behind; a
		// missed note weakens only the stop of future tokens of a session
		// nobody revoked yet (the subject cutoff still stops old ones).
	}
}

func (s *RedisStore) writeNotes(ctx context.Context) {
	defer s.finished.Done()
	batch := make(map[note]struct{})
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-s.notes:
			batch[n] = struct{}{}
		}
	drain:
		for len(batch) < 512 {
			select {
			case n := <-s.notes:
				batch[n] = struct{}{}
			default:
				break drain
			}
		}
		// Each note carries its own expiry, and expired ones are dropped
		// as notes come (see noteScript), so the notes of an active
		// subject are its live sessions only, not every login.
		args := make([]any, 0, 2+3*len(batch))
		args = append(args, s.base, noteLoad)
		for n := range batch {
			args = append(args, n.subject.String(), n.session.String(), ttlSeconds(n.ttl))
		}
		opCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := noteScript.Run(opCtx, s.client, []string{s.base + "n"}, args...).Err()
		cancel()
		if err != nil && ctx.Err() == nil {
			s.opError("note sessions", err)
		}
		clear(batch)
	}
}

// maxRecentNotes bounds the notes remembered locally until Redis has
// them (they are written in batches, within milliseconds).
const maxRecentNotes = 1 << 16

// SessionSeen implements Store: noted here lately (a note is written to
// Redis a few milliseconds after it is taken), or noted in Redis by any
// replica.
func (s *RedisStore) SessionSeen(ctx context.Context, subject, session Key) (bool, error) {
	now := s.now().Unix()
	s.mu.Lock()
	exp, ok := s.recent[[2]Key{subject, session}]
	s.mu.Unlock()
	if ok && exp > now {
		return true, nil
	}
	exp, err := seenScript.Run(ctx, s.client, []string{s.base + "n"}, s.base, subject.String(), session.String()).Int64()
	if err != nil {
		s.opError("session seen", err)
		return false, fmt.Errorf("session seen: %w: %w", ErrUnavailable, err)
	}
	return exp > now, nil
}

// Remember implements Store.
func (s *RedisStore) Remember(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ok, err := s.client.SetNX(ctx, s.base+"once:"+key, "1", ttl).Result()
	if err != nil {
		s.opError("remember", err)
		return false, fmt.Errorf("remember: %w: %w", ErrUnavailable, err)
	}
	return ok, nil
}

// Claim implements Store: one SET NX GET, atomic across replicas.
func (s *RedisStore) Claim(ctx context.Context, key, value string, ttl time.Duration) (string, error) {
	held, err := s.client.SetArgs(ctx, s.base+"claim:"+key, value, redis.SetArgs{Mode: "NX", Get: true, TTL: ttl}).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return value, nil // absent: claimed now
	case err != nil:
		s.opError("claim", err)
		return "", fmt.Errorf("claim: %w: %w", ErrUnavailable, err)
	}
	return held, nil
}

// Health implements Store.
func (s *RedisStore) Health() Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := Health{
		Store:     "redis",
		Loaded:    s.loaded,
		Connected: s.state == linkUp,
		Confirmed: s.confirmedAt(),
		LastError: s.lastErr,
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

// readBatch is the most feed entries one read applies.
const readBatch = 1000

// follow keeps the local copy current: load in full when there is no
// usable position, then read the feed, and after any error start over
// with a growing pause.
func (s *RedisStore) follow(ctx context.Context) {
	defer s.finished.Done()
	// Short enough that a replica resumes within half a second of Redis
	// (or the master a failover names) answering again: well inside
	// stale_after; a dial twice a second costs an unreachable Redis nothing.
	const minPause, maxPause = 50 * time.Millisecond, 500 * time.Millisecond
	pause := minPause
	checked := false
	for ctx.Err() == nil {
		s.mu.Lock()
		loaded := s.loaded
		s.mu.Unlock()
		var err error
		op := "check hash_key"
		if !checked || !loaded {
			if !loaded {
				// The check is a load's first step: status and readiness
				// say "loading" while a busy Redis keeps it waiting.
				s.loadStart.Store(s.now().UnixNano())
				s.loading.Store(true)
			}
			err = s.CheckHashKey(ctx)
			checked = err == nil
			if err != nil {
				s.loading.Store(false)
			}
		}
		if err == nil && !loaded {
			op = "load denylist"
			err = s.fullLoad(ctx)
		}
		if err == nil {
			op = "follow feed"
			err = s.read(ctx, func() { pause = minPause })
		}
		if ctx.Err() != nil {
			return
		}
		s.setDown(op, err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, maxPause)
	}
}

// CheckHashKey compares the replica's hash key (RedisOptions.Hasher) with
// the record of the key in Redis, writing it when this is the first
// keyed replica. A mismatch (ErrHashKeyMismatch) is logged once and
// stops the store from loading and committing until a check passes: a
// replica that computed other keys than the rest would let their
// revocations through without a sign.
func (s *RedisStore) CheckHashKey(ctx context.Context) error {
	err := checkHashKey(ctx, s.client, s.base, s.hasher, s.now())
	switch {
	case errors.Is(err, ErrHashKeyMismatch):
		if s.hashErr.Swap(&err) == nil {
			s.log.Error("refusing to use the shared denylist", "store", "redis", "error", err)
		}
	case err == nil:
		s.hashErr.Store(nil)
	}
	return err
}

// read applies feed entries as they come, until an error. Each XREAD is
// pipelined behind a check that the server still holds the position it
// reads from; the server runs both back to back, so no trim or other
// write can fall between them. Any read, even one go-redis retried on a
// new connection or sent to a new master, is thereby checked against the
// server that answers it.
func (s *RedisStore) read(ctx context.Context, ok func()) error {
	block := time.Duration(-1) // the first read does not wait: it confirms at once
	for {
		s.mu.Lock()
		from, applied := s.lastID, s.applied
		s.mu.Unlock()
		issued := s.now()
		pipe := s.client.Pipeline()
		var (
			held *redis.XMessageSliceCmd
			info *redis.XInfoStreamCmd
		)
		if from == "0-0" {
			info = pipe.XInfoStream(ctx, s.feed)
		} else {
			held = pipe.XRangeN(ctx, s.feed, from, from, 1)
		}
		next := pipe.XRead(ctx, &redis.XReadArgs{
			Streams: []string{s.feed, from},
			Count:   readBatch,
			Block:   block,
		})
		// A read that hears nothing back within its block and the I/O
		// timeout fails: silence is a partition, and the caller then
		// reports the store unreachable instead of waiting for the
		// operating system to give up on the connection.
		rctx, cancel := context.WithTimeout(ctx, max(block, 0)+s.ioTimeout)
		blocked := block
		block = time.Duration(s.block.Load())
		_, _ = pipe.Exec(rctx) // errors are read per command below
		cancel()

		valid, lost := true, false
		if held != nil {
			msgs, err := held.Result()
			if err != nil {
				return fmt.Errorf("check change feed position: %w", err)
			}
			if len(msgs) == 0 {
				// Our entry is gone (trimmed, or the feed recreated), or it
				// never was one (we loaded from an emptied feed): only the
				// counts can still vouch that nothing was missed.
				st, exists, err := s.feedInfo(ctx)
				if err != nil {
					return err
				}
				valid = positionHeld(from, applied, st, exists)
				lost = !valid && historyLost(from, applied, st, exists)
			}
		} else {
			st, exists, err := feedInfoResult(info)
			if err != nil {
				return err
			}
			valid = positionHeld(from, applied, st, exists)
		}
		streams, err := next.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("read change feed: %w", err)
		}
		if !valid {
			s.log.Warn("the change feed no longer holds every entry since the last one applied; reloading in full", "last_applied", from, "redis_lost_data", lost)
			if err := s.fullLoad(ctx); err != nil {
				return err
			}
			if lost && s.healing.CompareAndSwap(false, true) {
				// Redis went back in time: what it lost lives on in the
				// copies of the replicas, this one included. Written
				// back in the background, while the feed is followed.
				s.finished.Add(1)
				go s.heal(ctx)
			}
			continue
		}
		n := 0
		for _, st := range streams {
			s.applyMessages(st.Messages)
			n += len(st.Messages)
		}
		if n < readBatch {
			// Everything committed before the read was issued is applied
			// now; a full batch may have left more behind.
			at := issued
			if n == 0 && blocked > 0 {
				// An empty answer to a blocking read: Redis waited the
				// whole block after it received the read, so nothing was
				// committed until then either. Stamping the issue time
				// instead would make an idle, healthy copy look a whole
				// block stale right after each read.
				at = issued.Add(blocked)
				if now := s.now(); now.Before(at) {
					at = now // a clock that moved less than the block
				}
			}
			s.confirm(at)
		}
		s.setUp()
		ok()
	}
}

func (s *RedisStore) applyMessages(msgs []redis.XMessage) {
	now := s.now()
	for _, m := range msgs {
		raw, _ := m.Values["e"].(string)
		entries, err := ParseRecords(raw)
		if err != nil {
			// A record this version cannot read is skipped, loudly, and
			// the others of the entry are applied; the entry keys still
			// hold the skipped one for the next full load.
			s.log.Error("skipping unreadable change feed records", "id", m.ID, "error", err)
		}
		s.dl.Apply(entries...)
		s.mu.Lock()
		s.lastID = m.ID
		s.applied++
		_, mine := s.own[m.ID]
		delete(s.own, m.ID)
		s.mu.Unlock()
		// The lag of another replica's revocation; this replica applied
		// its own before its commit returned.
		if s.hooks.RemoteApplied != nil && len(entries) > 0 && !mine {
			if ms, ok := idMillis(m.ID); ok {
				s.hooks.RemoteApplied(len(entries), now.Sub(time.UnixMilli(ms)))
			}
		}
	}
}

// positionHeld reports whether reading the feed after id misses nothing,
// when id is not (or no longer) an entry of the feed: id is "0-0" for a
// replica loaded before the feed existed, else the feed's last id when it
// was loaded or read, with applied the count of entries added up to it
// (XINFO entries-added, Redis 7+).
//
// Trimming (XADD MAXLEN) removes the oldest entries and does not move
// max-deleted-entry-id, so the count of entries added is what tells a
// trim from a quiet feed. A recreated feed cannot be told from a trimmed
// one once it has grown, so anything but an unchanged feed reloads.
func positionHeld(id string, applied int64, info *redis.XInfoStream, exists bool) bool {
	if id == "0-0" && applied == 0 {
		// Every entry is new to us: all of them must still be there.
		return !exists || info.EntriesAdded <= info.Length
	}
	if !exists {
		return false // the feed is gone: a flush, a restart that lost data
	}
	return info.LastGeneratedID == id && info.EntriesAdded == applied
}

func (s *RedisStore) feedInfo(ctx context.Context) (*redis.XInfoStream, bool, error) {
	return feedInfoResult(s.client.XInfoStream(ctx, s.feed))
}

func feedInfoResult(cmd *redis.XInfoStreamCmd) (*redis.XInfoStream, bool, error) {
	info, err := cmd.Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("inspect change feed: %w", err)
	}
	return info, true, nil
}

// fullLoad reads every entry key into the local copy (merging with what
// is there: a revocation is never forgotten because Redis lost it) and
// sets the feed position to where the feed stood before the scan, so that
// anything written during the scan is applied again from the feed.
func (s *RedisStore) fullLoad(ctx context.Context) error {
	start := s.now()
	s.loadRead.Store(0)
	s.loadExpect.Store(0)
	s.loadStart.Store(start.UnixNano())
	s.loading.Store(true)
	defer s.loading.Store(false)
	if ok, err := s.loadSnapshot(ctx, start); ok {
		return nil
	} else if err != nil {
		if ctx.Err() != nil {
			return err
		}
		s.log.Warn("denylist snapshot unusable; loading entry by entry", "error", err)
	}
	info, exists, err := s.feedInfo(ctx)
	if err != nil {
		return err
	}
	expect, inBuckets := s.expectEntries(ctx)
	s.loadExpect.Store(expect)
	s.dl.Reserve(inBuckets)
	defer s.dl.boundLoadHeap(inBuckets)()
	from, added := "0-0", int64(0)
	if exists {
		from, added = info.LastGeneratedID, info.EntriesAdded
	}
	var total atomic.Int64
	read := &shardsRead{names: make(map[string]struct{})}
	scan := func(ctx context.Context, c redis.UniversalClient) error {
		n, err := s.scanInto(ctx, c, read)
		total.Add(int64(n))
		return err
	}
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		// The keys share one slot, but which master holds it is the
		// cluster's business (and changes on failover): ask them all.
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return scan(ctx, node)
		})
	} else {
		err = scan(ctx, s.client)
	}
	if err == nil {
		var n int
		n, err = s.readSplitShards(ctx, read)
		total.Add(int64(n))
	}
	if err != nil {
		return fmt.Errorf("load denylist: %w", err)
	}
	if s.afterScan != nil {
		s.afterScan()
	}
	// Healthy and no longer loading before loaded, so that Health never
	// shows a loaded copy on a link still reported down.
	s.setUp()
	s.loading.Store(false)
	s.mu.Lock()
	s.lastID, s.applied = from, added
	s.loaded = true
	s.loadSource = "keys"
	s.mu.Unlock()
	took := s.now().Sub(start)
	s.log.Info("denylist loaded from redis", "source", "keys", "entries", total.Load(), "took", took.String())
	s.dl.releaseLoadMemory()
	if s.hooks.Reloaded != nil {
		s.hooks.Reloaded(int(total.Load()), took)
	}
	// Not confirmed current yet, as after a snapshot: SCAN returns every
	// key that existed throughout the scan, so the copy holds what was
	// committed before the load began, but not what was committed while
	// it ran. Requests held for the load must not be released before
	// read has applied the feed from the load's position to its end,
	// which confirms the moment that read was issued.
	return nil
}

// scanInto reads every entry key of one server: SCAN pages go to a few
// readers that fetch their values (MGET) while the scan goes on, so the
// round trips overlap.
func (s *RedisStore) scanInto(ctx context.Context, c redis.UniversalClient, read *shardsRead) (int, error) {
	const readers, page = 3, 1000
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		n     atomic.Int64
		wg    sync.WaitGroup
		once  sync.Once
		first error
		pages = make(chan []string, readers)
	)
	fail := func(err error) {
		once.Do(func() { first = err; cancel() })
	}
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range pages {
				if ctx.Err() != nil {
					continue // drain
				}
				got, err := s.readEntries(ctx, c, batch, read)
				n.Add(int64(got))
				if err != nil {
					fail(err)
				}
			}
		}()
	}
	// Entry keys of both layouts: "e:" bucket keys, and the one-key
	// entries "t:" ... "g:" (subject and global entries, and plain
	// entries an earlier version wrote).
	pattern := globEscape(s.base) + "[tjsuge]:*"
	iter := c.Scan(ctx, 0, pattern, page).Iterator()
	batch := make([]string, 0, page)
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == page {
			pages <- batch
			batch = make([]string, 0, page)
		}
	}
	if len(batch) > 0 {
		pages <- batch
	}
	close(pages)
	wg.Wait()
	if err := iter.Err(); err != nil && first == nil {
		return int(n.Load()), fmt.Errorf("scan entries: %w", err)
	}
	return int(n.Load()), first
}

// readEntries reads the entries of a page of keys and applies them: one
// entry per one-key entry (MGET), the fields of every bucket shard
// (HGETALL, pipelined), each noted in read; bucket states are skipped.
func (s *RedisStore) readEntries(ctx context.Context, c redis.UniversalClient, keys []string, read *shardsRead) (int, error) {
	var single, shards []string
	for _, k := range keys {
		rest := k[len(s.base):]
		if rest[0] != 'e' {
			single = append(single, k)
		} else if isShardKey(rest) {
			shards = append(shards, k)
		}
	}
	var entries []Entry
	if len(single) > 0 {
		vals, err := c.MGet(ctx, single...).Result()
		if err != nil {
			return 0, fmt.Errorf("read entries: %w", err)
		}
		entries = make([]Entry, 0, len(single))
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue // expired between SCAN and MGET
			}
			k, err := ParseKey(single[i][len(s.base)+2:])
			if err != nil {
				s.log.Warn("skipping unreadable denylist key", "key", single[i], "error", err)
				continue
			}
			e, err := ParseEntry(k, str)
			if err != nil {
				s.log.Warn("skipping unreadable denylist entry", "key", single[i], "error", err)
				continue
			}
			entries = append(entries, e)
		}
	}
	s.dl.Apply(entries...)
	s.loadRead.Add(int64(len(entries)))
	n := len(entries)
	// The shards go a few at a time, each few applied before the next
	// is read: a page of shards holds tens of thousands of entries, and
	// as maps of strings they would cost the heap several times what
	// the tables hold for them.
	const shardsPerRead = 16
	for len(shards) > 0 {
		group := shards[:min(len(shards), shardsPerRead)]
		shards = shards[len(group):]
		pipe := c.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(group))
		for i, k := range group {
			cmds[i] = pipe.HGetAll(ctx, k)
		}
		_, _ = pipe.Exec(ctx) // errors are read per command
		entries = entries[:0]
		for i, cmd := range cmds {
			fields, err := cmd.Result()
			if err != nil {
				return n, fmt.Errorf("read denylist shard %s: %w", group[i], err)
			}
			read.add(group[i])
			for f, v := range fields {
				if f == "" {
					continue // a placeholder that keeps a shard from vanishing
				}
				e, err := shardEntry(f, v)
				if err != nil {
					s.log.Warn("skipping unreadable denylist entry", "key", group[i], "error", err)
					continue
				}
				entries = append(entries, e)
			}
		}
		s.dl.Apply(entries...)
		s.loadRead.Add(int64(len(entries)))
		n += len(entries)
	}
	return n, nil
}

// shardsRead is the set of bucket shards a full load has read.
type shardsRead struct {
	mu    sync.Mutex
	names map[string]struct{}
}

func (r *shardsRead) add(name string) {
	r.mu.Lock()
	r.names[name] = struct{}{}
	r.mu.Unlock()
}

func (r *shardsRead) has(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.names[name]
	return ok
}

// readSplitShards reads the shards a SCAN may have missed. A split moves
// entries into a shard it creates, which SCAN need not return: an entry
// committed before the load, in a shard the scan read before a split
// moved it, is then only in the split's new shard, a direct child of the
// shard read (shard a splits into a+2^j for each level j from the bit
// length of a up). So after the scan, the children that the buckets'
// states name of every shard read are read, then the children of those,
// and so on. A child created after its parent was read holds nothing the
// parent did not show; including them (the states are read after the
// parents) only reads more. The rounds end when the shards read in one
// round have no children: a shard created by a split is split again only
// once the bucket's split pointer has gone round a whole level.
func (s *RedisStore) readSplitShards(ctx context.Context, read *shardsRead) (int, error) {
	total := 0
	read.mu.Lock()
	prev := make([]string, 0, len(read.names))
	for name := range read.names {
		prev = append(prev, name)
	}
	read.mu.Unlock()
	for range 1000 {
		if len(prev) == 0 {
			return total, nil
		}
		buckets, err := s.bucketStates(ctx)
		if err != nil {
			return total, err
		}
		shards := make(map[int64]int64, len(buckets)) // bucket -> shards in use
		for _, b := range buckets {
			shards[b.bucket] = (int64(1) << b.level) + b.split
		}
		var missing []string
		for _, name := range prev {
			bs, as, _ := strings.Cut(strings.TrimPrefix(name[len(s.base):], "e:"), ":")
			b, err1 := strconv.ParseInt(bs, 10, 64)
			a, err2 := strconv.ParseInt(as, 10, 64)
			if err1 != nil || err2 != nil || a < 0 {
				continue
			}
			n := shards[b]
			for j := bits.Len64(uint64(a)); j < 62 && a+int64(1)<<j < n; j++ {
				child := s.base + "e:" + bs + ":" + strconv.FormatInt(a+int64(1)<<j, 10)
				if !read.has(child) {
					missing = append(missing, child)
				}
			}
		}
		prev = missing
		for len(missing) > 0 {
			page := missing[:min(len(missing), 1000)]
			missing = missing[len(page):]
			n, err := s.readEntries(ctx, s.client, page, read)
			total += n
			if err != nil {
				return total, err
			}
		}
	}
	return total, errors.New("read denylist shards: buckets kept splitting")
}

// bucketState is a bucket's state as commitScript keeps it.
type bucketState struct {
	bucket, level, split, fields int64
}

// bucketStates reads the state of every live bucket.
func (s *RedisStore) bucketStates(ctx context.Context) ([]bucketState, error) {
	buckets, err := s.client.ZRangeByScore(ctx, s.base+"ebuckets",
		&redis.ZRangeBy{Min: "(" + strconv.FormatInt(s.now().Unix(), 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("read denylist buckets: %w", err)
	}
	if len(buckets) == 0 {
		return nil, nil
	}
	names := make([]string, len(buckets))
	for i, b := range buckets {
		names[i] = s.base + "e:" + b
	}
	vals, err := s.client.MGet(ctx, names...).Result()
	if err != nil {
		return nil, fmt.Errorf("read denylist bucket states: %w", err)
	}
	out := make([]bucketState, 0, len(vals))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // expired since
		}
		st := bucketState{}
		b, err := strconv.ParseInt(buckets[i], 10, 64)
		if _, serr := fmt.Sscanf(str, "%d %d %d", &st.level, &st.split, &st.fields); err != nil || serr != nil ||
			st.level > 40 || st.split < 0 || st.split >= 1<<st.level {
			// Its shards are still read by the scan.
			s.log.Warn("skipping unreadable denylist bucket state", "bucket", buckets[i], "state", str)
			continue
		}
		st.bucket = b
		out = append(out, st)
	}
	return out, nil
}

// isShardKey reports whether a key (after the base) names a bucket shard,
// "e:<bucket>:<shard>", rather than a bucket state "e:<bucket>".
func isShardKey(rest string) bool {
	b, a, ok := strings.Cut(strings.TrimPrefix(rest, "e:"), ":")
	return ok && isDigits(b) && isDigits(a)
}

func isDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// shardEntry decodes one field of a bucket shard: the key's 16 raw bytes
// and its expiry.
func shardEntry(field, value string) (Entry, error) {
	var k Key
	if len(field) != len(k) {
		return Entry{}, fmt.Errorf("shard field of %d bytes, want %d", len(field), len(k))
	}
	copy(k[:], field)
	if !k.Kind().Valid() || k.Kind().hasCutoff() {
		return Entry{}, fmt.Errorf("shard field %s: not a plain entry", k)
	}
	return ParseEntry(k, value)
}

// expectEntries estimates how many entries a full load reads, from above:
// the fields counted in each live bucket's state, and every other key of
// the database as one entry (one-key entries, and others an upper
// estimate counts too).
//
// It also returns the entries the buckets count alone, what the tables
// are sized for before the load (the other keys need not be entries).
func (s *RedisStore) expectEntries(ctx context.Context) (expect, inBuckets int64) {
	keys := s.dbSize(ctx)
	buckets, err := s.bucketStates(ctx)
	if err != nil {
		return keys, 0
	}
	var fields, bucketKeys int64
	for _, b := range buckets {
		fields += b.fields
		bucketKeys += 1 + (1 << b.level) + b.split
	}
	return fields + max(keys-bucketKeys, 0), fields
}

// dbSize counts the keys of the database (of every master in Cluster
// mode), an upper estimate of the entries a full load reads; zero when
// Redis will not say.
func (s *RedisStore) dbSize(ctx context.Context) int64 {
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		var total atomic.Int64
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			n, err := node.DBSize(ctx).Result()
			total.Add(n)
			return err
		})
		return total.Load()
	}
	n, _ := s.client.DBSize(ctx).Result()
	return n
}

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

func idMillis(id string) (int64, bool) {
	ms, _, ok := strings.Cut(id, "-")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(ms, 10, 64)
	return v, err == nil
}

// globEscape quotes the characters SCAN MATCH treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

var _ Store = (*RedisStore)(nil)
