package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// Tests from the adversarial review: each pins a defect that was fixed.

// synAckToA runs a's SYN through G_A and G_B and b's SYN-ACK through G_B,
// returning the SYN-ACK as it leaves G_B (with G_B's ENO answer).
func synAckToA(t *testing.T) (ga, gb *gw, synack segv) {
	ga = newGW(t, Config{TEPs: testTEPs})
	gb = newGW(t, Config{TEPs: testTEPs})
	_, toOut := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1000), nil))
	gb.push(Outside, one(t, "SYN", toOut).frame())
	_, toOut = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5000), nil))
	return ga, gb, one(t, "SYN-ACK", toOut)
}

// RFC 8547 §4.7 (docs/protocol.md §4): tcpcrypt defines no SYN data, so the data
// of a SYN-ACK carrying ENO is discarded, never acknowledged; here it would
// reach the inside host unauthenticated (DESIGN §2: garbage never reaches
// a host), first with the SYN-ACK that negotiates, then with a repeat.
func TestSYNACKDataNeverDelivered(t *testing.T) {
	ga, _, sa := synAckToA(t)
	sa.payload = []byte("UNAUTHENTICATED")
	toIn, toOut := ga.push(Outside, sa.frame())
	none(t, "G_A SYN-ACK outside", toOut)
	s := one(t, "SYN-ACK to a", toIn)
	if len(s.payload) != 0 || s.flags != synF|ackF || s.seq != isnB || s.ack != isnA+1 || mss(s.opts) != 1440 {
		t.Fatalf("SYN-ACK to a: %+v", s)
	}
	if fi := flowInfo(t, ga.e); fi.State != "key-exchange" {
		t.Fatalf("flow %+v", fi)
	}
	// The far side repeats it (our third segment was lost): the same.
	toIn, _ = ga.push(Outside, sa.frame())
	if s := one(t, "repeated SYN-ACK to a", toIn); len(s.payload) != 0 || s.flags != synF|ackF {
		t.Fatalf("repeated SYN-ACK to a: %+v", s)
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

// A far side that ignores the window the appliance advertises (the host
// behind G_A here sends on although b acknowledges nothing) must not make
// G_B keep state without bound: every frame delivered to b stays in G_B's
// frame map until b acknowledges it, the map has no cap of its own, and
// the window G_B advertises is all that bounds it for a well-behaved
// sender (the plaintext kept for re-delivery is capped, not the frames).
// Data beyond the window is dropped, as TCP drops it (RFC 9293 §3.10.7.4).
func TestPeerIgnoringWindowBounded(t *testing.T) {
	pr := handshake(t)
	cfg := pr.gb.e.Config()
	cfg.DeliverBytes = 4096
	if err := pr.gb.e.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	h := newHosts()
	delivered := 0
	for i := 0; i < 200; i++ {
		atB, _ := pr.toB(pr.aSends(&h, make([]byte, 1000), pshF))
		for _, s := range atB {
			delivered += len(s.payload)
		}
	}
	var f *flow
	for _, g := range pr.gb.e.list {
		f = g
	}
	limit := 4096 + tcpcrypt.MaxFrameLen
	if delivered > limit || f.rcv.frames.n > limit/tcpcrypt.Overhead {
		t.Fatalf("b got %d bytes, G_B holds %d frames, with nothing acknowledged and a %d-byte cap", delivered, f.rcv.frames.n, cfg.DeliverBytes)
	}
	if pr.gb.e.Counters().Drops[DropOutOfWindow].Load() == 0 {
		t.Fatal("no out-of-window drops counted")
	}
}

// A TCP fragment from the outside skipped the engine and went to the inside
// host as it came: a first fragment carrying a forged segment of an
// encrypted connection (host sequence numbers are easy to work out from the
// frame lengths on the wire) would, once the host reassembled it, put
// unauthenticated bytes into the stream. Fragments of a negotiated
// connection are reassembled by the engine (frag.go), never passed: this
// forged one never completes and is discarded at the timeout; those of
// other connections still pass.
func TestOutsideFragmentOfEncryptedFlowDropped(t *testing.T) {
	pr := handshake(t)
	mk := func(src netip.AddrPort, id uint16) []byte {
		frag := packettest.Frame{Src: src.Addr(), Dst: addrA.Addr(), MoreFragments: true, TCP: &packettest.TCP{
			SrcPort: src.Port(), DstPort: addrA.Port(), Seq: isnB + 1, Ack: isnA + 1, Flags: ackF | pshF,
			Window: 1000, Payload: []byte("INJECTED....")}}.Bytes()
		binary.BigEndian.PutUint16(frag[14+4:], id)
		frag[14+10], frag[14+11] = 0, 0
		binary.BigEndian.PutUint16(frag[14+10:], packet.Checksum(frag[14:34], 0))
		return frag
	}
	if v := pr.ga.e.Handle(0, Outside, mk(addrB, 1), pr.ga.tx); v != Consumed {
		t.Fatalf("first fragment of the encrypted flow: verdict %v", v)
	}
	pr.ga.tick(int64(6 * time.Second))
	if n := len(pr.ga.in.take()) + len(pr.ga.out.take()); n != 0 || pr.ga.e.Counters().Frag[FragTimeout].Load() != 1 {
		t.Fatalf("%d frames left, %d timeouts", n, pr.ga.e.Counters().Frag[FragTimeout].Load())
	}
	other := netip.AddrPortFrom(addrB.Addr(), 81)
	if v := pr.ga.e.Handle(0, Outside, mk(other, 2), pr.ga.tx); v != Passthrough {
		t.Fatalf("first fragment of an unknown flow: verdict %v", v)
	}
}

// A host retransmission is served whole from the store: the same bytes at
// the same sequence numbers (docs/protocol.md §12, TC-45). The store kept only
// [ackW, nextW), so once R acknowledged part of a frame, new frames could
// overwrite that part's bytes and the repeat carried other ciphertext at
// the frame's first sequence numbers.
func TestRetransmitAfterPartialAckSameBytes(t *testing.T) {
	pr := handshake(t)
	cfg := pr.ga.e.Config()
	cfg.RetransmitBytes = 2 * tcpcrypt.MaxFrameLen / 16 // the smallest store: 8192
	if err := pr.ga.e.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	var f *flow
	for _, g := range pr.ga.e.list {
		f = g
	}
	f.enc.store = ring{max: cfg.RetransmitBytes} // as a new flow would have it
	f.enc.store.reserve(0, 0, f.enc.initLen)
	h := newHosts()
	first := pr.aSends(&h, bytes.Repeat([]byte{'x'}, 1000), pshF)
	orig := first[0]
	// R acknowledges half the frame.
	half := orig.seq + 500
	pr.ga.push(Outside, tcpFrame(addrB, addrA, isnB+1+74, half, ackF, 65535, tsOpt(pr.tsB, pr.tsA), nil))
	// More data, up to what the store takes.
	for i := 0; i < 7; i++ {
		pr.aSends(&h, bytes.Repeat([]byte{'y'}, 1000), pshF)
	}
	pr.aSends(&h, bytes.Repeat([]byte{'z'}, 500), pshF)
	// a retransmits its first segment.
	_, toOut := pr.ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, h.bNext, ackF|pshF, 502, tsOpt(pr.tsA, pr.tsB), bytes.Repeat([]byte{'x'}, 1000)))
	var again *segv
	for _, o := range toOut {
		s := parse(t, o)
		if s.seq == orig.seq {
			again = &s
		}
	}
	if again == nil {
		t.Fatalf("no retransmission of the first frame (%d segments out)", len(toOut))
	}
	hasBytes(t, "retransmitted frame", again.payload, orig.payload)
}

