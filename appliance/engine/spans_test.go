package engine

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// spansOf adds n ranges of 5 bytes, 10 apart from 100 on, to x.
func spansOf(x *spans, n int) {
	for i := range n {
		if !x.add(int64(100+10*i), int64(105+10*i)) {
			panic("spansOf: no room")
		}
	}
}

// The ranges move from the record to a block and back: a 17th range needs
// the block, keeps the first 16 and their unsent bits where they were, and
// the set then goes on to maxSpans; narrow takes the block back only once
// the ranges fit without it, bits and all.
func TestSpansWidenAndNarrow(t *testing.T) {
	var x spans
	spansOf(&x, inlineSpans)
	var blocks [3][2]uint32
	x.takeSACK(blocks[:], 0) // names the newest and the two highest unnamed: 15, 14, 13
	named := x.mask()
	if named != 1<<13-1 {
		t.Fatalf("unsent %b after one ACK, want ranges 0-12", named)
	}
	if x.add(300, 305) {
		t.Fatal("a 17th range went in without a block")
	}
	if x.narrow() != nil {
		t.Fatal("narrow of a set without a block gave one")
	}
	x.widen(new(spanBlock))
	if x.len() != inlineSpans || x.mask() != named || x.last != inlineSpans-1 || !slices.Equal(x.rs(), x.in[:]) {
		t.Fatalf("widen: %d ranges, unsent %b, last %d: %v", x.len(), x.mask(), x.last, x.rs())
	}
	if !x.add(300, 305) || x.len() != 17 || x.rs()[16] != (span{300, 305}) || x.mask() != named|1<<16 || x.last != 16 {
		t.Fatalf("17th range: %d ranges, unsent %b, last %d", x.len(), x.mask(), x.last)
	}
	// Inserted below all: every bit moves up one, bit 17 among them.
	if !x.add(0, 5) || x.len() != 18 || x.rs()[0] != (span{0, 5}) || x.mask() != named<<1|1<<17|1 || x.last != 0 {
		t.Fatalf("insert below all: %d ranges, unsent %b, last %d", x.len(), x.mask(), x.last)
	}
	if x.narrow() != nil {
		t.Fatal("narrow gave the block back with 18 ranges")
	}
	// 105-300 bridges ranges 1-16 and reaches 17 (300-305): one range.
	if !x.add(105, 300) || x.len() != 2 || x.rs()[1] != (span{100, 305}) || x.mask() != 0b11 || x.last != 1 {
		t.Fatalf("merge across: %d ranges %v, unsent %b, last %d", x.len(), x.rs(), x.mask(), x.last)
	}
	x.trim(50)
	if x.len() != 1 || x.mask() != 0b1 || x.last != 0 {
		t.Fatalf("trim: %v, unsent %b, last %d", x.rs(), x.mask(), x.last)
	}
	b := x.narrow()
	if b == nil || x.big != nil || x.len() != 1 || x.rs()[0] != (span{100, 305}) || x.mask() != 1 || x.inUnsent != 1 {
		t.Fatalf("narrow: block %v, %v, unsent %b", b != nil, x.rs(), x.mask())
	}
}

// With a block the set holds maxSpans ranges and no more, and takeSACK
// names every one of them, three to an ACK: the newest first, then those
// not yet named from the highest, which with 64 ranges takes the mask's
// top bit.
func TestSpansBlockNamesEveryRange(t *testing.T) {
	var x spans
	x.widen(new(spanBlock))
	spansOf(&x, maxSpans)
	if x.add(5000, 5005) || x.len() != maxSpans {
		t.Fatalf("a range past maxSpans went in: %d ranges", x.len())
	}
	if x.mask() != ^uint64(0) {
		t.Fatalf("unsent %x with %d new ranges", x.mask(), maxSpans)
	}
	var blocks [3][2]uint32
	edge := func(i int) uint32 { return uint32(100 + 10*i + 1) } // wrap(0, s) is s+1
	seen := map[uint32]bool{}
	nb := x.takeSACK(blocks[:], 0)
	if nb != 3 || blocks[0][0] != edge(63) || blocks[1][0] != edge(62) || blocks[2][0] != edge(61) {
		t.Fatalf("first ACK's blocks %v: want ranges 63 (newest), 62, 61", blocks[:nb])
	}
	acks := 1
	for ; x.unnamed(); acks++ {
		for _, b := range blocks[:nb] {
			seen[b[0]] = true
		}
		if acks >= maxSpans {
			t.Fatalf("ranges still unnamed after %d ACKs: %x", acks, x.mask())
		}
		nb = x.takeSACK(blocks[:], 0)
		// The newest, then the two highest still unnamed; the last ACK
		// fills up from the lowest.
		hi := 62 - 2*acks
		third := edge(hi - 1)
		if hi == 0 {
			third = edge(1)
		}
		if nb != 3 || blocks[0][0] != edge(63) || blocks[1][0] != edge(hi) || blocks[2][0] != third {
			t.Fatalf("ACK %d: blocks %v, want ranges 63, %d, %d", acks, blocks[:nb], hi, hi-1)
		}
	}
	for _, b := range blocks[:nb] {
		seen[b[0]] = true
	}
	if acks != 32 || len(seen) != maxSpans {
		t.Fatalf("%d ACKs named %d ranges, want every one of %d in 32", acks, len(seen), maxSpans)
	}
	// All named: the newest, then the others from the lowest.
	if nb = x.takeSACK(blocks[:], 0); blocks[0][0] != edge(63) || blocks[1][0] != edge(0) || blocks[2][0] != edge(1) {
		t.Fatalf("blocks %v once every range was named", blocks[:nb])
	}
	// A change to range 40 makes it the newest and the one unnamed.
	x.add(505, 506)
	if x.mask() != 1<<40 || x.last != 40 || x.rs()[40] != (span{500, 506}) {
		t.Fatalf("unsent %x last %d after range 40 grew", x.mask(), x.last)
	}
	// trim below everything drops all of them, and the bits.
	x.trim(1 << 20)
	if x.len() != 0 || x.mask() != 0 || x.last != 0 {
		t.Fatalf("trim past all: %d ranges, unsent %x, last %d", x.len(), x.mask(), x.last)
	}
}

