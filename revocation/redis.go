package revocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
//	<prefix>{dl}:<t|j|s|u>:<key>   one entry, value as Entry.Value, EXAT its expiry
//	<prefix>{dl}:feed               the change feed, a stream trimmed to FeedMaxLen
//	<prefix>{dl}:seen:<subject>     sessions in use, for subject revocations
//	<prefix>{dl}:once:<name>        one-time values (DPoP proof jtis)
//
// A replica loads every entry at start, then follows the feed with a
// blocking XREAD. After an outage it resumes from the last feed entry it
// applied, or reloads in full (merging, never forgetting) when the feed
// was trimmed past that entry or recreated.
type RedisStore struct {
	client redis.UniversalClient
	base   string
	feed   string
	maxLen int64
	block  time.Duration
	dl     *Denylist
	log    *slog.Logger
	now    func() time.Time
	hooks  Hooks

	mu        sync.Mutex
	lastID    string // last feed entry applied ("" before the first load)
	applied   int64  // feed entries added up to lastID (XINFO entries-added)
	loaded    bool
	state     int // linkUnknown, linkUp or linkDown
	lastErr   string
	confirmed atomic.Int64 // unix nanoseconds; read on every request

	notes    chan note
	dropped  atomic.Int64
	stop     context.CancelFunc
	finished sync.WaitGroup
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
	// FeedMaxLen bounds the change feed (approximate, XADD MAXLEN ~).
	// Default 100000. A replica that falls further behind reloads in full.
	FeedMaxLen int64
	// Block is how long one XREAD waits for news; it is also the longest
	// quiet interval between two confirmations that the local copy is
	// current. Default one second.
	Block time.Duration
	// InitialLoad bounds the synchronous first load; if Redis does not
	// answer in time the store starts anyway, not yet loaded, and keeps
	// trying in the background. Default five seconds.
	InitialLoad time.Duration
	// SweepEvery is how often expired local entries are dropped. Default
	// one minute.
	SweepEvery time.Duration
	// Logger receives transitions and reloads; slog.Default when nil.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now   func() time.Time
	Hooks Hooks
}

// KeyBase returns the common start of every key for a prefix.
func KeyBase(prefix string) string {
	if strings.Contains(prefix, "{") && strings.Contains(prefix, "}") {
		return prefix
	}
	return prefix + "{dl}:"
}

// NewRedisStore opens a store on a Redis client, loads the denylist (or
// gives up waiting after InitialLoad, and goes on trying in the
// background), and starts following the change feed.
func NewRedisStore(opts RedisOptions) *RedisStore {
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "revocation:"
	}
	if opts.FeedMaxLen <= 0 {
		opts.FeedMaxLen = 100000
	}
	if opts.Block <= 0 {
		opts.Block = time.Second
	}
	if opts.InitialLoad <= 0 {
		opts.InitialLoad = 5 * time.Second
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
		client: opts.Client,
		base:   base,
		feed:   base + "feed",
		maxLen: opts.FeedMaxLen,
		block:  opts.Block,
		dl:     NewDenylist(),
		log:    opts.Logger,
		now:    opts.Now,
		hooks:  opts.Hooks,
		notes:  make(chan note, 4096),
		stop:   cancel,
	}

	loadCtx, cancelLoad := context.WithTimeout(ctx, opts.InitialLoad)
	err := s.catchUp(loadCtx)
	cancelLoad()
	if err != nil {
		s.setDown("initial load", err)
	} else {
		s.setUp()
	}

	s.finished.Add(3)
	go s.follow(ctx)
	go s.writeNotes(ctx)
	go s.sweep(ctx, opts.SweepEvery)
	return s
}

// Denylist implements Store.
func (s *RedisStore) Denylist() *Denylist { return s.dl }

func (s *RedisStore) entryKey(k Key) string {
	return s.base + string(rune(k.Kind())) + ":" + k.String()
}

// Commit implements Store: one script call, then the local copy.
func (s *RedisStore) Commit(ctx context.Context, c Change) (Result, error) {
	keys := []string{s.feed}
	args := make([]any, 0, 4+4*len(c.Puts)+4)
	args = append(args, s.base, s.maxLen, len(c.Puts))
	for _, p := range c.Puts {
		if p.Key.Kind() == KindSubject {
			return Result{}, fmt.Errorf("commit: put of a subject key; use SubjectCut")
		}
		keys = append(keys, s.entryKey(p.Key))
		args = append(args, string(rune(p.Key.Kind())), p.Key.String(), p.Expires, ttlSeconds(p.TTL))
	}
	if sc := c.Subject; sc != nil {
		keep := "-"
		if !sc.Keep.IsZero() {
			keep = sc.Keep.String()
		}
		keys = append(keys, s.entryKey(sc.Subject), s.base+"seen:"+sc.Subject.String())
		args = append(args, "1", sc.Subject.String(), keep, ttlSeconds(sc.TTL))
	} else {
		args = append(args, "0")
	}

	reply, err := commitScript.Run(ctx, s.client, keys, args...).StringSlice()
	if err != nil {
		s.opError("commit", err)
		return Result{}, fmt.Errorf("commit revocation: %w: %w", ErrUnavailable, err)
	}
	if len(reply) != 4 || len(reply[2]) != len(c.Puts) {
		return Result{}, fmt.Errorf("commit revocation: unexpected reply of %d parts", len(reply))
	}
	res := Result{Existed: make([]bool, len(c.Puts))}
	if res.Time, err = strconv.ParseInt(reply[1], 10, 64); err != nil {
		return Result{}, fmt.Errorf("commit revocation: server time %q: %w", reply[1], err)
	}
	for i := range c.Puts {
		res.Existed[i] = reply[2][i] == '1'
	}
	if res.Entries, err = ParseRecords(reply[3]); err != nil {
		return Result{}, fmt.Errorf("commit revocation: %w", err)
	}
	s.dl.Apply(res.Entries...)
	return res, nil
}

