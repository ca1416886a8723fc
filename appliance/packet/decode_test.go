package packet_test

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
	pt "github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

func tcpSeg(flags uint8, opts, payload []byte) *pt.TCP {
	return &pt.TCP{SrcPort: 40000, DstPort: 443, Seq: 1000, Ack: 2000, Flags: flags, Window: 512, Options: opts, Payload: payload}
}

// want is what a decoded frame must show.
type want struct {
	version   uint8
	proto     uint8
	etherType uint16
	tags      int
	tcp       bool
	udp       bool
	icmp      bool
	frag      bool
	nonFirst  bool
	payload   string
	optLen    int
	l4ok      bool // L4 checksum verifiable and right
	quote     bool
	routed    bool // SegmentsLeft
}

// namedFrames are the frame kinds the decoder must know; the fuzz target uses
// them as seeds.
func namedFrames() []struct {
	name  string
	frame []byte
	want  want
} {
	ts := pt.TimestampOption(1, 2)
	inner4 := pt.Frame{Src: pt.HostB4, Dst: pt.HostA4, TCP: tcpSeg(pt.ACK, ts, []byte("0123456789"))}.Bytes()
	inner6 := pt.Frame{Src: pt.HostB6, Dst: pt.HostA6, TCP: tcpSeg(pt.ACK, ts, []byte("0123456789"))}.Bytes()
	hbh := pt.Ext{Proto: packet.ProtoHopByHop, Data: []byte{1, 4, 0, 0, 0, 0}}       // PadN
	dst := pt.Ext{Proto: packet.ProtoDstOpts, Data: make([]byte, 14)}                // 16 bytes: Pad1s
	rt := pt.Ext{Proto: packet.ProtoRouting, Data: []byte{4, 0, 0, 0, 0, 0}}         // type 4, 0 segments left
	rtLeft := pt.Ext{Proto: packet.ProtoRouting, Data: []byte{4, 1, 0, 0, 0, 0}}     // 1 segment left
	fragFirst := pt.Ext{Proto: packet.ProtoFragment, Data: []byte{0, 1, 0, 0, 0, 7}} // offset 0, M=1
	fragLater := pt.Ext{Proto: packet.ProtoFragment, Data: []byte{0, 8, 0, 0, 0, 7}} // offset 1
	ah := pt.Ext{Proto: packet.ProtoAH, Data: make([]byte, 22)}                      // 24 bytes: SPI, seq, 12-byte ICV
	return []struct {
		name  string
		frame []byte
		want  want
	}{
		{"tcp4", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(pt.ACK, ts, []byte("hello"))}.Bytes(),
			want{version: 4, proto: 6, etherType: 0x0800, tcp: true, payload: "hello", optLen: 12, l4ok: true}},
		{"tcp4 syn mss", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(pt.SYN, pt.MSSOption(1460), nil)}.Bytes(),
			want{version: 4, proto: 6, etherType: 0x0800, tcp: true, optLen: 4, l4ok: true}},
		{"tcp4 ip options", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, IPv4Options: []byte{0x94, 4, 0, 0, 1, 0, 0, 0}, TCP: tcpSeg(pt.ACK, nil, []byte("x"))}.Bytes(),
			want{version: 4, proto: 6, etherType: 0x0800, tcp: true, payload: "x", l4ok: true}},
		{"tcp4 ethernet padding", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(pt.ACK, nil, nil), Padding: 6}.Bytes(),
			want{version: 4, proto: 6, etherType: 0x0800, tcp: true, l4ok: true}},
		{"tcp4 padding after payload", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(pt.ACK, nil, []byte("ab")), Padding: 4}.Bytes(),
			want{version: 4, proto: 6, etherType: 0x0800, tcp: true, payload: "ab", l4ok: true}},
		{"tcp4 vlan", pt.Frame{Tags: []pt.Tag{{TPID: 0x8100, TCI: 7}}, Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(pt.ACK, ts, []byte("v"))}.Bytes(),
			want{version: 4, proto: 6, etherType: 0x0800, tags: 1, tcp: true, payload: "v", optLen: 12, l4ok: true}},
		{"tcp4 qinq", pt.Frame{Tags: []pt.Tag{{TPID: 0x88a8, TCI: 100}, {TPID: 0x8100, TCI: 7}}, Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(pt.ACK, nil, []byte("q"))}.Bytes(),
			want{version: 4, proto: 6, etherType: 0x0800, tags: 2, tcp: true, payload: "q", l4ok: true}},
		{"tcp4 first fragment", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, MoreFragments: true, TCP: tcpSeg(pt.ACK, nil, []byte("part"))}.Bytes(),
			want{version: 4, proto: 6, etherType: 0x0800, tcp: true, frag: true, payload: "part"}},
		{"tcp4 later fragment", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, FragOffset: 3, Proto: 6, L4: []byte("rest of the segment")}.Bytes(),
			want{version: 4, proto: 6, etherType: 0x0800, frag: true, nonFirst: true}},
		{"tcp6", pt.Frame{Src: pt.HostA6, Dst: pt.HostB6, TCP: tcpSeg(pt.ACK, ts, []byte("hello6"))}.Bytes(),
			want{version: 6, proto: 6, etherType: 0x86dd, tcp: true, payload: "hello6", optLen: 12, l4ok: true}},
		{"tcp6 qinq", pt.Frame{Tags: []pt.Tag{{TPID: 0x88a8, TCI: 100}, {TPID: 0x8100, TCI: 7}}, Src: pt.HostA6, Dst: pt.HostB6, TCP: tcpSeg(pt.SYN, pt.MSSOption(1440), nil)}.Bytes(),
			want{version: 6, proto: 6, etherType: 0x86dd, tags: 2, tcp: true, optLen: 4, l4ok: true}},
		{"tcp6 ext headers", pt.Frame{Src: pt.HostA6, Dst: pt.HostB6, Ext: []pt.Ext{hbh, dst, rt, ah}, TCP: tcpSeg(pt.ACK, nil, []byte("ext"))}.Bytes(),
			want{version: 6, proto: 6, etherType: 0x86dd, tcp: true, payload: "ext", l4ok: true}},
		{"tcp6 routing header with segments left", pt.Frame{Src: pt.HostA6, Dst: pt.HostB6, Ext: []pt.Ext{hbh, rtLeft}, TCP: tcpSeg(pt.ACK, nil, []byte("rt"))}.Bytes(),
			want{version: 6, proto: 6, etherType: 0x86dd, tcp: true, payload: "rt", l4ok: true, routed: true}},
		{"tcp6 padding", pt.Frame{Src: pt.HostA6, Dst: pt.HostB6, TCP: tcpSeg(pt.ACK, nil, nil), Padding: 10}.Bytes(),
			want{version: 6, proto: 6, etherType: 0x86dd, tcp: true, l4ok: true}},
		{"tcp6 first fragment", pt.Frame{Src: pt.HostA6, Dst: pt.HostB6, Ext: []pt.Ext{hbh, fragFirst}, TCP: tcpSeg(pt.ACK, nil, []byte("p1"))}.Bytes(),
			want{version: 6, proto: 6, etherType: 0x86dd, tcp: true, frag: true, payload: "p1"}},
		{"tcp6 later fragment", pt.Frame{Src: pt.HostA6, Dst: pt.HostB6, Ext: []pt.Ext{fragLater}, Proto: 6, L4: []byte("continuation bytes")}.Bytes(),
			want{version: 6, proto: 6, etherType: 0x86dd, frag: true, nonFirst: true}},
		{"ipv6 esp", pt.Frame{Src: pt.HostA6, Dst: pt.HostB6, Ext: []pt.Ext{hbh}, Proto: packet.ProtoESP, L4: make([]byte, 32)}.Bytes(),
			want{version: 6, proto: packet.ProtoESP, etherType: 0x86dd}},
		{"ipv6 no next header", pt.Frame{Src: pt.HostA6, Dst: pt.HostB6, Proto: packet.ProtoNoNext}.Bytes(),
			want{version: 6, proto: packet.ProtoNoNext, etherType: 0x86dd}},
		{"udp4", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, Proto: 17, L4: pt.UDP(5353, 53, []byte("dns"))}.Bytes(),
			want{version: 4, proto: 17, etherType: 0x0800, udp: true, payload: "dns", l4ok: true}},
		{"udp6 padded", pt.Frame{Src: pt.HostA6, Dst: pt.HostB6, Proto: 17, L4: pt.UDP(1, 2, []byte("u")), Padding: 3}.Bytes(),
			want{version: 6, proto: 17, etherType: 0x86dd, udp: true, payload: "u", l4ok: true}},
		{"icmp4 echo", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, Proto: 1, L4: pt.ICMP(8, 0, 0x00010001, []byte("ping"))}.Bytes(),
			want{version: 4, proto: 1, etherType: 0x0800, icmp: true, payload: "ping", l4ok: true}},
		{"icmp4 frag needed", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, Proto: 1, L4: pt.ICMP(3, 4, 1400, pt.Quote(inner4, 28))}.Bytes(),
			want{version: 4, proto: 1, etherType: 0x0800, icmp: true, payload: string(pt.Quote(inner4, 28)), l4ok: true, quote: true}},
		{"icmp6 packet too big", pt.Frame{Src: pt.HostA6, Dst: pt.HostB6, Proto: 58, L4: pt.ICMP(2, 0, 1280, pt.Quote(inner6, 80))}.Bytes(),
			want{version: 6, proto: 58, etherType: 0x86dd, icmp: true, payload: string(pt.Quote(inner6, 80)), l4ok: true, quote: true}},
		{"icmp6 echo", pt.Frame{Src: pt.HostA6, Dst: pt.HostB6, Proto: 58, L4: pt.ICMP(128, 0, 7, nil)}.Bytes(),
			want{version: 6, proto: 58, etherType: 0x86dd, icmp: true, l4ok: true}},
		{"arp", pt.Frame{EtherType: 0x0806, L4: make([]byte, 28), Padding: 18}.Bytes(),
			want{etherType: 0x0806}},
		{"arp in vlan", pt.Frame{Tags: []pt.Tag{{TPID: 0x8100, TCI: 5}}, EtherType: 0x0806, L4: make([]byte, 28)}.Bytes(),
			want{etherType: 0x0806, tags: 1}},
	}
}

