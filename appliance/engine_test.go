package appliance

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// The real engine behind the workers: these tests check the hook (TxSinks
// over the ports' TX queues, verdicts, the fast path), not the protocol,
// which appliance/engine tests.

func engineRig(t *testing.T) (*rig, *engine.Engine) {
	t.Helper()
	e, err := engine.New(engine.Config{}, engine.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return newRig(t, rigOpts{fastPath: true, handler: func(int) (FrameHandler, error) { return e, nil }}), e
}

// seg is a TCP segment with an MSS option on SYNs.
func seg(src, dst netip.Addr, sp, dp uint16, flags uint8, seq, ack uint32, payload []byte) []byte {
	var opts []byte
	if flags&packettest.SYN != 0 {
		opts = packettest.MSSOption(1460)
	}
	return packettest.Frame{Src: src, Dst: dst, TCP: &packettest.TCP{
		SrcPort: sp, DstPort: dp, Seq: seq, Ack: ack, Flags: flags, Window: 65535, Options: opts, Payload: payload,
	}}.Bytes()
}

func hasENO(t *testing.T, frame []byte) bool {
	t.Helper()
	var p packet.Packet
	if err := p.Decode(frame); err != nil || !p.IsTCP() {
		t.Fatalf("not a TCP frame (%v)", err)
	}
	return eno.ScanOptions(p.OptionBytes()).NumENO > 0
}

// TestEngineFallbackTakesFastPath: an outbound SYN leaves with TCP-ENO added
// (the engine wrote it through the outside TxSink: Forwarded); the far side
// answers without TCP-ENO, the engine falls back (Passthrough) and the
// workers put the flow on the fast path (docs/architecture.md §3).
func TestEngineFallbackTakesFastPath(t *testing.T) {
	r, e := engineRig(t)
	r.send(Inside, seg(a4, b4, 5000, 80, packettest.SYN, 100, 0, nil))
	if len(r.out[Outside]) != 1 || !hasENO(t, r.out[Outside][0]) {
		t.Fatalf("outbound SYN: %d frames out, want one with TCP-ENO", len(r.out[Outside]))
	}
	synack := seg(b4, a4, 80, 5000, packettest.SYN|packettest.ACK, 900, 101, nil)
	r.send(Outside, synack)
	if len(r.out[Inside]) != 1 || !bytes.Equal(r.out[Inside][0], synack) {
		t.Fatal("the plain SYN-ACK did not reach the host unchanged")
	}
	k := key4(a4, b4, 5000, 80)
	if !r.bump.Listed(k) || !r.bump.Listed(keyRev(k)) {
		t.Fatal("fallback flow not on the fast path")
	}
	if e.Counters().Fallbacks[engine.FallbackNoENO].Load() != 1 {
		t.Fatal("engine did not count the fallback")
	}
	s := r.a.Stats()
	if s[0].Verdict(engine.Forwarded) != 1 || s[1].Verdict(engine.Passthrough) != 1 {
		t.Fatalf("verdicts inside %v outside %v", s[0].Verdicts, s[1].Verdicts)
	}
}

// TestRequireEndToEndOffFastPath: the far host b4 is under a require
// policy and the inside host speaks TCP-ENO itself. The engine steps aside
// but must still see b4's third segment carry TCP-ENO (require.go); the
// inside SYN-ACK used to come back as Passthrough, so the workers listed
// the flow and the kernel carried that third segment past the engine: an
// attacker who stripped ENO from it got the connection in plaintext. Now
// the flow stays off the fast path until the check, and a third segment
// without ENO resets both hosts.
func TestRequireEndToEndOffFastPath(t *testing.T) {
	e, err := engine.New(engine.Config{Policies: []engine.PolicyRule{{Prefix: netip.PrefixFrom(b4, 32), Policy: engine.Require}}}, engine.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, rigOpts{fastPath: true, handler: func(int) (FrameHandler, error) { return e, nil }})
	frame := func(src, dst netip.Addr, sp, dp uint16, flags uint8, seq, ack uint32, opts []byte) []byte {
		return packettest.Frame{Src: src, Dst: dst, TCP: &packettest.TCP{
			SrcPort: sp, DstPort: dp, Seq: seq, Ack: ack, Flags: flags, Window: 65535, Options: opts,
		}}.Bytes()
	}
	syn := uint8(packettest.SYN)
	r.send(Outside, frame(b4, a4, 6000, 443, syn, 1000, 0, append(packettest.MSSOption(1460), 69, 4, 0x24, 0x23)))
	r.send(Inside, frame(a4, b4, 443, 6000, syn|packettest.ACK, 5000, 1001, append(packettest.MSSOption(1460), 69, 4, 0x01, 0x23)))
	k := key4(a4, b4, 443, 6000)
	if r.bump.Listed(k) || r.bump.Listed(keyRev(k)) {
		t.Fatal("the flow went on the fast path before b4's third segment was checked")
	}
	r.out = [2][][]byte{}
	r.send(Outside, frame(b4, a4, 6000, 443, packettest.ACK, 1001, 5001, nil)) // ENO stripped
	if r.bump.Redirected(Outside) != 0 {
		t.Fatal("the kernel carried b4's third segment past the engine")
	}
	for _, p := range []PortID{Inside, Outside} {
		if len(r.out[p]) != 1 || !isRST(t, r.out[p][0]) {
			t.Fatalf("port %d: %d frames, want one RST", p, len(r.out[p]))
		}
	}
}

// TestStaleSegmentDuringReuseOffFastPath: a plain connection from b4 is on
// the fast path; a SYN with TCP-ENO on its tuple (a new connection, or a
// blind one) takes it off, and the engine negotiates. A segment of the old
// plain connection meanwhile (here the inside host's SYN-ACK of it, resent)
// goes on unchanged, but used to come back as Passthrough, so the workers
// listed the tuple again and the kernel would have carried the new
// connection past the engine. It stays off the fast path now.
func TestStaleSegmentDuringReuseOffFastPath(t *testing.T) {
	r, _ := engineRig(t)
	frame := func(src, dst netip.Addr, sp, dp uint16, flags uint8, seq, ack uint32, opts []byte) []byte {
		return packettest.Frame{Src: src, Dst: dst, TCP: &packettest.TCP{
			SrcPort: sp, DstPort: dp, Seq: seq, Ack: ack, Flags: flags, Window: 65535, Options: opts,
		}}.Bytes()
	}
	syn, ack := uint8(packettest.SYN), uint8(packettest.ACK)
	k := key4(a4, b4, 443, 6000)
	r.send(Outside, frame(b4, a4, 6000, 443, syn, 1000, 0, packettest.MSSOption(1460)))
	oldSynAck := frame(a4, b4, 443, 6000, syn|ack, 5000, 1001, packettest.MSSOption(1460))
	r.send(Inside, oldSynAck)
	r.send(Outside, frame(b4, a4, 6000, 443, ack, 1001, 5001, nil))
	if !r.bump.Listed(k) {
		t.Fatal("the plain connection is not on the fast path")
	}
	r.send(Outside, frame(b4, a4, 6000, 443, syn, 90000, 0, append(packettest.MSSOption(1460), 69, 4, 0x24, 0x23)))
	if r.bump.Listed(k) {
		t.Fatal("a SYN on the tuple left it on the fast path")
	}
	r.send(Inside, oldSynAck)
	if r.bump.Listed(k) || r.bump.Listed(keyRev(k)) {
		t.Fatal("the old connection's SYN-ACK put the tuple, still negotiating, back on the fast path")
	}
}

func isRST(t *testing.T, frame []byte) bool {
	t.Helper()
	var p packet.Packet
	if err := p.Decode(frame); err != nil || !p.IsTCP() {
		t.Fatalf("not a TCP frame (%v)", err)
	}
	return p.Flags()&packet.FlagRST != 0
}

// TestEngineBackToBack: two appliances, each with an engine behind its
// workers, between host a and host b: the connection is negotiated and
// encrypted (the wire never carries the plaintext), the data reaches b, and
// neither appliance puts the flow on the fast path.
func TestEngineBackToBack(t *testing.T) {
	gA, eA := engineRig(t)
	gB, eB := engineRig(t)
	var wire [][]byte
	var toA, toB [][]byte // what reached the hosts
	shuttle := func() {
		for len(gA.out[Outside])+len(gB.out[Outside])+len(gA.out[Inside])+len(gB.out[Inside]) > 0 {
			fa, fb := gA.out[Outside], gB.out[Outside]
			toA, toB = append(toA, gA.out[Inside]...), append(toB, gB.out[Inside]...)
			gA.out, gB.out = [2][][]byte{}, [2][][]byte{}
			for _, f := range fa {
				wire = append(wire, f)
				gB.send(Outside, f)
			}
			for _, f := range fb {
				wire = append(wire, f)
				gA.send(Outside, f)
			}
		}
	}
	const isnA, isnB = 1000, 5000
	gA.send(Inside, seg(a4, b4, 6000, 443, packettest.SYN, isnA, 0, nil))
	shuttle()
	if len(toB) != 1 || !hasENO(t, toB[0]) {
		t.Fatalf("host b got %d frames, want the SYN with TCP-ENO", len(toB))
	}
	gB.send(Inside, seg(b4, a4, 443, 6000, packettest.SYN|packettest.ACK, isnB, isnA+1, nil))
	shuttle()
	if len(toA) != 1 || hasENO(t, toA[0]) {
		t.Fatalf("host a got %d frames, want the SYN-ACK without TCP-ENO", len(toA))
	}
	gA.send(Inside, seg(a4, b4, 6000, 443, packettest.ACK, isnA+1, isnB+1, nil))
	shuttle()
	if eA.Counters().Encrypted.Load() != 1 || eB.Counters().Encrypted.Load() != 1 {
		t.Fatalf("encrypted sessions: a %d, b %d; want 1 each", eA.Counters().Encrypted.Load(), eB.Counters().Encrypted.Load())
	}
	marker := []byte("tcpinc-plaintext-marker")
	gA.send(Inside, seg(a4, b4, 6000, 443, packettest.ACK|packettest.PSH, isnA+1, isnB+1, marker))
	shuttle()
	for _, f := range wire {
		if bytes.Contains(f, marker) {
			t.Fatal("the plaintext crossed the wire")
		}
	}
	delivered := false
	for _, f := range toB {
		delivered = delivered || bytes.Contains(f, marker)
	}
	if !delivered {
		t.Fatal("host b did not get the data")
	}
	for _, g := range []*rig{gA, gB} {
		if s := g.a.Stats(); s[0].FastInserts != 0 || g.bump.Redirected(Inside)+g.bump.Redirected(Outside) != 0 {
			t.Fatal("an encrypted flow took the fast path")
		}
	}
}

// TestEngineWorkerZeroAllocs: frames of a flow the engine let go (fallback)
// and non-TCP frames cost no allocation in the worker and the hook, with
// every frame through user space.
func TestEngineWorkerZeroAllocs(t *testing.T) {
	e, err := engine.New(engine.Config{}, engine.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, rigOpts{countOnly: true, handler: func(int) (FrameHandler, error) { return e, nil }})
	r.send(Inside, seg(a4, b4, 5001, 80, packettest.SYN, 100, 0, nil))
	r.send(Outside, seg(b4, a4, 80, 5001, packettest.SYN|packettest.ACK, 900, 101, nil))
	frames := []step{
		{"data", Inside, seg(a4, b4, 5001, 80, packettest.ACK|packettest.PSH, 101, 901, make([]byte, 1000))},
		{"ack", Outside, seg(b4, a4, 80, 5001, packettest.ACK, 901, 1101, nil)},
		{"ping", Inside, packettest.Frame{Src: a4, Dst: b4, Proto: 1, L4: packettest.ICMP(8, 0, 1, []byte("ping"))}.Bytes()},
	}
	for _, s := range frames {
		r.send(s.port, s.b)
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, s := range frames {
			r.send(s.port, s.b)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run, want 0", allocs)
	}
}

// TestCrossingSYNKeepsNegotiationOffFastPath: while host a's SYN (with
// TCP-ENO added) is on its way, a SYN without TCP-ENO crosses it on the
// same tuple (forged, or an old duplicate) and a answers it (ENO-33). The
// engine still negotiates with the real far side, so that SYN-ACK must not
// put the tuple on the fast path: before, the workers listed it, and a's
// data then left in the clear through the kernel while both appliances
// reported the connection encrypted.
func TestCrossingSYNKeepsNegotiationOffFastPath(t *testing.T) {
	gA, _ := engineRig(t)
	gB, eB := engineRig(t)
	const isnA, isnB, isnForged = 1000, 5000, 9000
	gA.send(Inside, seg(a4, b4, 6000, 443, packettest.SYN, isnA, 0, nil))
	held := gA.out[Outside] // a's SYN with TCP-ENO, not yet delivered
	gA.out = [2][][]byte{}
	gA.send(Outside, seg(b4, a4, 443, 6000, packettest.SYN, isnForged, 0, nil))
	gA.send(Inside, seg(a4, b4, 6000, 443, packettest.SYN|packettest.ACK, isnA, isnForged+1, nil))
	gA.out = [2][][]byte{}
	for _, f := range held {
		gB.send(Outside, f)
	}
	gB.send(Inside, seg(b4, a4, 443, 6000, packettest.SYN|packettest.ACK, isnB, isnA+1, nil))
	if len(gB.out[Outside]) != 1 || !hasENO(t, gB.out[Outside][0]) {
		t.Fatalf("gB sent %d frames outward, want b's SYN-ACK with TCP-ENO", len(gB.out[Outside]))
	}
	gA.send(Outside, gB.out[Outside][0])
	if eB.Counters().Fallbacks[engine.FallbackNoENO].Load() != 0 {
		t.Fatal("gB fell back")
	}
	marker := []byte("tcpinc-plaintext-marker")
	gA.out = [2][][]byte{}
	gA.send(Inside, seg(a4, b4, 6000, 443, packettest.ACK|packettest.PSH, isnA+1, isnB+1, marker))
	if s := gA.a.Stats(); s[0].FastInserts != 0 || gA.bump.Redirected(Inside) != 0 {
		t.Fatalf("gA listed the negotiating tuple on the fast path (inserts %d, redirected %d)", s[0].FastInserts, gA.bump.Redirected(Inside))
	}
	for _, f := range gA.out[Outside] {
		if bytes.Contains(f, marker) {
			t.Fatal("the plaintext left gA's outside port")
		}
	}
}
