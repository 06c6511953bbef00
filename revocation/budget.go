package revocation

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync/atomic"
	"time"
)

// A memory budget bounds what a replica's process holds, so that a
// denylist larger than the container's memory limit makes the replica
// refuse readiness instead of being killed (and restarted, and killed
// again, with every other replica of the app at once).
//
// The budget covers the whole process as the kernel counts it (resident
// memory: the binary, the Go runtime, the denylist's tables, which live
// outside the Go heap). A table may grow only while the process, with
// the grown table, stays inside the budget less a headroom for what a
// load or a burst of requests allocates for a moment: an entry that
// would need more is not held, and the copy is incomplete until every
// such entry has expired.

// budgetHeadroom is the part of a budget kept for transient memory: a
// sixteenth, at least 8 MiB.
func budgetHeadroom(budget int64) int64 { return max(budget/16, 8<<20) }

// budgetState is a Denylist's memory budget and what it could not hold.
type budgetState struct {
	budget atomic.Int64 // bytes, 0 for none
	tables atomic.Int64 // bytes the plain tables hold
	// dropped counts the entries not held for want of memory since the
	// budget was last met; droppedUntil is the latest expiry among them
	// (unix seconds): past it, the copy is complete again.
	dropped      atomic.Int64
	droppedTotal atomic.Int64
	droppedUntil atomic.Int64
	// read is the last reading of the process's memory (processBytes).
	read atomic.Pointer[processReading]
}

// processReading is one reading of the process's resident memory, with
// what the tables held then and when it was taken.
type processReading struct {
	at      time.Time
	process int64
	tables  int64
}

// processReadEvery bounds how often processBytes reads /proc. A table
// at its budget asks for every new key whether it may grow: reading
// /proc each time cost a few microseconds per key, for a figure that
// moves only as the tables do, which the reading adds exactly.
const processReadEvery = 100 * time.Millisecond

func newBudgetDenylist(budget int64) *Denylist {
	d := NewDenylist()
	if budget > 0 {
		d.SetMemoryBudget(budget)
	}
	return d
}

// SetMemoryBudget sets the most memory, in bytes, the process may hold
// for this denylist (0: no budget). It also sets the Go runtime's soft
// memory limit to the budget less the tables and the headroom, unless
// GOMEMLIMIT says otherwise, so that the collector works harder rather
// than let the heap push the process over.
func (d *Denylist) SetMemoryBudget(budget int64) {
	if prev := d.mem.budget.Swap(max(budget, 0)); prev > 0 && budget <= 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(math.MaxInt64) // the limit was the budget's
	}
	d.setGoLimit()
}

// MemoryBudget returns the budget set by SetMemoryBudget.
func (d *Denylist) MemoryBudget() int64 { return d.mem.budget.Load() }

func (d *Denylist) setGoLimit() {
	b := d.mem.budget.Load()
	if b == 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(max(b-d.mem.tables.Load()-budgetHeadroom(b), 8<<20))
}

// BudgetStatus says how a denylist stands against its memory budget.
type BudgetStatus struct {
	// Budget is the budget in bytes, 0 when there is none.
	Budget int64
	// Tables is what the tables hold; Process what the whole process
	// holds (resident).
	Tables, Process int64
	// Dropped is how many entries are not held for want of memory, and
	// Until the moment the last of them expires: until then the copy is
	// incomplete. DroppedTotal counts every one since the start.
	Dropped, DroppedTotal int64
	Until                 int64
}

// Over reports whether entries are missing from the copy for want of
// memory.
func (b BudgetStatus) Over() bool { return b.Dropped > 0 }

// Reason says why a replica over its budget is not ready.
func (b BudgetStatus) Reason() string {
	return fmt.Sprintf("memory budget %s exceeded: %d revocations not held in the local copy (process %s, of which tables %s); "+
		"raise memory_budget and the memory limit, or wait for them to expire",
		sizeString(b.Budget), b.Dropped, sizeString(b.Process), sizeString(b.Tables))
}