func TestDecodeFrames(t *testing.T) {
	for _, tc := range namedFrames() {
		t.Run(tc.name, func(t *testing.T) {
			var p packet.Packet
			if err := p.Decode(tc.frame); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			w := tc.want
			if p.IPVersion() != w.version || p.EtherType() != w.etherType || p.VLANCount() != w.tags {
				t.Errorf("version %d ethertype %#x tags %d, want %d %#x %d", p.IPVersion(), p.EtherType(), p.VLANCount(), w.version, w.etherType, w.tags)
			}
			if p.Proto() != w.proto {
				t.Errorf("proto %d, want %d", p.Proto(), w.proto)
			}
			if p.IsTCP() != w.tcp || p.IsUDP() != w.udp || p.IsICMP() != w.icmp {
				t.Errorf("tcp/udp/icmp %v %v %v, want %v %v %v", p.IsTCP(), p.IsUDP(), p.IsICMP(), w.tcp, w.udp, w.icmp)
			}
			if p.IsFragment() != w.frag || p.IsNonFirstFragment() != w.nonFirst {
				t.Errorf("fragment %v nonfirst %v, want %v %v", p.IsFragment(), p.IsNonFirstFragment(), w.frag, w.nonFirst)
			}
			if w.nonFirst && (p.L4Offset() != 0 || p.SrcPort() != 0) {
				t.Errorf("non-first fragment exposes an L4 header")
			}
			if got := string(p.Payload()); got != w.payload {
				t.Errorf("payload %q, want %q (Ethernet padding must not count)", got, w.payload)
			}
			if len(p.OptionBytes()) != w.optLen {
				t.Errorf("options %d bytes, want %d", len(p.OptionBytes()), w.optLen)
			}
			if w.version == 4 && !p.VerifyIPv4Checksum() {
				t.Errorf("IPv4 header checksum does not verify")
			}
			if p.VerifyL4Checksum() != w.l4ok {
				t.Errorf("VerifyL4Checksum %v, want %v", p.VerifyL4Checksum(), w.l4ok)
			}
			if p.SegmentsLeft() != w.routed {
				t.Errorf("SegmentsLeft %v, want %v", p.SegmentsLeft(), w.routed)
			}
			if _, ok := p.Quote(); ok != w.quote {
				t.Errorf("quote %v, want %v", ok, w.quote)
			}
			if w.tcp {
				if p.SrcPort() != 40000 || p.DstPort() != 443 || p.Seq() != 1000 || p.Ack() != 2000 || p.Window() != 512 {
					t.Errorf("TCP fields %d %d %d %d %d", p.SrcPort(), p.DstPort(), p.Seq(), p.Ack(), p.Window())
				}
				k, ok := p.FlowKey()
				src, dst := pt.HostA4, pt.HostB4
				if w.version == 6 {
					src, dst = pt.HostA6, pt.HostB6
				}
				if ks, kd := k.AddrPorts(); !ok || ks != netip.AddrPortFrom(src, 40000) || kd != netip.AddrPortFrom(dst, 443) {
					t.Errorf("FlowKey %v %v", k, ok)
				}
				if p.SrcAddr() != src || p.DstAddr() != dst {
					t.Errorf("addresses %v %v", p.SrcAddr(), p.DstAddr())
				}
			}
			if w.version != 0 && len(p.Datagram()) != p.End()-p.L3Offset() {
				t.Errorf("datagram length")
			}
		})
	}
}

