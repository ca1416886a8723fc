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
