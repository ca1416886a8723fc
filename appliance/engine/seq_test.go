package engine

import (
	"math"
	"testing"
)

func TestUnwrap(t *testing.T) {
	cases := []struct {
		seq, isn uint32
		ref      int64
		want     int64
	}{
		{1001, 1000, 0, 0},
		{1000, 1000, 0, -1}, // the SYN's own sequence number
		{1101, 1000, 50, 100},
		{math.MaxUint32, math.MaxUint32 - 10, 0, 9},
		{5, math.MaxUint32 - 10, 0, 15},                        // wrapped past zero
		{1001, 1000, 1 << 32, 1 << 32},                         // second lap
		{1000 + 1 + 100, 1000, 1<<32 + 1<<31 - 1, 1<<32 + 100}, // nearest lap below
		{1000 + 1 + 100, 1000, 1<<32 + 1<<31 + 200, 2<<32 + 100},
	}
	for _, c := range cases {
		if got := unwrap(c.seq, c.isn, c.ref); got != c.want {
			t.Errorf("unwrap(%d, %d, %d) = %d, want %d", c.seq, c.isn, c.ref, got, c.want)
		}
		if c.want >= -1 {
			if w := wrap(c.isn, c.want); w != c.seq {
				t.Errorf("wrap(%d, %d) = %d, want %d", c.isn, c.want, w, c.seq)
			}
		}
	}
}

func FuzzUnwrap(f *testing.F) {
	f.Add(uint32(0), int64(0), int32(0))
	f.Add(uint32(math.MaxUint32), int64(1<<40), int32(-5))
	f.Fuzz(func(t *testing.T, isn uint32, ref int64, d int32) {
		if ref < 0 || ref > 1<<62 {
			return
		}
		off := ref + int64(d)
		if got := unwrap(wrap(isn, off), isn, ref); got != off {
			t.Fatalf("round trip of %d near %d gave %d", off, ref, got)
		}
	})
}