func TestVLANTagsKept(t *testing.T) {
	f := pt.Frame{Tags: []pt.Tag{{TPID: 0x88a8, TCI: 0x2064}, {TPID: 0x8100, TCI: 0xe007}}, Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(pt.ACK, nil, nil)}.Bytes()
	var p packet.Packet
	if err := p.Decode(f); err != nil {
		t.Fatal(err)
	}
	for i, w := range [][2]uint16{{0x88a8, 0x2064}, {0x8100, 0xe007}} {
		if a, b := p.VLAN(i); a != w[0] || b != w[1] {
			t.Errorf("tag %d = %#x %#x, want %#x %#x", i, a, b, w[0], w[1])
		}
	}
	if a, b := p.VLAN(2); a != 0 || b != 0 {
		t.Errorf("VLAN(2) out of range returned %#x %#x", a, b)
	}
	if p.L3Offset() != 22 {
		t.Errorf("L3 offset %d, want 22", p.L3Offset())
	}
	if !bytes.Equal(p.Frame()[12:22], []byte{0x88, 0xa8, 0x20, 0x64, 0x81, 0x00, 0xe0, 0x07, 0x08, 0x00}) {
		t.Errorf("tags not in place")
	}
}

func TestQuote(t *testing.T) {
	inner := pt.Frame{Src: pt.HostB4, Dst: pt.HostA4, TCP: &pt.TCP{SrcPort: 443, DstPort: 40000, Seq: 0xdeadbeef, Flags: pt.ACK, Payload: make([]byte, 1400)}}.Bytes()
	for _, tc := range []struct {
		name string
		f    pt.Frame
		mtu  uint32
	}{
		{"v4 8 bytes", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, Proto: 1, L4: pt.ICMP(3, 4, 1400, pt.Quote(inner, 28))}, 1400},
		{"v4 whole header", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, Proto: 1, L4: pt.ICMP(3, 4, 1300, pt.Quote(inner, 576))}, 1300},
		{"v6", pt.Frame{Src: pt.HostA6, Dst: pt.HostB6, Proto: 58, L4: pt.ICMP(2, 0, 1280, pt.Quote(
			pt.Frame{Src: pt.HostB6, Dst: pt.HostA6, Ext: []pt.Ext{{Proto: 60, Data: make([]byte, 6)}},
				TCP: &pt.TCP{SrcPort: 443, DstPort: 40000, Seq: 0xdeadbeef, Flags: pt.ACK}}.Bytes(), 1232))}, 1280},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p packet.Packet
			if err := p.Decode(tc.f.Bytes()); err != nil {
				t.Fatal(err)
			}
			if !p.IsPathMTU() {
				t.Fatal("not recognised as path MTU message")
			}
			if m, _ := p.MTU(); m != tc.mtu {
				t.Errorf("MTU %d, want %d", m, tc.mtu)
			}
			seq, ok := p.QuotedSeq()
			if !ok || seq != 0xdeadbeef {
				t.Fatalf("quoted seq %#x %v", seq, ok)
			}
			sp, dp, _ := p.QuotedPorts()
			k, _ := p.QuotedFlowKey()
			if sp != 443 || dp != 40000 || k.SrcPort != 443 || k.DstPort != 40000 {
				t.Errorf("quoted ports %d %d key %v", sp, dp, k)
			}
			// The engine translates the quoted sequence number and lowers the MTU:
			// the ICMP checksum must stay right.
			if !p.SetQuotedSeq(0x01020304) || !p.SetMTU(tc.mtu-20) {
				t.Fatal("rewrite refused")
			}
			if !p.VerifyL4Checksum() {
				t.Error("ICMP checksum wrong after rewrite")
			}
			if s, _ := p.QuotedSeq(); s != 0x01020304 {
				t.Errorf("quoted seq after rewrite %#x", s)
			}
			if m, _ := p.MTU(); m != tc.mtu-20 {
				t.Errorf("MTU after rewrite %d", m)
			}
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	good4 := pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(pt.ACK, pt.TimestampOption(1, 2), []byte("data"))}.Bytes()
	good6 := pt.Frame{Src: pt.HostA6, Dst: pt.HostB6, TCP: tcpSeg(pt.ACK, nil, []byte("data"))}.Bytes()
	udp4 := pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, Proto: 17, L4: pt.UDP(1, 2, []byte("abcd"))}.Bytes()
	mod := func(b []byte, f func([]byte) []byte) []byte { return f(append([]byte(nil), b...)) }
	threeTags := pt.Frame{Tags: []pt.Tag{{TPID: 0x88a8, TCI: 1}, {TPID: 0x8100, TCI: 2}, {TPID: 0x8100, TCI: 3}}, Src: pt.HostA4, Dst: pt.HostB4, TCP: tcpSeg(0, nil, nil)}.Bytes()
	for _, tc := range []struct {
		name  string
		frame []byte
		err   error
	}{
		{"empty", nil, packet.ErrTruncated},
		{"short ethernet", good4[:13], packet.ErrTruncated},
		{"vlan tag cut", []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0, 0, 1}, packet.ErrTruncated},
		{"three tags", threeTags, packet.ErrTooManyTags},
		{"ipv4 header cut", good4[:14+19], packet.ErrTruncated},
		{"ipv4 version 6", mod(good4, func(b []byte) []byte { b[14] = 0x65; return b }), packet.ErrBadIPVersion},
		{"ipv4 ihl 4", mod(good4, func(b []byte) []byte { b[14] = 0x44; return b }), packet.ErrBadIHL},
		{"ipv4 ihl past frame", mod(good4[:14+24], func(b []byte) []byte { b[14] = 0x4f; return b }), packet.ErrTruncated},
		{"ipv4 total length past frame", good4[:len(good4)-1], packet.ErrLengthMismatch},
		{"ipv4 total length below ihl", mod(good4, func(b []byte) []byte { b[16], b[17] = 0, 19; return b }), packet.ErrLengthMismatch},
		{"tcp header cut", mod(good4, func(b []byte) []byte { b[16], b[17] = 0, 20+19; return b }), packet.ErrTruncated},
		{"tcp data offset 4", mod(good4, func(b []byte) []byte { b[14+20+12] = 0x40; return b }), packet.ErrBadDataOffset},
		{"tcp data offset past datagram", mod(good4, func(b []byte) []byte { b[14+20+12] = 0xf0; return b }), packet.ErrBadDataOffset},
		{"tcp data offset past datagram into padding", mod(append(good4[:len(good4):len(good4)], make([]byte, 40)...), func(b []byte) []byte { b[14+20+12] = 0xf0; return b }), packet.ErrBadDataOffset},
		{"ipv6 header cut", good6[:14+39], packet.ErrTruncated},
		{"ipv6 version 4", mod(good6, func(b []byte) []byte { b[14] = 0x40; return b }), packet.ErrBadIPVersion},
		{"ipv6 payload length past frame", good6[:len(good6)-1], packet.ErrLengthMismatch},
		{"ipv6 ext header cut", pt.Frame{Src: pt.HostA6, Dst: pt.HostB6, Ext: []pt.Ext{{Proto: 0, Data: make([]byte, 6)}}, Proto: 59}.Bytes()[:14+40+4], packet.ErrLengthMismatch},
		{"ipv6 ext header past payload", mod(pt.Frame{Src: pt.HostA6, Dst: pt.HostB6, Ext: []pt.Ext{{Proto: 0, Data: make([]byte, 6)}}, Proto: 59}.Bytes(),
			func(b []byte) []byte { b[14+41] = 1; return b }), packet.ErrTruncated},
		{"ipv6 fragment header cut", mod(good6[:14+40+4], func(b []byte) []byte { b[14+6] = 44; b[14+5] = 4; return b }), packet.ErrTruncated},
		{"ipv6 tcp cut", mod(good6, func(b []byte) []byte { b[14+5] = 10; return b[:14+50] }), packet.ErrTruncated},
		{"udp header cut", mod(udp4, func(b []byte) []byte { b[17] = 27; return b[:14+27] }), packet.ErrTruncated},
		{"udp length 7", mod(udp4, func(b []byte) []byte { b[14+20+5] = 7; return b }), packet.ErrBadUDPLength},
		{"udp length past datagram", mod(udp4, func(b []byte) []byte { b[14+20+5] = 13; return b }), packet.ErrBadUDPLength},
		{"icmp cut", pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, Proto: 1, L4: []byte{8, 0, 0}}.Bytes(), packet.ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p packet.Packet
			err := p.Decode(tc.frame)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Decode = %v, want %v", err, tc.err)
			}
			var pe packet.Error
			if !errors.As(err, &pe) || pe.Error() == "" {
				t.Errorf("error %v is not a packet.Error", err)
			}
			// Accessors must stay safe on a failed decode.
			_ = p.Payload()
			_, _ = p.FlowKey()
			_ = p.VerifyL4Checksum()
			_ = p.SetSeq(1)
		})
	}
}

