package engine

import (
	"math/bits"
	"unsafe"
)

// span is a half-open range of stream offsets.
type span struct{ s, e int64 }

// spans is a sorted set of disjoint ranges: the out-of-order bytes held by
// a reassembly buffer, which are also the SACK blocks the engine reports
// (RFC 2018). The first inlineSpans ranges lie in the set itself, inside
// the flow record; a reassembly of R's bytes that needs more moves them to
// a spanBlock of maxSpans (widen, Engine.widenHeld), charged to the flow
// and taken back once its holes are gone (Engine.narrowHeld). At 5 % loss
// a Linux receiver holds 23 to 30 ranges; with 16 the engine dropped every
// segment that would have made a 17th (reassembly_full), and R's sender
// resent them (docs/architecture.md).
type spans struct {
	in [inlineSpans]span // the ranges while big is nil
	// big holds the ranges instead of in once they were more than
	// inlineSpans; nil for most flows.
	big *spanBlock
	n   int32
	// last is the index of the most recently changed range: RFC 2018 wants
	// the block with the newest segment first.
	last int16
	// inUnsent is the unsent mask while big is nil (spanBlock.unsent
	// after). Bit i is set while range i changed since a SACK block last
	// named it (takeSACK): a plain receiver names every new range in the
	// duplicate ACK of its segment, one ACK per segment, while the engine
	// answers a round's segments with one ACK (dupack.go) and a range
	// never named leaves R's sender to think its bytes lost.
	inUnsent uint16
}

// spanBlock holds a reassembly's ranges past inlineSpans.
type spanBlock struct {
	r      [maxSpans]span
	unsent uint64     // as spans.inUnsent, one bit per range
	next   *spanBlock // the engine's free list (Engine.spanFree)
}

const (
	inlineSpans = 16 // ranges in the flow record (inUnsent has a bit for each)
	maxSpans    = 64 // ranges in a spanBlock (unsent has a bit for each)
)

// The masks have a bit for every range.
var (
	_ [16 - inlineSpans]struct{}
	_ [64 - maxSpans]struct{}
)

// len is the number of ranges.
func (x *spans) len() int { return int(x.n) }

// rs returns the ranges, lowest first.
func (x *spans) rs() []span {
	if x.big != nil {
		return x.big.r[:x.n]
	}
	return x.in[:x.n]
}

// room returns the array the ranges lie in, to its end.
func (x *spans) room() []span {
	if x.big != nil {
		return x.big.r[:]
	}
	return x.in[:]
}

// top is the end of the highest range, or floor if that is higher or there
// are none.
func (x *spans) top(floor int64) int64 {
	if x.n == 0 {
		return floor
	}
	return max(floor, x.rs()[x.n-1].e)
}

// mask returns the unsent bits; setMask sets them.
func (x *spans) mask() uint64 {
	if x.big != nil {
		return x.big.unsent
	}
	return uint64(x.inUnsent)
}

func (x *spans) setMask(m uint64) {
	if x.big != nil {
		x.big.unsent = m
	} else {
		x.inUnsent = uint16(m) // a bit past inlineSpans only comes with big
	}
}

// unnamed reports whether a range changed since a block last named it.
func (x *spans) unnamed() bool { return x.mask() != 0 }

// cut keeps the lowest k ranges and forgets which were named and last
// changed (prune.go).
func (x *spans) cut(k int) {
	x.n, x.last = int32(min(k, int(x.n))), 0
	x.setMask(0)
}

// widen moves the ranges to b, which has room for maxSpans.
func (x *spans) widen(b *spanBlock) {
	copy(b.r[:], x.in[:x.n])
	b.unsent, b.next = uint64(x.inUnsent), nil
	x.big, x.inUnsent = b, 0
}

// narrow moves the ranges back from their block if they fit without it,
// and returns the block; nil if there is none or they do not fit.
func (x *spans) narrow() *spanBlock {
	b := x.big
	if b == nil || x.n > inlineSpans {
		return nil
	}
	copy(x.in[:], b.r[:x.n])
	x.inUnsent = uint16(b.unsent)
	x.big = nil
	return b
}

// add merges [s, e) in; it reports false when a new range would not fit
// (inlineSpans without a block, maxSpans with one): the bytes are then not
// held.
func (x *spans) add(s, e int64) bool {
	if s >= e {
		return true
	}
	a, n := x.room(), int(x.n)
	// i is the first range that ends at s or later (their ends rise).
	i, hi := 0, n
	for i < hi {
		m := int(uint(i+hi) >> 1)
		if a[m].e < s {
			i = m + 1
		} else {
			hi = m
		}
	}
	j := i
	for j < n && a[j].s <= e {
		s, e = min(s, a[j].s), max(e, a[j].e)
		j++
	}
	m := x.mask()
	below := m & (1<<i - 1)
	if i == j {
		if n == len(a) {
			return false
		}
		copy(a[i+1:n+1], a[i:n])
		x.n++
		m = below | m>>i<<(i+1)
	} else if j > i+1 {
		copy(a[i+1:], a[j:n])
		x.n -= int32(j - i - 1)
		m = below | m>>j<<(i+1)
	}
	a[i] = span{s, e}
	x.last = int16(i)
	x.setMask(m | 1<<i)
	return true
}

