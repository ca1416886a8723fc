package afpacketport

import (
	"encoding/binary"
	"testing"

	"github.com/tcpinc/tcpinc/afpacket"
)

// TestMergeFrames: which runs of frames merge, and that the kernel's
// segmentation (afpacket.Segment) of every merged frame gives the input
// frames back byte for byte.
func TestMergeFrames(t *testing.T) {
	base := seg{seq: 1000, ack: 5000, id: 300, tsval: 12345}
	v6 := base
	v6.v6 = true
	vlan := base
	vlan.vlan = true
	with := func(ss []seg, i int, fn func(*seg)) []seg {
		fn(&ss[i])
		return ss
	}
	cases := []struct {
		name string
		ss   []seg
		want string
	}{
		{"four segments, short last", flowOf(base, 1448, 1448, 1448, 600), "[4]"},
		{"IPv6", flowOf(v6, 1428, 1428, 1428), "[3]"},
		{"VLAN", flowOf(vlan, 1444, 1444), "[2]"},
		{"PSH on the last", with(flowOf(base, 1448, 1448, 1448), 2, func(s *seg) { s.flags = tcpPSH }), "[3]"},
		{"FIN on the last", with(flowOf(base, 1448, 1448, 100), 2, func(s *seg) { s.flags = tcpFIN | tcpPSH }), "[3]"},
		{"PSH in the middle ends a run", with(flowOf(base, 1448, 1448, 1448, 1448), 1, func(s *seg) { s.flags = tcpPSH }), "[2 2]"},
		{"PSH on the first: alone", with(flowOf(base, 1448, 1448, 1448), 0, func(s *seg) { s.flags = tcpPSH }), "[1 2]"},
		{"CWR on the first", with(flowOf(base, 1448, 1448, 1448), 0, func(s *seg) { s.flags = tcpCWR }), "[3]"},
		{"CWR on the second", with(flowOf(base, 1448, 1448, 1448), 1, func(s *seg) { s.flags = tcpCWR }), "[1 2]"},
		{"ECE on all", func() []seg { b := base; b.flags = 0x40; return flowOf(b, 1448, 1448) }(), "[2]"},
		{"ECE on one", with(flowOf(base, 1448, 1448), 1, func(s *seg) { s.flags = 0x40 }), "[1 1]"},
		{"short middle ends a run", flowOf(base, 1448, 700, 1448, 1448), "[2 2]"},
		{"longer than the first", flowOf(base, 1000, 1448, 1448), "[1 2]"},
		{"sequence gap", with(flowOf(base, 1448, 1448, 1448), 2, func(s *seg) { s.seq++ }), "[2 1]"},
		{"retransmission", with(flowOf(base, 1448, 1448), 1, func(s *seg) { s.seq -= 1448 }), "[1 1]"},
		{"IPv4 IDs not consecutive (DF: renumbered)", with(flowOf(base, 1448, 1448, 1448), 1, func(s *seg) { s.id += 2 }), "[3]"},
		{"one IPv4 ID for all, as the engine sends", sameID(flowOf(base, 1448, 1448, 1448, 10)), "[4]"},
		{"IPv4 ID wraps", flowOf(seg{seq: 1, ack: 1, id: 0xffff}, 1448, 1448, 1448), "[3]"},
		{"DF clear", func() []seg { b := base; b.noDF = true; return flowOf(b, 1448, 1448) }(), "[1 1]"},
		{"IPv4 options", func() []seg { b := base; b.ipOpts = true; return flowOf(b, 1448, 1448) }(), "[1 1]"},
		{"other window", with(flowOf(base, 1448, 1448), 1, func(s *seg) { s.win = 502 }), "[1 1]"},
		{"other ack", with(flowOf(base, 1448, 1448), 1, func(s *seg) { s.ack++ }), "[1 1]"},
		{"other timestamp", with(flowOf(base, 1448, 1448), 1, func(s *seg) { s.tsval++ }), "[1 1]"},
		{"other TOS", with(flowOf(base, 1448, 1448), 1, func(s *seg) { s.tos = 4 }), "[1 1]"},
		{"other port", with(flowOf(base, 1448, 1448), 1, func(s *seg) { s.srcPort = 1 }), "[1 1]"},
		{"other MAC", with(flowOf(base, 1448, 1448), 1, func(s *seg) { s.dstMACEnd = 9 }), "[1 1]"},
		{"other urgent pointer", with(flowOf(base, 1448, 1448), 1, func(s *seg) { s.urgPtr = 1 }), "[1 1]"},
		{"URG", func() []seg { b := base; b.flags = tcpURG; return flowOf(b, 1448, 1448) }(), "[1 1]"},
		{"RST", func() []seg { b := base; b.flags = tcpRST; return flowOf(b, 1448, 1448) }(), "[1 1]"},
		{"SYN", func() []seg { b := base; b.flags = tcpSYN; return flowOf(b, 1448, 1448) }(), "[1 1]"},
		{"no ACK", func() []seg { b := base; b.rawFlags = true; return flowOf(b, 1448, 1448) }(), "[2]"},
		{"bad TCP checksum on the head", with(flowOf(base, 1448, 1448, 1448), 0, func(s *seg) { s.badSum = true }), "[1 2]"},
		{"bad TCP checksum in the middle", with(flowOf(base, 1448, 1448, 1448, 1448), 2, func(s *seg) { s.badSum = true }), "[2 1 1]"},
		{"bad IPv4 header checksum", with(flowOf(base, 1448, 1448), 1, func(s *seg) { s.badIPSum = true }), "[1 1]"},
		{"Ethernet padding", with(flowOf(base, 1448, 1), 1, func(s *seg) { s.pad = 5 }), "[1 1]"},
		{"pure ACKs", flowOf(base, 0, 0, 0), "[1 1 1]"},
		{"64 KiB cap", flowOf(base, repeat(1448, 50)...), "[45 5]"},
		{"64 KiB exactly", flowOf(seg{seq: 9, ack: 9, id: 1}, repeat(65535-40, 1)...), "[1]"},
		// 48 segments of 1364 would be an IP packet of 65,524 bytes but a
		// frame of 65,538: past bump.MaxSuperFrame, which the kernel
		// would segment in software and a bypassing socket drops.
		{"frame length cap", flowOf(base, repeat(1364, 50)...), "[47 3]"},
		{"one-byte segments", flowOf(base, 1, 1, 1, 1), "[4]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := groups(checkRoundTrip(t, buildAll(c.ss))); got != c.want {
				t.Errorf("merged as %s, want %s", got, c.want)
			}
		})
	}
	t.Run("two flows interleaved", func(t *testing.T) {
		a := flowOf(base, 1448, 1448)
		b2 := base
		b2.srcPort = 2
		b := flowOf(b2, 1448, 1448)
		if got := groups(checkRoundTrip(t, buildAll([]seg{a[0], b[0], a[1], b[1]}))); got != "[1 1 1 1]" {
			t.Errorf("merged as %s; frames of two flows interleaved must stay apart", got)
		}
		if got := groups(checkRoundTrip(t, buildAll([]seg{a[0], a[1], b[0], b[1]}))); got != "[2 2]" {
			t.Errorf("merged as %s", got)
		}
	})
	t.Run("not TCP", func(t *testing.T) {
		fs := buildAll(flowOf(base, 1448, 1448))
		fs[0][23] = 17 // UDP
		if got := groups(checkRoundTrip(t, fs)); got != "[1 1]" {
			t.Errorf("merged as %s", got)
		}
	})
}

