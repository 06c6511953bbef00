package revocation

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/caddy-revocation/caddy-revocation/internal/testredis"
)

// The default budget is the cgroup's limit: v2's memory.max ("max" for
// none), else v1's memory.limit_in_bytes (a huge number for none).
func TestCgroupLimit(t *testing.T) {
	dir := t.TempDir()
	file := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "missing")
	for _, c := range []struct {
		what  string
		paths []string
		want  int64
	}{
		{"v2 limit", []string{file("v2", "268435456\n"), missing}, 256 << 20},
		{"v2 none", []string{file("v2max", "max\n"), file("v1a", "1000000000\n")}, 0},
		{"v1 limit", []string{missing, file("v1", "536870912\n")}, 512 << 20},
		{"v1 none", []string{missing, file("v1max", "9223372036854771712\n")}, 0},
		{"no cgroup", []string{missing, missing}, 0},
	} {
		if got := cgroupLimit(c.paths...); got != c.want {
			t.Errorf("%s: %d, want %d", c.what, got, c.want)
		}
	}
}

// budgetFor returns a budget that leaves about room bytes for the
// tables above what the process holds now.
func budgetFor(d *Denylist, room int64) int64 {
	base := d.processBytes()
	b := base + 8<<20 + room
	if b/16 > 8<<20 {
		b = (base+room)*16/15 + 1
	}
	return b
}

func resetGoLimit(t *testing.T) {
	t.Cleanup(func() { debug.SetMemoryLimit(math.MaxInt64) })
}

// Past its budget, a denylist holds no more entries: its tables stay
// inside the room the budget leaves them, the entries held still block, the ones not held are
// counted with the moment the last expires, and the copy counts as
// complete again from that moment.
func TestDenylistBudgetHoldsWhatFits(t *testing.T) {
	resetGoLimit(t)
	d := NewDenylist()
	t.Cleanup(d.release)
	budget := budgetFor(d, 4<<20)
	d.SetMemoryBudget(budget)
	const n = 600_000
	batch := make([]Entry, 0, 1000)
	for i := range n {
		batch = append(batch, Entry{Key: TokenKey("b-" + strconv.Itoa(i)), Expires: UnixSeconds(2000 + int64(i%100))})
		if len(batch) == cap(batch) {
			d.Apply(batch...)
			batch = batch[:0]
		}
	}
	b := d.Budget(1000)
	if !b.Over() || b.Dropped == 0 {
		t.Fatalf("600k entries (about 16 MB) held in a 4 MiB room: %+v", b)
	}
	held := d.Len(KindToken)
	if held == 0 || held+b.Dropped != n || b.DroppedTotal != b.Dropped {
		t.Fatalf("held %d + not held %d, want %d in all (%+v)", held, b.Dropped, n, b)
	}
	// The tables stopped growing at the room the budget left them (the
	// process around them may grow on its own: under -race, its shadow
	// memory does; the integration test checks the real binary's peak).
	if b.Tables > 5<<20 {
		t.Fatalf("the tables hold %d bytes, past the 4 MiB room the budget left them", b.Tables)
	}
	if b.Until != 2099 {
		t.Fatalf("the last entry not held expires at %d, want 2099", b.Until)
	}
	found := 0
	for i := range n {
		if d.Check(&Identity{Token: TokenKey("b-" + strconv.Itoa(i))}, 1000) == BlockedToken {
			found++
		}
	}
	if int64(found) != held {
		t.Fatalf("%d entries block, %d are held", found, held)
	}
	if d.Budget(2098).Over() == false {
		t.Fatal("the copy counted complete before every entry not held expired")
	}
	if d.Budget(2099).Over() {
		t.Fatal("the copy still counted incomplete once every entry not held expired")
	}
}

// A Redis store over its budget never calls its copy current (so that
// on_store_down decides for requests, and it writes no snapshot missing
// revocations), says so in Health, and without a budget the same load is
// held whole and confirmed.
func TestRedisMemoryBudget(t *testing.T) {
	resetGoLimit(t)
	srv := testredis.Start(t).Addr()
	writer := openRedis(t, srv, RedisOptions{SnapshotEvery: -1})
	commitMany(t, writer, 200_000)

	whole := openRedis(t, srv, RedisOptions{SnapshotEvery: -1})
	waitFor(t, "the store without a budget confirmed", func() bool { return whole.Staleness(time.Now()) < time.Minute })
	if h := whole.Health(); h.Memory != nil || whole.Denylist().Len(KindToken) != 200_000 {
		t.Fatalf("without a budget: %d entries, memory %+v", whole.Denylist().Len(KindToken), h.Memory)
	}

	probe := NewDenylist()
	budget := budgetFor(probe, 1<<20)
	probe.release()
	tight := openRedis(t, srv, RedisOptions{SnapshotEvery: -1, MemoryBudget: budget})
	waitFor(t, "the store with a budget loaded", func() bool { return tight.Health().Loaded })
	time.Sleep(300 * time.Millisecond) // a few feed reads, each of which confirms a whole copy
	h := tight.Health()
	if h.Memory == nil || !h.Memory.Over() || h.Memory.Budget != budget {
		t.Fatalf("200k entries in a 1 MiB room: memory %+v", h.Memory)
	}
	if held := tight.Denylist().Len(KindToken); held+h.Memory.Dropped != 200_000 {
		t.Fatalf("held %d + not held %d, want 200000", held, h.Memory.Dropped)
	}
	if st := tight.Staleness(time.Now()); st < time.Hour {
		t.Fatalf("a copy missing %d revocations called current (stale for %v)", h.Memory.Dropped, st)
	}
}
