package revocation

import (
	"math/bits"
	"math/rand/v2"
	"testing"
)

func bitsMulHi(a, b uint64) (uint64, uint64) { return bits.Mul64(a, b) }

// The table agrees with a Go map through inserts, updates, lookups of
// absent keys, sweeps that leave tombstones, growth into mapped memory
// and shrinking back.
func TestPlainTableMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tab := newPlainTable(1, [2]uint64{rng.Uint64(), rng.Uint64()})
	defer tab.free()
	ref := map[Key]uint32{}
	keys := make([]Key, 0, 200_000)
	newKey := func() Key {
		var k Key
		for i := range k {
			k[i] = byte(rng.Uint32())
		}
		k[15] = byte(KindToken)
		return k
	}
	check := func(when string) {
		t.Helper()
		if tab.live != len(ref) {
			t.Fatalf("%s: table holds %d, map %d", when, tab.live, len(ref))
		}
		for i := 0; i < 2000; i++ {
			k := keys[rng.IntN(len(keys))]
			got, ok := tab.get(&k)
			want, wok := ref[k]
			if ok != wok || got != want {
				t.Fatalf("%s: get(%s) = %d %v, want %d %v", when, k, got, ok, want, wok)
			}
			absent := newKey()
			if _, ok := tab.get(&absent); ok {
				t.Fatalf("%s: absent key found", when)
			}
		}
		n := 0
		tab.each(func(lo, hi uint64, exp uint32) {
			if ref[wordsKey(lo, hi)] != exp {
				t.Fatalf("%s: each gave %s=%d, map has %d", when, wordsKey(lo, hi), exp, ref[wordsKey(lo, hi)])
			}
			n++
		})
		if n != len(ref) {
			t.Fatalf("%s: each gave %d entries, want %d", when, n, len(ref))
		}
	}
	for round := 0; round < 4; round++ {
		for i := 0; i < 50_000; i++ {
			var k Key
			if len(keys) > 0 && rng.IntN(4) == 0 {
				k = keys[rng.IntN(len(keys))] // update
			} else {
				k = newKey()
				keys = append(keys, k)
			}
			exp := uint32(rng.IntN(1000) + 1)
			_, existed := ref[k]
			if isNew := tab.put(&k, exp); isNew == existed {
				t.Fatalf("put reported new=%v for a key that existed=%v", isNew, existed)
			}
			if exp > ref[k] {
				ref[k] = exp
			}
		}
		check("after inserts")
		if tab.mem == nil {
			t.Fatalf("a %d-byte table is not mapped outside the heap", tab.bytes())
		}
		now := int64(250 * (round + 1))
		swept := 0
		tab.sweep(now, func(k Key) {
			if int64(ref[k]) > now {
				t.Fatalf("sweep removed %s, live until %d", k, ref[k])
			}
			swept++
		})
		for k, exp := range ref {
			if int64(exp) <= now {
				delete(ref, k)
			}
		}
		if swept == 0 {
			t.Fatal("nothing swept")
		}
		check("after a sweep")
	}
	tab.sweep(1<<40, func(Key) {})
	if tab.live != 0 || tab.groups != 1 {
		t.Fatalf("after sweeping everything: %d live in %d groups", tab.live, tab.groups)
	}
}

// A table is never much more than 7/8 or much less than half full.
func TestPlainTableFill(t *testing.T) {
	tab := newPlainTable(1, [2]uint64{3, 4})
	defer tab.free()
	for i := 0; i < 1_000_000; i++ {
		k := keyN(i, KindToken)
		tab.put(&k, 1)
		if i > 1000 && i%997 == 0 {
			fill := float64(tab.live) / float64(tab.groups*groupSlots)
			if fill < 0.69 || fill > 0.88 {
				t.Fatalf("at %d entries the table is %.0f%% full", i, 100*fill)
			}
		}
	}
	if per := float64(tab.bytes()) / float64(tab.live); per > 31 {
		t.Fatalf("%.1f bytes per entry", per)
	}
}

// Keys that share most of their bytes (as made-up ones could) still
// spread: a lookup stays within a few groups.
func TestPlainTableSpreadsSimilarKeys(t *testing.T) {
	tab := newPlainTable(1, [2]uint64{5, 6})
	defer tab.free()
	const n = 200_000
	for i := 0; i < n; i++ {
		var k Key
		k[14] = byte(i)
		k[13] = byte(i >> 8)
		k[12] = byte(i >> 16)
		k[15] = byte(KindToken)
		tab.put(&k, 1)
	}
	// Count the groups a lookup of an absent key visits.
	probes := 0
	for i := 0; i < 10000; i++ {
		var k Key
		k[11] = 1
		k[14] = byte(i)
		k[13] = byte(i >> 8)
		lo, hi := keyWords(&k)
		h := tab.hash(lo, hi)
		g, _ := bitsMulHi(h, tab.groups)
		for {
			probes++
			if matchEmpty(tab.w[g*groupWords]) != 0 {
				break
			}
			if g++; g == tab.groups {
				g = 0
			}
		}
	}
	if avg := float64(probes) / 10000; avg > 4 {
		t.Fatalf("an absent key visits %.1f groups on average", avg)
	}
}
