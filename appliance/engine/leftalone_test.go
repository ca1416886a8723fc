package engine

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// routed puts a segment routing header (RFC 8754) with segments left sl
// between the IPv6 header and the TCP header of frame (tcpFrame, IPv6),
// its one segment final, and makes the TCP checksum the sender's: over
// final, not the IPv6 header's destination (RFC 8200 §8.1).
func routed(t *testing.T, frame []byte, final netip.Addr, sl byte) []byte {
	t.Helper()
	const l3, l4 = 14, 14 + 40
	var p packet.Packet
	if p.Decode(frame) != nil || p.L4Offset() != l4 {
		t.Fatal("not an IPv6 TCP frame without extension headers")
	}
	fa := final.As16()
	srh := append([]byte{frame[l3+6], 2, 4, sl, 0, 0, 0, 0}, fa[:]...)
	f := append(append(append([]byte{}, frame[:l4]...), srh...), frame[l4:]...)
	f[l3+6] = packet.ProtoRouting
	binary.BigEndian.PutUint16(f[l3+4:], uint16(len(f)-l4))
	tcp := f[l4+len(srh):]
	ph := append(append(append([]byte{}, f[l3+8:l3+24]...), fa[:]...), 0, 0, byte(len(tcp)>>8), byte(len(tcp)), 0, 0, 0, packet.ProtoTCP)
	tcp[16], tcp[17] = 0, 0
	binary.BigEndian.PutUint16(tcp[16:], packet.Checksum(append(ph, tcp...), 0))
	return f
}

// lsrr puts a loose source route option (RFC 791) into IPv4 frame: the
// next hop in the header, final (the route's last address) still to go
// when left, and the TCP checksum over final (RFC 9293 §3.1).
func lsrr(t *testing.T, frame []byte, final netip.Addr, left bool) []byte {
	t.Helper()
	const l3, l4 = 14, 14 + 20
	var p packet.Packet
	if p.Decode(frame) != nil || p.L4Offset() != l4 {
		t.Fatal("not an IPv4 TCP frame without options")
	}
	fa := final.As4()
	ptr := byte(4) // at the (only) address: still to go
	if !left {
		ptr = 8 // past it: the header's destination is the final one
	}
	opt := append([]byte{0x83, 7, ptr}, fa[:]...)
	opt = append(opt, 1) // NOP to a 4-byte boundary
	f := append(append(append([]byte{}, frame[:l4]...), opt...), frame[l4:]...)
	f[l3] = 0x40 | byte((20+len(opt))/4)
	binary.BigEndian.PutUint16(f[l3+2:], uint16(len(f)-l3))
	f[l3+10], f[l3+11] = 0, 0
	binary.BigEndian.PutUint16(f[l3+10:], packet.Checksum(f[l3:l4+len(opt)], 0))
	tcp := f[l4+len(opt):]
	dst := f[l3+16 : l3+20]
	if left {
		dst = fa[:]
	}
	ph := append(append(append([]byte{}, f[l3+12:l3+16]...), dst...), 0, packet.ProtoTCP, byte(len(tcp)>>8), byte(len(tcp)))
	tcp[16], tcp[17] = 0, 0
	binary.BigEndian.PutUint16(tcp[16:], packet.Checksum(append(ph, tcp...), 0))
	return f
}

