package revocation

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"
)

// tokenTable is one cache shard's tokens: open addressing with linear
// probing over a power-of-two array of slots, each holding a token's
// cache key (the SHA-256 of its whole string) and what is known of it.
//
// Why not a Go map: on the request path the table is cold, since
// everything a proxied request does between two guard checks evicts it
// from the CPU's caches, and each cache line read costs a miss. A Go map
// of a few dozen entries reads its header, its directory, a table and a
// group's control word before the slot; this table reads the slot the
// key points at (and the next, at most three quarters full). In a CPU
// profile of the proxy under load the map's lookup was a quarter of the
// guard's own time. A slot also carries what a repeat request needs of
// the token (tokenSlot), so that such a request reads no more than the
// slot: reading the TokenInfo was the next largest single cost.
//
// A deletion shifts the entries after it back into place (no tombstones),
// so a lookup never walks past an empty slot.
type tokenTable struct {
	slots []tokenSlot
	n     int
}

type tokenSlot struct {
	key  [32]byte
	info *TokenInfo // nil: the slot is empty
	// Copies of info's until, verifyTried and Verified, which never
	// change once info is in the table.
	until                 int64
	verifyTried, verified bool
	// cleanIn is the *epoch of the denylist in which info was last found
	// clean by Inspector.Check, as info.cleanIn is for CheckInfo. It is
	// stored atomically under the shard's read lock, and moves with the
	// slot only under its write lock.
	cleanIn unsafe.Pointer
}

// clean reports whether the slot's token was found clean in epoch e.
func (s *tokenSlot) clean(e *epoch) bool {
	return atomic.LoadPointer(&s.cleanIn) == unsafe.Pointer(e)
}

// setClean records that the slot's token was found clean in epoch e.
func (s *tokenSlot) setClean(e *epoch) {
	atomic.StorePointer(&s.cleanIn, unsafe.Pointer(e))
}

// home is where key's probe starts. The shard is chosen by key[0]; these
// bits are independent of it.
func (t *tokenTable) home(key *[32]byte) int {
	return int(binary.LittleEndian.Uint64(key[8:16]) & uint64(len(t.slots)-1))
}

// find returns the slot of key, or nil.
func (t *tokenTable) find(key *[32]byte) *tokenSlot {
	if t.n == 0 {
		return nil
	}
	mask := len(t.slots) - 1
	for i := t.home(key); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.info == nil {
			return nil
		}
		if s.key == *key {
			return s
		}
	}
}

// get returns what is remembered under key, or nil.
func (t *tokenTable) get(key *[32]byte) *TokenInfo {
	if s := t.find(key); s != nil {
		return s.info
	}
	return nil
}

// put remembers info under key, in place of what was. limit is the most
// entries the table will hold (the caller evicts first): it grows at
// three quarters full, except to a size larger than limit needs at seven
// eighths full, so that a full cache costs about what the Go map it
// replaced did (36.9 MB of heap for the default 100,000 tokens, against
// 34.8 MB; growing on at three quarters took it to 43.6 MB), and always
// has an empty slot to end a probe.
func (t *tokenTable) put(key *[32]byte, info *TokenInfo, limit int) {
	slot := tokenSlot{key: *key, info: info, until: info.until, verifyTried: info.verifyTried, verified: info.Verified}
	if s := t.find(key); s != nil {
		*s = slot
		return
	}
	if (t.n+1)*4 > len(t.slots)*3 && (limit*8 > len(t.slots)*7 || t.n+1 > limit) {
		t.grow()
	}
	t.place(slot)
}

// grow doubles the table (from eight slots), placing every entry again.
func (t *tokenTable) grow() {
	old := t.slots
	t.slots = make([]tokenSlot, max(8, 2*len(old)))
	t.n = 0
	for i := range old {
		if old[i].info != nil {
			t.place(old[i])
		}
	}
}

// place puts a slot whose key is not in the table, as it is.
func (t *tokenTable) place(s tokenSlot) {
	mask := len(t.slots) - 1
	i := t.home(&s.key)
	for t.slots[i].info != nil {
		i = (i + 1) & mask
	}
	t.slots[i] = s
	t.n++
}

// delete forgets key, if it is there.
func (t *tokenTable) delete(key *[32]byte) {
	if t.n == 0 {
		return
	}
	mask := len(t.slots) - 1
	i := t.home(key)
	for ; ; i = (i + 1) & mask {
		if t.slots[i].info == nil {
			return
		}
		if t.slots[i].key == *key {
			break
		}
	}
	// Slot i is now free. Each entry of the run after it moves back into
	// it unless its home lies cyclically in (i, j], where a lookup from
	// its home would not pass i.
	for j := (i + 1) & mask; t.slots[j].info != nil; j = (j + 1) & mask {
		h := t.home(&t.slots[j].key)
		stays := i < h && h <= j
		if j < i {
			stays = i < h || h <= j
		}
		if !stays {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = tokenSlot{}
	t.n--
}

// evict makes room for one more entry: it looks at up to evictLook
// entries from the slot that fresh (the key about to be added, which is
// a hash) points at, forgets those expired at now (by the slots' own
// copies of their expiry: no entry is read), and the first of them
// when none is. That spreads evictions over the table at a bounded cost,
// keeping no order, as the map's random iteration did.
func (t *tokenTable) evict(fresh *[32]byte, now int64) {
	var seen [evictLook][32]byte
	looked := 0
	removed := false
	var expired [evictLook]bool
	mask := len(t.slots) - 1
	start := int(binary.LittleEndian.Uint64(fresh[16:24]) & uint64(mask))
	for k := 0; k < len(t.slots) && looked < evictLook; k++ {
		s := &t.slots[(start+k)&mask]
		if s.info == nil {
			continue
		}
		seen[looked] = s.key
		expired[looked] = s.until <= now
		removed = removed || expired[looked]
		looked++
	}
	for k := 0; k < looked; k++ {
		if expired[k] || !removed && k == 0 {
			t.delete(&seen[k])
		}
	}
}

const evictLook = 16