func sameID(ss []seg) []seg {
	for i := range ss {
		ss[i].id = ss[0].id
	}
	return ss
}

func repeat(n, times int) []int {
	out := make([]int, times)
	for i := range out {
		out[i] = n
	}
	return out
}

// TestMergeHeader: the merged frame's GSO header and flags.
func TestMergeHeader(t *testing.T) {
	s := flowOf(seg{seq: 7, ack: 9, id: 1}, 1000, 1000, 10)
	s[0].flags = tcpCWR
	s[2].flags = tcpPSH
	ms := mergeAll(buildAll(s))
	if len(ms) != 1 {
		t.Fatalf("%d frames", len(ms))
	}
	h, f := ms[0].h, ms[0].f
	want := afpacket.VnetHdr{Flags: afpacket.FlagNeedsCsum, GSOType: afpacket.GSOTCPv4 | afpacket.GSOECN, HdrLen: 54, GSOSize: 1000, CsumStart: 34, CsumOffset: 16}
	if h != want {
		t.Errorf("header %+v, want %+v", h, want)
	}
	if len(f) != 54+2010 || binary.BigEndian.Uint16(f[16:]) != 2050 {
		t.Errorf("merged frame of %d bytes, IP length %d", len(f), binary.BigEndian.Uint16(f[16:]))
	}
	if fl := f[47]; fl != tcpCWR|tcpPSH|flagACK {
		t.Errorf("merged flags %#x", fl)
	}
}

