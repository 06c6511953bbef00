package revocation

import "testing"

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
