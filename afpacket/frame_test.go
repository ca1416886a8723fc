package afpacket

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// refCsum is RFC 1071's checksum done the slow way, 16 bits at a time: the
// reference sum and fold are checked against.
func refCsum(b []byte, init uint32) uint16 {
	s := init
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// refTCPOK checks a frame's TCP checksum with refCsum (and its own offsets,
// not ParseTCP's).
func refTCPOK(f []byte, l3 int, v6 bool) bool {
	var ph []byte
	var l4 int
	if v6 {
		l4 = l3 + 40
		for nh := f[l3+6]; nh == 0 || nh == 60; { // hop-by-hop, destination options
			nh, l4 = f[l4], l4+(int(f[l4+1])+1)*8
		}
		n := int(binary.BigEndian.Uint16(f[l3+4:])) - (l4 - l3 - 40)
		ph = append(append([]byte{}, f[l3+8:l3+40]...), 0, 0, byte(n>>8), byte(n), 0, 0, 0, protoTCP)
		return refCsum(append(ph, f[l4:l4+n]...), 0) == 0xffff
	}
	l4 = l3 + int(f[l3]&0xf)*4
	n := int(binary.BigEndian.Uint16(f[l3+2:])) - (l4 - l3)
	if refCsum(f[l3:l4], 0) != 0xffff {
		return false
	}
	ph = append(append([]byte{}, f[l3+12:l3+20]...), 0, protoTCP, byte(n>>8), byte(n))
	return refCsum(append(ph, f[l4:l4+n]...), 0) == 0xffff
}

// frameSpec describes a TCP frame for mkFrame.
type frameSpec struct {
	v6      bool
	vlan    bool
	seq     uint32
	flags   byte
	id      uint16
	opts    int // bytes of TCP options (multiple of 4; NOPs)
	payload []byte
	ext     []byte // IPv6 extension header types before TCP (8 bytes each, PadN)
}

// mkFrame builds the frame with correct lengths and checksums.
func mkFrame(s frameSpec) []byte {
	f := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1}
	if s.vlan {
		f = append(f, 0x81, 0x00, 0x00, 0x07)
	}
	l3 := len(f)
	if s.v6 {
		f = append(f, 0x86, 0xdd)
		l3 += 2
		ip := make([]byte, 40)
		ip[0] = 0x60
		ip[6], ip[7] = protoTCP, 64
		copy(ip[8:], []byte{0xfd, 0x77, 15: 1})
		copy(ip[24:], []byte{0xfd, 0x77, 15: 2})
		if len(s.ext) > 0 {
			ip[6] = s.ext[0]
		}
		f = append(f, ip...)
		for i := range s.ext {
			next := byte(protoTCP)
			if i+1 < len(s.ext) {
				next = s.ext[i+1]
			}
			f = append(f, next, 0, 1, 4, 0, 0, 0, 0) // PadN of 4: 8 bytes in all
		}
	} else {
		f = append(f, 0x08, 0x00)
		l3 += 2
		ip := []byte{0x45, 0, 0, 0, byte(s.id >> 8), byte(s.id), 0x40, 0, 64, protoTCP, 0, 0, 10, 77, 0, 1, 10, 77, 0, 2}
		f = append(f, ip...)
	}
	tcp := make([]byte, 20+s.opts)
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5201)
	binary.BigEndian.PutUint32(tcp[4:], s.seq)
	binary.BigEndian.PutUint32(tcp[8:], 0x01020304)
	tcp[12] = byte((20+s.opts)/4) << 4
	tcp[13] = s.flags | 0x10
	binary.BigEndian.PutUint16(tcp[14:], 512)
	for i := 20; i < len(tcp); i++ {
		tcp[i] = 1
	}
	f = append(f, tcp...)
	f = append(f, s.payload...)
	p, err := parseTCP(f, false)
	if err == ErrNotTCP && s.v6 {
		// Extension headers ParseTCP does not step over: the length only.
		binary.BigEndian.PutUint16(f[l3+4:], uint16(len(f)-l3-40))
		return f
	}
	if err != nil {
		panic(err)
	}
	if err := setIPLen(f, p); err != nil {
		panic(err)
	}
	setTCPCsum(f, p)
	return f
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestSumMatchesReference(t *testing.T) {
	b := pattern(300)
	for n := 0; n <= len(b); n++ {
		for _, init := range []uint32{0, 1, 0xffff, 0x1234} {
			if got, want := fold(sum(b[:n], uint64(init))), refCsum(b[:n], init); got != want {
				t.Fatalf("len %d init %#x: sum %#04x, reference %#04x", n, init, got, want)
			}
		}
	}
	// Many carries: all-0xff input of every length.
	ff := bytes.Repeat([]byte{0xff}, 200)
	for n := 0; n <= len(ff); n++ {
		if got, want := fold(sum(ff[:n], 0xffffffffffff)), refCsum(ff[:n], 0xffff+0xffff+0xffff); got != want {
			t.Fatalf("0xff len %d: %#04x, want %#04x", n, got, want)
		}
	}
}

