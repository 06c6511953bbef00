package revocation

import (
	"hash/maphash"
	"strings"
	"sync"
)

// ValueChecker checks values found by value alone (every header, cookie
// and parameter value a request carries, whatever its name) against the
// exact-credential entries, the way CheckInfo checks a token: a value
// found clean is remembered with the denylist epoch it was found clean
// in, so that the same value in a later request (a browser's User-Agent,
// Accept, a long-lived analytics cookie) costs one map lookup rather
// than one SHA-256, until an entry is added. It remembers a bounded
// number of values, and never a verdict that a value is revoked.
type ValueChecker struct {
	seed   maphash.Seed
	shards [valueShards]valueShard
	perCap int
}

const valueShards = 32

type valueShard struct {
	mu sync.RWMutex
	m  map[string]*epoch
	_  [40]byte
}

// NewValueChecker returns a checker that remembers up to size clean
// values (default 16384 when size <= 0).
func NewValueChecker(size int) *ValueChecker {
	if size <= 0 {
		size = 16384
	}
	v := &ValueChecker{seed: maphash.MakeSeed(), perCap: max(1, size/valueShards)}
	for i := range v.shards {
		v.shards[i].m = make(map[string]*epoch)
	}
	return v
}

// maxRememberedValue bounds the length of a value remembered: longer
// ones (a whole body) are rare and are only hashed.
const maxRememberedValue = 512

// Check says whether the exact string raw is revoked (BlockedToken) in
// dl, and, when it is, the hash it was found under.
func (v *ValueChecker) Check(dl *Denylist, raw string, now int64) (Reason, TokenHash) {
	e := dl.epoch.Load()
	var s *valueShard
	if len(raw) <= maxRememberedValue {
		s = &v.shards[maphash.String(v.seed, raw)%valueShards]
		s.mu.RLock()
		clean := s.m[raw] == e
		s.mu.RUnlock()
		if clean {
			return NotBlocked, TokenHash{}
		}
	}
	h := RawHash(raw)
	if dl.has(h.Key(), now) {
		return BlockedToken, h
	}
	if s != nil {
		v.remember(s, raw, e)
	}
	return NotBlocked, h
}

// Mark is a denylist's state at one moment (Denylist.Mark): what is
// found clean then stays clean for as long as no entry is added.
type Mark struct{ e *epoch }

// Mark returns the denylist's current state. Take it before checking,
// so that an entry added meanwhile makes what was checked be checked
// again next time.
func (d *Denylist) Mark() Mark { return Mark{d.epoch.Load()} }

// Known reports whether s was remembered clean (Remember) in dl's
// current state.
func (v *ValueChecker) Known(dl *Denylist, s string) bool {
	if len(s) > maxRememberedValue {
		return false
	}
	sh := &v.shards[maphash.String(v.seed, s)%valueShards]
	sh.mu.RLock()
	e, ok := sh.m[s]
	sh.mu.RUnlock()
	return ok && e == dl.epoch.Load()
}

// Remember records s as clean at m: Known answers true for it until an
// entry is added. The guard remembers so a header value all of whose
// readings it found clean, to skip reading it again.
func (v *ValueChecker) Remember(m Mark, s string) {
	if len(s) > maxRememberedValue || m.e == nil {
		return
	}
	v.remember(&v.shards[maphash.String(v.seed, s)%valueShards], s, m.e)
}

func (v *ValueChecker) remember(sh *valueShard, s string, e *epoch) {
	sh.mu.Lock()
	if _, ok := sh.m[s]; !ok && len(sh.m) >= v.perCap {
		for k := range sh.m { // map order is random: evict any one
			delete(sh.m, k)
			break
		}
	}
	sh.m[strings.Clone(s)] = e
	sh.mu.Unlock()
}
