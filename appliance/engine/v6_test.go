package engine

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// IPv6: the same handshake and data, every originated frame with a valid
// checksum (checkFrame), the payload length right.
func TestIPv6(t *testing.T) {
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	a := netip.AddrPortFrom(packettest.HostA6, 40000)
	b := netip.AddrPortFrom(packettest.HostB6, 443)
	_, w := connectAddrs(t, ga, gb, a, b)
	if w.seq != isnA+1+75 || len(w.payload) != 24 {
		t.Fatalf("IPv6 data on the wire: %+v", w)
	}
	in, _ := gb.push(Outside, w.frame())
	if len(in) != 1 || string(parse(t, in[0]).payload) != "data" {
		t.Fatal("IPv6 data not delivered")
	}
	if fi := flowInfo(t, gb.e); !fi.Encrypted || fi.Outside != a {
		t.Fatalf("flow %+v", fi)
	}
}

// ICMP "fragmentation needed" about one of G_A's wire segments: the quoted
// sequence number goes back to host space and the MTU drops by 20.
func TestPacketTooBigTranslated(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	pr.aSends(&h, make([]byte, 100), pshF)
	w := pr.aSends(&h, make([]byte, 1400), pshF)[0]
	quoted := packettest.Quote(tcpFrameFrom(w), 28)
	body := make([]byte, 4)
	binary.BigEndian.PutUint16(body[2:], 1400)
	icmp := packettest.Frame{Src: netip.MustParseAddr("203.0.113.9"), Dst: addrA.Addr(), Proto: 1,
		L4: packettest.ICMP(3, 4, uint32(1400), quoted)}.Bytes()
	fr := append([]byte(nil), icmp...)
	if v := pr.ga.e.Handle(0, Outside, fr, pr.ga.tx); v != ForwardInPlace {
		t.Fatalf("verdict %v", v)
	}
	var p packet.Packet
	if err := p.Decode(fr); err != nil || !p.VerifyL4Checksum() {
		t.Fatalf("decode %v / checksum", err)
	}
	seq, _ := p.QuotedSeq()
	if seq != isnA+1+100 {
		t.Fatalf("quoted seq %x, want host offset 100 (%x)", seq, isnA+1+100)
	}
	if mtu, _ := p.MTU(); mtu != 1380 {
		t.Fatalf("MTU %d, want 1380", mtu)
	}
}

// Hosts whose IPv6 packets carry a destination options header (8 bytes):
// an MSS counts neither IP options nor extension headers, so they come off
// it (RFC 6691 §2). The appliance's frames carry the hosts' header too
// (its templates are the hosts' frames), and every one of them, sealed
// toward the far side or opened toward b, must fit the MTU the peer's MSS
// implies (MSS + 60 for IPv6): before, full frames were 8 bytes over and
// the port could not send them.
func TestExtensionHeadersComeOffTheMSS(t *testing.T) {
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	a := netip.AddrPortFrom(packettest.HostA6, 40000)
	b := netip.AddrPortFrom(packettest.HostB6, 443)
	dstOpts := []packettest.Ext{{Proto: 60, Data: []byte{1, 4, 0, 0, 0, 0}}}
	frame := func(src, dst netip.AddrPort, seq, ack uint32, flags uint8, opts, payload []byte) []byte {
		win := uint16(502) // scaled by 7
		if flags&synF != 0 {
			win = 65000
		}
		return packettest.Frame{Src: src.Addr(), Dst: dst.Addr(), Ext: dstOpts, TCP: &packettest.TCP{
			SrcPort: src.Port(), DstPort: dst.Port(), Seq: seq, Ack: ack, Flags: flags,
			Window: win, Options: opts, Payload: payload}}.Bytes()
	}
	const mtu = 1500
	fits := func(what string, frames [][]byte) {
		t.Helper()
		for _, f := range frames {
			var p packet.Packet
			if err := p.Decode(f); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if n := p.End() - p.L3Offset(); n > mtu {
				t.Errorf("%s: an IPv6 packet of %d bytes (%d of TCP payload), over the %d the MSS allows", what, n, len(p.Payload()), mtu)
			}
		}
	}
	_, o := ga.push(Inside, frame(a, b, isnA, 0, synF, synOpts(mtu-60, 1), nil))
	gb.push(Outside, one(t, "SYN", o).frame())
	_, o = gb.push(Inside, frame(b, a, isnB, isnA+1, synF|ackF, synOpts(mtu-60, 2), nil))
	in, _ := ga.push(Outside, one(t, "SYN-ACK", o).frame())
	mssA := mss(one(t, "SYN-ACK to a", in).opts)
	_, o = ga.push(Inside, frame(a, b, isnA+1, isnB+1, ackF, tsOpt(2, 2), nil))
	finishKex(ga, gb, o)

	// a sends what its MSS allows, less its own header and timestamps,
	// four segments at once; then b answers with as much.
	data := make([]byte, 4*(int(mssA)-8-12))
	_, wire := ga.push(Inside, frame(a, b, isnA+1, isnB+1, ackF|pshF, tsOpt(3, 2), data))
	if len(wire) == 0 {
		t.Fatal("G_A sent nothing for a's data")
	}
	fits("G_A toward the far side", wire)
	var toB [][]byte
	for _, w := range wire {
		in, _ := gb.push(Outside, w)
		toB = append(toB, in...)
	}
	fits("G_B toward b", toB)
	got := 0
	for _, f := range toB {
		got += len(parse(t, f).payload)
	}
	if got != len(data) {
		t.Fatalf("b got %d bytes of %d", got, len(data))
	}
}
