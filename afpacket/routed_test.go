package afpacket

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// finalDst is the final destination of the routed test frames: it is in
// their routing header, not in their IPv6 header (fd77::2).
var finalDst = []byte{0xfd, 0x77, 15: 9}

// routedSum is the TCP pseudo-header sum of the IPv6 frame f (parsed as p)
// toward finalDst, for an L4 length of n.
func routedSum(f []byte, p TCPFrame, n int) uint64 {
	return sum(f[p.L3+8:p.L3+24], sum(finalDst, 0)) + protoTCP + uint64(n)
}

// routedOK checks a routed segment's TCP checksum by the reference, toward
// finalDst.
func routedOK(s []byte, p TCPFrame) bool {
	n := p.End - p.L4
	ph := append(append(append([]byte{}, s[p.L3+8:p.L3+24]...), finalDst...), 0, 0, byte(n>>8), byte(n), 0, 0, 0, protoTCP)
	return refCsum(append(ph, s[p.L4:p.End]...), 0) == 0xffff
}

// TestSegmentRouted: a TCP super-segment behind a routing header with
// segments left, its checksum over the final destination (in the routing
// header), is cut into segments whose checksums are over that destination
// too: from the partial sum the frame came with (FlagNeedsCsum), as the
// kernel's GSO does, or from its complete checksum. Segment, which takes
// the IPv6 header's destination, would make every one wrong.
func TestSegmentRouted(t *testing.T) {
	const mss = 1400
	f := mkFrame(frameSpec{v6: true, vlan: true, ext: []byte{0, 43}, payload: pattern(10000), flags: tcpPSH | tcpCWR})
	p, err := parseTCP(f, true)
	if err != nil || !p.Routed {
		t.Fatalf("parse: %+v %v", p, err)
	}
	at := p.L4 + tcpCsumOffset
	partial := append([]byte{}, f...)
	binary.BigEndian.PutUint16(partial[at:], fold(routedSum(f, p, p.End-p.L4)))
	whole := append([]byte{}, f...)
	whole[at], whole[at+1] = 0, 0
	binary.BigEndian.PutUint16(whole[at:], ^fold(sum(whole[p.L4:p.End], routedSum(f, p, p.End-p.L4))))
	for _, c := range []struct {
		name  string
		f     []byte
		flags uint8
	}{{"partial checksum", partial, FlagNeedsCsum}, {"complete checksum", whole, FlagDataValid}} {
		h := VnetHdr{Flags: c.flags, GSOType: GSOTCPv6 | GSOECN, GSOSize: mss, CsumStart: uint16(p.L4), CsumOffset: tcpCsumOffset}
		orig := append([]byte{}, c.f...)
		out, sizes := mkOut(10, 1600)
		n, err := SegmentRouted(c.f, h, out, sizes)
		if err != nil || n != 8 {
			t.Fatalf("%s: %d segments, %v; want 8", c.name, n, err)
		}
		if !bytes.Equal(c.f, orig) {
			t.Fatalf("%s: the input changed", c.name)
		}
		var joined []byte
		for i := range n {
			s := out[i][:sizes[i]]
			q, err := parseTCP(s, true)
			if err != nil || q.End != len(s) || q.L4 != p.L4 || q.PayloadLen() > mss {
				t.Fatalf("%s: segment %d: %+v %v", c.name, i, q, err)
			}
			if !routedOK(s, q) {
				t.Fatalf("%s: segment %d: TCP checksum not over the final destination", c.name, i)
			}
			if seq := binary.BigEndian.Uint32(s[q.L4+4:]); seq != binary.BigEndian.Uint32(f[p.L4+4:])+uint32(len(joined)) {
				t.Fatalf("%s: segment %d: seq %d", c.name, i, seq)
			}
			want := uint8(tcpPSH | tcpCWR | 0x10)
			if i < n-1 {
				want &^= tcpPSH
			}
			if i > 0 {
				want &^= tcpCWR
			}
			if s[q.L4+13] != want {
				t.Fatalf("%s: segment %d: flags %#x, want %#x", c.name, i, s[q.L4+13], want)
			}
			joined = append(joined, s[q.Payload:]...)
		}
		if !bytes.Equal(joined, f[p.Payload:p.End]) {
			t.Fatalf("%s: payloads do not concatenate to the original's", c.name)
		}
	}
	// Only routed TCPv6 super-segments.
	h := VnetHdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv6, GSOSize: mss, CsumStart: uint16(p.L4), CsumOffset: tcpCsumOffset}
	out, sizes := mkOut(10, 1600)
	if _, err := SegmentRouted(mkFrame(frameSpec{v6: true, payload: pattern(3000)}), h, out, sizes); err != ErrNotTCP {
		t.Errorf("not routed: %v", err)
	}
	if _, err := SegmentRouted(partial, VnetHdr{Flags: FlagNeedsCsum, CsumStart: h.CsumStart, CsumOffset: tcpCsumOffset}, out, sizes); err != ErrNotTCP {
		t.Errorf("no GSO type: %v", err)
	}
	if _, err := SegmentRouted(partial, h, out[:7], sizes); err != ErrNoRoom {
		t.Errorf("7 buffers for 8 segments: %v", err)
	}
	bad := h
	bad.CsumStart = 14
	if _, err := SegmentRouted(partial, bad, out, sizes); err != ErrMalformed {
		t.Errorf("partial checksum not at TCP: %v", err)
	}
}
