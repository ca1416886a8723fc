package engine

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// Path MTU of encrypted flows (pmtu.go).

var (
	outsideRouter = netip.MustParseAddr("203.0.113.9")
	insideRouter  = netip.MustParseAddr("192.0.2.254")
)

// ptb is a packet-too-big from router to dst quoting n bytes of frame: an
// ICMPv4 "fragmentation needed" or an ICMPv6 "packet too big".
func ptb(router, dst netip.Addr, mtu uint32, frame []byte, n int) []byte {
	if router.Is6() {
		return packettest.Frame{Src: router, Dst: dst, Proto: 58, L4: packettest.ICMP(2, 0, mtu, packettest.Quote(frame, n))}.Bytes()
	}
	return packettest.Frame{Src: router, Dst: dst, Proto: 1, L4: packettest.ICMP(3, 4, mtu, packettest.Quote(frame, n))}.Bytes()
}

// ipLen is the IP datagram length of a frame the engine built (Ethernet,
// no tags, no padding).
func ipLen(frame []byte) int { return len(frame) - 14 }

// fits fails unless every frame's datagram fits mtu.
func fits(t *testing.T, what string, frames [][]byte, mtu int) {
	t.Helper()
	for _, f := range frames {
		if ipLen(f) > mtu {
			s := parse(t, f)
			t.Fatalf("%s: a %d-byte datagram (seq %d, %d bytes of payload) on a path with MTU %d", what, ipLen(f), s.seq, len(s.payload), mtu)
		}
	}
}

// wireBytes checks that segs carry exactly want at sequence number seq:
// every byte at its sequence number, each one at least once.
func wireBytes(t *testing.T, what string, segs []segv, seq uint32, want []byte) {
	t.Helper()
	got := make([]int, len(want))
	for i := range got {
		got[i] = -1
	}
	for _, s := range segs {
		for i, c := range s.payload {
			o := int(int32(s.seq + uint32(i) - seq))
			if o < 0 || o >= len(want) {
				t.Fatalf("%s: byte at offset %d, outside [0, %d)", what, o, len(want))
			}
			if c != want[o] {
				t.Fatalf("%s: byte at offset %d is %#x, was %#x: not the same bytes at the same sequence numbers", what, o, c, want[o])
			}
			got[o] = int(c)
		}
	}
	for i, c := range got {
		if c < 0 {
			t.Fatalf("%s: byte at offset %d never sent", what, i)
		}
	}
}

// TestPacketTooBigNotInFlightDropped: a packet-too-big from the outside
// whose quoted sequence number is not in our wire stream's flight (RFC 5927
// §4.1: SND.UNA <= SEG.SEQ < SND.NXT) is dropped and counted: it neither
// reaches the host nor lowers the flow's segment size. A blind attacker
// guessing the ports could otherwise shrink every segment of the flow.
func TestPacketTooBigNotInFlightDropped(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	w := pr.aSends(&h, make([]byte, 1000), pshF)[0] // wire [75, 1095): SND.UNA 75, SND.NXT 1095
	for _, c := range []struct {
		what string
		seq  uint32
	}{
		{"at SND.NXT", w.seq + uint32(len(w.payload))},
		{"far beyond SND.NXT", w.seq + 1<<20},
		{"below SND.UNA (Init1, acknowledged)", isnA + 1},
		{"far below", w.seq - 1<<30},
	} {
		q := w
		q.seq = c.seq
		fr := ptb(outsideRouter, addrA.Addr(), 576, tcpFrameFrom(q), 28)
		if v := pr.ga.e.Handle(0, Outside, fr, pr.ga.tx); v != Dropped {
			t.Fatalf("PTB quoting %s: verdict %v, want dropped", c.what, v)
		}
		none(t, "G_A inside after "+c.what, pr.ga.in.take())
		none(t, "G_A outside after "+c.what, pr.ga.out.take())
	}
	if n := pr.ga.e.Counters().Drops[DropICMPWindow].Load(); n != 4 {
		t.Fatalf("icmp_out_of_window drops %d, want 4", n)
	}
	if n := pr.ga.e.Counters().PTBTranslated.Load(); n != 0 {
		t.Fatalf("%d PTBs translated", n)
	}
	// The segment size is R's MSS still: 1400 bytes go in one segment.
	if ws := pr.aSends(&h, make([]byte, 1400), pshF); len(ws) != 1 || len(ws[0].payload) != 1420 {
		t.Fatalf("after forged PTBs: %d segments, want one of 1420 bytes", len(ws))
	}
}