// With the flow table full (a remote host can fill it with SYNs: records of
// plain connections stay 5 minutes), a new connection was passed through
// untracked, its SYN without TCP-ENO, and with the fast path the whole
// connection then ran in plain TCP, even to a prefix whose policy requires
// encryption. Under the require policy such a SYN is dropped, both ways.
func TestRequireAtFlowCapDrops(t *testing.T) {
	// An encrypted connection takes the only slot (a live record: a
	// finished one would be reclaimed, a handshake evicted).
	g := handshake(t).ga
	c := g.e.Config()
	c.MaxFlows, c.Policies = 1, []PolicyRule{{Prefix: mustPrefix(addrB.Addr().String() + "/32"), Policy: Require}}
	if err := g.e.Reconfigure(c); err != nil {
		t.Fatal(err)
	}
	if g.e.NumFlows() != 1 {
		t.Fatalf("%d flows", g.e.NumFlows())
	}
	addrA := netip.AddrPortFrom(addrA.Addr(), addrA.Port()+1)
	if v := g.e.Handle(0, Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil), g.tx); v != Dropped {
		t.Fatalf("outbound SYN to a require prefix at the flow cap: %v", v)
	}
	syn := tcpFrame(addrB, netip.AddrPortFrom(addrA.Addr(), 8080), isnB, 0, synF, 64240, append(synOpts(1460, 1), 69, 4, 0x24, 0x23), nil)
	if v := g.e.Handle(0, Outside, syn, g.tx); v != Dropped {
		t.Fatalf("inbound SYN with ENO from a require prefix at the flow cap: %v", v)
	}
	if g.e.Counters().FlowsCapped.Load() != 2 {
		t.Fatalf("capped %d", g.e.Counters().FlowsCapped.Load())
	}
}

