package revocation

import (
	"context"
	"sync"
	"time"
)

// MemoryStore is the embedded store: the denylist lives in this process
// only. It needs nothing else to run, and it loses every revocation when
// the process exits; replicas do not share it.
type MemoryStore struct {
	dl  *Denylist
	now func() time.Time

	mu       sync.Mutex            // serializes commits, like a Lua script in Redis
	seen     map[Key]map[Key]int64 // subject -> session -> expiry (unix s)
	once     map[string]int64      // Remember: key -> expiry (unix ms)
	claims   map[string]claim      // Claim: key -> holder
	stop     context.CancelFunc
	finished chan struct{}
}

// MemoryOptions configures a MemoryStore.
type MemoryOptions struct {
	// Now is the clock; time.Now when nil. Tests inject their own.
	Now func() time.Time
	// SweepEvery is how often expired entries are dropped; one minute when
	// zero. Negative disables the background sweep.
	SweepEvery time.Duration
}

// NewMemoryStore returns an empty embedded store. Close stops its sweeper.
func NewMemoryStore(opts MemoryOptions) *MemoryStore {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SweepEvery == 0 {
		opts.SweepEvery = time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &MemoryStore{
		dl:       NewDenylist(),
		now:      opts.Now,
		seen:     make(map[Key]map[Key]int64),
		once:     make(map[string]int64),
		claims:   make(map[string]claim),
		stop:     cancel,
		finished: make(chan struct{}),
	}
	if opts.SweepEvery > 0 {
		go m.sweepLoop(ctx, opts.SweepEvery)
	} else {
		close(m.finished)
	}
	return m
}

// Denylist implements Store.
func (m *MemoryStore) Denylist() *Denylist { return m.dl }

// Commit implements Store. It follows the same rules as the Redis script.
func (m *MemoryStore) Commit(ctx context.Context, c Change) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	res := planChange(c, now, m.dl, m.seenSessions)
	m.dl.Apply(res.Entries...)
	return res, nil
}

// seenSessions returns the live sessions noted for a subject.
func (m *MemoryStore) seenSessions(subject Key, nowSec int64) []Key {
	var out []Key
	for s, exp := range m.seen[subject] {
		if exp > nowSec {
			out = append(out, s)
		}
	}
	return out
}

// planChange computes what a change writes, given the current state. It
// is the reference for the Redis script in lua.go, which must agree with
// it; the store tests run the same cases against both.
func planChange(c Change, now time.Time, dl *Denylist, seen func(subject Key, nowSec int64) []Key) Result {
	nowSec, nowMs := now.Unix(), MillisOf(now)
	res := Result{Existed: make([]bool, len(c.Puts)), Time: nowMs}
	for i, p := range c.Puts {
		exp := p.Expires
		if exp == 0 {
			exp = expiresIn(nowSec, p.TTL)
		}
		_, res.Existed[i] = dl.Lookup(p.Key, nowSec)
		if int64(exp) <= nowSec {
			continue // already expired: nothing left to revoke
		}
		res.Entries = append(res.Entries, Entry{Key: p.Key, Expires: exp})
	}
	// A subject cut merges with the one before it, in store order: an
	// earlier cut of the same change counts as before it.
	planned := make(map[Key]Entry)
	for _, s := range c.cuts() {
		exp := expiresIn(nowSec, s.TTL)
		cutoff := nowMs
		if s.At > 0 && s.At < nowMs {
			cutoff = s.At
		}
		e := Entry{Key: s.Subject, Expires: exp, Cutoff: cutoff, Keep: s.Keep}
		if old, ok := planned[s.Subject]; ok {
			e = cutSubject(old, e)
		} else if old, ok := dl.Lookup(s.Subject, nowSec); ok {
			e = cutSubject(old, e)
		}
		planned[s.Subject] = e
		res.Entries = append(res.Entries, e)
		for _, sess := range seen(s.Subject, nowSec) {
			if sess != s.Keep {
				res.Entries = append(res.Entries, Entry{Key: sess, Expires: exp})
			}
		}
	}
	if g := c.Global; g != nil {
		e := Entry{Key: GlobalKey(), Expires: expiresIn(nowSec, g.TTL), Cutoff: g.Before}
		if e.Cutoff == 0 {
			e.Cutoff = nowMs
		}
		if old, ok := dl.Lookup(e.Key, nowSec); ok {
			e = mergeGlobal(old, e)
		}
		res.Entries = append(res.Entries, e)
	}
	return res
}

// NoteSession implements Store.
func (m *MemoryStore) NoteSession(subject, session Key, ttl time.Duration) {
	exp := m.now().Unix() + ttlSeconds(ttl)
	m.mu.Lock()
	defer m.mu.Unlock()
	set := m.seen[subject]
	if set == nil {
		set = make(map[Key]int64)
		m.seen[subject] = set
	}
	if exp > set[session] {
		set[session] = exp
	}
}

// SessionSeen implements Store.
func (m *MemoryStore) SessionSeen(_ context.Context, subject, session Key) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen[subject][session] > m.now().Unix(), nil
}

// Remember implements Store.
func (m *MemoryStore) Remember(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	now := m.now().UnixMilli()
	m.mu.Lock()
	defer m.mu.Unlock()
	if exp, ok := m.once[key]; ok && exp > now {
		return false, nil
	}
	m.once[key] = now + ttl.Milliseconds()
	return true, nil
}

// claim is the holder of a Claim key.
type claim struct {
	value string
	exp   int64 // unix ms
}

// Claim implements Store.
func (m *MemoryStore) Claim(ctx context.Context, key, value string, ttl time.Duration) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	now := m.now().UnixMilli()
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.claims[key]; ok && c.exp > now {
		return c.value, nil
	}
	m.claims[key] = claim{value: value, exp: now + ttl.Milliseconds()}
	return value, nil
}

// Health implements Store: the embedded store is its own truth, always
// loaded and current.
func (m *MemoryStore) Health() Health {
	return Health{Store: StoreEmbedded, Loaded: true, Connected: true, Confirmed: m.now()}
}

// Staleness implements Store: never stale.
func (m *MemoryStore) Staleness(time.Time) time.Duration { return 0 }

// Close implements Store.
func (m *MemoryStore) Close() error {
	m.stop()
	<-m.finished
	return nil
}

func (m *MemoryStore) sweepLoop(ctx context.Context, d time.Duration) {
	defer close(m.finished)
	every(ctx, d, m.sweep)
}

// sweep drops what has expired: denylist entries, noted sessions and
// remembered one-time values.
func (m *MemoryStore) sweep() {
	now := m.now()
	m.dl.Sweep(now.Unix())
	m.mu.Lock()
	defer m.mu.Unlock()
	for subj, set := range m.seen {
		for s, exp := range set {
			if exp <= now.Unix() {
				delete(set, s)
			}
		}
		if len(set) == 0 {
			delete(m.seen, subj)
		}
	}
	for k, exp := range m.once {
		if exp <= now.UnixMilli() {
			delete(m.once, k)
		}
	}
	for k, c := range m.claims {
		if c.exp <= now.UnixMilli() {
			delete(m.claims, k)
		}
	}
}

var _ Store = (*MemoryStore)(nil)
