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
	if x.n != 1 || x.r[0] != (span{10, 40}) {
		t.Fatalf("merge: %v", x.r[:x.n])
	}
	x.add(50, 60)
	x.add(5, 8)
	if x.n != 3 || x.r[0] != (span{5, 8}) || x.r[2] != (span{50, 60}) {
		t.Fatalf("insert: %v", x.r[:x.n])
	}
	x.trim(35)
	if x.n != 2 || x.r[0] != (span{35, 40}) {
		t.Fatalf("trim: %v", x.r[:x.n])
	}
	for i := 0; i < maxSpans+2; i++ {
		x.add(int64(100+10*i), int64(105+10*i))
	}
	if x.n != maxSpans {
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