// TestOutsideErrorTranslated: an ICMP error other than packet-too-big from
// the outside (host unreachable, time exceeded) about our wire segment went
// on to the host with the wire sequence number, which the host takes as out
// of window or as about another byte (RFC 5927 §4.1), so RFC 6069's backoff
// revert and the host's soft errors never saw it. It reaches the host with
// the start of the quoted frame in host space, and the flow's segment size
// stays; one quoting a sequence number not in flight is dropped.
func TestOutsideErrorTranslated(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	pr.aSends(&h, make([]byte, 1000), pshF)
	second := pr.aSends(&h, make([]byte, 1000), pshF)[0]
	for i, c := range []struct {
		what       string
		typ, code  uint8
		seq        uint32
		translated bool
	}{
		{"host unreachable, second frame's middle", 3, 1, second.seq + 500, true},
		{"time exceeded, second frame's start", 11, 0, second.seq, true},
		{"net unreachable, beyond SND.NXT", 3, 0, second.seq + 2000, false},
	} {
		q := second
		q.seq = c.seq
		fr := packettest.Frame{Src: outsideRouter, Dst: addrA.Addr(), Proto: 1, L4: packettest.ICMP(c.typ, c.code, 0, packettest.Quote(tcpFrameFrom(q), 28))}.Bytes()
		v := pr.ga.e.Handle(0, Outside, fr, pr.ga.tx)
		none(t, "G_A inside after "+c.what, pr.ga.in.take())
		none(t, "G_A outside after "+c.what, pr.ga.out.take())
		if !c.translated {
			if v != Dropped {
				t.Fatalf("%s: verdict %v, want dropped", c.what, v)
			}
			continue
		}
		if v != ForwardInPlace {
			t.Fatalf("%s: verdict %v, want forward-in-place", c.what, v)
		}
		var p packet.Packet
		if err := p.Decode(fr); err != nil || !p.VerifyL4Checksum() {
			t.Fatalf("%s: translated error: %v / checksum", c.what, err)
		}
		if seq, _ := p.QuotedSeq(); seq != isnA+1+1000 {
			t.Fatalf("%s: quoted seq %x, want the second frame's host start %x", c.what, seq, isnA+1+1000)
		}
		if n := pr.ga.e.Counters().ICMPTranslated.Load(); n != uint64(i+1) {
			t.Fatalf("%s: icmp_translated %d", c.what, n)
		}
	}
	if n := pr.ga.e.Counters().PTBTranslated.Load(); n != 0 {
		t.Fatalf("%d errors counted as packet-too-big", n)
	}
	if ws := pr.aSends(&h, make([]byte, 1400), pshF); len(ws) != 1 || len(ws[0].payload) != 1420 {
		t.Fatalf("after the errors: %d segments, want one of 1420 bytes", len(ws))
	}
}

