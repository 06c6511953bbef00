package revocation

import (
	"encoding/binary"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"
)

// The compact denylist (RedisOptions.Compact, compact_denylist): plain
// entries are held as 4-byte fingerprints instead of whole 16-byte keys,
// so that a hundred million revocations fit in about 420 MB instead of
// about 3 GB. A clean credential is still answered locally, with no
// network; a fingerprint that matches may be another key's, so a match is
// confirmed exactly in Redis (confirmScript) before it blocks, and the
// verdict is cached.
//
// Each shard of the denylist keeps, beside its exact table (plainTable,
// which takes every new entry first: the delta), a static part: the
// fingerprints of the older entries in 2^compactBucketBits buckets, one
// sorted run of 32-bit values per bucket, the buckets one after the
// other in one block mapped outside the Go heap, with their offsets in
// another. A value is, from the top bit down:
//
//	17 bits  fingerprint: bits 22 to 38 of the key (bits 0-7 chose the
//	         shard and bits 8-21 the bucket, so 39 bits of the key count)
//	 2 bits  the kind (token, jti, session): a key matches its own kind
//	13 bits  the expiry, rounded up to compactUnit, modulo 2^13
//
// When the delta outgrows a share of the static part, the two are merged
// into a new static part (mergeCompact): its entries are rewritten once
// per doubling or so, and the exact tables stay small. An entry whose
// expiry is further away than the expiry field can tell apart
// (compactHorizon, 42 days) stays exact in the delta.
//
// An expiry rounded up means an entry is held up to compactUnit past its
// own expiry: a match then is not confirmed, as for any other key. Two
// keys of one fingerprint share one value (the later expiry): a merge
// cannot tell them from one key revoked twice.
const (
	compactBucketBits = 14
	compactBuckets    = 1 << compactBucketBits
	compactCodeBits   = 13
	compactCodeMask   = 1<<compactCodeBits - 1
	compactKindShift  = compactCodeBits
	compactFPShift    = compactCodeBits + 2
	// compactUnit is the expiry field's unit, in seconds.
	compactUnit = 900
	// compactHorizon: an entry whose rounded expiry is this many units
	// or more ahead stays exact. A live value is 1 to compactHorizon-1
	// units ahead of now (modulo 2^13); one that reads as further is
	// expired, so a static part must be swept before its oldest expired
	// value comes round again, 42 days on: every sweep sweeps it.
	compactHorizon = 1 << (compactCodeBits - 1)
	// compactCacheMax bounds each shard's cache of confirmed verdicts.
	compactCacheMax = 4096
)

// compactPart is the static part of one shard.
type compactPart struct {
	off    []uint32 // compactBuckets+1 offsets into vals; nil while empty
	vals   []uint32
	offMem *region
	valMem *region
	// blocked caches confirmed matches (their exact expiry), clean the
	// matches Redis said are another key's. clean is emptied whenever
	// the static part changes; blocked holds until each entry expires.
	blocked map[Key]uint32
	clean   map[Key]struct{}
}

// compactState is the denylist's compact mode; nil when it is off.
type compactState struct {
	// confirm asks the store whether k is live with an expiry in
	// (from, to] (unix seconds), and returns its expiry. A store that
	// takes the copy over (RedisOptions.CarryFrom) replaces it.
	confirm atomic.Pointer[ConfirmFunc]
	// loading: a full load is under way (Reserve to releaseLoadMemory):
	// merge less often, once at its end.
	loading atomic.Bool
	// The counters that CompactStats reports.
	matches, confirmed, falseMatches, unconfirmed, static atomic.Int64
}

// CompactStats counts what the compact denylist did.
type CompactStats struct {
	// Static is how many fingerprints the static parts hold.
	Static int64
	// Matches is how many checks matched a fingerprint and asked Redis
	// (cached verdicts are not counted); Confirmed of them were revoked,
	// FalseMatches were not, and Unconfirmed got no answer (blocked).
	Matches, Confirmed, FalseMatches, Unconfirmed int64
}

// ConfirmFunc says whether the plain entry k is live with an expiry in
// (from, to] (unix seconds), and its expiry; an error when it cannot tell.
type ConfirmFunc func(k Key, from, to int64) (exp int64, found bool, err error)

// SetCompact turns the compact mode on, with confirm to confirm a match.
// The first call must come before the denylist holds entries or is
// shared; a later one replaces confirm.
func (d *Denylist) SetCompact(confirm ConfirmFunc) {
	if d.compact == nil {
		d.compact = &compactState{}
	}
	d.compact.confirm.Store(&confirm)
}

