package revocation

import (
	"sync"
	"sync/atomic"
)

// Tracker indexes open, long-lived uses of credentials (a proxied
// WebSocket, an event stream, a long poll) by every key a revocation can
// name, so that an entry applied to the denylist finds the uses it ends
// without looking at the others: a token, jti, session or issuer-session
// entry by one map lookup, a subject entry likewise, and the global
// cutoff by walking a heap ordered by issue time only as far as the uses
// issued at or before the cutoff.
//
// The index only finds candidates; the verdict is Denylist.Check on the
// use's identities, the very check a new request gets, so a use ends
// exactly when a request carrying its credentials would be refused now
// (a kept session stays, a token issued after a subject's cutoff stays).
type Tracker struct {
	mu sync.Mutex
	// byKey holds, per key, the head of the list of nodes of the uses
	// whose identities carry it.
	byKey map[Key]*trackNode
	// issued is a min-heap, by Tracked.issued, of the uses that carry a
	// subject: the ones a global cutoff may end.
	issued []*Tracked
	// gen marks the candidates of one Applied call, to take each once.
	gen uint64
	n   atomic.Int64
}

// Tracked is one use registered with a Tracker.
type Tracked struct {
	ids   []Identity
	nodes []trackNode
	// issued is the earliest issue time of the identities that carry a
	// subject (unix ms; zero is unknown, which any cutoff covers).
	issued  UnixMillis
	heapIdx int // in Tracker.issued; -1 when absent
	mark    uint64
	removed bool
	// ended is set by the first call that decides the use ends.
	ended atomic.Bool
	end   func(Reason, int)
}

type trackNode struct {
	key        Key
	prev, next *trackNode
	t          *Tracked
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{byKey: make(map[Key]*trackNode)}
}

// Len returns the number of uses registered.
func (tr *Tracker) Len() int64 { return tr.n.Load() }

// Add registers a use carrying the identities ids (which it keeps; the
// caller must not change them). end is called at most once, when a
// revocation applied after Add blocks one of them, with the reason and
// the index in ids of the identity blocked; it runs on the goroutine that
// applied the revocation and must not block. A revocation applied
// before Add is the caller's to check (Check), after Add, so that none
// falls between the two.
func (tr *Tracker) Add(ids []Identity, end func(Reason, int)) *Tracked {
	t := &Tracked{ids: ids, heapIdx: -1, end: end}
	n := 0
	for i := range ids {
		n += idKeyCount(&ids[i])
	}
	t.nodes = make([]trackNode, 0, n)
	hasSubject := false
	for i := range ids {
		id := &ids[i]
		eachIDKey(id, func(k Key) {
			for j := range t.nodes {
				if t.nodes[j].key == k {
					return // one node per key and use
				}
			}
			t.nodes = append(t.nodes, trackNode{key: k, t: t})
		})
		if !id.Subject.IsZero() || len(id.AltSubjects) > 0 {
			if !hasSubject || id.Issued < t.issued {
				t.issued = id.Issued
			}
			hasSubject = true
		}
	}
	tr.mu.Lock()
	for i := range t.nodes {
		nd := &t.nodes[i]
		if head := tr.byKey[nd.key]; head != nil {
			nd.next = head
			head.prev = nd
		}
		tr.byKey[nd.key] = nd
	}
	if hasSubject {
		tr.heapPush(t)
	}
	tr.mu.Unlock()
	tr.n.Add(1)
	return t
}

// Remove unregisters a use; later revocations no longer reach it.
// Removing twice is harmless.
func (tr *Tracker) Remove(t *Tracked) {
	tr.mu.Lock()
	if t.removed {
		tr.mu.Unlock()
		return
	}
	t.removed = true
	for i := range t.nodes {
		nd := &t.nodes[i]
		switch {
		case nd.prev != nil:
			nd.prev.next = nd.next
		case nd.next != nil:
			tr.byKey[nd.key] = nd.next
		default:
			delete(tr.byKey, nd.key)
		}
		if nd.next != nil {
			nd.next.prev = nd.prev
		}
		nd.prev, nd.next = nil, nil
	}
	if t.heapIdx >= 0 {
		tr.heapRemove(t.heapIdx)
	}
	tr.mu.Unlock()
	tr.n.Add(-1)
}

// Check says whether any identity of the use is blocked now, and which
// (the index in the ids given to Add).
func (t *Tracked) Check(dl *Denylist, now int64) (Reason, int) {
	for i := range t.ids {
		if r := dl.Check(&t.ids[i], now); r != NotBlocked {
			return r, i
		}
	}
	return NotBlocked, -1
}

// Ended marks the use ended and reports whether this call did: the end
// callback, and any other way of ending the use (its token's expiry),
// should act only once.
func (t *Tracked) Ended() bool { return t.ended.CompareAndSwap(false, true) }

