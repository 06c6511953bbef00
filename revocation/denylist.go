package revocation

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// Reason says why a credential is blocked.
type Reason uint8

// The reasons a credential can be blocked for.
const (
	NotBlocked Reason = iota
	// BlockedToken: that exact token was revoked.
	BlockedToken
	// BlockedJTI: its jti was revoked.
	BlockedJTI
	// BlockedSession: its session was revoked.
	BlockedSession
	// BlockedSubject: its subject was revoked for tokens issued at or
	// before a moment this token was issued at or before.
	BlockedSubject
	// BlockedGlobal: every subject was revoked (the global cutoff) for
	// tokens issued at or before a moment this token was issued at or
	// before.
	BlockedGlobal
)

// String names the reason as logs and metrics spell it.
func (r Reason) String() string {
	switch r {
	case NotBlocked:
		return "none"
	case BlockedToken:
		return "token"
	case BlockedJTI:
		return "jti"
	case BlockedSession:
		return "session"
	case BlockedSubject:
		return "subject"
	case BlockedGlobal:
		return "global"
	}
	return "unknown"
}

// Identity is what the denylist is asked about: the identities one
// credential carries, each as a key (zero when the credential lacks it).
type Identity struct {
	Token   Key
	JTI     Key
	Session Key
	// IssuerSession is the session as its issuer names it
	// (IssuerSessionKey), for revocations that know no subject.
	IssuerSession Key
	Subject       Key
	// Raw is the key of the exact string of a JWS (RawHash), under which
	// a JWS that did not verify is revoked; zero for an opaque token,
	// whose Token key already is its exact string's.
	Raw Key
	// Alt and AltSubjects are the token, jti, session and subject keys of
	// other readings of an ambiguous token (see Claims); usually empty.
	Alt         []Key
	AltSubjects []Key
	// UnkeyedSession is the unkeyed form of Session while a keyed Hasher
	// still checks unkeyed entries (see Hasher.Identity): the session an
	// unkeyed "others" revocation kept.
	UnkeyedSession Key
	// Issued is when the credential was issued, in unix milliseconds:
	// auth_time when present (so a refreshed token of an old login counts
	// from the login), else iat. Zero means unknown, and a subject
	// revocation then blocks the credential, since nothing proves it was
	// issued after the cutoff.
	Issued UnixMillis
}

// numShards spreads the denylist over independently locked maps so that
// readers on different cores rarely touch the same lock, and a sweep or a
// large load holds any one lock only briefly.
const numShards = 256

// Denylist is the in-memory copy of the revocations that matter now. A
// check is a handful of hash table lookups under read locks: no I/O, no
// allocation, flat in cost from zero to tens of millions of entries.
//
// Plain entries (token, jti, session) cost one fixed-size record of 16
// bytes of key and 4 bytes of expiry in a pointer-free table (see
// plainTable), 24 to 30 bytes each with the table's free room. Subject
// entries are rare and live in a map of their own.
type Denylist struct {
	shards [numShards]shard
	counts [256]atomic.Int64 // by Kind byte

	// global is the global cutoff entry, nil when there is none: one
	// atomic load per check. globalMu serializes its writers.
	global   atomic.Pointer[Entry]
	globalMu sync.Mutex

	// epoch is replaced after every Apply: the only way an entry appears.
	// Time only ever makes entries expire, so a credential found clean
	// in one epoch is clean for as long as the epoch lasts (CheckInfo).
	epoch atomic.Pointer[epoch]

	// applied, when set, is told of every batch of entries Apply records,
	// after they are visible to Check, and with nil of a compact
	// snapshot's values (SetApplied).
	applied atomic.Pointer[func([]Entry)]

	// mem is the memory budget and what the tables hold (budget.go).
	mem budgetState

	// compact is the compact mode (filter.go), nil when it is off.
	compact *compactState
}

// epoch marks one state of a Denylist's entries. It is never empty:
// distinct zero-size allocations may share one address.
type epoch struct{ _ byte }

type shard struct {
	mu       sync.RWMutex
	plain    plainTable // expiry, unix seconds
	subjects map[Key]Entry
	cp       compactPart // the compact mode's static part (filter.go)
	_        [64]byte    // keep neighbouring locks off one cache line
}

// NewDenylist returns an empty denylist.
func NewDenylist() *Denylist {
	d := &Denylist{}
	seed := [2]uint64{rand.Uint64(), rand.Uint64()}
	for i := range d.shards {
		d.shards[i].plain = newPlainTable(1, seed)
		d.mem.tables.Add(d.shards[i].plain.bytes())
		d.shards[i].subjects = make(map[Key]Entry)
	}
	d.epoch.Store(new(epoch))
	return d
}

func (d *Denylist) shard(k Key) *shard { return &d.shards[k[0]] }

