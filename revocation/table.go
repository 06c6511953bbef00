package revocation

import (
	"encoding/binary"
	"math/bits"
)

// plainTable holds the plain (token, jti, session) entries of one shard of
// the denylist: an open-addressing hash table of fixed-size records in
// one flat block of words, with no pointer for the garbage collector to
// scan. Large blocks are mapped outside the Go heap (see allocWords), so
// that they cost their size in resident memory and no more: no heap
// headroom kept for the collector, no old block lingering after growth.
//
// The layout follows the "Swiss table" design that Go's own maps use:
// groups of eight slots, each group one control word (a byte per slot:
// empty, deleted, or seven bits of the key's hash) followed by the slots'
// keys (two words each) and expiries (half a word each): 168 bytes per
// eight entries. A lookup reads one control word per group and compares
// keys only where a hash byte matches; it probes the next group only when
// a group is full. Tables grow by a quarter (not by double) at seven
// eighths full, so they stay between 70% and 88% full: 24 to 30 bytes
// per entry. A sweep that leaves one fourth or less shrinks it to 7/12.
//
// The hash is keyed by a random seed per denylist: keys derive from
// tokens anyone can make up, and a fixed hash would let someone who
// revokes many made-up tokens pile them into one probe sequence.
//
// A plainTable is not safe for concurrent use; its shard's lock guards it.
type plainTable struct {
	w      []uint64 // groups × groupWords
	groups uint64
	live   int // full slots
	used   int // full and deleted slots
	seed   [2]uint64
	mem    *region // nil when w lives on the Go heap
}

const (
	groupSlots = 8
	// groupWords: control word, two words of key per slot, then one
	// 32-bit expiry per slot, two to a word.
	groupWords  = 1 + 2*groupSlots + groupSlots/2
	expiryWord  = 1 + 2*groupSlots
	ctrlEmpty   = 0x80
	ctrlDeleted = 0xFE
	allEmpty    = 0x8080808080808080
	lsbs        = 0x0101010101010101
	msbs        = 0x8080808080808080
)

func newPlainTable(groups uint64, seed [2]uint64) plainTable {
	groups = max(groups, 1)
	t := plainTable{groups: groups, seed: seed}
	t.w, t.mem = allocWords(int(groups * groupWords))
	for g := uint64(0); g < groups; g++ {
		t.w[g*groupWords] = allEmpty
	}
	return t
}

// free releases the table's block; the table is empty and unusable after.
func (t *plainTable) free() {
	if t.mem != nil {
		t.mem.free()
	}
	*t = plainTable{}
}

// maxUsed is how many slots may be full or deleted before the table
// grows or is rebuilt: seven eighths.
func (t *plainTable) maxUsed() int { return int(t.groups) * 7 }

func keyWords(k *Key) (uint64, uint64) {
	return binary.LittleEndian.Uint64(k[:8]), binary.LittleEndian.Uint64(k[8:])
}

// hash mixes a key with the seed as wyhash mixes 16 bytes: two folded
// 128-bit multiplications, so that keys differing in a few bits (or in
// one word only) spread over every group.
func (t *plainTable) hash(lo, hi uint64) uint64 {
	return mum(mum(lo^t.seed[0]^0xa0761d6478bd642f, hi^t.seed[1]^0xe7037ed1a0b428db)^0x8ebc6af09c88c6e3, t.seed[0]^0x589965cc75374cc3)
}

func mum(a, b uint64) uint64 {
	h, l := bits.Mul64(a, b)
	return h ^ l
}

// matchTag returns the control bytes equal to tag, as their top bits (with
// rare false positives next to a true match, which the key comparison
// weeds out).
func matchTag(ctrl, tag uint64) uint64 {
	x := ctrl ^ (lsbs * tag)
	return (x - lsbs) &^ x & msbs
}

// matchEmpty returns the empty control bytes (not the deleted ones).
func matchEmpty(ctrl uint64) uint64 { return ctrl &^ (ctrl << 6) & msbs }

// find returns the word index of the group holding k and its slot.
func (t *plainTable) find(lo, hi uint64) (uint64, int, bool) {
	h := t.hash(lo, hi)
	tag := h & 0x7f
	g, _ := bits.Mul64(h, t.groups)
	for range t.groups {
		base := g * groupWords
		ctrl := t.w[base]
		for m := matchTag(ctrl, tag); m != 0; m &= m - 1 {
			j := bits.TrailingZeros64(m) >> 3
			if ctrl>>(8*j)&0x80 == 0 && t.w[base+1+2*uint64(j)] == lo && t.w[base+2+2*uint64(j)] == hi {
				return base, j, true
			}
		}
		if matchEmpty(ctrl) != 0 {
			return 0, 0, false
		}
		if g++; g == t.groups {
			g = 0
		}
	}
	return 0, 0, false
}

func (t *plainTable) expiry(base uint64, j int) uint32 {
	return uint32(t.w[base+expiryWord+uint64(j/2)] >> (32 * (j & 1)))
}

func (t *plainTable) setExpiry(base uint64, j int, exp uint32) {
	i := base + expiryWord + uint64(j/2)
	shift := 32 * (j & 1)
	t.w[i] = t.w[i]&^(0xFFFFFFFF<<shift) | uint64(exp)<<shift
}

func setCtrl(ctrl *uint64, j int, b uint64) {
	*ctrl = *ctrl&^(0xFF<<(8*j)) | b<<(8*j)
}