// NoteSession implements Store: queued, written in batches by writeNotes.
func (s *RedisStore) NoteSession(subject, session Key, ttl time.Duration) {
	select {
	case s.notes <- note{subject, session, ttl}:
	default:
		// The queue is full only when Redis is down or far behind; a
		// missed note weakens only the stop of future tokens of a session
		// nobody revoked yet (the subject cutoff still stops old ones).
		s.dropped.Add(1)
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
		pipe := s.client.Pipeline()
		for n := range batch {
			k := s.base + "seen:" + n.subject.String()
			pipe.SAdd(ctx, k, n.session.String())
			pipe.Expire(ctx, k, time.Duration(ttlSeconds(n.ttl))*time.Second)
		}
		opCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := pipe.Exec(opCtx)
		cancel()
		if err != nil && ctx.Err() == nil {
			s.opError("note sessions", err)
		}
		clear(batch)
	}
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

// Health implements Store.
func (s *RedisStore) Health() Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Health{
		Store:     "redis",
		Loaded:    s.loaded,
		Connected: s.state == linkUp,
		Confirmed: s.confirmedAt(),
		LastError: s.lastErr,
	}
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
	if n == 0 {
		return 1<<63 - 1 // never confirmed
	}
	return now.Sub(time.Unix(0, n))
}

// DroppedNotes returns how many session notes were dropped because the
// queue was full.
func (s *RedisStore) DroppedNotes() int64 { return s.dropped.Load() }

// Close implements Store.
func (s *RedisStore) Close() error {
	s.stop()
	s.finished.Wait()
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("close redis client: %w", err)
	}
	return nil
}

