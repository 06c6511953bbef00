//go:build !unix

package revocation

// region is unused where memory is not mapped by hand.
type region struct{}

// allocWords returns n zeroed words from the Go heap.
func allocWords(n int) ([]uint64, *region) { return make([]uint64, n), nil }

func (r *region) free() {}
