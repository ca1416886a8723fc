package afpacketport

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/tcpinc/tcpinc/afpacket"
)

// seg describes one TCP/IP frame for the tests.
type seg struct {
	v6, vlan  bool
	seq, ack  uint32
	id        uint16
	flags     uint8 // default ACK (0x10) when zero and ack is set... see build
	win       uint16
	urgPtr    uint16
	tsval     uint32 // nonzero: a timestamps option (12 bytes with two NOPs)
	payload   int
	fill      byte
	noDF      bool
	ipOpts    bool // IPv4: a 4-byte NOP option
	srcPort   uint16
	tos       uint8
	pad       int // Ethernet padding after the IP packet
	badSum    bool
	badIPSum  bool
	rawFlags  bool // flags taken as they are (no ACK added)
	dstMACEnd byte
}

const flagACK = 0x10

// build makes the frame s describes, with correct checksums unless asked.
func (s seg) build() []byte {
	var f []byte
	f = append(f, 2, 0, 0, 0, 0, s.dstMACEnd, 2, 0, 0, 0, 0, 1)
	if s.vlan {
		f = append(f, 0x81, 0x00, 0x00, 0x07)
	}
	l3 := len(f) + 2
	opts := 0
	if s.tsval != 0 {
		opts = 12
	}
	tcpLen := 20 + opts + s.payload
	if s.v6 {
		f = append(f, 0x86, 0xdd)
		f = append(f, 0x60|s.tos>>4, s.tos<<4, 0x12, 0x34)
		f = binary.BigEndian.AppendUint16(f, uint16(tcpLen))
		f = append(f, 6, 64)
		f = append(f, 0xfd, 0x78, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)
		f = append(f, 0xfd, 0x78, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2)
	} else {
		f = append(f, 0x08, 0x00)
		ihl := 5
		if s.ipOpts {
			ihl = 6
		}
		f = append(f, 0x40|byte(ihl), s.tos)
		f = binary.BigEndian.AppendUint16(f, uint16(ihl*4+tcpLen))
		f = binary.BigEndian.AppendUint16(f, s.id)
		fragOff := uint16(0x4000)
		if s.noDF {
			fragOff = 0
		}
		f = binary.BigEndian.AppendUint16(f, fragOff)
		f = append(f, 64, 6, 0, 0, 10, 78, 0, 1, 10, 78, 0, 2)
		if s.ipOpts {
			f = append(f, 1, 1, 1, 0)
		}
	}
	l4 := len(f)
	sp := s.srcPort
	if sp == 0 {
		sp = 40000
	}
	f = binary.BigEndian.AppendUint16(f, sp)
	f = binary.BigEndian.AppendUint16(f, 5201)
	f = binary.BigEndian.AppendUint32(f, s.seq)
	f = binary.BigEndian.AppendUint32(f, s.ack)
	fl := s.flags
	if !s.rawFlags {
		fl |= flagACK
	}
	f = append(f, byte((20+opts)/4)<<4, fl)
	win := s.win
	if win == 0 {
		win = 501
	}
	f = binary.BigEndian.AppendUint16(f, win)
	f = append(f, 0, 0)
	f = binary.BigEndian.AppendUint16(f, s.urgPtr)
	if opts > 0 {
		f = append(f, 1, 1, 8, 10)
		f = binary.BigEndian.AppendUint32(f, s.tsval)
		f = binary.BigEndian.AppendUint32(f, 77)
	}
	for i := range s.payload {
		f = append(f, s.fill+byte(i*7+int(s.seq)))
	}
	end := len(f)
	setSums(f, l3, l4, end, s.v6)
	if s.badSum {
		f[l4+16] ^= 0x55
	}
	if s.badIPSum && !s.v6 {
		f[l3+10] ^= 0x55
	}
	return append(f, make([]byte, s.pad)...)
}

// setSums writes the IPv4 header and TCP checksums of f[:end] (RFC 1071).
func setSums(f []byte, l3, l4, end int, v6 bool) {
	if !v6 {
		f[l3+10], f[l3+11] = 0, 0
		binary.BigEndian.PutUint16(f[l3+10:], ^csum(f[l3:l4], 0))
	}
	var ps uint32
	if v6 {
		ps = sumWords(f[l3+8:l3+40], 0)
	} else {
		ps = sumWords(f[l3+12:l3+20], 0)
	}
	ps += 6 + uint32(end-l4)
	f[l4+16], f[l4+17] = 0, 0
	binary.BigEndian.PutUint16(f[l4+16:], ^csum(f[l4:end], ps))
}