// TestPacketTooBigSplitsStoredFrame: a 1400-byte host segment went out as
// one 1420-byte frame; a router on the untrusted side reports MTU 1000. The
// host gets the PTB translated (MTU 980, quoted sequence number at the
// frame's host start) and resends the bytes in smaller segments; G_A serves
// them from the store as the same wire bytes at the same sequence numbers,
// in segments that fit (never sealed again: RFC 8548 §3.6), and b gets the
// data. New data is sealed into frames that fit too.
func TestPacketTooBigSplitsStoredFrame(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	data := bytes.Repeat([]byte("0123456789abcdef"), 88)[:1400]
	orig := pr.aSends(&h, data, pshF)
	if len(orig) != 1 || len(orig[0].payload) != 1420 {
		t.Fatalf("%d segments, want one 1420-byte frame", len(orig))
	}
	fr := ptb(outsideRouter, addrA.Addr(), 1000, tcpFrameFrom(orig[0]), 548)
	if v := pr.ga.e.Handle(0, Outside, fr, pr.ga.tx); v != ForwardInPlace {
		t.Fatalf("PTB in flight: verdict %v", v)
	}
	var p packet.Packet
	if err := p.Decode(fr); err != nil || !p.VerifyL4Checksum() {
		t.Fatalf("translated PTB: %v / checksum", err)
	}
	if seq, _ := p.QuotedSeq(); seq != isnA+1 {
		t.Fatalf("quoted seq %x, want host offset 0 (%x)", seq, isnA+1)
	}
	if mtu, _ := p.MTU(); mtu != 980 {
		t.Fatalf("MTU to a %d, want 980", mtu)
	}
	// a (Linux) resends what the PTB reported, in segments for MTU 980:
	// 980 - 40 - 12 bytes of timestamps = 928 bytes.
	var out [][]byte
	for _, r := range [][2]int{{0, 928}, {928, 1400}} {
		pr.tsA++
		_, o := pr.ga.push(Inside, tcpFrame(addrA, addrB, isnA+1+uint32(r[0]), isnB+1, ackF|pshF, 502, tsOpt(pr.tsA, pr.tsB), data[r[0]:r[1]]))
		out = append(out, o...)
	}
	if len(out) == 0 {
		t.Fatal("nothing resent")
	}
	fits(t, "resent frame", out, 1000)
	var segs []segv
	for _, o := range out {
		segs = append(segs, parse(t, o))
	}
	wireBytes(t, "resent frame", segs, orig[0].seq, orig[0].payload)
	atB, _ := pr.toB(segs) // the second copy is delivered again: b has not acknowledged the first
	wireBytes(t, "at b", atB, isnA+1, data)
	// New data, from a host that has not lowered its segments (yet).
	var wire [][]byte
	for _, s := range pr.aSends(&h, make([]byte, 1400), pshF) {
		wire = append(wire, s.frame())
	}
	if len(wire) < 2 {
		t.Fatalf("1400 new bytes in %d segment(s)", len(wire))
	}
	fits(t, "new data", wire, 1000)
}

// TestPacketTooBigFloors: a PTB claiming an MTU below the floor a host
// applies (IPv4: 552 as Linux; IPv6: 1280, RFC 8201 §4) lowers the flow's
// segments only to the floor; the host gets the claimed MTU less the frame
// overhead and applies its own floor.
func TestPacketTooBigFloors(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) {
		pr := handshake(t)
		h := newHosts()
		w := pr.aSends(&h, make([]byte, 100), pshF)[0]
		toIn, _ := pr.ga.push(Outside, ptb(outsideRouter, addrA.Addr(), 300, tcpFrameFrom(w), 28))
		var p packet.Packet
		if len(toIn) != 1 || p.Decode(toIn[0]) != nil {
			t.Fatal("the PTB did not reach a")
		}
		if mtu, _ := p.MTU(); mtu != 280 {
			t.Fatalf("MTU to a %d, want 280", mtu)
		}
		var wire [][]byte
		for _, s := range pr.aSends(&h, make([]byte, 1400), pshF) {
			wire = append(wire, s.frame())
		}
		fits(t, "IPv4 data after a PTB below the floor", wire, 552)
		if ipLen(wire[0]) != 552 {
			t.Fatalf("first segment %d bytes, want 552 (the floor, not less)", ipLen(wire[0]))
		}
	})
	t.Run("IPv6", func(t *testing.T) {
		ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
		a := netip.AddrPortFrom(packettest.HostA6, 40000)
		b := netip.AddrPortFrom(packettest.HostB6, 443)
		_, w := connectAddrs(t, ga, gb, a, b)
		router := netip.MustParseAddr("2001:db8:ffff::1")
		toIn, _ := ga.push(Outside, ptb(router, a.Addr(), 600, w.frame(), 1232))
		var p packet.Packet
		if len(toIn) != 1 || p.Decode(toIn[0]) != nil || !p.IsPathMTU() {
			t.Fatal("the PTB did not reach a")
		}
		if mtu, _ := p.MTU(); mtu != 580 {
			t.Fatalf("MTU to a %d, want 580", mtu)
		}
		_, o := ga.push(Inside, tcpFrame(a, b, isnA+1+4, isnB+1, ackF|pshF, 502, tsOpt(4, 2), make([]byte, 1400)))
		if len(o) < 2 {
			t.Fatalf("1400 bytes in %d segment(s) after an IPv6 PTB", len(o))
		}
		fits(t, "IPv6 data after a PTB below 1280", o, 1280)
	})
}

