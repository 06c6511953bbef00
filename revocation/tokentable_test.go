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
// entry is found from its home. With a limit, the caller evicts before
// adding past it, as the Inspector does, and the table stays as small
// as the limit allows at seven eighths full, always with an empty slot.
func TestTokenTableAgreesWithAMap(t *testing.T) {
	for _, limit := range []int{1 << 30, 100, 7} {
		tokenTableAgainstAMap(t, limit)
	}
}

func tokenTableAgainstAMap(t *testing.T, limit int) {
	rng := rand.New(rand.NewPCG(1, uint64(limit)))
	var tt tokenTable
	ref := map[[32]byte]*TokenInfo{}
	maxSlots := 8
	for maxSlots*7 < limit*8 {
		maxSlots *= 2
	}
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
				t.Fatalf("limit %d, step %d: get(%x) = %p, want %p", limit, step, k[:4], got, want)
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
		if limit < 1<<30 && (len(tt.slots) > maxSlots || tt.n > limit) {
			t.Fatalf("limit %d: %d slots for %d entries, at most %d slots", limit, len(tt.slots), tt.n, maxSlots)
		}
		if len(tt.slots) > 0 && tt.n >= len(tt.slots) {
			t.Fatalf("step %d: no empty slot left", step)
		}
	}
	for step := 0; step < 4000; step++ {
		k := keys[rng.IntN(len(keys))]
		switch op := rng.IntN(10); {
		case op < 5:
			info := &TokenInfo{until: int64(rng.IntN(100))}
			if _, ok := ref[k]; !ok && tt.n >= limit {
				tt.evict(&k, 50)
				for rk := range ref {
					if tt.get(&rk) == nil {
						delete(ref, rk)
					}
				}
			}
			tt.put(&k, info, limit)
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
