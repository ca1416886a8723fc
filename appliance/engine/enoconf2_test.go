package engine

import (
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// RFC 8547 §4.1: the non-SYN-form ENO option is a one-bit signal, "with the
// actual contents ignored by ENO": contents "MUST be ignored in received
// segments" (ENO-2), and "multiple ENO options are interpreted the same as
// one" (ENO-D8). A's third segment whose option carries contents, or that
// carries two options, is a third segment with ENO: host B goes on to the
// key exchange, it does not fall back (ENO-28 is only for a segment with
// no ENO option).
func TestThirdSegmentENOContentsIgnored(t *testing.T) {
	for _, c := range []struct {
		name string
		opt  []byte
	}{
		{"contents", []byte{69, 5, 0x01, 0x02, 0xff}},
		{"global-looking contents", []byte{69, 4, 0x00, 0x23}},
		{"two options", []byte{69, 2, 69, 2}},
	} {
		gb := newGW(t, Config{TEPs: testTEPs})
		gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 3, 0x23), nil))
		_, toOut := gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
		hasBytes(t, c.name+": SYN-ACK option", option(one(t, "SYN-ACK", toOut).opts, 69), unhex("45040123"))
		toIn, _ := gb.push(Outside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, c.opt, nil))
		if s := one(t, "third segment to b", toIn); s.seq != isnA+1 || s.ack != isnB+1 || s.flags != ackF {
			t.Fatalf("%s: third segment to b: %+v", c.name, s)
		}
		if fi := flowInfo(t, gb.e); fi.State != "key-exchange" || gb.e.Counters().Fallbacks[FallbackNoENOInACK].Load() != 0 {
			t.Fatalf("%s: flow %+v, want key-exchange, no fallback", c.name, fi)
		}
	}
}

// RFC 8547 §11: "implementations MUST NOT send ENO options ... with kind
// 253 and ExID 0x454E" alongside kind 69 (ENO-89): an inside host whose SYN
// or SYN-ACK carries the legacy experimental option negotiates its own
// (old) TCP-ENO, so the appliance adds no kind 69 beside it: the segment
// goes on unchanged and the connection is left to the hosts.
func TestLegacyENOOptionNotJoinedByKind69(t *testing.T) {
	legacy := []byte{253, 6, 0x45, 0x4e, 0x23, 0x24}
	// Host A inside: its SYN.
	ga := newGW(t, Config{TEPs: testTEPs})
	_, toOut := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), legacy...), nil))
	s := one(t, "SYN on the wire", toOut)
	if option(s.opts, 69) != nil || option(s.opts, 253) == nil {
		t.Fatalf("SYN with the legacy option on the wire: %x", s.opts)
	}
	if ga.e.Counters().Fallbacks[FallbackEndToEnd].Load() != 1 {
		t.Fatal("not left to the hosts")
	}
	// Host B inside: its SYN-ACK to a far SYN with ENO.
	gb := newGW(t, Config{TEPs: testTEPs})
	gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 3, 0x23), nil))
	_, toOut = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, append(synOpts(1460, 2), legacy...), nil))
	s = one(t, "SYN-ACK on the wire", toOut)
	if option(s.opts, 69) != nil || option(s.opts, 253) == nil {
		t.Fatalf("SYN-ACK with the legacy option on the wire: %x", s.opts)
	}
	if fi := flowInfo(t, gb.e); fi.State != "plain" || gb.e.Counters().Fallbacks[FallbackEndToEnd].Load() != 1 {
		t.Fatalf("flow %+v, want plain, left to the hosts", fi)
	}
}

// RFC 8547 §5: "TEPs MUST prevent corrupted packets from causing urgent
// data to be delivered when none has been sent" (ENO-68). The TCP URG flag
// and urgent pointer are not covered by tcpcrypt's MAC; only a frame's
// URGp is. A valid frame without URGp in a segment whose URG flag and
// pointer were set in transit reaches b as ordinary data, without URG.
func TestWireURGWithoutURGpNotDelivered(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	w := pr.aSends(&h, []byte("not urgent"), pshF)
	if len(w) != 1 {
		t.Fatalf("%d wire segments, want 1", len(w))
	}
	s := w[0]
	f := packettest.Frame{Src: s.src.Addr(), Dst: s.dst.Addr(), DF: true, TCP: &packettest.TCP{
		SrcPort: s.src.Port(), DstPort: s.dst.Port(), Seq: s.seq, Ack: s.ack, Flags: s.flags | 0x20,
		Window: s.win, Urgent: 5, Options: s.opts, Payload: s.payload}}.Bytes()
	toIn, _ := pr.gb.push(Outside, f)
	var got []byte
	for _, fr := range toIn {
		d := parse(t, fr)
		if d.flags&0x20 != 0 || d.urg != 0 {
			t.Fatalf("b got URG (pointer %d) no URGp authenticated: %+v", d.urg, d)
		}
		got = append(got, d.payload...)
	}
	if string(got) != "not urgent" {
		t.Fatalf("b got %q", got)
	}
}