func TestVnetHdrEncodeDecode(t *testing.T) {
	h := VnetHdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv6 | GSOECN, HdrLen: 86, GSOSize: 1428, CsumStart: 54, CsumOffset: 16}
	var b [VnetHdrLen]byte
	if err := h.Encode(b[:]); err != nil {
		t.Fatal(err)
	}
	// The C layout: u8 flags, u8 gso_type, then five __virtio16 in host order.
	want := make([]byte, VnetHdrLen)
	want[0], want[1] = 1, 0x84
	for i, v := range []uint16{86, 1428, 54, 16} {
		binary.NativeEndian.PutUint16(want[2+2*i:], v)
	}
	if !bytes.Equal(b[:], want) {
		t.Fatalf("encoded % x, want % x", b, want)
	}
	var g VnetHdr
	if err := g.Decode(b[:]); err != nil || g != h {
		t.Fatalf("decoded %+v (%v), want %+v", g, err, h)
	}
	if !g.IsGSO() {
		t.Fatal("IsGSO false for TCPv6|ECN")
	}
	if g.Decode(b[:9]) == nil || h.Encode(b[:9]) == nil {
		t.Fatal("short buffer accepted")
	}
}

func TestParseTCP(t *testing.T) {
	good := mkFrame(frameSpec{payload: pattern(100), opts: 12})
	p, err := ParseTCP(good)
	if err != nil || p.L3 != 14 || p.L4 != 34 || p.Payload != 66 || p.End != len(good) || p.V6 {
		t.Fatalf("v4: %+v %v", p, err)
	}
	v6 := mkFrame(frameSpec{v6: true, vlan: true, payload: pattern(7)})
	p, err = ParseTCP(v6)
	if err != nil || p.L3 != 18 || p.L4 != 58 || p.Payload != 78 || p.End != len(v6) || !p.V6 {
		t.Fatalf("v6+vlan: %+v %v", p, err)
	}
	// Hop-by-hop and destination options before TCP are stepped over.
	for _, ext := range [][]byte{{60}, {0, 60}, {0, 60, 60, 60}} {
		f := mkFrame(frameSpec{v6: true, vlan: true, ext: ext, payload: pattern(7)})
		p, err := ParseTCP(f)
		if l4 := 58 + 8*len(ext); err != nil || p.L4 != l4 || p.Payload != l4+20 || p.End != len(f) || !p.V6 {
			t.Fatalf("v6 with extension headers %v: %+v %v", ext, p, err)
		}
		if !TCPChecksumOK(f, p) {
			t.Fatalf("v6 with extension headers %v: checksum", ext)
		}
	}
	// So is a routing header with no segments left: the destination in
	// the IPv6 header is the final one, and the checksum is over it.
	// GRO coalesces behind it; before, every such super-segment was
	// refused as malformed, and the connection stalled.
	rt0 := mkFrame(frameSpec{v6: true, ext: []byte{0, 43}, payload: pattern(7)})
	rt0[14+40+8+3] = 0 // segments left
	if p, err := ParseTCP(rt0); err != nil || p.L4 != 14+40+16 || p.Routed {
		t.Fatalf("v6 routing header, no segments left: %+v %v", p, err)
	}
	padded := append(mkFrame(frameSpec{}), 0, 0, 0, 0, 0, 0)
	if p, err := ParseTCP(padded); err != nil || p.End != len(padded)-6 {
		t.Fatalf("padded: %+v %v", p, err)
	}
	mut := func(f []byte, fn func([]byte)) []byte {
		f = append([]byte{}, f...)
		fn(f)
		return f
	}
	for _, c := range []struct {
		name string
		f    []byte
		want error
	}{
		{"short", good[:13], ErrMalformed},
		{"arp", mut(good, func(f []byte) { f[12], f[13] = 0x08, 0x06 }), ErrNotTCP},
		{"udp", mut(good, func(f []byte) { f[23] = 17 }), ErrNotTCP},
		{"fragment", mut(good, func(f []byte) { f[20] |= 0x20 }), ErrNotTCP},
		{"ihl 4", mut(good, func(f []byte) { f[14] = 0x44 }), ErrMalformed},
		{"ip len past frame", mut(good, func(f []byte) { f[16] = 0xff }), ErrMalformed},
		{"doff 4", mut(good, func(f []byte) { f[46] = 0x40 }), ErrMalformed},
		{"doff past end", mut(mkFrame(frameSpec{payload: pattern(39)}), func(f []byte) { f[46] = 0xf0 }), ErrMalformed},
		{"v6 routing header, segments left", mkFrame(frameSpec{v6: true, ext: []byte{43}, payload: pattern(7)}), ErrNotTCP},
		{"v6 fragment header", mkFrame(frameSpec{v6: true, ext: []byte{44}, payload: pattern(7)}), ErrNotTCP},
		{"v6 five option headers", mkFrame(frameSpec{v6: true, ext: []byte{0, 60, 60, 60, 60}, payload: pattern(7)}), ErrNotTCP},
		{"v6 option header past the frame", mkFrame(frameSpec{v6: true, ext: []byte{60}})[:14+40+6], ErrMalformed},
		{"v6 option header longer than the packet", mut(mkFrame(frameSpec{v6: true, ext: []byte{60}, payload: pattern(7)}), func(f []byte) { f[14+40+1] = 9 }), ErrMalformed},
		{"v6 truncated", v6[:50], ErrMalformed},
	} {
		if _, err := ParseTCP(c.f); err != c.want {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestCheckTCP(t *testing.T) {
	f := mkFrame(frameSpec{payload: pattern(3000)})
	ok := VnetHdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, HdrLen: 9999, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
	h := ok
	if p, err := CheckTCP(&h, f); err != nil || h.HdrLen != 54 || p.PayloadLen() != 3000 {
		t.Fatalf("good header: %v, hdr_len %d", err, h.HdrLen)
	}
	for _, c := range []struct {
		name string
		edit func(*VnetHdr)
	}{
		{"v6 type on v4", func(h *VnetHdr) { h.GSOType = GSOTCPv6 }},
		{"udp type", func(h *VnetHdr) { h.GSOType = GSOUDPL4 }},
		{"gso size 0", func(h *VnetHdr) { h.GSOSize = 0 }},
		{"csum start", func(h *VnetHdr) { h.CsumStart = 14 }},
		{"csum offset", func(h *VnetHdr) { h.CsumOffset = 6 }},
	} {
		h := ok
		c.edit(&h)
		if _, err := CheckTCP(&h, f); err != ErrMalformed {
			t.Errorf("%s: %v, want ErrMalformed", c.name, err)
		}
	}
	udp := append([]byte{}, f...)
	udp[23] = 17
	h = ok
	if _, err := CheckTCP(&h, udp); err != ErrMalformed {
		t.Errorf("GSO TCP header on a UDP frame: %v", err)
	}
	h = VnetHdr{}
	if _, err := CheckTCP(&h, udp); err != ErrNotTCP {
		t.Errorf("plain UDP frame: %v", err)
	}
}