// spanModel is the plain reading of what spans does: sorted ranges, each
// with its own unnamed flag, and the newest.
type spanModel struct {
	r       []span
	unnamed []bool
	last    int
}

func (m *spanModel) add(s, e int64, limit int) bool {
	if s >= e {
		return true
	}
	var r []span
	var un []bool
	at := -1
	for i, q := range m.r {
		switch {
		case q.e < s || q.s > e:
			r, un = append(r, q), append(un, m.unnamed[i])
		default:
			s, e = min(s, q.s), max(e, q.e)
		}
	}
	for i, q := range r {
		if q.s > e {
			at = i
			break
		}
	}
	if at < 0 {
		at = len(r)
	}
	if len(r)+1 > limit {
		return false
	}
	m.r = slices.Insert(r, at, span{s, e})
	m.unnamed = slices.Insert(un, at, true)
	m.last = at
	return true
}

func (m *spanModel) trim(off int64) {
	k := 0
	for k < len(m.r) && m.r[k].e <= off {
		k++
	}
	m.r, m.unnamed = m.r[k:], m.unnamed[k:]
	m.last = max(m.last-k, 0)
	if len(m.r) > 0 && m.r[0].s < off {
		m.r[0].s = off
	}
}

func (m *spanModel) take(n int) []span {
	if len(m.r) == 0 {
		return nil
	}
	var out []span
	took := map[int]bool{}
	put := func(i int) {
		if len(out) < n && !took[i] {
			out = append(out, m.r[i])
			took[i] = true
		}
	}
	put(m.last)
	for i := len(m.r) - 1; i >= 0; i-- {
		if m.unnamed[i] {
			put(i)
		}
	}
	for i := range m.r {
		put(i)
	}
	for i := range took {
		m.unnamed[i] = false
	}
	return out
}

// Random adds, trims and takes on spans (widened when the record is full,
// narrowed when the ranges fit again) against spanModel: the same ranges,
// the same blocks in the same order, the same unsent bits.
func TestSpansAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 200 {
		var x spans
		var m spanModel
		lo := int64(0)
		var pool *spanBlock
		for step := range 400 {
			switch op := rng.IntN(10); {
			case op < 7:
				s := lo + rng.Int64N(2000)
				e := s + 1 + rng.Int64N(20)
				ok := x.add(s, e)
				if !ok && x.big == nil {
					if pool == nil {
						pool = new(spanBlock)
					}
					x.widen(pool)
					pool = nil
					ok = x.add(s, e)
				}
				if want := m.add(s, e, maxSpans); ok != want {
					t.Fatalf("run %d step %d: add(%d, %d) %v, model %v (%d ranges)", run, step, s, e, ok, want, x.len())
				}
			case op < 8:
				lo += rng.Int64N(200)
				x.trim(lo)
				m.trim(lo)
				if b := x.narrow(); b != nil {
					pool = b
				}
			default:
				var blocks [3][2]uint32
				k := 1 + rng.IntN(3)
				got, want := blocks[:x.takeSACK(blocks[:k], 0)], m.take(k)
				if len(got) != len(want) {
					t.Fatalf("run %d step %d: %d blocks, model %d", run, step, len(got), len(want))
				}
				for i := range got {
					if got[i] != [2]uint32{wrap(0, want[i].s), wrap(0, want[i].e)} {
						t.Fatalf("run %d step %d: blocks %v, model %v", run, step, got, want)
					}
				}
			}
			if !slices.Equal(x.rs(), m.r) && !(x.len() == 0 && len(m.r) == 0) {
				t.Fatalf("run %d step %d: ranges %v, model %v", run, step, x.rs(), m.r)
			}
			var bits uint64
			for i, u := range m.unnamed {
				if u {
					bits |= 1 << i
				}
			}
			if x.mask() != bits || x.len() > 0 && int(x.last) != m.last {
				t.Fatalf("run %d step %d: unsent %b last %d, model %b last %d", run, step, x.mask(), x.last, bits, m.last)
			}
		}
	}
}