// Compact reports whether the compact mode is on.
func (d *Denylist) Compact() bool { return d.compact != nil }

// CompactStats returns the compact mode's counters (zero when it is off).
func (d *Denylist) CompactStats() CompactStats {
	c := d.compact
	if c == nil {
		return CompactStats{}
	}
	return CompactStats{Static: c.static.Load(), Matches: c.matches.Load(), Confirmed: c.confirmed.Load(),
		FalseMatches: c.falseMatches.Load(), Unconfirmed: c.unconfirmed.Load()}
}

// compactSlot returns the bucket of k and its value without the expiry.
func compactSlot(k *Key) (uint32, uint32) {
	x := binary.BigEndian.Uint64(k[1:9])
	bucket := uint32(x >> (64 - compactBucketBits))
	fp := uint32(x>>(64-compactBucketBits-17)) & (1<<17 - 1)
	return bucket, fp<<compactFPShift | compactKind(k.Kind())<<compactKindShift
}

func compactKind(k Kind) uint32 {
	switch k {
	case KindJTI:
		return 1
	case KindSession:
		return 2
	}
	return 0
}

var compactKinds = [3]Kind{KindToken, KindJTI, KindSession}

// compactCode returns the expiry field of exp, and whether exp is near
// enough to be held in it at now.
func compactCode(exp, now int64) (uint32, bool) {
	c := (exp + compactUnit - 1) / compactUnit
	ahead := c - now/compactUnit
	return uint32(c) & compactCodeMask, ahead >= 1 && ahead < compactHorizon
}

// codeAhead returns how many units ahead of now a value's expiry is, 0
// when it has expired.
func codeAhead(v uint32, now int64) int64 {
	a := int64((v - uint32(now/compactUnit)) & compactCodeMask)
	if a >= compactHorizon {
		return 0
	}
	return a
}

// get returns the match for k in the static part: the latest unit its
// expiry may end in (unix units), 0 when there is none.
func (p *compactPart) get(k *Key, now int64) int64 {
	if p.off == nil {
		return 0
	}
	b, tag := compactSlot(k)
	run := p.vals[p.off[b]:p.off[b+1]]
	i, _ := slices.BinarySearch(run, tag)
	var best int64
	for ; i < len(run) && run[i]&^compactCodeMask == tag; i++ {
		best = max(best, codeAhead(run[i], now))
	}
	if best == 0 {
		return 0
	}
	return now/compactUnit + best
}

func (p *compactPart) bytes() int64 { return int64(cap(p.off)+cap(p.vals)) * 4 }

func (p *compactPart) free() {
	if p.offMem != nil {
		p.offMem.free()
	}
	if p.valMem != nil {
		p.valMem.free()
	}
	p.off, p.vals, p.offMem, p.valMem = nil, nil, nil, nil
}

// allocUint32s returns n zeroed 32-bit words (see allocWords).
func allocUint32s(n int) ([]uint32, *region) {
	w, r := allocWords((n + 1) / 2)
	if len(w) == 0 {
		return []uint32{}, r
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(&w[0])), n), r
}

// compactDue reports whether the shard's delta should be merged.
func (d *Denylist) compactDue(s *shard) bool {
	n := int(d.compact.static.Load()) / numShards
	share := n/32 + 512
	if d.compact.loading.Load() {
		share = n/4 + 4096
	}
	return s.plain.live > share
}