// Applied finds the uses that entries, just applied to dl, may block,
// checks each against dl, and calls the end callback of those blocked.
// now is in unix seconds. Denylist.SetApplied is where it is meant to be
// called from.
//
// nil entries means entries were applied that cannot be named by key (a
// compact snapshot installs fingerprints): every use is checked.
func (tr *Tracker) Applied(dl *Denylist, entries []Entry, now int64) {
	if tr.n.Load() == 0 {
		return
	}
	if entries == nil {
		tr.checkAll(dl, now)
		return
	}
	if len(entries) == 0 {
		return
	}
	var cand []*Tracked
	var gen uint64
	take := func(t *Tracked) {
		if t.mark != gen && !t.ended.Load() {
			t.mark = gen
			cand = append(cand, t)
		}
	}
	// A load applies entries by the million: the lock is let go between
	// chunks, so that a stream opening meanwhile waits for one chunk at
	// most. A candidate taken twice (in two chunks) is checked twice,
	// ended once.
	const chunk = 512
	for len(entries) > 0 {
		part := entries[:min(chunk, len(entries))]
		entries = entries[len(part):]
		tr.mu.Lock()
		tr.gen++
		gen = tr.gen
		for i := range part {
			e := &part[i]
			if e.Kind() == KindGlobal {
				tr.issuedUpTo(e.Cutoff, take)
				continue
			}
			for nd := tr.byKey[e.Key]; nd != nil; nd = nd.next {
				take(nd.t)
			}
		}
		tr.mu.Unlock()
	}
	for _, t := range cand {
		if r, i := t.Check(dl, now); r != NotBlocked && t.Ended() {
			t.end(r, i)
		}
	}
}

// checkAll checks every use against dl and ends those it blocks.
func (tr *Tracker) checkAll(dl *Denylist, now int64) {
	tr.mu.Lock()
	tr.gen++
	gen := tr.gen
	var cand []*Tracked
	for _, nd := range tr.byKey {
		for ; nd != nil; nd = nd.next {
			if t := nd.t; t.mark != gen && !t.ended.Load() {
				t.mark = gen
				cand = append(cand, t)
			}
		}
	}
	tr.mu.Unlock()
	for _, t := range cand {
		if r, i := t.Check(dl, now); r != NotBlocked && t.Ended() {
			t.end(r, i)
		}
	}
}

// idKeyCount is the number of keys eachIDKey gives, at most.
func idKeyCount(id *Identity) int {
	return 6 + len(id.Alt) + len(id.AltSubjects)
}

// eachIDKey calls f with every non-zero key of id that an entry can be
// stored under.
func eachIDKey(id *Identity, f func(Key)) {
	for _, k := range [...]Key{id.Token, id.Raw, id.JTI, id.Session, id.IssuerSession, id.Subject} {
		if !k.IsZero() {
			f(k)
		}
	}
	for _, k := range id.Alt {
		f(k)
	}
	for _, k := range id.AltSubjects {
		f(k)
	}
}

// issuedUpTo calls f with every use in the heap issued at or before
// cutoff: a walk from the root that stops at any use issued later, whose
// subtree holds only later ones.
func (tr *Tracker) issuedUpTo(cutoff UnixMillis, f func(*Tracked)) {
	if len(tr.issued) == 0 {
		return
	}
	stack := []int{0}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		t := tr.issued[i]
		if t.issued > cutoff {
			continue
		}
		f(t)
		if l := 2*i + 1; l < len(tr.issued) {
			stack = append(stack, l)
		}
		if r := 2*i + 2; r < len(tr.issued) {
			stack = append(stack, r)
		}
	}
}

func (tr *Tracker) heapPush(t *Tracked) {
	t.heapIdx = len(tr.issued)
	tr.issued = append(tr.issued, t)
	tr.heapUp(t.heapIdx)
}

func (tr *Tracker) heapRemove(i int) {
	h := tr.issued
	last := len(h) - 1
	h[i].heapIdx = -1
	if i != last {
		h[i] = h[last]
		h[i].heapIdx = i
	}
	h[last] = nil
	tr.issued = h[:last]
	if i < last {
		if !tr.heapDown(i) {
			tr.heapUp(i)
		}
	}
	if cap(tr.issued) > 64 && len(tr.issued) < cap(tr.issued)/4 {
		// Give back the room of a crowd that has left.
		tr.issued = append([]*Tracked(nil), tr.issued...)
	}
}

func (tr *Tracker) heapUp(i int) {
	h := tr.issued
	for i > 0 {
		p := (i - 1) / 2
		if h[p].issued <= h[i].issued {
			break
		}
		h[p], h[i] = h[i], h[p]
		h[p].heapIdx, h[i].heapIdx = p, i
		i = p
	}
}

// heapDown moves the use at i down to its place and reports whether it
// moved.
func (tr *Tracker) heapDown(i int) bool {
	h := tr.issued
	start := i
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && h[r].issued < h[l].issued {
			m = r
		}
		if h[i].issued <= h[m].issued {
			break
		}
		h[i], h[m] = h[m], h[i]
		h[i].heapIdx, h[m].heapIdx = i, m
		i = m
	}
	return i > start
}