// The inside host's SYN-ACK with data (Fast Open) went out with our ENO
// option and the host's plaintext in it: SYN data the far side must discard
// (RFC 8547 §4.7), in a connection being encrypted, at wire offsets where
// Init2 goes next. The data is left out (the host sends it again, framed,
// after the handshake), first time and on a repeat.
func TestHostSYNACKDataNotNegotiated(t *testing.T) {
	for _, repeat := range []bool{false, true} {
		g := newGW(t, Config{TEPs: testTEPs})
		syn := tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 4, 0x24, 0x23), nil)
		g.push(Outside, syn)
		sa := tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5), nil)
		if repeat {
			_, out := g.push(Inside, sa)
			one(t, "SYN-ACK", out)
		}
		sa = tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5), []byte("HOSTDATA"))
		_, out := g.push(Inside, sa)
		s := one(t, "SYN-ACK with data", out)
		if len(s.payload) != 0 || option(s.opts, 69) == nil || s.flags != synF|ackF || s.seq != isnB {
			t.Fatalf("repeat %v: SYN-ACK on the wire %+v", repeat, s)
		}
		if fi := flowInfo(t, g.e); fi.State != "syn-ack-sent" {
			t.Fatalf("repeat %v: flow %+v", repeat, fi)
		}
	}
}

// An MSS option of 0 (or a few bytes) in a SYN made the segmenting loops
// spin for ever: the far side's MSS in sendInit (a remote host hangs the
// worker, every flow with it, by offering TCP-ENO with MSS 0), the inside
// host's in sendPlain. MSS values are floored as Linux does (TCP_MIN_MSS).
func TestTinyMSSNoHang(t *testing.T) {
	for _, side := range []string{"far", "inside"} {
		done := make(chan string, 1)
		go func() {
			defer func() {
				if r := recover(); r != nil {
					done <- fmt.Sprint("panic: ", r)
				}
			}()
			ga := newGW(t, Config{TEPs: testTEPs})
			gb := newGW(t, Config{TEPs: testTEPs})
			synOptsA := synOpts(1460, 1)
			if side == "inside" {
				synOptsA = synOpts(0, 1)
			}
			_, out := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOptsA, nil))
			syn := parse(t, out[0])
			if side == "far" {
				syn.opts[2], syn.opts[3] = 0, 0 // MSS 0 from the far side
			}
			gb.push(Outside, syn.frame())
			_, out = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5), nil))
			ga.push(Outside, out[0])
			_, out = ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(2, 5), nil))
			var back [][]byte
			for _, o := range out {
				_, b := gb.push(Outside, o)
				back = append(back, b...)
			}
			for _, o := range back {
				ga.push(Outside, o)
			}
			// b sends data to a.
			_, out = gb.push(Inside, tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF|pshF, 509, tsOpt(6, 2), make([]byte, 500)))
			for _, o := range out {
				ga.push(Outside, o)
			}
			done <- ""
		}()
		select {
		case msg := <-done:
			if msg != "" {
				t.Fatalf("%s MSS 0: %s", side, msg)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s MSS 0: the engine hangs", side)
		}
	}
}