// mergeCompact moves the shard's delta into a new static part, dropping
// expired values; entries too far ahead stay in the delta. The shard's
// lock must be held.
func (d *Denylist) mergeCompact(s *shard, now int64) {
	p := &s.cp
	before := s.plain.bytes() + p.bytes()
	type moved struct{ b, v uint32 }
	add := make([]moved, 0, s.plain.live)
	var far []Entry
	s.plain.each(func(lo, hi uint64, exp uint32) {
		k := wordsKey(lo, hi)
		code, near := compactCode(int64(exp), now)
		if int64(exp) <= now {
			return
		}
		if !near {
			far = append(far, Entry{Key: k, Expires: UnixSeconds(exp)})
			return
		}
		b, tag := compactSlot(&k)
		add = append(add, moved{b, tag | code})
	})
	slices.SortFunc(add, func(x, y moved) int {
		if x.b != y.b {
			return int(x.b) - int(y.b)
		}
		switch {
		case x.v < y.v:
			return -1
		case x.v > y.v:
			return 1
		}
		return 0
	})
	oldN := len(p.vals)
	vals, valMem := allocUint32s(oldN + len(add))
	off, offMem := allocUint32s(compactBuckets + 1)
	n, j := 0, 0
	var run []uint32
	for b := uint32(0); b < compactBuckets; b++ {
		off[b] = uint32(n)
		run = run[:0]
		if p.off != nil {
			for _, v := range p.vals[p.off[b]:p.off[b+1]] {
				if codeAhead(v, now) > 0 {
					run = append(run, v)
				}
			}
		}
		for ; j < len(add) && add[j].b == b; j++ {
			run = append(run, add[j].v)
		}
		slices.Sort(run)
		// One value per fingerprint and kind: the later expiry.
		for _, v := range run {
			if n > int(off[b]) && vals[n-1]&^compactCodeMask == v&^compactCodeMask {
				if codeAhead(v, now) > codeAhead(vals[n-1], now) {
					vals[n-1] = v
				}
				continue
			}
			vals[n] = v
			n++
		}
	}
	off[compactBuckets] = uint32(n)
	if n == 0 {
		// Nothing static: no offsets either (64 KiB a shard).
		if valMem != nil {
			valMem.free()
		}
		if offMem != nil {
			offMem.free()
		}
		vals, valMem, off, offMem = nil, nil, nil, nil
	} else if n < len(vals)*7/8 {
		// Duplicates or expired values took room: copy to a tight block.
		tight, tightMem := allocUint32s(n)
		copy(tight, vals[:n])
		if valMem != nil {
			valMem.free()
		}
		vals, valMem = tight, tightMem
	} else {
		vals = vals[:n:n]
	}
	d.compact.static.Add(int64(n - oldN))
	p.free()
	p.off, p.vals, p.offMem, p.valMem = off, vals, offMem, valMem
	p.clean = nil

	// The delta keeps only the far entries. Its count by kind moved to
	// the static part, whose values were all counted when they came in,
	// except for those merged away as duplicates or expired, which the
	// counts lose here, by kind.
	seed := s.plain.seed
	s.plain.free()
	s.plain = newPlainTable(uint64(len(far)+6)/7, seed)
	for _, e := range far {
		s.plain.put(&e.Key, uint32(e.Expires))
	}
	d.recountStatic(oldN, len(add), n)
	d.mem.tables.Add(s.plain.bytes() + p.bytes() - before)
}

// recountStatic corrects the counts by kind after a merge of add values
// into old ones gave n: the values lost (duplicates, expired) are taken
// off the counts in proportion to what each kind holds. The counts are
// the status's and the budget's estimate, not a guarantee.
func (d *Denylist) recountStatic(old, add, n int) {
	lost := int64(old + add - n)
	if lost <= 0 {
		return
	}
	var total int64
	for _, k := range compactKinds {
		total += d.counts[k].Load()
	}
	if total <= 0 {
		return
	}
	for _, k := range compactKinds {
		c := d.counts[k].Load()
		d.counts[k].Add(-min(c, lost*c/total+1))
	}
}

// sweepCompact drops the static part's expired values, in place.
func (d *Denylist) sweepCompact(s *shard, now int64) int {
	p := &s.cp
	for k, exp := range p.blocked {
		if int64(exp) <= now {
			delete(p.blocked, k)
		}
	}
	if p.off == nil {
		return 0
	}
	n := 0
	for b := 0; b < compactBuckets; b++ {
		from, to := p.off[b], p.off[b+1]
		p.off[b] = uint32(n)
		for _, v := range p.vals[from:to] {
			if codeAhead(v, now) > 0 {
				p.vals[n] = v
				n++
			}
		}
	}
	p.off[compactBuckets] = uint32(n)
	removed := len(p.vals) - n
	p.vals = p.vals[:n]
	if removed > 0 {
		d.compact.static.Add(-int64(removed))
		d.recountStatic(removed+n, 0, n)
		if n < cap(p.vals)/2 {
			before := p.bytes()
			tight, mem := allocUint32s(n)
			copy(tight, p.vals)
			if p.valMem != nil {
				p.valMem.free()
			}
			p.vals, p.valMem = tight, mem
			d.mem.tables.Add(p.bytes() - before)
		}
	}
	return removed
}