// TestMalformedQuoteIsNotAnError: a garbled quote in an ICMP error leaves the
// outer packet valid and simply has no quote.
func TestMalformedQuoteIsNotAnError(t *testing.T) {
	for _, body := range [][]byte{nil, {0x45}, {0x43, 0, 0, 20}, make([]byte, 19), append([]byte{0x60}, make([]byte, 30)...)} {
		var p packet.Packet
		f := pt.Frame{Src: pt.HostA4, Dst: pt.HostB4, Proto: 1, L4: pt.ICMP(3, 4, 1400, body)}.Bytes()
		if err := p.Decode(f); err != nil {
			t.Fatalf("body %x: %v", body, err)
		}
		if _, ok := p.Quote(); ok {
			t.Errorf("body %x: quote accepted", body)
		}
		if p.SetQuotedSeq(1) {
			t.Errorf("body %x: SetQuotedSeq without a quote", body)
		}
	}
}

// TestErrKeepsDecodeOutcome: a Packet handed on says what its Decode
// returned, so that its receiver need not decode the frame again.
func TestErrKeepsDecodeOutcome(t *testing.T) {
	var p packet.Packet
	frame := pt.Frame{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("198.51.100.2"), TCP: tcpSeg(pt.ACK, nil, []byte("x"))}.Bytes()
	if err := p.Decode(frame[:20]); err != packet.ErrTruncated || p.Err() != err {
		t.Fatalf("truncated: Decode %v, Err %v; want %v from both", err, p.Err(), packet.ErrTruncated)
	}
	if err := p.Decode(frame); err != nil || p.Err() != nil {
		t.Fatalf("whole frame: Decode %v, Err %v; want nil from both", err, p.Err())
	}
}