// inOrder returns the held bytes of r that start at off, as far as they
// are contiguous in x and in the ring (up to its physical end), after
// dropping x's ranges below off; nil when nothing held starts at off.
func inOrder(r *ring, x *spans, off int64) []byte {
	if x.n == 0 {
		return nil // the usual case: nothing held
	}
	x.trim(off)
	if x.n == 0 {
		return nil
	}
	first := x.rs()[0]
	if first.s > off {
		return nil
	}
	chunk := r.at(off)
	if avail := first.e - off; int64(len(chunk)) > avail {
		chunk = chunk[:avail]
	}
	return chunk
}

// trim drops everything below off.
func (x *spans) trim(off int64) {
	a := x.rs()
	k := 0
	for k < len(a) && a[k].e <= off {
		k++
	}
	if k > 0 { // the first k ranges go: the others move down by k
		a = a[:copy(a, a[k:])]
		x.n -= int32(k)
		x.setMask(x.mask() >> k)
		x.last = max(x.last-int16(k), 0)
	}
	if len(a) > 0 && a[0].s < off {
		a[0].s = off
	}
}

// takeSACK fills blocks with x's ranges as SACK blocks (RFC 2018 §4): the
// most recently changed first, then those no block has named since they
// changed (the highest first: a sender fills holes from the lowest, so
// the highest are the newest), then the others from the lowest. It marks
// those it took as named and returns how many it took.
func (x *spans) takeSACK(blocks [][2]uint32, isn uint32) int {
	if x.n == 0 || len(blocks) == 0 {
		return 0
	}
	a := x.rs()
	var took uint64
	nb := 0
	take := func(i int) {
		if nb < len(blocks) && took&(1<<i) == 0 {
			blocks[nb] = [2]uint32{wrap(isn, a[i].s), wrap(isn, a[i].e)}
			nb++
			took |= 1 << i
		}
	}
	take(int(x.last))
	for m := x.mask(); m != 0 && nb < len(blocks); {
		i := bits.Len64(m) - 1
		take(i)
		m &^= 1 << i
	}
	for i := 0; i < len(a) && nb < len(blocks); i++ {
		take(i)
	}
	x.setMask(x.mask() &^ took)
	return nb
}

// spanBlockSize is what a flow is charged while its reassembly has a
// block (flow.bufBytes).
const spanBlockSize = int64(unsafe.Sizeof(spanBlock{}))

// spanFreeMax bounds the blocks an engine keeps for reuse: a flow that
// goes past inlineSpans ranges again and again (holes made and filled at
// high loss) takes one from the list, not from the allocator. The list is
// not charged to the budget (as the engine's other lists are not): at most
// spanFreeMax*spanBlockSize bytes per engine: 32 blocks of 1040 bytes
// (on 64-bit), 32.5 KiB.
const spanFreeMax = 32

// widenHeld moves f's reassembly ranges to a block of maxSpans when its
// inlineSpans are taken. It reports false when the flow has a block
// already, or the budget refuses one: the new range is then not held (R
// resends its bytes), as when a flow's bytes past holes are pruned
// (prune.go), so a flood of holes on many flows takes no more than the
// budget allows. A flow kept aside (not charged, acceptance.go) gets none.
func (e *Engine) widenHeld(f *flow) bool {
	x := &f.rcv.held
	if x.big != nil || !f.charged || !e.mem.take(spanBlockSize, false) {
		return false
	}
	b := e.spanFree
	if b != nil {
		e.spanFree = b.next
		e.spanFreeN--
	} else {
		b = new(spanBlock)
	}
	x.widen(b)
	e.c.HeldWidened.Add(1)
	return true
}

// narrowHeld takes f's block of ranges back once the ranges fit without
// it, and returns the bytes given back to the budget.
func (e *Engine) narrowHeld(f *flow) int64 {
	b := f.rcv.held.narrow()
	if b == nil {
		return 0
	}
	e.putSpans(b)
	if !f.charged {
		return 0
	}
	e.mem.give(spanBlockSize)
	return spanBlockSize
}

// putSpans keeps a block no flow uses for reuse, if the list has room.
func (e *Engine) putSpans(b *spanBlock) {
	if b != nil && e.spanFreeN < spanFreeMax {
		b.next = e.spanFree
		e.spanFree = b
		e.spanFreeN++
	}
}

// cost is what the flow is charged for x's block (none without one).
func (x *spans) cost() int64 {
	if x.big == nil {
		return 0
	}
	return spanBlockSize
}