// deliveredToB sends secret from a to b and returns the segments b got.
func deliveredToB(t *testing.T, pr *pair, h *hosts, secret []byte) []segv {
	t.Helper()
	atB, _ := pr.toB(pr.aSends(h, secret, pshF))
	if len(atB) == 0 {
		t.Fatal("nothing reached b")
	}
	return atB
}

// TestInsidePacketTooBigRedelivers: a router inside enclave B has a
// smaller MTU (1000) than b's link. Its packet-too-big about a segment G_B
// delivered quotes plaintext: it must not leave. But G_B is the sender of
// that segment: it delivers the quoted bytes again in segments that fit, and
// every later delivery fits too. Before, the PTB was dropped and nothing
// lowered: that direction was black-holed for good.
func TestInsidePacketTooBigRedelivers(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	secret := bytes.Repeat([]byte("SECRET"), 230) // 1380 bytes
	atB := deliveredToB(t, pr, &h, secret)
	if len(atB) != 1 || ipLen(tcpFrameFrom(atB[0])) <= 1000 {
		t.Fatalf("%d segments at b; want one larger than 1000 bytes", len(atB))
	}
	icmp := ptb(insideRouter, addrA.Addr(), 1000, tcpFrameFrom(atB[0]), 548)
	if !bytes.Contains(icmp, []byte("SECRET")) {
		t.Fatal("test error: the PTB does not quote the plaintext")
	}
	v := pr.gb.e.Handle(0, Inside, icmp, pr.gb.tx)
	toIn, toOut := pr.gb.in.take(), pr.gb.out.take()
	if v == Passthrough || v == ForwardInPlace {
		t.Fatalf("inside PTB: verdict %v", v)
	}
	none(t, "G_B outside after the inside PTB", toOut)
	if len(toIn) < 2 {
		t.Fatalf("G_B delivered %d segments again, want the 1380 bytes in segments that fit", len(toIn))
	}
	fits(t, "re-delivery", toIn, 1000)
	var segs []segv
	for _, f := range toIn {
		segs = append(segs, parse(t, f))
	}
	wireBytes(t, "re-delivery", segs, isnA+1, secret)
	if n := pr.gb.e.Counters().PTBInside.Load(); n != 1 {
		t.Fatalf("PTBInside %d, want 1", n)
	}
	// Later data fits from the start.
	var later [][]byte
	for _, s := range deliveredToB(t, pr, &h, bytes.Repeat([]byte("x"), 1380)) {
		later = append(later, s.frame())
	}
	fits(t, "later delivery", later, 1000)
}

// TestInsidePacketTooBigNotInWindow: an inside PTB quoting bytes b already
// acknowledged (or never delivered) is dropped and counted, and lowers
// nothing; one about a segment b sent (not a delivery) is dropped as any
// inside ICMP error about a negotiated flow.
func TestInsidePacketTooBigNotInWindow(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	atB := deliveredToB(t, pr, &h, bytes.Repeat([]byte("SECRET"), 230))
	pr.bAcks(&h, h.aNext)
	for _, c := range []struct {
		what string
		seq  uint32
	}{{"acknowledged", atB[0].seq}, {"never delivered", atB[0].seq + 5000}} {
		q := atB[0]
		q.seq = c.seq
		v := pr.gb.e.Handle(0, Inside, ptb(insideRouter, addrA.Addr(), 1000, tcpFrameFrom(q), 548), pr.gb.tx)
		if v != Dropped {
			t.Fatalf("PTB quoting %s bytes: verdict %v", c.what, v)
		}
		none(t, "G_B inside", pr.gb.in.take())
		none(t, "G_B outside", pr.gb.out.take())
	}
	if n := pr.gb.e.Counters().Drops[DropICMPWindow].Load(); n != 2 {
		t.Fatalf("icmp_out_of_window drops %d, want 2", n)
	}
	// About b's own segment: it quotes what never went out as such.
	own := tcpFrame(addrB, addrA, isnB+1, h.aNext, ackF|pshF, 509, tsOpt(pr.tsB, pr.tsA), bytes.Repeat([]byte("B-SECRET"), 150))
	if v := pr.gb.e.Handle(0, Inside, ptb(insideRouter, addrB.Addr(), 1000, own, 548), pr.gb.tx); v != Dropped {
		t.Fatalf("PTB about b's segment: verdict %v", v)
	}
	if pr.gb.e.Counters().Drops[DropICMPQuote].Load() != 1 {
		t.Fatal("PTB about b's own segment not counted as icmp_quote")
	}
	none(t, "G_B outside", pr.gb.out.take())
	atB = deliveredToB(t, pr, &h, bytes.Repeat([]byte("y"), 1380))
	if len(atB) != 1 {
		t.Fatalf("after rejected PTBs 1380 bytes reach b in %d segments, want 1", len(atB))
	}
}