// TestFragmentsBuilder: packettest.Fragments cuts a datagram into
// fragments this decoder reads back, in order, covering it exactly.
func TestFragmentsBuilder(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 100)
	for _, src := range []netip.Addr{pt.HostA4, pt.HostA6} {
		dst, id := pt.HostB4, uint32(0x0203) // IPv4 keeps the low 16 bits
		if src.Is6() {
			dst, id = pt.HostB6, 0x10203
		}
		whole := pt.Frame{Tags: []pt.Tag{{TPID: 0x8100, TCI: 7}}, Src: src, Dst: dst, TCP: tcpSeg(pt.ACK, nil, data)}.Bytes()
		var p packet.Packet
		if err := p.Decode(whole); err != nil {
			t.Fatal(err)
		}
		l4 := whole[p.L4Offset():p.End()]
		var got []byte
		frags := pt.Fragments(whole, 512, 0x10203)
		for i, fb := range frags {
			if err := p.Decode(fb); err != nil {
				t.Fatalf("%v fragment %d: %v", src, i, err)
			}
			fr, ok := p.Fragment()
			if !ok || fr.Offset != len(got) || fr.More != (i < len(frags)-1) || fr.Proto != packet.ProtoTCP || fr.ID != id {
				t.Fatalf("%v fragment %d: %+v, ok %v", src, i, fr, ok)
			}
			got = append(got, fb[fr.Data:p.End()]...)
		}
		if !bytes.Equal(got, l4) {
			t.Fatalf("%v: the fragments carry %d bytes, not the datagram's %d", src, len(got), len(l4))
		}
	}
}