func sumWords(b []byte, acc uint32) uint32 {
	for len(b) >= 2 {
		acc += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

func csum(b []byte, acc uint32) uint16 {
	acc = sumWords(b, acc)
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

// flowOf returns n contiguous segments of one flow, each of the payload
// sizes given, starting at template t (seq and id advance).
func flowOf(t seg, sizes ...int) []seg {
	out := make([]seg, len(sizes))
	for i, n := range sizes {
		s := t
		s.payload = n
		out[i] = s
		t.seq += uint32(n)
		t.id++
	}
	return out
}

func buildAll(ss []seg) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = s.build()
	}
	return out
}

// merged is one frame MergeFrames emitted.
type merged struct {
	f []byte
	h afpacket.VnetHdr
	n int
}

func mergeAll(frames [][]byte) []merged {
	var out []merged
	scratch := make([]byte, afpacket.MaxFrame)
	MergeFrames(frames, scratch, func(f []byte, h afpacket.VnetHdr, n int) {
		out = append(out, merged{append([]byte{}, f...), h, n})
	})
	return out
}

// unmerge cuts every emitted frame as the kernel would (afpacket.Segment)
// and returns the frames that would leave, in order.
func unmerge(t testing.TB, ms []merged) [][]byte {
	t.Helper()
	var out [][]byte
	segs := make([][]byte, 64)
	for i := range segs {
		segs[i] = make([]byte, afpacket.MaxFrame)
	}
	sizes := make([]int, len(segs))
	for _, m := range ms {
		if !m.h.IsGSO() {
			if m.n != 1 || m.h != (afpacket.VnetHdr{}) {
				t.Fatalf("a frame standing for %d with header %+v is not a GSO frame", m.n, m.h)
			}
			out = append(out, m.f)
			continue
		}
		if m.h.Flags != afpacket.FlagNeedsCsum {
			t.Fatalf("GSO header %+v without a partial checksum", m.h)
		}
		k, err := afpacket.Segment(m.f, int(m.h.GSOSize), segs, sizes)
		if err != nil {
			t.Fatalf("Segment: %v", err)
		}
		if k != m.n {
			t.Fatalf("a super-frame standing for %d frames cuts into %d", m.n, k)
		}
		for i := range k {
			out = append(out, append([]byte{}, segs[i][:sizes[i]]...))
		}
	}
	return out
}

// checkRoundTrip merges frames, cuts the result again and wants the input
// back byte for byte; it returns how many frames each emitted frame stands
// for.
func checkRoundTrip(t testing.TB, frames [][]byte) []int {
	t.Helper()
	ms := mergeAll(frames)
	got := unmerge(t, ms)
	if len(got) != len(frames) {
		t.Fatalf("%d frames in, %d out", len(frames), len(got))
	}
	for i := range frames {
		if !sameFrame(got[i], frames[i]) {
			t.Fatalf("frame %d differs after merge and segmentation:\n in  %x\n out %x", i, frames[i], got[i])
		}
	}
	ns := make([]int, len(ms))
	for i, m := range ms {
		ns[i] = m.n
	}
	return ns
}

func groups(ns []int) string { return fmt.Sprint(ns) }

// sameFrame reports whether out is in, but for what the kernel's
// segmentation may change in an IPv4 TCP frame with DF set: the ID, and so
// the header checksum, which must then be right.
func sameFrame(out, in []byte) bool {
	if bytes.Equal(out, in) {
		return true
	}
	p, err := afpacket.ParseTCP(in)
	if err != nil || p.V6 || len(out) != len(in) || binary.BigEndian.Uint16(in[p.L3+6:])&ipv4DF == 0 {
		return false
	}
	if csum(out[p.L3:p.L4], 0) != 0xffff {
		return false
	}
	o := append([]byte{}, out...)
	copy(o[p.L3+4:p.L3+6], in[p.L3+4:])
	copy(o[p.L3+10:p.L3+12], in[p.L3+10:])
	return bytes.Equal(o, in)
}