// TestPacketTooBigExpires: a segment size lowered by a packet-too-big holds
// for ten minutes (RFC 8201 §4, RFC 1191 §6.3), then the flow sends
// full-size frames again: a path that has grown back is used.
func TestPacketTooBigExpires(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	orig := pr.aSends(&h, make([]byte, 1400), pshF)
	fr := ptb(outsideRouter, addrA.Addr(), 1000, tcpFrameFrom(orig[0]), 548)
	if v := pr.ga.e.Handle(pr.ga.now, Outside, fr, pr.ga.tx); v != ForwardInPlace {
		t.Fatalf("PTB in flight: verdict %v", v)
	}
	f := pr.ga.e.flows[flowKey{in: addrA, out: addrB}]
	if f == nil || f.segR() >= 1000 {
		t.Fatalf("the PTB did not lower the segment size toward b")
	}
	lowered := f.segR()
	pr.ga.tick(int64(9 * time.Minute))
	if f.segR() != lowered {
		t.Fatalf("after 9 minutes the segment size is %d, want it still %d", f.segR(), lowered)
	}
	pr.ga.tick(int64(time.Minute))
	if f.segR() != int(f.mssR) || pr.ga.e.Counters().PMTUExpired.Load() != 1 {
		t.Fatalf("after 10 minutes the segment size is %d (MSS %d), %d expiries counted", f.segR(), f.mssR, pr.ga.e.Counters().PMTUExpired.Load())
	}
	segs := pr.aSends(&h, make([]byte, 1400), pshF)
	if len(segs) != 1 || len(segs[0].payload) != 1420 {
		t.Fatalf("new data after the expiry: %d segments, want one full 1420-byte frame", len(segs))
	}
}

// An inside firewall rejecting a far client's SYN with TCP-ENO (port
// unreachable, quoting the SYN): the error was dropped as one about a
// negotiated connection, and the client waited out its retransmissions
// (for good under require) where over plain TCP it fails at once. Before
// the key exchange a quote without payload holds no plaintext and the two
// sequence spaces are one: it goes on. One quoting data still does not.
func TestInsideRejectOfInboundSYNPasses(t *testing.T) {
	gb := newGW(t, Config{TEPs: testTEPs})
	syn := tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), farENOOpt...), nil)
	toIn, _ := gb.push(Outside, syn)
	atB := one(t, "SYN at b", toIn).frame()
	reject := packettest.Frame{Src: insideRouter, Dst: addrA.Addr(), Proto: 1,
		L4: packettest.ICMP(3, 3, 0, packettest.Quote(atB, 548))}.Bytes()
	if v := gb.e.Handle(0, Inside, reject, gb.tx); v != Passthrough {
		t.Fatalf("port unreachable quoting the SYN: verdict %v, want passthrough", v)
	}
	data := tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, nil, []byte("SECRET"))
	quoting := packettest.Frame{Src: insideRouter, Dst: addrA.Addr(), Proto: 1,
		L4: packettest.ICMP(3, 3, 0, packettest.Quote(data, 548))}.Bytes()
	if v := gb.e.Handle(0, Inside, quoting, gb.tx); v != Dropped {
		t.Fatalf("port unreachable quoting data: verdict %v, want dropped", v)
	}
}