// Budget returns how the denylist stands against its memory budget,
// ending the over-budget state once every dropped entry has expired at
// now (unix seconds).
func (d *Denylist) Budget(now int64) BudgetStatus {
	// drop moves the expiry before it counts, so a count read before
	// the expiry covers every drop the expiry does: a drop in between
	// makes the swap fail.
	if n := d.mem.dropped.Load(); n > 0 && now >= d.mem.droppedUntil.Load() {
		d.mem.dropped.CompareAndSwap(n, 0)
	}
	return BudgetStatus{
		Budget: d.mem.budget.Load(), Tables: d.mem.tables.Load(), Process: d.processBytes(),
		Dropped: d.mem.dropped.Load(), DroppedTotal: d.mem.droppedTotal.Load(), Until: d.mem.droppedUntil.Load(),
	}
}

// mayGrow reports whether the tables may hold extra more bytes.
func (d *Denylist) mayGrow(extra int64) bool {
	b := d.mem.budget.Load()
	if b == 0 {
		return true
	}
	return d.processBytes()+extra <= b-budgetHeadroom(b)
}

// tableRoom is how many more plain entries the budget leaves room for,
// at 7/8 full: what a load may size the tables for.
func (d *Denylist) tableRoom() int64 {
	b := d.mem.budget.Load()
	if b == 0 {
		return 1 << 62
	}
	room := b - budgetHeadroom(b) - d.processBytes()
	return max(room, 0) / (groupWords * 8) * 7
}

// drop records an entry not held for want of memory.
func (d *Denylist) drop(exp int64) {
	for {
		u := d.mem.droppedUntil.Load()
		if exp <= u || d.mem.droppedUntil.CompareAndSwap(u, exp) {
			break
		}
	}
	d.mem.dropped.Add(1)
	d.mem.droppedTotal.Add(1)
}

// processBytes is the process's resident memory, read at most every
// processReadEvery: in between, the last reading plus what the tables
// have grown by since.
func (d *Denylist) processBytes() int64 {
	now := time.Now()
	tables := d.mem.tables.Load()
	if r := d.mem.read.Load(); r != nil && now.Sub(r.at) < processReadEvery {
		return r.process + tables - r.tables
	}
	p := d.readProcessBytes()
	d.mem.read.Store(&processReading{at: now, process: p, tables: tables})
	return p
}

// readProcessBytes is the process's resident memory (Linux), or what the Go
// runtime and the tables hold where /proc is not there to say.
func (d *Denylist) readProcessBytes() int64 {
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := bytes.Fields(b); len(f) > 1 {
			if pages, err := strconv.ParseInt(string(f[1]), 10, 64); err == nil {
				return pages * int64(os.Getpagesize())
			}
		}
	}
	return runtimeBytes() + d.mem.tables.Load()
}

// runtimeBytes is the memory the Go runtime has mapped and not given
// back to the system.
func runtimeBytes() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64() - s[1].Value.Uint64())
}

// boundLoadHeap bounds the Go heap while a full load of about n entries
// runs, and returns what undoes it. A load allocates hundreds of bytes
// of short-lived garbage per entry (replies, strings, maps): left to
// GOGC, the heap grows to twice what is live before a collection, and
// the process's peak is that garbage, not the table. A soft memory
// limit of what the runtime holds now plus a few bytes per entry (at
// least 4 MiB) has the collector run before the garbage piles up; it is
// lifted after the load (or set back to the budget's).
func (d *Denylist) boundLoadHeap(n int64) func() {
	if os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	prev := debug.SetMemoryLimit(-1)
	limit := runtimeBytes() + max(4*n, 4<<20)
	if prev < limit {
		limit = prev // a budget's limit is lower still
	}
	debug.SetMemoryLimit(limit)
	return func() {
		debug.SetMemoryLimit(prev)
		d.setGoLimit()
	}
}

// releaseLoadMemory returns to the system the heap a full load used for
// its buffers: otherwise the collector keeps it as headroom, and the
// process holds it, until long after.
func (d *Denylist) releaseLoadMemory() {
	if d.compact != nil {
		d.compactLoaded()
	}
	debug.FreeOSMemory()
	d.setGoLimit()
}

// CgroupMemoryLimit returns the memory limit of the cgroup this process
// runs in (v2, then v1), 0 when there is none or it cannot be read.
func CgroupMemoryLimit() int64 {
	return cgroupLimit("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
}

func cgroupLimit(paths ...string) int64 {
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		v := string(bytes.TrimSpace(b))
		if v == "max" {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			continue
		}
		if n >= 1<<60 { // cgroup v1's "unlimited" is a page-rounded 2^63-1
			return 0
		}
		return n
	}
	return 0
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d KiB", n>>10)
	}
}