// follow keeps the local copy current: catch up, then read the feed,
// and after any error start over with a growing pause.
func (s *RedisStore) follow(ctx context.Context) {
	defer s.finished.Done()
	const minPause, maxPause = 50 * time.Millisecond, 2 * time.Second
	pause := minPause
	for ctx.Err() == nil {
		err := s.catchUp(ctx)
		if err == nil {
			s.setUp()
			pause = minPause
			err = s.read(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		s.setDown("follow feed", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, maxPause)
	}
}

// read applies feed entries as they come, until an error.
func (s *RedisStore) read(ctx context.Context) error {
	block := time.Duration(-1) // the first read does not wait: it confirms at once
	for {
		s.mu.Lock()
		from, applied := s.lastID, s.applied
		s.mu.Unlock()
		issued := s.now()
		streams, err := s.client.XRead(ctx, &redis.XReadArgs{
			Streams: []string{s.feed, from},
			Count:   1000,
			Block:   block,
		}).Result()
		block = s.block
		if errors.Is(err, redis.Nil) {
			s.confirm(issued)
			continue
		}
		if err != nil {
			return fmt.Errorf("read change feed: %w", err)
		}
		var msgs []redis.XMessage
		for _, st := range streams {
			msgs = append(msgs, st.Messages...)
		}
		if len(msgs) == 1000 {
			// Far enough behind that the feed may have been trimmed
			// under us: make sure nothing between from and the batch
			// is gone, else reload.
			info, exists, err := s.feedInfo(ctx)
			if err != nil {
				return err
			}
			if gapSince(from, applied, info, exists) {
				s.log.Warn("fell behind past the change feed's trimming; reloading in full", "last_applied", from)
				if err := s.fullLoad(ctx); err != nil {
					return err
				}
				continue
			}
		}
		s.applyMessages(msgs)
		s.confirm(issued)
	}
}

func (s *RedisStore) applyMessages(msgs []redis.XMessage) {
	now := s.now()
	for _, m := range msgs {
		raw, _ := m.Values["e"].(string)
		entries, err := ParseRecords(raw)
		if err != nil {
			// A record this version cannot read is skipped, loudly; the
			// entry keys still hold it for the next full load.
			s.log.Error("skipping unreadable change feed entry", "id", m.ID, "error", err)
		}
		s.dl.Apply(entries...)
		if s.hooks.RemoteApplied != nil && len(entries) > 0 {
			if ms, ok := idMillis(m.ID); ok {
				s.hooks.RemoteApplied(len(entries), now.Sub(time.UnixMilli(ms)))
			}
		}
		s.mu.Lock()
		s.lastID = m.ID
		s.applied++
		s.mu.Unlock()
	}
}

// catchUp makes the local copy whole after a start or an outage: a full
// load when there is no usable position in the feed, else nothing (read
// resumes from the position).
func (s *RedisStore) catchUp(ctx context.Context) error {
	s.mu.Lock()
	from, applied, loaded := s.lastID, s.applied, s.loaded
	s.mu.Unlock()
	if !loaded {
		return s.fullLoad(ctx)
	}
	info, exists, err := s.feedInfo(ctx)
	if err != nil {
		return err
	}
	if gapSince(from, applied, info, exists) {
		s.log.Warn("change feed no longer holds every entry since the last one applied; reloading in full", "last_applied", from)
		return s.fullLoad(ctx)
	}
	return nil
}

// gapSince reports whether entries after id may be missing from the
// feed, given that applied entries had been added to it up to id.
// Trimming (XADD MAXLEN) removes the oldest entries; it does not move
// max-deleted-entry-id, so the count of entries added is what tells.
func gapSince(id string, applied int64, info *redis.XInfoStream, exists bool) bool {
	if !exists {
		return id != "0-0" || applied > 0 // the feed was deleted (flush, data loss)
	}
	if compareIDs(info.LastGeneratedID, id) < 0 {
		return true // the feed was recreated: its ids went backwards
	}
	positionGone := info.Length == 0 || compareIDs(info.FirstEntry.ID, id) > 0
	if info.EntriesAdded > 0 { // Redis 7+
		if info.EntriesAdded < applied {
			return true // recreated, and already grown past our position
		}
		// Every entry after ours must still be there.
		return positionGone && info.Length < info.EntriesAdded-applied
	}
	// Older Redis does not count; be conservative.
	return positionGone && id != "0-0"
}

func (s *RedisStore) feedInfo(ctx context.Context) (*redis.XInfoStream, bool, error) {
	info, err := s.client.XInfoStream(ctx, s.feed).Result()
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
	info, exists, err := s.feedInfo(ctx)
	if err != nil {
		return err
	}
	from, added := "0-0", int64(0)
	if exists {
		from, added = info.LastGeneratedID, info.EntriesAdded
	}
	var total atomic.Int64
	scan := func(ctx context.Context, c redis.UniversalClient) error {
		n, err := s.scanInto(ctx, c)
		total.Add(int64(n))
		return err
	}
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return scan(ctx, node)
		})
	} else {
		err = scan(ctx, s.client)
	}
	if err != nil {
		return fmt.Errorf("load denylist: %w", err)
	}
	s.mu.Lock()
	s.lastID, s.applied = from, added
	s.loaded = true
	s.mu.Unlock()
	// Every revocation committed before the feed position was read is in
	// the keys just scanned (a commit writes its keys and its feed entry
	// in one script), so the copy is current as of start.
	s.confirm(start)
	took := s.now().Sub(start)
	s.log.Info("denylist loaded from redis", "entries", total.Load(), "took", took.String())
	if s.hooks.Reloaded != nil {
		s.hooks.Reloaded(int(total.Load()), took)
	}
	return nil
}

func (s *RedisStore) scanInto(ctx context.Context, c redis.UniversalClient) (int, error) {
	pattern := globEscape(s.base) + "[tjsu]:*"
	n := 0
	iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
	batch := make([]string, 0, 1000)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		vals, err := c.MGet(ctx, batch...).Result()
		if err != nil {
			return fmt.Errorf("read entries: %w", err)
		}
		entries := make([]Entry, 0, len(batch))
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue // expired between SCAN and MGET
			}
			k, err := ParseKey(batch[i][len(s.base)+2:])
			if err != nil {
				s.log.Warn("skipping unreadable denylist key", "key", batch[i], "error", err)
				continue
			}
			e, err := ParseEntry(k, str)
			if err != nil {
				s.log.Warn("skipping unreadable denylist entry", "key", batch[i], "error", err)
				continue
			}
			entries = append(entries, e)
		}
		s.dl.Apply(entries...)
		n += len(entries)
		batch = batch[:0]
		return nil
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return n, fmt.Errorf("scan entries: %w", err)
	}
	return n, flush()
}

func (s *RedisStore) sweep(ctx context.Context, every time.Duration) {
	defer s.finished.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.dl.Sweep(s.now().Unix())
		}
	}
}

func (s *RedisStore) confirm(at time.Time) {
	n := at.UnixNano()
	for {
		old := s.confirmed.Load()
		if n <= old || s.confirmed.CompareAndSwap(old, n) {
			return
		}
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

// compareIDs orders two stream ids ("ms-seq").
func compareIDs(a, b string) int {
	am, as := splitID(a)
	bm, bs := splitID(b)
	switch {
	case am != bm:
		if am < bm {
			return -1
		}
		return 1
	case as != bs:
		if as < bs {
			return -1
		}
		return 1
	}
	return 0
}

func splitID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	a, _ := strconv.ParseUint(ms, 10, 64)
	b, _ := strconv.ParseUint(seq, 10, 64)
	return a, b
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