// RFC 8547 §4.6: "A host employing TCP-ENO for a connection MUST include an
// ENO option in every TCP segment sent until either encryption is disabled
// or the host receives a non-SYN segment" (ENO-26). Host B has sent its
// SYN-ACK with `45 04 01 23` and nothing but the SYN has come from A: the
// inside host's RST (it gave up in SYN-RECEIVED) carries `45 02` too, as
// host A's does (TestRSTCarriesENOUntilNonSYN). Before, it left as it
// came, without ENO.
func TestHostBRSTCarriesENOBeforeThirdSegment(t *testing.T) {
	gb := newGW(t, Config{TEPs: testTEPs})
	gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 3, 0x23), nil))
	_, toOut := gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	hasBytes(t, "SYN-ACK option", option(one(t, "SYN-ACK", toOut).opts, 69), unhex("45040123"))
	toIn, toOut := gb.push(Inside, tcpFrame(addrB, addrA, isnB+1, isnA+1, rstF|ackF, 0, nil, nil))
	none(t, "RST inside", toIn)
	s := one(t, "RST", toOut)
	if s.flags != rstF|ackF || s.seq != isnB+1 || s.ack != isnA+1 {
		t.Fatalf("RST on the wire: %+v", s)
	}
	hasBytes(t, "RST ENO", option(s.opts, 69), unhex("4502"))
	if gb.e.NumFlows() != 0 {
		t.Fatal("flow kept after the host's RST")
	}
	// Before B's SYN-ACK went out no ENO was sent: the host's RST to the
	// SYN (a closed port) leaves as it came.
	gb = newGW(t, Config{TEPs: testTEPs})
	gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 3, 0x23), nil))
	_, toOut = gb.push(Inside, tcpFrame(addrB, addrA, 0, isnA+1, rstF|ackF, 0, nil, nil))
	if s := one(t, "RST to the SYN", toOut); option(s.opts, 69) != nil {
		t.Fatalf("RST to the SYN carries ENO: %x", s.opts)
	}
}

// RFC 8547 §4.7: hosts are "REQUIRED to discard data from SYN+ENO segments
// when the SYN TEP does not become the negotiated TEP ... This requirement
// applies to hosts that implement ENO even when ENO has been disabled"
// (ENO-91). Here the appliance has turned ENO off for the far address (its
// path lost TCP-ENO after the SYNs, enopath.go): the far SYN+ENO goes on
// in plain TCP, but without its data, so the inside host acknowledges only
// the ISN (ENO-47).
func TestFarSYNDataDiscardedWhenENOTurnedOff(t *testing.T) {
	gb := newGW(t, Config{TEPs: testTEPs})
	noteAddr(gb.e.enoPaths, 0, addrA.Addr(), enoPathFor, enoPathMax)
	toIn, toOut := gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), 69, 4, 0x23, 0x20), []byte("SYN DATA")))
	none(t, "SYN outside", toOut)
	if s := one(t, "SYN to b", toIn); len(s.payload) != 0 || s.seq != isnA || s.flags != synF {
		t.Fatalf("SYN to b: %q at %x flags %x, want no data", s.payload, s.seq, s.flags)
	}
	if fi := flowInfo(t, gb.e); fi.State != "plain" || gb.e.Counters().Fallbacks[FallbackENOPathStripped].Load() != 1 {
		t.Fatalf("flow %+v, want plain (eno_path_stripped)", fi)
	}
}

// Host A's side of ENO-26: the inside host's RST while only its SYN (with
// our ENO option) has gone out carries `45 02`, as every segment does until
// a non-SYN one arrives (RFC 8547 §4.6). A host that aborts a connect in
// SYN-SENT may send one.
func TestHostARSTCarriesENOBeforeSYNACK(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	_, o := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	hasBytes(t, "SYN option", option(one(t, "SYN", o).opts, 69), unhex("45042423"))
	toIn, toOut := ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, 0, rstF, 0, nil, nil))
	none(t, "RST inside", toIn)
	s := one(t, "RST", toOut)
	if s.flags != rstF || s.seq != isnA+1 {
		t.Fatalf("RST on the wire: %+v", s)
	}
	hasBytes(t, "RST ENO", option(s.opts, 69), unhex("4502"))
	if ga.e.NumFlows() != 0 {
		t.Fatal("flow kept after the host's RST")
	}
}