// clampExpiry keeps expiries inside what a uint32 of unix seconds holds
// (until 2106); an entry past that is as good as permanent.
func clampExpiry(exp UnixSeconds) uint32 {
	switch {
	case exp <= 0:
		return 0
	case exp >= 1<<32-1:
		return 1<<32 - 1
	}
	return uint32(exp)
}

// Apply records entries, merging with what is there: a plain entry keeps
// the later expiry, a subject entry merges as mergeSubject says. Applying
// the same entry twice, or entries in any order, gives the same result, so
// a replica may apply its own revocation at once and again when the change
// feed brings it back.
func (d *Denylist) Apply(entries ...Entry) {
	mayGrow := d.mayGrow // one closure per call, not per entry
	for _, e := range entries {
		if e.Kind() == KindGlobal {
			d.applyGlobal(e)
			continue
		}
		s := d.shard(e.Key)
		s.mu.Lock()
		if e.Kind() == KindSubject {
			old, ok := s.subjects[e.Key]
			if ok {
				e = mergeSubject(old, e)
			} else {
				d.counts[KindSubject].Add(1)
			}
			s.subjects[e.Key] = e
		} else if d.compact == nil || !d.compactCovers(s, &e) {
			before := s.plain.bytes()
			added, held := s.plain.putWithin(&e.Key, clampExpiry(e.Expires), mayGrow)
			if added {
				d.counts[e.Kind()].Add(1)
			} else if !held {
				d.drop(int64(e.Expires))
			}
			d.mem.tables.Add(s.plain.bytes() - before)
			if added && d.compact != nil {
				d.compactApplied(s)
			}
		}
		s.mu.Unlock()
	}
	if len(entries) > 0 {
		// After the entries, so that a check that saw the old epoch
		// also ran before them or saw them.
		d.epoch.Store(new(epoch))
		if f := d.applied.Load(); f != nil {
			(*f)(entries)
		}
	}
}

// SetApplied makes Apply call f with each batch of entries it records,
// once they are visible to Check: every entry reaches the denylist
// through Apply (a local commit, the change feed, a load, a snapshot), so
// f hears of every revocation, wherever it was made. f runs on the
// applying goroutine (a commit, the feed reader) and must not block.
// nil removes it. Entries recorded that cannot be named by key (a
// compact snapshot's values) are told as nil: any credential may be
// blocked now.
func (d *Denylist) SetApplied(f func([]Entry)) {
	if f == nil {
		d.applied.Store(nil)
		return
	}
	d.applied.Store(&f)
}

// appliedUnnamed tells SetApplied's function, with nil, that entries it
// cannot be given by key were recorded.
func (d *Denylist) appliedUnnamed() {
	if f := d.applied.Load(); f != nil {
		(*f)(nil)
	}
}

// applyGlobal merges the global cutoff entry (mergeGlobal).
func (d *Denylist) applyGlobal(e Entry) {
	d.globalMu.Lock()
	defer d.globalMu.Unlock()
	e.Keep, e.KeepFloor = Key{}, 0
	if old := d.global.Load(); old != nil {
		e = mergeGlobal(*old, e)
	} else {
		d.counts[KindGlobal].Add(1)
	}
	d.global.Store(&e)
}

// Lookup returns the live entry stored under k, if any.
func (d *Denylist) Lookup(k Key, now int64) (Entry, bool) {
	if k.Kind() == KindGlobal {
		g := d.global.Load()
		if g == nil || !g.liveAt(now) || k != g.Key {
			return Entry{}, false
		}
		return *g, true
	}
	s := d.shard(k)
	s.mu.RLock()
	if k.Kind() == KindSubject {
		e, ok := s.subjects[k]
		s.mu.RUnlock()
		if !ok || !e.liveAt(now) {
			return Entry{}, false
		}
		return e, true
	}
	exp, ok := s.plain.get(&k)
	s.mu.RUnlock()
	if !ok || int64(exp) <= now {
		if d.compact != nil {
			return d.compactLookup(k, now)
		}
		return Entry{}, false
	}
	return Entry{Key: k, Expires: UnixSeconds(exp)}, true
}

// has reports whether a live plain entry exists under k.
func (d *Denylist) has(k Key, now int64) bool {
	s := d.shard(k)
	s.mu.RLock()
	exp, ok := s.plain.get(&k)
	if d.compact != nil && (!ok || int64(exp) <= now) {
		return d.compactHasLocked(s, &k, now) // it releases the lock
	}
	s.mu.RUnlock()
	return ok && int64(exp) > now
}

