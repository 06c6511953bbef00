//go:build unix

package revocation

import (
	"runtime"
	"syscall"
	"unsafe"
)

// mapThreshold is the smallest block mapped outside the Go heap: below
// it, a page-rounded mapping per shard would waste more than it saves.
// It is low enough that a denylist of a million entries (256 shards of
// about 100 KiB) is mapped: on the Go heap, every table a shard outgrows
// stays resident as garbage until the next collection, and the
// collector's headroom (GOGC) doubles what the tables cost.
const mapThreshold = 32 << 10

// region is a block of memory mapped outside the Go heap.
type region struct {
	b       []byte
	cleanup runtime.Cleanup
}

// allocWords returns n zeroed words. Large blocks are anonymous private
// mappings, released by free or, should their table be dropped without
// it, when the region becomes unreachable.
func allocWords(n int) ([]uint64, *region) {
	size := n * 8
	if size < mapThreshold {
		return make([]uint64, n), nil
	}
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]uint64, n), nil // the Go heap will do
	}
	r := &region{b: b}
	r.cleanup = runtime.AddCleanup(r, func(b []byte) { _ = syscall.Munmap(b) }, b)
	return unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), n), r
}

func (r *region) free() {
	r.cleanup.Stop()
	_ = syscall.Munmap(r.b)
	r.b = nil
}
