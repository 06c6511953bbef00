package revocation

import (
	"encoding/binary"
	"fmt"
	"os"
	"testing"
	"time"
)

// The compact denylist's check at 0 to 100 million entries, beside the
// exact one's (BenchmarkDenylistCheck) in the same run:
//
//	go test -run '^$' -bench 'Compact|DenylistCheck' -benchtime 2000000x ./revocation/
//	REVOCATION_BENCH_100M=1 go test -run '^$' -bench Compact -benchtime 2000000x ./revocation/
//
// 100M takes about two minutes and 500 MB to fill, so it runs when asked.

// mixKey derives a well-spread key from a counter (splitmix64, cheaper
// than keyN's SHA-256 at a hundred million keys).
func mixKey(i uint64, kind Kind) Key {
	var k Key
	for w := 0; w < 2; w++ {
		z := i*2 + uint64(w) + 0x9e3779b97f4a7c15
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		binary.LittleEndian.PutUint64(k[8*w:], z)
	}
	k[15] = byte(kind)
	return k
}

// compactFilled returns a compact denylist of n token entries, filled as
// a load fills it (Reserve, then merged at the end), and the confirmation
// count so far; confirm answers from the keys' own numbering, standing
// in for Redis, which the integration tests and bench/moonshot.sh use.
func compactFilled(n int) *Denylist {
	dl := NewDenylist()
	exp := time.Now().Add(24 * time.Hour).Unix()
	dl.SetCompact(func(k Key, _, _ int64) (int64, bool, error) { return exp, true, nil })
	dl.Reserve(int64(n))
	batch := make([]Entry, 0, 4096)
	for i := 0; i < n; i++ {
		batch = append(batch, Entry{Key: mixKey(uint64(i), KindToken), Expires: UnixSeconds(exp)})
		if len(batch) == cap(batch) {
			dl.Apply(batch...)
			batch = batch[:0]
		}
	}
	dl.Apply(batch...)
	dl.compactLoaded()
	return dl
}

func compactSizes() []int {
	if os.Getenv("REVOCATION_BENCH_100M") != "" {
		return []int{0, 1e6, 1e7, 1e8}
	}
	return []int{0, 1e6, 1e7}
}

// BenchmarkCompactCheck is BenchmarkDenylistCheck's request (token, jti,
// session by subject and by issuer, subject; none revoked) on a compact
// denylist, then a revoked token's check once its verdict is cached. It
// reports the bytes the tables hold per entry, and how many clean
// lookups matched a fingerprint (each would ask Redis once).
func BenchmarkCompactCheck(b *testing.B) {
	for _, n := range compactSizes() {
		dl := compactFilled(n)
		ids := make([]Identity, 1024)
		for i := range ids {
			j := uint64(n + 1 + i)
			ids[i] = Identity{Token: mixKey(j, KindToken), JTI: mixKey(j, KindJTI), Session: mixKey(j, KindSession),
				IssuerSession: mixKey(j+uint64(n), KindSession), Subject: mixKey(j, KindSubject), Issued: 2}
		}
		now := time.Now().Unix()
		b.Run(fmt.Sprintf("clean/entries=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				dl.Check(&ids[i&1023], now)
			}
			if n > 0 {
				b.ReportMetric(float64(dl.Bytes())/float64(n), "B/entry")
			}
			b.ReportMetric(float64(dl.CompactStats().Matches), "matches")
		})
		if n == 0 {
			continue
		}
		revoked := make([]Identity, 1024)
		for i := range revoked {
			revoked[i] = Identity{Token: mixKey(uint64(i*(n/1024)), KindToken)}
		}
		b.Run(fmt.Sprintf("revoked/entries=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if dl.Check(&revoked[i&1023], now) != BlockedToken {
					b.Fatal("not blocked")
				}
			}
		})
		// A clean-token probe of a million keys never put in: the share
		// of lookups that would ask Redis.
		if n >= 1e6 {
			before := dl.CompactStats().Matches
			for i := range 1_000_000 {
				k := mixKey(uint64(2*n+i), KindToken)
				dl.has(k, now)
			}
			b.Logf("entries=%d: %d of 1000000 clean token lookups matched a fingerprint", n, dl.CompactStats().Matches-before)
		}
		dl.release()
	}
}
