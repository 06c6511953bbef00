package revocation

import (
	"bytes"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"
	"unsafe"
)

// A value found clean is remembered until an entry is added; a revoked
// one is found by its exact string; the bound holds.
func TestValueChecker(t *testing.T) {
	dl := NewDenylist()
	v := NewValueChecker(valueShards) // one per shard
	const now = 1_800_000_000
	if r, _ := v.Check(dl, "clean-value-0123456789", now); r != NotBlocked {
		t.Fatalf("clean value: %v", r)
	}
	m := dl.Mark()
	v.Remember(m, "a header value")
	if !v.Known(dl, "a header value") {
		t.Fatal("not remembered")
	}
	dl.Apply(Entry{Key: RawHash("clean-value-0123456789").Key(), Expires: now + 60})
	if v.Known(dl, "a header value") {
		t.Fatal("remembered across an entry added")
	}
	r, h := v.Check(dl, "clean-value-0123456789", now)
	if r != BlockedToken || h != RawHash("clean-value-0123456789") {
		t.Fatalf("revoked value: %v", r)
	}
	for i := range 1000 {
		v.Check(dl, string(rune('a'+i%26))+"-value-"+string(rune(i)), now)
	}
	n := 0
	for i := range v.shards {
		n += len(v.shards[i].m)
	}
	if n > valueShards {
		t.Fatalf("%d values remembered, bound %d", n, valueShards)
	}
}

// No value the checker remembers stays in memory: many values found by
// value are credentials (an API key in a custom header, a session
// cookie), so each is remembered by its keyed fingerprint only. The heap
// is dumped after the checker has seen a value whose only other copy the
// test has wiped, and the dump is searched for it.
func TestValueCheckerKeepsNoValue(t *testing.T) {
	dl := NewDenylist()
	v := NewValueChecker(0)
	const now = 1_800_000_000
	secret := make([]byte, 40)
	for i := range secret {
		secret[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[mathrand.IntN(36)]
	}
	// What to search for, kept inverted so that the dump holds no copy.
	inverted := make([]byte, len(secret))
	for i, c := range secret {
		inverted[i] = ^c
	}
	raw := unsafe.String(&secret[0], len(secret))
	v.Remember(dl.Mark(), raw)
	if r, _ := v.Check(dl, raw, now); r != NotBlocked {
		t.Fatalf("clean value: %v", r)
	}
	if !v.Known(dl, raw) {
		t.Fatal("not remembered")
	}
	clear(secret)
	runtime.GC()
	runtime.GC()

	f, err := os.Create(filepath.Join(t.TempDir(), "heap"))
	if err != nil {
		t.Fatal(err)
	}
	debug.WriteHeapDump(f.Fd())
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(v)
	dump, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	needle := make([]byte, len(inverted))
	for i, c := range inverted {
		needle[i] = ^c
	}
	if len(dump) < 1<<16 {
		t.Fatalf("heap dump of %d bytes: too small to be one", len(dump))
	}
	if bytes.Contains(dump, needle) {
		t.Fatal("a remembered value is still in the heap")
	}
}