// Check says whether a credential is revoked, and why. now is in unix
// seconds (entry expiry); the subject cutoff compares id.Issued, which is
// in milliseconds.
func (d *Denylist) Check(id *Identity, now int64) Reason {
	if !id.Token.IsZero() && d.has(id.Token, now) {
		return BlockedToken
	}
	if !id.Raw.IsZero() && d.has(id.Raw, now) {
		return BlockedToken
	}
	if !id.JTI.IsZero() && d.has(id.JTI, now) {
		return BlockedJTI
	}
	if !id.Session.IsZero() && d.has(id.Session, now) {
		return BlockedSession
	}
	if !id.IssuerSession.IsZero() && d.has(id.IssuerSession, now) {
		return BlockedSession
	}
	if !id.Subject.IsZero() && d.subjectBlocks(id.Subject, id, now) {
		return BlockedSubject
	}
	// The global cutoff applies to every token of a subject; a token
	// naming none (an opaque credential) has no issue time to compare.
	if !id.Subject.IsZero() || len(id.AltSubjects) > 0 {
		if g := d.global.Load(); g != nil && g.liveAt(now) && id.Issued <= g.Cutoff {
			return BlockedGlobal
		}
	}
	if len(id.Alt) > 0 || len(id.AltSubjects) > 0 {
		return d.checkAlternates(id, now)
	}
	return NotBlocked
}

// CheckInfo is Check for a Credential, the one way the guard, the dry run
// and the Revoker ask whether a token is revoked. The credential
// remembers the epoch its identity was last found clean in: until an
// entry is added, it is clean still, and the check costs two atomic
// loads instead of a lookup for each of its keys. Only a clean verdict
// is remembered: a blocked one may end as entries expire.
func (d *Denylist) CheckInfo(info *Credential, now int64) Reason {
	return d.checkInfoIn(info, now, d.epoch.Load())
}

// checkInfoIn is CheckInfo with the epoch e read by the caller before.
func (d *Denylist) checkInfoIn(info *Credential, now int64, e *epoch) Reason {
	if info.cleanIn.Load() == e {
		return NotBlocked
	}
	r := d.Check(&info.ID, now)
	if r == NotBlocked {
		info.cleanIn.Store(e)
	}
	return r
}

// checkAlternates checks the other readings of an ambiguous token.
func (d *Denylist) checkAlternates(id *Identity, now int64) Reason {
	for _, k := range id.Alt {
		if d.has(k, now) {
			switch k.Kind() {
			case KindToken:
				return BlockedToken
			case KindJTI:
				return BlockedJTI
			}
			return BlockedSession
		}
	}
	for _, k := range id.AltSubjects {
		if d.subjectBlocks(k, id, now) {
			return BlockedSubject
		}
	}
	return NotBlocked
}

// subjectBlocks reports whether the live subject entry under k, if any,
// blocks the credential.
func (d *Denylist) subjectBlocks(k Key, id *Identity, now int64) bool {
	s := d.shard(k)
	s.mu.RLock()
	e, ok := s.subjects[k]
	s.mu.RUnlock()
	return ok && e.liveAt(now) && subjectBlocks(&e, id)
}

// subjectBlocks applies a subject entry to a credential of that subject.
func subjectBlocks(e *Entry, id *Identity) bool {
	if id.Issued > e.Cutoff {
		return false // issued after the revocation
	}
	kept := !e.Keep.IsZero() && (id.Session == e.Keep || id.UnkeyedSession == e.Keep) && id.Issued > e.KeepFloor
	return !kept
}

// Reserve sizes the tables for about n plain entries in all, so that a
// load of n entries does not rebuild every table a dozen times on the
// way. It never shrinks a table.
func (d *Denylist) Reserve(n int64) {
	if d.compact != nil {
		d.compact.loading.Store(true) // merged at the load's end instead
		return
	}
	n = min(n, d.tableRoom())
	per := int(n/numShards + n/numShards/16 + 1) // the keys are hashes: spread evenly, give or take a few percent
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.Lock()
		before := s.plain.bytes()
		s.plain.reserve(per)
		d.mem.tables.Add(s.plain.bytes() - before)
		s.mu.Unlock()
	}
}

// release frees the tables' memory at once (benchmarks); the denylist
// must not be used after.
func (d *Denylist) release() {
	for i := range d.shards {
		d.shards[i].plain.free()
		d.shards[i].cp.free()
	}
	d.mem.tables.Store(0)
}

// Bytes returns the memory the plain entries' tables hold.
func (d *Denylist) Bytes() int64 {
	var n int64
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.RLock()
		n += s.plain.bytes() + s.cp.bytes()
		s.mu.RUnlock()
	}
	return n
}

// Len returns the number of entries of one kind, including expired ones
// not yet swept.
func (d *Denylist) Len(k Kind) int64 { return d.counts[k].Load() }

// Total returns the number of entries of every kind.
func (d *Denylist) Total() int64 {
	var n int64
	for _, k := range Kinds {
		n += d.Len(k)
	}
	return n
}