// get returns the expiry stored for k.
func (t *plainTable) get(k *Key) (uint32, bool) {
	lo, hi := keyWords(k)
	base, j, ok := t.find(lo, hi)
	if !ok {
		return 0, false
	}
	return t.expiry(base, j), true
}

// put stores k with expiry exp, keeping the later expiry when k is there
// already. It reports whether k was new.
func (t *plainTable) put(k *Key, exp uint32) bool {
	lo, hi := keyWords(k)
	if base, j, ok := t.find(lo, hi); ok {
		if exp > t.expiry(base, j) {
			t.setExpiry(base, j, exp)
		}
		return false
	}
	if t.used >= t.maxUsed() {
		t.resize(t.live + 1)
	}
	t.insert(lo, hi, exp)
	return true
}

// putWithin is put, except that a table that must grow to take a new key
// asks allow first, with the bytes the grown table would take: when
// allow says no, the key is not stored and held is false.
func (t *plainTable) putWithin(k *Key, exp uint32, allow func(grown int64) bool) (added, held bool) {
	lo, hi := keyWords(k)
	if base, j, ok := t.find(lo, hi); ok {
		if exp > t.expiry(base, j) {
			t.setExpiry(base, j, exp)
		}
		return false, true
	}
	if t.used >= t.maxUsed() {
		if t.live+1 > t.maxUsed()/2 && !allow( // it grows (see resize)
			int64(t.groups+(t.groups+3)/4)*groupWords*8) {
			return false, false
		}
		t.resize(t.live + 1)
	}
	t.insert(lo, hi, exp)
	return true, true
}

// insert places a key known to be absent.
func (t *plainTable) insert(lo, hi uint64, exp uint32) {
	h := t.hash(lo, hi)
	g, _ := bits.Mul64(h, t.groups)
	for {
		base := g * groupWords
		if m := t.w[base] & msbs; m != 0 { // an empty or deleted slot
			j := bits.TrailingZeros64(m) >> 3
			if t.w[base]>>(8*j)&0xFF == ctrlEmpty {
				t.used++
			}
			setCtrl(&t.w[base], j, h&0x7f)
			t.w[base+1+2*uint64(j)], t.w[base+2+2*uint64(j)] = lo, hi
			t.setExpiry(base, j, exp)
			t.live++
			return
		}
		if g++; g == t.groups {
			g = 0
		}
	}
}

// remove empties a full slot. A group that has never been full has an
// empty slot, so no lookup ever went past it: its slot can be empty
// again. In a group that was full, lookups may have gone on to the next
// group, so the slot becomes a tombstone that keeps them going.
func (t *plainTable) remove(base uint64, j int) {
	ctrl := &t.w[base]
	if matchEmpty(*ctrl) != 0 {
		setCtrl(ctrl, j, ctrlEmpty)
		t.used--
	} else {
		setCtrl(ctrl, j, ctrlDeleted)
	}
	t.live--
}

// resize rebuilds the table for at least n entries: a quarter larger
// when it is mostly full, the same size when tombstones took the room,
// smaller when most entries are gone.
func (t *plainTable) resize(n int) {
	groups := t.groups
	switch {
	case n > t.maxUsed()/2:
		groups += (groups + 3) / 4
	case n < t.maxUsed()/4:
		groups = max(1, (uint64(n)*3+13)/14) // 7/12 full
	}
	for int(groups)*7 < n {
		groups++
	}
	nt := newPlainTable(groups, t.seed)
	t.each(func(lo, hi uint64, exp uint32) { nt.insert(lo, hi, exp) })
	t.free()
	*t = nt
}

// reserve grows the table, if need be, to hold n entries at 7/8 full
// (seven per group of eight).
func (t *plainTable) reserve(n int) {
	if n <= t.maxUsed() {
		return
	}
	groups := uint64((n + 6) / 7)
	nt := newPlainTable(groups, t.seed)
	t.each(func(lo, hi uint64, exp uint32) { nt.insert(lo, hi, exp) })
	t.free()
	*t = nt
}

// each calls f for every entry.
func (t *plainTable) each(f func(lo, hi uint64, exp uint32)) {
	for g := uint64(0); g < t.groups; g++ {
		base := g * groupWords
		ctrl := t.w[base]
		for m := ^ctrl & msbs; m != 0; m &= m - 1 {
			j := bits.TrailingZeros64(m) >> 3
			f(t.w[base+1+2*uint64(j)], t.w[base+2+2*uint64(j)], t.expiry(base, j))
		}
	}
}

// sweep removes the entries expired at now, calling removed for each,
// and shrinks the table when most of it is empty.
func (t *plainTable) sweep(now int64, removed func(k Key)) {
	for g := uint64(0); g < t.groups; g++ {
		base := g * groupWords
		ctrl := t.w[base]
		for m := ^ctrl & msbs; m != 0; m &= m - 1 {
			j := bits.TrailingZeros64(m) >> 3
			if int64(t.expiry(base, j)) <= now {
				removed(wordsKey(t.w[base+1+2*uint64(j)], t.w[base+2+2*uint64(j)]))
				t.remove(base, j)
			}
		}
	}
	if t.groups > 1 && (t.live < t.maxUsed()/4 || t.used-t.live > t.maxUsed()/4) {
		t.resize(t.live)
	}
}

func wordsKey(lo, hi uint64) Key {
	var k Key
	binary.LittleEndian.PutUint64(k[:8], lo)
	binary.LittleEndian.PutUint64(k[8:], hi)
	return k
}

// bytes is the memory the table holds.
func (t *plainTable) bytes() int64 { return int64(len(t.w)) * 8 }
