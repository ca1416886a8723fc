package flowtable

import "sync/atomic"

// cacheLine is the padding unit between fields written by different cores.
// 128 bytes covers the adjacent-line prefetcher of x86 and the 128-byte lines
// of some arm64 parts.
const cacheLine = 128

type pad [cacheLine]byte

// Ring is a bounded single-producer single-consumer queue for handing frames
// (or descriptors) to the worker that owns their flow. Exactly one goroutine
// may push and exactly one may pop; neither ever blocks: Push on a full ring
// and Pop on an empty one fail at once, and the caller decides (drop and
// count, or retry after its batch).
//
// The producer publishes slots with an atomic store of tail after writing
// them, and the consumer reads tail with an atomic load before reading the
// slots; symmetrically for head. Go's sync/atomic operations are sequentially
// consistent, which includes the release/acquire ordering this needs. Each
// side keeps a cached copy of the other side's index and reloads it only when
// the ring looks full (producer) or empty (consumer), so a batch costs one
// shared-line read at most and one store.
type Ring[T any] struct {
	_ pad
	// Producer's line.
	tail       atomic.Uint64 // next slot to write
	cachedHead uint64
	_          pad
	// Consumer's line.
	head       atomic.Uint64 // next slot to read
	cachedTail uint64
	_          pad
	// Read-only after NewRing.
	mask uint64
	buf  []T
}

// NewRing returns a ring holding up to size elements, rounded up to a power
// of two (at least 2).
func NewRing[T any](size int) *Ring[T] {
	n := 2
	for n < size {
		n *= 2
	}
	return &Ring[T]{mask: uint64(n - 1), buf: make([]T, n)}
}

// Cap returns the ring's capacity.
func (r *Ring[T]) Cap() int { return len(r.buf) }

// Len returns the number of queued elements (a snapshot; either side may be
// moving).
func (r *Ring[T]) Len() int {
	h := r.head.Load() // head first: tail never falls behind a head read earlier
	n := r.tail.Load() - h
	return int(min(n, uint64(len(r.buf))))
}

// Push appends v; it returns false if the ring is full. Producer only.
func (r *Ring[T]) Push(v T) bool {
	t := r.tail.Load()
	if t-r.cachedHead == uint64(len(r.buf)) {
		r.cachedHead = r.head.Load()
		if t-r.cachedHead == uint64(len(r.buf)) {
			return false
		}
	}
	r.buf[t&r.mask] = v
	r.tail.Store(t + 1)
	return true
}

// PushBatch appends as many of vs as fit and returns how many. Producer only.
func (r *Ring[T]) PushBatch(vs []T) int {
	t := r.tail.Load()
	free := uint64(len(r.buf)) - (t - r.cachedHead)
	if free < uint64(len(vs)) {
		r.cachedHead = r.head.Load()
		free = uint64(len(r.buf)) - (t - r.cachedHead)
	}
	n := min(uint64(len(vs)), free)
	for i := uint64(0); i < n; i++ {
		r.buf[(t+i)&r.mask] = vs[i]
	}
	if n > 0 {
		r.tail.Store(t + n)
	}
	return int(n)
}

// Pop removes the oldest element; ok is false if the ring is empty.
// Consumer only. The slot is cleared so the ring holds no stale references.
func (r *Ring[T]) Pop() (v T, ok bool) {
	h := r.head.Load()
	if h == r.cachedTail {
		r.cachedTail = r.tail.Load()
		if h == r.cachedTail {
			return v, false
		}
	}
	s := &r.buf[h&r.mask]
	v = *s
	var zero T
	*s = zero
	r.head.Store(h + 1)
	return v, true
}

// PopBatch removes up to len(out) elements into out and returns how many.
// Consumer only.
func (r *Ring[T]) PopBatch(out []T) int {
	h := r.head.Load()
	avail := r.cachedTail - h
	if avail < uint64(len(out)) {
		r.cachedTail = r.tail.Load()
		avail = r.cachedTail - h
	}
	n := min(uint64(len(out)), avail)
	var zero T
	for i := uint64(0); i < n; i++ {
		s := &r.buf[(h+i)&r.mask]
		out[i] = *s
		*s = zero
	}
	if n > 0 {
		r.head.Store(h + n)
	}
	return int(n)
}