// Sweep removes entries expired at now (unix seconds) and returns how many
// it removed. It locks one shard at a time.
func (d *Denylist) Sweep(now int64) int {
	removed := 0
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.Lock()
		before := s.plain.bytes()
		s.plain.sweep(now, func(k Key) {
			d.counts[k.Kind()].Add(-1)
			removed++
		})
		d.mem.tables.Add(s.plain.bytes() - before)
		if d.compact != nil {
			removed += d.sweepCompact(s, now)
		}
		for k, e := range s.subjects {
			if !e.liveAt(now) {
				delete(s.subjects, k)
				d.counts[KindSubject].Add(-1)
				removed++
			}
		}
		s.mu.Unlock()
	}
	d.globalMu.Lock()
	if g := d.global.Load(); g != nil && !g.liveAt(now) {
		d.global.Store(nil)
		d.counts[KindGlobal].Add(-1)
		removed++
	}
	d.globalMu.Unlock()
	d.setGoLimit()
	return removed
}

// Entries calls f for every live entry until f returns false. It is meant
// for tests and diagnostics, not for the request path.
func (d *Denylist) Entries(now int64, f func(Entry) bool) {
	if g := d.global.Load(); g != nil && g.liveAt(now) && !f(*g) {
		return
	}
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.RLock()
		var batch []Entry
		s.plain.each(func(lo, hi uint64, exp uint32) {
			if int64(exp) > now {
				batch = append(batch, Entry{Key: wordsKey(lo, hi), Expires: UnixSeconds(exp)})
			}
		})
		for _, e := range s.subjects {
			if e.liveAt(now) {
				batch = append(batch, e)
			}
		}
		s.mu.RUnlock()
		for _, e := range batch {
			if !f(e) {
				return
			}
		}
	}
}

// plainRecordSize is the size of one plain entry in a snapshot: the key,
// then the expiry as a little-endian uint32.
const plainRecordSize = 20

// exportPlain writes every live plain entry as a fixed-size record into
// chunks of at most chunkBytes, handing each chunk to flush, which must
// not keep it: one buffer is reused, so that writing a snapshot of
// millions of entries does not leave megabytes of garbage behind. It
// locks one shard at a time.
func (d *Denylist) exportPlain(now int64, chunkBytes int, flush func([]byte) error) error {
	chunkBytes = max(chunkBytes/plainRecordSize, 1) * plainRecordSize
	buf := make([]byte, 0, chunkBytes)
	var err error
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.RLock()
		s.plain.each(func(lo, hi uint64, exp uint32) {
			if int64(exp) <= now || err != nil {
				return
			}
			buf = binary.LittleEndian.AppendUint64(buf, lo)
			buf = binary.LittleEndian.AppendUint64(buf, hi)
			buf = binary.LittleEndian.AppendUint32(buf, exp)
			if len(buf) == chunkBytes {
				err = flush(buf)
				buf = buf[:0]
			}
		})
		s.mu.RUnlock()
		if err != nil {
			return err
		}
	}
	if len(buf) > 0 {
		return flush(buf)
	}
	return nil
}

// importPlain applies the records of one snapshot chunk, skipping those
// expired at now, and returns how many it applied.
func (d *Denylist) importPlain(chunk []byte, now int64) (int, error) {
	if len(chunk)%plainRecordSize != 0 {
		return 0, fmt.Errorf("snapshot chunk of %d bytes: not a whole number of %d-byte records", len(chunk), plainRecordSize)
	}
	batch := make([]Entry, 0, 1024)
	n := 0
	for off := 0; off < len(chunk); off += plainRecordSize {
		var k Key
		copy(k[:], chunk[off:off+16])
		exp := int64(binary.LittleEndian.Uint32(chunk[off+16:]))
		if exp <= now {
			continue
		}
		if kind := k.Kind(); !kind.Valid() || kind.hasCutoff() {
			return n, fmt.Errorf("snapshot record %d: key %s is not a plain entry", off/plainRecordSize, k)
		}
		batch = append(batch, Entry{Key: k, Expires: UnixSeconds(exp)})
		if len(batch) == cap(batch) {
			d.Apply(batch...)
			n += len(batch)
			batch = batch[:0]
		}
	}
	d.Apply(batch...)
	return n + len(batch), nil
}

// cutoffEntries returns the live subject entries and the global entry.
func (d *Denylist) cutoffEntries(now int64) []Entry {
	var out []Entry
	if g := d.global.Load(); g != nil && g.liveAt(now) {
		out = append(out, *g)
	}
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.RLock()
		for _, e := range s.subjects {
			if e.liveAt(now) {
				out = append(out, e)
			}
		}
		s.mu.RUnlock()
	}
	return out
}
