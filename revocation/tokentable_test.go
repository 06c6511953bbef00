package revocation

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestTokenTableAgreesWithAMap drives the table and a Go map with the
// same random puts, deletes and evictions, many of them on keys whose
// probes collide (few home bits in a small table), and checks after
// every step that both hold exactly the same entries and that every
// entry is found from its home.
func TestTokenTableAgreesWithAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var tt tokenTable
	ref := map[[32]byte]*TokenInfo{}
	// 300 keys: enough to grow the table several times and to wrap runs
	// around its end.
	keys := make([][32]byte, 300)
	for i := range keys {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(i))
		keys[i] = sha256.Sum256(b[:])
	}
	check := func(step int) {
		t.Helper()
		if tt.n != len(ref) {
			t.Fatalf("step %d: table holds %d, map %d", step, tt.n, len(ref))
		}
		for _, k := range keys {
			if got, want := tt.get(&k), ref[k]; got != want {
				t.Fatalf("step %d: get(%x) = %p, want %p", step, k[:4], got, want)
			}
		}
		occupied := 0
		for i := range tt.slots {
			if tt.slots[i].info != nil {
				occupied++
			}
		}
		if occupied != tt.n {
			t.Fatalf("step %d: %d slots taken, n = %d", step, occupied, tt.n)
		}
	}
	for step := 0; step < 20000; step++ {
		k := keys[rng.IntN(len(keys))]
		switch op := rng.IntN(10); {
		case op < 5:
			info := &TokenInfo{until: int64(rng.IntN(100))}
			tt.put(&k, info)
			ref[k] = info
		case op < 9:
			tt.delete(&k)
			delete(ref, k)
		default:
			if tt.n == 0 {
				continue
			}
			before := tt.n
			now := int64(rng.IntN(100))
			expired := 0
			for _, v := range ref {
				if v.until <= now {
					expired++
				}
			}
			tt.evict(&k, now)
			for rk, v := range ref {
				if tt.get(&rk) == nil {
					if v.until > now && tt.n != before-1 {
						t.Fatalf("step %d: evicted a live entry while expired ones were removed", step)
					}
					delete(ref, rk)
				}
			}
			if tt.n >= before {
				t.Fatalf("step %d: evict removed nothing (%d entries, %d expired)", step, before, expired)
			}
			if before-tt.n > evictLook {
				t.Fatalf("step %d: evict removed %d, more than it looks at", step, before-tt.n)
			}
		}
		check(step)
	}
}