// compactHas is the compact half of has: whether k matches in the static
// part and, if so, whether Redis confirms it (or a cached verdict says).
// A match Redis does not answer for blocks: the rule documented with
// compact_denylist.
func (d *Denylist) compactHas(s *shard, k *Key, now int64) bool {
	s.mu.RLock()
	return d.compactHasLocked(s, k, now)
}

// compactHasLocked is compactHas with the shard's read lock held by the
// caller: it releases it (before asking Redis, if it must).
func (d *Denylist) compactHasLocked(s *shard, k *Key, now int64) bool {
	unit := s.cp.get(k, now)
	if unit == 0 {
		s.mu.RUnlock()
		return false
	}
	exp, isBlocked := s.cp.blocked[*k]
	_, isClean := s.cp.clean[*k]
	s.mu.RUnlock()
	switch {
	case isBlocked:
		return int64(exp) > now
	case isClean:
		return false
	}
	c := d.compact
	c.matches.Add(1)
	got, found, err := (*c.confirm.Load())(*k, (unit-1)*compactUnit, unit*compactUnit)
	if err != nil {
		c.unconfirmed.Add(1)
		return true
	}
	s.mu.Lock()
	if found && got > now {
		c.confirmed.Add(1)
		if s.cp.blocked == nil || len(s.cp.blocked) >= compactCacheMax {
			s.cp.blocked = make(map[Key]uint32)
		}
		s.cp.blocked[*k] = clampExpiry(UnixSeconds(got))
	} else {
		c.falseMatches.Add(1)
		if s.cp.clean == nil || len(s.cp.clean) >= compactCacheMax {
			s.cp.clean = make(map[Key]struct{})
		}
		s.cp.clean[*k] = struct{}{}
	}
	s.mu.Unlock()
	return found && got > now
}

// compactLookup is Lookup's compact half: a confirmed match, with its
// exact expiry.
func (d *Denylist) compactLookup(k Key, now int64) (Entry, bool) {
	s := d.shard(k)
	if !d.compactHas(s, &k, now) {
		return Entry{}, false
	}
	s.mu.RLock()
	exp, ok := s.cp.blocked[k]
	if !ok {
		// Blocked without an answer from Redis: the match's bound.
		exp = clampExpiry(UnixSeconds(s.cp.get(&k, now) * compactUnit))
	}
	s.mu.RUnlock()
	return Entry{Key: k, Expires: UnixSeconds(exp)}, true
}

// compactCovers reports whether the static part holds e already: the
// same fingerprint, kind and expiry unit, as when the change feed brings
// back a revocation already merged. A match of it is then confirmed in
// the right buckets, and it need not take room in the delta. A cached
// false match of its key is forgotten. The shard's lock must be held.
func (d *Denylist) compactCovers(s *shard, e *Entry) bool {
	p := &s.cp
	if p.off == nil {
		return false
	}
	code, near := compactCode(int64(e.Expires), time.Now().Unix())
	if !near {
		return false
	}
	b, tag := compactSlot(&e.Key)
	if _, ok := slices.BinarySearch(p.vals[p.off[b]:p.off[b+1]], tag|code); !ok {
		return false
	}
	delete(p.clean, e.Key)
	return true
}

// compactApplied runs after Apply put an entry in the shard's delta
// (the shard's lock held): merge when the delta is due.
func (d *Denylist) compactApplied(s *shard) {
	if d.compactDue(s) {
		d.mergeCompact(s, time.Now().Unix())
	}
}

// compactLoaded ends a full load: every shard's delta is merged. A shard
// with an empty delta (all of them after a compact snapshot) is left as
// it is: a merge would only rewrite its runs (the sweep drops what
// expired).
func (d *Denylist) compactLoaded() {
	d.compact.loading.Store(false)
	now := time.Now().Unix()
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.Lock()
		if s.plain.live > 0 {
			d.mergeCompact(s, now)
		}
		s.mu.Unlock()
	}
}

// liveLocally reports whether a live plain entry under k is known
// without asking Redis: Lookup, except that in the compact mode a
// fingerprint's match counts only once confirmed (a commit does not wait
// for a confirmation to say whether its put existed: its script tells).
func (d *Denylist) liveLocally(k Key, now int64) bool {
	if d.compact == nil {
		_, ok := d.Lookup(k, now)
		return ok
	}
	s := d.shard(k)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if exp, ok := s.plain.get(&k); ok && int64(exp) > now {
		return true
	}
	exp, ok := s.cp.blocked[k]
	return ok && int64(exp) > now
}