// During the handshake an RST from the outside removed the flow whatever its
// numbers, and a SYN-ACK for a tuple without a flow went on unchanged. So a
// blind attacker knowing the 4-tuple could send one RST while the inside
// host waited for the SYN-ACK: the far side's SYN-ACK then reached the host
// untracked and the connection ran in plain TCP, even to a prefix whose
// policy requires encryption. An RST in SYN-SENT must acknowledge the SYN
// (RFC 9293 §3.10.7.3), one in SYN-RECEIVED must sit at the expected
// sequence number; and a SYN-ACK of an untracked connection to a require
// prefix is dropped.
func TestBlindRSTInHandshake(t *testing.T) {
	pol := []PolicyRule{{Prefix: mustPrefix(addrB.Addr().String() + "/32"), Policy: Require}}
	ga := newGW(t, Config{TEPs: testTEPs, Policies: pol})
	gb := newGW(t, Config{TEPs: testTEPs})
	_, out := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	gb.push(Outside, out[0])
	// Blind RSTs: no ACK, and an ACK that does not acknowledge the SYN.
	for _, r := range [][]byte{
		tcpFrame(addrB, addrA, 12345, 0, rstF, 0, nil, nil),
		tcpFrame(addrB, addrA, 12345, isnA+77, rstF|ackF, 0, nil, nil),
	} {
		if toIn, _ := ga.push(Outside, r); len(toIn) != 0 {
			t.Fatal("a blind RST reached the host")
		}
	}
	if ga.e.NumFlows() != 1 {
		t.Fatal("a blind RST removed the flow")
	}
	_, out = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5), nil))
	toIn, _ := ga.push(Outside, out[0])
	if s := one(t, "SYN-ACK to a", toIn); option(s.opts, 69) != nil {
		t.Fatalf("SYN-ACK to a: %+v", s)
	}
	if fi := flowInfo(t, ga.e); fi.State != "key-exchange" {
		t.Fatalf("flow %+v", fi)
	}
	// B's side: an RST at the wrong sequence number in SYN-RECEIVED.
	if toIn, _ := gb.push(Outside, tcpFrame(addrA, addrB, isnA+5000, 0, rstF, 0, nil, nil)); len(toIn) != 0 || gb.e.NumFlows() != 1 {
		t.Fatal("a blind RST went through G_B")
	}
	// A SYN-ACK for a tuple the engine has no record of, from a require
	// prefix: dropped.
	g := newGW(t, Config{TEPs: testTEPs, Policies: pol})
	if v := g.e.Handle(0, Outside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5), nil), g.tx); v != Dropped {
		t.Fatalf("untracked SYN-ACK from a require prefix: %v", v)
	}
	// The genuine RST acknowledging the SYN still ends the handshake.
	g2 := newGW(t, Config{TEPs: testTEPs})
	g2.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	toIn, _ = g2.push(Outside, tcpFrame(addrB, addrA, 0, isnA+1, rstF|ackF, 0, nil, nil))
	if one(t, "RST to a", toIn); g2.e.NumFlows() != 0 {
		t.Fatal("the genuine RST did not end the flow")
	}
}

// A table full of finished connections (records of connections left in
// plain TCP stay 5 minutes, closed ones 30 s) refused new connections: their
// SYN went on untracked and their later segments were reset as strays, so a
// busy appliance broke every connection after about 65k (found by the
// connection-rate bench). A full table now gives up a finished record.
func TestFullTableReclaimsFinishedRecords(t *testing.T) {
	g := newGW(t, Config{TEPs: testTEPs, MaxFlows: 2})
	for i := range 2 { // two plain connections from far hosts without TCP-ENO
		far := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), uint16(5000+i))
		g.push(Outside, tcpFrame(far, addrA, 7, 0, synF, 1000, nil, nil))
	}
	if g.e.NumFlows() != 2 {
		t.Fatalf("%d flows, want 2 plain records", g.e.NumFlows())
	}
	_, out := g.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	s := one(t, "SYN on the wire", out)
	if option(s.opts, 69) == nil {
		t.Fatalf("new connection at a full table of finished records got no TCP-ENO: %+v", s)
	}
	c := g.e.Counters()
	if c.FlowsReclaimed.Load() != 1 || c.FlowsCapped.Load() != 0 || g.e.NumFlows() != 2 {
		t.Fatalf("reclaimed %d, capped %d, flows %d", c.FlowsReclaimed.Load(), c.FlowsCapped.Load(), g.e.NumFlows())
	}
	// Handshakes are bounded apart (MaxEmbryonic, here MaxFlows/2 = 1):
	// each new SYN evicts the oldest handshake rather than being capped
	// (flood.go).
	g.push(Inside, tcpFrame(netip.AddrPortFrom(addrA.Addr(), 40001), addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	g.push(Inside, tcpFrame(netip.AddrPortFrom(addrA.Addr(), 40002), addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	if c.FlowsCapped.Load() != 0 || c.EmbryonicEvicted.Load() != 2 {
		t.Fatalf("capped %d, evicted %d; want each SYN to evict the older handshake", c.FlowsCapped.Load(), c.EmbryonicEvicted.Load())
	}
}