// TestECN: the codepoint is read from the IPv4 TOS byte's low bits and the
// IPv6 traffic class's, leaving the DSCP above it alone.
func TestECN(t *testing.T) {
	for _, c := range []struct {
		name string
		src  netip.Addr
		dst  netip.Addr
		set  func(b []byte, l3 int, ecn uint8) // DSCP 46 (EF) and ecn
	}{
		{"v4", pt.HostA4, pt.HostB4, func(b []byte, l3 int, ecn uint8) { b[l3+1] = 46<<2 | ecn }},
		{"v6", pt.HostA6, pt.HostB6, func(b []byte, l3 int, ecn uint8) {
			b[l3] = 6<<4 | 46>>2
			b[l3+1] = (46&3)<<6 | ecn<<4
		}},
	} {
		for _, ecn := range []uint8{packet.NotECT, packet.ECT1, packet.ECT0, packet.CE} {
			b := pt.Frame{Src: c.src, Dst: c.dst, TCP: tcpSeg(pt.ACK, nil, []byte("x"))}.Bytes()
			var p packet.Packet
			if err := p.Decode(b); err != nil || p.ECN() != packet.NotECT {
				t.Fatalf("%s: %v, ECN %d before", c.name, err, p.ECN())
			}
			c.set(b, p.L3Offset(), ecn)
			if err := p.Decode(b); err != nil || p.ECN() != ecn {
				t.Errorf("%s: ECN %d, want %d (%v)", c.name, p.ECN(), ecn, err)
			}
		}
	}
	var p packet.Packet
	_ = p.Decode(pt.ARP(pt.HostA4, pt.HostB4))
	if p.ECN() != packet.NotECT {
		t.Error("ECN of a frame that is not IP")
	}
}