// An ICMP error from the inside (a router on the inside link, or the host)
// quotes a segment the appliance delivered to the inside host: decrypted
// plaintext. It must not leave through the outside port (Linux quotes up
// to 548 bytes of the datagram).
func TestICMPQuotingPlaintextNotForwarded(t *testing.T) {
	pr := handshake(t)
	secret := bytes.Repeat([]byte("SECRET"), 40)
	fr := tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF|pshF, 509, tsOpt(5001, 1001), secret)
	_, toOut := pr.gb.push(Inside, fr)
	var atA [][]byte
	for _, w := range toOut {
		in, _ := pr.ga.push(Outside, w)
		atA = append(atA, in...)
	}
	var seg []byte
	for _, f := range atA {
		if bytes.Contains(f, []byte("SECRET")) {
			seg = f
		}
	}
	if seg == nil {
		t.Fatal("the data did not reach a")
	}
	router := netip.MustParseAddr("192.0.2.254")
	for _, m := range []struct{ typ, code uint8 }{{3, 4}, {11, 0}, {3, 3}} {
		icmp := packettest.Frame{Src: router, Dst: addrB.Addr(), Proto: 1,
			L4: packettest.ICMP(m.typ, m.code, 1200, packettest.Quote(seg, 548))}.Bytes()
		v := pr.ga.e.Handle(0, Inside, icmp, pr.ga.tx)
		out := pr.ga.out.take()
		if v == Passthrough || v == ForwardInPlace {
			t.Fatalf("ICMP %d/%d quoting plaintext: verdict %v", m.typ, m.code, v)
		}
		for _, o := range out {
			if bytes.Contains(o, []byte("SECRET")) {
				t.Fatalf("ICMP %d/%d: plaintext on the wire", m.typ, m.code)
			}
		}
	}
}

// An ICMP error with a bad checksum (the receiver drops it) lowered the
// segment size all the same, from either side (a frames review): a
// packet-too-big corrupted on the way may carry any MTU. It is dropped,
// counted, and changes nothing; the intact one still works.
func TestCorruptedPacketTooBigIgnored(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	w := pr.aSends(&h, make([]byte, 1000), pshF)[0]
	fr := ptb(outsideRouter, addrA.Addr(), 576, tcpFrameFrom(w), 28)
	bad := slices.Clone(fr)
	bad[len(bad)-1] ^= 0x01 // the quote's last byte
	if v := pr.ga.e.Handle(0, Outside, bad, pr.ga.tx); v != Dropped {
		t.Fatalf("corrupted outside PTB: verdict %v, want dropped", v)
	}
	none(t, "G_A inside after a corrupted PTB", pr.ga.in.take())
	if n := pr.ga.e.Counters().Drops[DropChecksum].Load(); n != 1 {
		t.Fatalf("checksum drops %d, want 1", n)
	}
	if ws := pr.aSends(&h, make([]byte, 1400), pshF); len(ws) != 1 || len(ws[0].payload) != 1420 {
		t.Fatalf("after a corrupted PTB: %d segments, want one of 1420 bytes", len(ws))
	}

	pr, h = handshake(t), newHosts()
	secret := bytes.Repeat([]byte("SECRET"), 230)
	atB := deliveredToB(t, pr, &h, secret)
	icmp := ptb(insideRouter, addrA.Addr(), 1000, tcpFrameFrom(atB[0]), 548)
	bad = slices.Clone(icmp)
	bad[len(bad)-1] ^= 0x01
	if v := pr.gb.e.Handle(0, Inside, bad, pr.gb.tx); v != Dropped {
		t.Fatalf("corrupted inside PTB: verdict %v, want dropped", v)
	}
	none(t, "G_B inside after a corrupted inside PTB", pr.gb.in.take())
	none(t, "G_B outside after a corrupted inside PTB", pr.gb.out.take())
	if n := pr.gb.e.Counters().PTBInside.Load(); n != 0 {
		t.Fatalf("PTBInside %d after a corrupted PTB, want 0", n)
	}
	if v := pr.gb.e.Handle(0, Inside, icmp, pr.gb.tx); v == Passthrough || v == ForwardInPlace {
		t.Fatalf("intact inside PTB: verdict %v", v)
	}
	if toIn := pr.gb.in.take(); len(toIn) < 2 {
		t.Fatalf("intact inside PTB: %d segments delivered again, want the bytes in segments of 1000", len(toIn))
	}
	pr.gb.out.take()
}
