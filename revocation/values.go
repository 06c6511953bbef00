package revocation

import (
	"crypto/rand"
	"encoding/binary"
	"sync"

	"github.com/dchest/siphash"
)

// ValueChecker checks values found by value alone (every header, cookie
// and parameter value a request carries, whatever its name) against the
// exact-credential entries, the way CheckInfo checks a token: a value
// found clean is remembered with the denylist epoch it was found clean
// in, so that the same value in a later request (a browser's User-Agent,
// Accept, a long-lived analytics cookie) costs one map lookup rather
// than one SHA-256, until an entry is added. It remembers a bounded
// number of values, and never a verdict that a value is revoked.
//
// A value is remembered by its fingerprint (valueKey), never by itself:
// many values are credentials (an API key in a custom header, a session
// cookie), and none is kept in memory past its request.
type ValueChecker struct {
	k0, k1 uint64 // the fingerprints' key, drawn at random
	shards [valueShards]valueShard
	perCap int
}

const valueShards = 32

type valueShard struct {
	mu sync.RWMutex
	m  map[valueKey]*epoch
	_  [40]byte
}

// valueKey is a value's fingerprint: its SipHash-2-4 with a 128-bit
// output, under the checker's random key. SipHash is a keyed
// pseudorandom function: without the key, nobody can make a value whose
// fingerprint is another's (a revoked credential taken for a clean value
// remembered), other than by chance, 2^-128 a try; and it costs a
// fraction of a SHA-256.
type valueKey [2]uint64

func (v *ValueChecker) key(s string) valueKey {
	a, b := siphash.Hash128(v.k0, v.k1, readOnlyBytes(s))
	return valueKey{a, b}
}

func (v *ValueChecker) shard(k valueKey) *valueShard { return &v.shards[k[0]%valueShards] }

// NewValueChecker returns a checker that remembers up to size clean
// values (default 16384 when size <= 0).
func NewValueChecker(size int) *ValueChecker {
	if size <= 0 {
		size = 16384
	}
	var seed [16]byte
	_, _ = rand.Read(seed[:]) // never fails (crypto/rand)
	v := &ValueChecker{
		k0:     binary.LittleEndian.Uint64(seed[:8]),
		k1:     binary.LittleEndian.Uint64(seed[8:]),
		perCap: max(1, size/valueShards),
	}
	for i := range v.shards {
		v.shards[i].m = make(map[valueKey]*epoch)
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
	var k valueKey
	if len(raw) <= maxRememberedValue {
		k = v.key(raw)
		s = v.shard(k)
		s.mu.RLock()
		clean := s.m[k] == e
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
		v.remember(s, k, e)
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
	k := v.key(s)
	sh := v.shard(k)
	sh.mu.RLock()
	e, ok := sh.m[k]
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
	k := v.key(s)
	v.remember(v.shard(k), k, m.e)
}

func (v *ValueChecker) remember(sh *valueShard, k valueKey, e *epoch) {
	sh.mu.Lock()
	if _, ok := sh.m[k]; !ok && len(sh.m) >= v.perCap {
		for old := range sh.m { // map order is random: evict any one
			delete(sh.m, old)
			break
		}
	}
	sh.m[k] = e
	sh.mu.Unlock()
}