// TestSourceRoutedHandshakeLeftPlain: a SYN or SYN-ACK behind an IPv6
// routing header with segments left crosses unchanged, without TCP-ENO,
// and its connection stays plain (fallback source_routed). Its TCP
// checksum covers the final destination, which is not in the IPv6
// header: encrypted, the engine would take every segment of the inside
// host for corrupt (VerifyL4Checksum) and build its own with checksums
// the receiver rejects, and the connection would stall. Before, the SYN
// left with ENO added. With no segments left the destination is the
// final one, and the connection is encrypted as any other.
func TestSourceRoutedHandshakeLeftPlain(t *testing.T) {
	a, b := netip.AddrPortFrom(packettest.HostA6, 40000), netip.AddrPortFrom(packettest.HostB6, 443)
	// rt makes frame's IPv6 destination the next segment of a route whose
	// final destination, in the routing header, is another address.
	rt := func(frame []byte) []byte { return routed(t, frame, netip.MustParseAddr("2001:db8:2::1"), 1) }
	unchanged := func(t *testing.T, g *gw, from PortID, frame []byte) {
		t.Helper()
		in, out := g.rawPush(from, frame)
		got := append(in, out...)
		if len(got) != 1 || !bytes.Equal(got[0], frame) {
			t.Fatalf("%d frames, first %x; want the segment unchanged, %x", len(got), got, frame)
		}
		if n := g.e.Counters().Fallbacks[FallbackSourceRouted].Load(); n != 1 || FallbackNames[FallbackSourceRouted] != "source_routed" {
			t.Fatalf("%d source_routed fallbacks, want 1", n)
		}
		if fi := flowInfo(t, g.e); fi.State != "plain" || fi.Encrypted {
			t.Fatalf("flow %+v, want plain", fi)
		}
	}
	opts := synOpts(1440, 1)
	eno := append(append([]byte(nil), opts...), 69, 3, 0x23, 1)
	t.Run("outbound SYN", func(t *testing.T) {
		unchanged(t, newGW(t, Config{TEPs: testTEPs}), Inside, rt(tcpFrame(a, b, isnA, 0, synF, 64240, opts, nil)))
	})
	t.Run("inbound SYN", func(t *testing.T) {
		unchanged(t, newGW(t, Config{TEPs: testTEPs}), Outside, rt(tcpFrame(a, b, isnA, 0, synF, 64240, eno, nil)))
	})
	t.Run("host SYN-ACK", func(t *testing.T) {
		gb := newGW(t, Config{TEPs: testTEPs})
		gb.rawPush(Outside, tcpFrame(a, b, isnA, 0, synF, 64240, eno, nil))
		unchanged(t, gb, Inside, rt(tcpFrame(b, a, isnB, isnA+1, synF|ackF, 65160, opts, nil)))
	})
	t.Run("far SYN-ACK", func(t *testing.T) {
		ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
		_, syn := ga.push(Inside, tcpFrame(a, b, isnA, 0, synF, 64240, opts, nil))
		gb.push(Outside, one(t, "SYN", syn).frame())
		_, sa := gb.push(Inside, tcpFrame(b, a, isnB, isnA+1, synF|ackF, 65160, opts, nil))
		unchanged(t, ga, Outside, rt(one(t, "SYN-ACK", sa).frame()))
	})
	// IPv4 alike: a loose source route with an address to go.
	a4, b4 := netip.AddrPortFrom(packettest.HostA4, 40000), netip.AddrPortFrom(packettest.HostB4, 443)
	t.Run("outbound SYN, IPv4 source route", func(t *testing.T) {
		syn := lsrr(t, tcpFrame(a4, b4, isnA, 0, synF, 64240, opts, nil), netip.MustParseAddr("192.0.2.99"), true)
		unchanged(t, newGW(t, Config{TEPs: testTEPs}), Inside, syn)
	})
	t.Run("inbound SYN, IPv4 source route", func(t *testing.T) {
		syn := lsrr(t, tcpFrame(b4, a4, isnB, 0, synF, 64240, eno, nil), netip.MustParseAddr("10.0.0.99"), true)
		unchanged(t, newGW(t, Config{TEPs: testTEPs}), Outside, syn)
	})
	t.Run("IPv4 source route used up", func(t *testing.T) {
		ga := newGW(t, Config{TEPs: testTEPs})
		syn := lsrr(t, tcpFrame(a4, b4, isnA, 0, synF, 64240, opts, nil), netip.MustParseAddr("192.0.2.99"), false)
		_, out := ga.push(Inside, syn)
		if len(out) != 1 || ga.e.Counters().Fallbacks[FallbackSourceRouted].Load() != 0 {
			t.Fatalf("%d frames, %d source_routed fallbacks; want the SYN with TCP-ENO added", len(out), ga.e.Counters().Fallbacks[FallbackSourceRouted].Load())
		}
		var p packet.Packet
		if p.Decode(out[0]) != nil || p.SegmentsLeft() || !bytes.Contains(p.OptionBytes(), []byte{69}) {
			t.Fatalf("SYN out: %x", out[0])
		}
	})
	t.Run("no segments left", func(t *testing.T) {
		ga := newGW(t, Config{TEPs: testTEPs})
		syn := routed(t, tcpFrame(a, b, isnA, 0, synF, 64240, opts, nil), b.Addr(), 0)
		_, out := ga.push(Inside, syn)
		if len(out) != 1 || bytes.Equal(out[0], syn) || ga.e.Counters().Fallbacks[FallbackSourceRouted].Load() != 0 {
			t.Fatalf("%d frames; want the SYN with TCP-ENO added", len(out))
		}
		var p packet.Packet
		if p.Decode(out[0]) != nil || p.SegmentsLeft() || !bytes.Contains(p.OptionBytes(), []byte{69}) {
			t.Fatalf("SYN out: %x", out[0])
		}
	})
}
