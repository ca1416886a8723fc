package engine

import (
	"bytes"
	"testing"
)

func TestRingGrowKeepsLiveBytes(t *testing.T) {
	r := ring{max: 1 << 20}
	var want []byte
	lo := int64(100000) // not a multiple of any size: exercises wrap on copy
	if !r.reserve(lo, lo, lo+1000) {
		t.Fatal("reserve")
	}
	for i := 0; i < 60000; i++ {
		want = append(want, byte(i*7))
	}
	r.write(lo, want[:1000])
	if !r.reserve(lo, lo+1000, lo+int64(len(want))) {
		t.Fatal("reserve grow")
	}
	r.write(lo+1000, want[1000:])
	got := make([]byte, len(want))
	r.read(got, lo)
	if !bytes.Equal(got, want) {
		t.Fatal("ring lost bytes across growth")
	}
	if r.reserve(lo, lo, lo+2<<20) {
		t.Fatal("reserve beyond max succeeded")
	}
}

func TestSpans(t *testing.T) {
	var x spans
	x.add(10, 20)
	x.add(30, 40)
	x.add(20, 30) // bridges both
	if x.n != 1 || x.rs()[0] != (span{10, 40}) {
		t.Fatalf("merge: %v", x.rs())
	}
	x.add(50, 60)
	x.add(5, 8)
	if x.n != 3 || x.rs()[0] != (span{5, 8}) || x.rs()[2] != (span{50, 60}) {
		t.Fatalf("insert: %v", x.rs())
	}
	x.trim(35)
	if x.n != 2 || x.rs()[0] != (span{35, 40}) {
		t.Fatalf("trim: %v", x.rs())
	}
	for i := 0; i < maxSpans+2; i++ {
		x.add(int64(100+10*i), int64(105+10*i))
	}
	if x.n != inlineSpans { // without a block (widen)
		t.Fatalf("cap: %d", x.n)
	}
}

// TestRingBytesCut: a ring's bytes across its end cut anywhere give back
// the same bytes, each part at its own offset, and a rest that is one
// piece starts as one (piece a), so that it can be lent.
func TestRingBytesCut(t *testing.T) {
	r := ring{b: make([]byte, 16)}
	for i := range r.b {
		r.b[i] = byte(i)
	}
	for off := int64(0); off < 32; off++ {
		for n := int64(0); n <= 16; n++ {
			d := r.span(off, n)
			var want []byte
			for i := range n {
				want = append(want, byte((off+i)%16))
			}
			for k := 0; k <= int(n); k++ {
				head, rest := d.cut(k)
				got := make([]byte, n)
				at := head.copyTo(got)
				at += rest.copyTo(got[at:])
				if at != int(n) || !bytes.Equal(got, want) || head.len() != k || head.off != off || rest.off != off+int64(k) {
					t.Fatalf("span(%d, %d).cut(%d): %x at %d/%d, want %x", off, n, k, got, head.off, rest.off, want)
				}
				if rest.len() > 0 && len(rest.a) == 0 {
					t.Fatalf("span(%d, %d).cut(%d): the rest starts in piece b", off, n, k)
				}
				if one := rest.lendable(); rest.len() > 0 && (off+int64(k))%16+int64(rest.len()) <= 16 && len(one) != rest.len() {
					t.Fatalf("span(%d, %d).cut(%d): a rest of one piece is not lendable", off, n, k)
				}
			}
		}
	}
}

// takeSACK names each range at least once after it changes, the most
// recent first, and unsent follows the ranges through inserts, merges and
// trims.
func TestSpansNameEveryRange(t *testing.T) {
	var x spans
	var blocks [3][2]uint32
	take := func() [][2]uint32 { return blocks[:x.takeSACK(blocks[:], 0)] }
	x.add(10, 20)
	x.add(30, 40)
	x.add(50, 60)
	x.add(70, 80) // four new ranges, 70-80 the latest
	got := take()
	if len(got) != 3 || got[0] != [2]uint32{71, 81} || got[1] != [2]uint32{51, 61} || got[2] != [2]uint32{31, 41} {
		t.Fatalf("first ACK's blocks %v: want the latest, then the unnamed from the highest", got)
	}
	if got = take(); got[0] != [2]uint32{71, 81} || got[1] != [2]uint32{11, 21} {
		t.Fatalf("second ACK's blocks %v: want the latest, then 10-20, never named", got)
	}
	if x.mask() != 0 {
		t.Fatalf("unsent %b after every range was named", x.mask())
	}
	x.add(0, 5)   // inserted below all: indices move up
	x.add(20, 25) // extends 10-20
	if x.mask() != 0b11 || x.last != 1 {
		t.Fatalf("unsent %b last %d, want 0-5 and 10-25 unnamed, 10-25 the latest", x.mask(), x.last)
	}
	x.add(25, 30) // merges 10-25 and 30-40
	if x.n != 4 || x.rs()[1] != (span{10, 40}) || x.mask() != 0b11 || x.last != 1 {
		t.Fatalf("after the merge: %d ranges, r[1] %v, unsent %b, last %d", x.n, x.rs()[1], x.mask(), x.last)
	}
	x.trim(8) // drops 0-5: everything moves down one
	if x.n != 3 || x.mask() != 0b1 || x.last != 0 || x.rs()[0] != (span{10, 40}) {
		t.Fatalf("after the trim: %d ranges, unsent %b, last %d, r[0] %v", x.n, x.mask(), x.last, x.rs()[0])
	}
}
