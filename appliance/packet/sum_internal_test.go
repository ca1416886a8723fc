package packet

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// refSum is the textbook sum (RFC 1071 §4.1): big-endian 16-bit words, an odd
// last byte padded with zero, end-around carry, folded to 16 bits.
func refSum(b []byte, acc uint32) uint16 {
	s := uint64(acc)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint64(b[i])<<8 | uint64(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint64(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// sumModes are the ways Sum can run on this machine: AVX-512 and AVX2, AVX2
// alone, plain Go (on a machine without them, plain Go each time).
var sumModes = []struct {
	name       string
	simd, wide bool
}{{"avx512", true, true}, {"avx2", true, false}, {"go", false, false}}

// setSumMode switches Sum to mode m (as far as the machine has it) and
// returns a function that switches it back.
func setSumMode(simd, wide bool) (restore func()) {
	s, w := haveSIMD, wideSIMD
	setSIMD(simd && s)
	setWideSIMD(wide && w)
	return func() { setSIMD(s); setWideSIMD(w) }
}

// allSums runs fn in every mode.
func allSums(t *testing.T, fn func(t *testing.T)) {
	for _, m := range sumModes {
		restore := setSumMode(m.simd, m.wide)
		t.Run(m.name, fn)
		restore()
	}
}

// TestSumTable holds Sum to the reference over every length up to 600 and
// some long ones, at every alignment of the first byte, with contents that
// stress the carries (all 0xff, all 0, random) and running sums in.
func TestSumTable(t *testing.T) {
	allSums(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		back := make([]byte, 70000)
		lens := []int{1399, 1400, 1420, 1448, 1480, 1500, 4096, 8999, 9000, 65535, 65536, 69999}
		for n := 0; n <= 600; n++ {
			lens = append(lens, n)
		}
		for _, n := range lens {
			for fill := 0; fill < 3; fill++ {
				for off := 0; off < 8 && off+n <= len(back); off++ {
					b := back[off : off+n]
					for i := range b {
						switch fill {
						case 0:
							b[i] = 0xff
						case 1:
							b[i] = 0
						default:
							b[i] = byte(r.Uint32())
						}
					}
					for _, acc := range []uint32{0, 0xffff, 0x1fffe, r.Uint32() >> 8} {
						if got, want := fold32(Sum(b, acc)), refSum(b, acc); got != want {
							t.Fatalf("len %d off %d fill %d acc %#x: Sum folds to %#04x, reference %#04x", n, off, fill, acc, got, want)
						}
					}
				}
			}
		}
	})
}

// FuzzSum: any bytes, split anywhere at an even offset, any running sum in.
func FuzzSum(f *testing.F) {
	f.Add([]byte{0xff, 0xff, 0x01}, uint16(0), uint32(0))
	f.Add(make([]byte, 200), uint16(64), uint32(0xffff))
	f.Fuzz(func(t *testing.T, b []byte, cut uint16, acc uint32) {
		acc >>= 8 // the running sums callers pass stay far below 2^32
		c := min(int(cut)&^1, len(b)&^1)
		for _, m := range sumModes {
			restore := setSumMode(m.simd, m.wide)
			got := fold32(Sum(b[c:], Sum(b[:c], acc)))
			restore()
			if want := refSum(b, acc); got != want {
				t.Fatalf("%s: len %d cut %d acc %#x: %#04x, reference %#04x", m.name, len(b), c, acc, got, want)
			}
		}
	})
}

func BenchmarkSum(b *testing.B) {
	for _, n := range []int{20, 64, 1400, 1420, 9000} {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(i)
		}
		for _, m := range sumModes {
			b.Run(fmt.Sprintf("%d/%s", n, m.name), func(b *testing.B) {
				defer setSumMode(m.simd, m.wide)()
				b.SetBytes(int64(n))
				var s uint32
				for b.Loop() {
					s += Sum(buf, 0)
				}
				_ = s
			})
		}
	}
}
