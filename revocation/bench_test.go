package revocation

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The benchmarks of SPEC section 6 that live in Go: the denylist check at
// 0 to 10 million entries, memory per entry, and the whole per-request
// path for a token seen before. Each has a baseline measured in the same
// run (a plain Go map lookup, a SHA-256 of a token) so that docs/performance.md can
// report ratios, which survive this machine's noise better than absolute
// figures.
//
//	go test -run '^$' -bench . -benchmem ./revocation/

var sizes = []int{0, 1e4, 1e6, 1e7}

// keyN derives a well-spread key from a counter, of the given kind.
func keyN(i int, kind Kind) Key {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	sum := sha256.Sum256(b[:])
	var k Key
	copy(k[:15], sum[:15])
	k[15] = byte(kind)
	return k
}

// filled returns a denylist with n entries: mostly tokens, some jtis and
// sessions, and one subject entry per thousand.
func filled(n int) *Denylist {
	dl := NewDenylist()
	exp := time.Now().Add(time.Hour).Unix()
	batch := make([]Entry, 0, 4096)
	for i := 0; i < n; i++ {
		kind := KindToken
		switch {
		case i%1000 == 999:
			batch = append(batch, Entry{Key: keyN(i, KindSubject), Expires: UnixSeconds(exp), Cutoff: 1})
			continue
		case i%10 == 1:
			kind = KindJTI
		case i%10 == 2:
			kind = KindSession
		}
		batch = append(batch, Entry{Key: keyN(i, kind), Expires: UnixSeconds(exp)})
		if len(batch) == cap(batch) {
			dl.Apply(batch...)
			batch = batch[:0]
		}
	}
	dl.Apply(batch...)
	return dl
}

// BenchmarkDenylistCheck is one request's check: token, jti, session (by
// subject and by issuer) and subject looked up, none revoked (the common
// case, and the most lookups).
func BenchmarkDenylistCheck(b *testing.B) {
	for _, n := range sizes {
		dl := filled(n)
		ids := make([]Identity, 1024)
		for i := range ids {
			j := n + 1 + i
			ids[i] = Identity{Token: keyN(j, KindToken), JTI: keyN(j, KindJTI), Session: keyN(j, KindSession),
				IssuerSession: keyN(j+n, KindSession), Subject: keyN(j, KindSubject), Issued: 2}
		}
		now := time.Now().Unix()
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if dl.Check(&ids[i&1023], now) != NotBlocked {
					b.Fatal("blocked")
				}
			}
		})
	}
}

// BenchmarkBaselineMapLookup is the floor the check is compared with: four
// lookups in one plain map of the same size (no locks, no shards).
func BenchmarkBaselineMapLookup(b *testing.B) {
	for _, n := range sizes {
		m := make(map[Key]uint32, n)
		for i := 0; i < n; i++ {
			m[keyN(i, KindToken)] = 1
		}
		probes := make([]Key, 4096)
		for i := range probes {
			probes[i] = keyN(n+1+i, KindToken)
		}
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			hits := 0
			for i := 0; b.Loop(); i++ {
				for j := 0; j < 4; j++ {
					if _, ok := m[probes[(4*i+j)&4095]]; ok {
						hits++
					}
				}
			}
			if hits != 0 {
				b.Fatal("hits")
			}
		})
	}
}

// BenchmarkDenylistMemory reports the memory per entry at one and ten
// million entries: the Go heap's growth (GC'd before and after filling),
// and the process's resident set growth, with freed memory returned to
// the OS before each reading. RSS is the figure of SPEC section 6: it
// counts memory outside the Go heap too.
func BenchmarkDenylistMemory(b *testing.B) {
	for _, n := range []int{1e6, 1e7} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			for b.Loop() {
				var before, after runtime.MemStats
				debug.FreeOSMemory()
				runtime.ReadMemStats(&before)
				rss0 := residentBytes(b)
				dl := filled(n)
				debug.FreeOSMemory()
				runtime.ReadMemStats(&after)
				rss1 := residentBytes(b)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "heap-B/entry")
				b.ReportMetric(float64(rss1-rss0)/float64(n), "rss-B/entry")
				dl.release()
			}
		})
	}
}

// residentBytes reads the process's resident set size (Linux).
func residentBytes(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		b.Skipf("resident set size: %v", err)
	}
	var size, resident int64
	if _, err := fmt.Sscan(string(data), &size, &resident); err != nil {
		b.Fatalf("parse /proc/self/statm: %v", err)
	}
	return resident * int64(os.Getpagesize())
}

// BenchmarkRequestPath is everything the proxy does for a token it has
// seen before: hash it, find what it learned, check the denylist. The
// baseline is the SHA-256 of the token alone, the floor of any design
// that keys what it learned by the token's hash.
func BenchmarkRequestPath(b *testing.B) {
	for _, n := range []int{0, 1e6} {
		store := NewMemoryStore(MemoryOptions{SweepEvery: -1})
		store.dl = filled(n)
		secret := []byte("0123456789abcdef0123456789abcdef")
		v, err := NewVerifier(VerifierConfig{HMACSecret: secret})
		if err != nil {
			b.Fatal(err)
		}
		in := NewInspector(InspectorConfig{Verifier: v, Store: store, SessionTTL: time.Hour})
		toks := make([]string, 256)
		for i := range toks {
			toks[i], _ = jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
				"sub": fmt.Sprintf("user-%d", i), "sid": fmt.Sprintf("s-%d", i), "jti": fmt.Sprintf("j-%d", i),
				"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
			}).SignedString(secret)
		}
		ctx := context.Background()
		for _, t := range toks {
			in.Inspect(ctx, t) // learn each once
		}
		b.Run(fmt.Sprintf("cached/entries=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				info := in.Inspect(ctx, toks[i&255])
				if store.Denylist().Check(&info.ID, time.Now().Unix()) != NotBlocked {
					b.Fatal("blocked")
				}
			}
		})
		store.Close()
	}
	b.Run("baseline/sha256", func(b *testing.B) {
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "user-1", "sid": "s-1", "jti": "j-1", "iat": 1, "exp": 2}).SignedString([]byte("k"))
		b.ReportAllocs()
		for b.Loop() {
			_ = sumString(tok)
		}
	})
	b.Run("uncached/verify-HS256", func(b *testing.B) {
		secret := []byte("0123456789abcdef0123456789abcdef")
		v, _ := NewVerifier(VerifierConfig{HMACSecret: secret})
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u", "sid": "s", "jti": "j", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(context.Background(), tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