// FuzzMerge: for any batch, merging and then cutting every merged frame as
// the kernel does gives back exactly the input frames. The batch is made
// from the fuzz input: mostly a flow's contiguous segments with
// perturbations (so that runs merge and break in every place), plus raw
// bytes as frames.
func FuzzMerge(f *testing.F) {
	f.Add([]byte{0, 4, 0x10, 0, 0, 0, 0, 0}, []byte{})
	f.Add([]byte{1, 8, 0x20, 3, 1, 2, 9, 0, 5, 6, 7, 8, 9, 10}, []byte{0x45})
	f.Add([]byte{2, 30, 0xff, 0xff, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{})
	f.Fuzz(func(t *testing.T, plan []byte, raw []byte) {
		frames := framesFromPlan(plan)
		if len(raw) > 0 {
			frames = append(frames, raw)
			frames = append(frames, framesFromPlan(plan)...)
		}
		checkRoundTrip(t, frames)
	})
}

// framesFromPlan builds a batch: plan[0] picks IP version and VLAN,
// plan[1] the count, plan[2:4] the segment size; then per frame two bytes:
// a perturbation and its argument.
func framesFromPlan(plan []byte) [][]byte {
	at := func(i int) byte {
		if i < len(plan) {
			return plan[i]
		}
		return 0
	}
	base := seg{seq: 0xfffff000, ack: 77, id: 0xfff0, tsval: 5}
	base.v6 = at(0)&1 != 0
	base.vlan = at(0)&2 != 0
	if at(0)&4 != 0 {
		base.tsval = 0
	}
	n := int(at(1)) % 64
	mss := int(binary.BigEndian.Uint16([]byte{at(2), at(3)}))%3000 + 1
	var out [][]byte
	s := base
	for i := range n {
		op, arg := at(4+2*i), at(5+2*i)
		c := s
		c.payload = mss
		switch op % 16 {
		case 1:
			c.payload = int(arg) % (mss + 1)
		case 2:
			c.flags = []uint8{tcpFIN, tcpPSH, tcpCWR, tcpSYN, tcpRST, tcpURG, 0x40, tcpFIN | tcpPSH}[arg%8]
		case 3:
			c.seq += uint32(arg) - 128
		case 4:
			c.id += uint16(arg)
		case 5:
			c.win += uint16(arg)
		case 6:
			c.badSum = arg&1 != 0
			c.badIPSum = arg&2 != 0
		case 7:
			c.pad = int(arg % 8)
		case 8:
			c.tsval += uint32(arg)
		case 9:
			c.payload = mss + int(arg)
		case 10:
			c.noDF = true
		case 11:
			c.srcPort = uint16(arg)
		}
		if c.payload+60 > 0xffff {
			c.payload = 1000
		}
		out = append(out, c.build())
		s.seq = c.seq + uint32(c.payload)
		s.id = c.id + 1
	}
	return out
}

// BenchmarkMerge: the cost of merging a batch of 64 full segments of one
// flow (checksums verified, payloads copied), per frame.
func BenchmarkMerge(b *testing.B) {
	frames := buildAll(flowOf(seg{seq: 1, ack: 1, id: 1, tsval: 1}, repeat(1448, 64)...))
	scratch := make([]byte, afpacket.MaxFrame)
	b.SetBytes(int64(64 * 1448))
	for b.Loop() {
		MergeFrames(frames, scratch, func([]byte, afpacket.VnetHdr, int) {})
	}
}

// BenchmarkJoin is BenchmarkMerge without the copy: the checks alone
// (checksums included), the part a zero-copy (scatter-gather) merge would
// still pay.
func BenchmarkJoin(b *testing.B) {
	for _, partial := range []bool{false, true} {
		name := "whole"
		if partial {
			name = "partial" // the engine's frames on a port with offload: no sums
		}
		b.Run(name, func(b *testing.B) {
			frames := buildAll(flowOf(seg{seq: 1, ack: 1, id: 1, tsval: 1}, repeat(1448, 64)...))
			b.SetBytes(int64(64 * 1448))
			var r run
			for b.Loop() {
				for i := 0; i < len(frames); {
					j := i + 1
					if r.start(frames[i], partial) {
						for j < len(frames) && r.join(frames[j], partial) {
							j++
						}
					}
					i = j
				}
			}
		})
	}
}
