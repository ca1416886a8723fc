package scenario

import (
	"bytes"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// onlyA is G_A with host a; side B of the link is played by the test (a
// far host without an appliance, or a Peer).
func onlyA(t *testing.T) *fixture { return newFixture(t, [2]bool{true, false}, false, nil) }

// onlyB is G_B with host b; side A is played by the test.
func onlyB(t *testing.T) *fixture { return newFixture(t, [2]bool{false, true}, false, nil) }

// passthrough checks that frame, sent by host s, reaches the far side of
// the link byte for byte (engine on side s) or that a frame the far side
// sends reaches host s byte for byte.
func (f *fixture) outIdentical(t *testing.T, s Side, frame []byte) {
	t.Helper()
	w := f.w
	w.Host(s, frame)
	w.Run(latency)
	g := one(t, "frame at the far side", w.TakeFar(1-s))
	if !bytes.Equal(g.Raw, frame) {
		t.Fatalf("frame changed on its way out:\n got  %x\n want %x", g.Raw, frame)
	}
}

func (f *fixture) inIdentical(t *testing.T, s Side, frame []byte) {
	t.Helper()
	w := f.w
	w.SendFar(1-s, frame)
	w.Run(latency)
	g := one(t, "frame at the host", w.Take(s))
	if !bytes.Equal(g.Raw, frame) {
		t.Fatalf("frame changed on its way in:\n got  %x\n want %x", g.Raw, frame)
	}
}

// plainFlow checks that the engine on side s reports no encrypted flow and,
// if it took part in a negotiation (offered), that it counted a fallback (a
// flow that falls back may be forgotten at once: it is passed through,
// possibly on the fast path).
func (f *fixture) plainFlow(t *testing.T, s Side, offered bool) {
	t.Helper()
	for _, fl := range f.w.Flows(s) {
		if fl.Encrypted || fl.FallbackReason == "" {
			t.Fatalf("flow %+v: want not encrypted with a fallback reason", fl)
		}
	}
	c := f.w.G[s].Counters()
	var n uint64
	for i := range c.Fallbacks {
		n += c.Fallbacks[i].Load()
	}
	if offered && n == 0 && len(f.w.Flows(s)) == 0 {
		t.Fatal("no fallback counted and no flow reported")
	}
	if c.Encrypted.Load() != 0 {
		t.Fatalf("engine counted %d encrypted flows", c.Encrypted.Load())
	}
}

// plainRest checks that after a fallback every later segment crosses G_A
// unchanged, both ways: the connection is plain TCP.
func (f *fixture) plainRestA(t *testing.T) {
	t.Helper()
	a, b := f.a, f.b
	f.outIdentical(t, SideA, a.Data(0, isnB+1, []byte("plain MARK from a")))
	f.inIdentical(t, SideA, b.Data(0, a.Seq(17), []byte("plain MARK from b")))
	f.outIdentical(t, SideA, a.Seg(packettest.ACK|packettest.FIN, a.Seq(17), b.Seq(17), nil))
	f.plainFlow(t, SideA, true)
}

// TestFarSideWithoutENO: the far host answers without TCP-ENO
// (docs/protocol.md §6 second case). G_A falls back: the SYN-ACK reaches a
// unchanged, a's third segment goes out unchanged with no ENO (ENO-28:
// encryption disabled, no more ENO options), and everything after crosses
// byte for byte.
func TestFarSideWithoutENO(t *testing.T) {
	f := onlyA(t)
	w, a, b := f.w, f.a, f.b
	w.Host(SideA, a.SYN(LinuxSYNOpts))
	w.Run(latency)
	checkSYN(t, one(t, "SYN at the far side", w.TakeFar(SideB)))
	f.inIdentical(t, SideA, b.SYNACK(isnA, LinuxSYNOpts))
	f.outIdentical(t, SideA, a.ACK(0, isnB+1))
	f.plainRestA(t)
}

// TestRoleClash: a middlebox echoes A's own option, so the SYN-ACK carries
// b = 0 like the SYN (docs/protocol.md §2, §3). G_A must fall back (ENO-30) and
// never send ENO again.
func TestRoleClash(t *testing.T) {
	f := onlyA(t)
	w, a, b := f.w, f.a, f.b
	w.Host(SideA, a.SYN(LinuxSYNOpts))
	w.Run(latency)
	w.TakeFar(SideB)
	w.SendFar(SideB, b.SYNACK(isnA, LinuxSYNOpts, enoSYN))
	w.Run(latency)
	g := one(t, "SYN-ACK at a", w.Take(SideA))
	if !g.Has(packettest.SYN | packettest.ACK) {
		t.Fatalf("SYN-ACK at a: %v", g)
	}
	f.outIdentical(t, SideA, a.ACK(0, isnB+1))
	f.plainRestA(t)
}

// TestSYNACKWithTwoENO: a SYN-ACK with two ENO options counts as having
// none (ENO-6): fallback, plain TCP.
func TestSYNACKWithTwoENO(t *testing.T) {
	f := onlyA(t)
	w, a, b := f.w, f.a, f.b
	w.Host(SideA, a.SYN(LinuxSYNOpts))
	w.Run(latency)
	w.TakeFar(SideB)
	w.SendFar(SideB, b.SYNACK(isnA, PlainSYNOpts, enoSYNACK, enoSYNACK))
	w.Run(latency)
	one(t, "SYN-ACK at a", w.Take(SideA))
	f.outIdentical(t, SideA, a.ACK(0, isnB+1))
	f.plainRestA(t)
}

// TestSYNWithTwoENO: a SYN from the far side with two ENO options counts as
// having none (ENO-6): G_B must not answer as host B. b's SYN-ACK leaves
// without ENO, and the connection stays plain.
func TestSYNWithTwoENO(t *testing.T) {
	f := onlyB(t)
	w, a, b := f.w, f.a, f.b
	w.SendFar(SideA, a.SYN(PlainSYNOpts, enoSYN, enoSYN))
	w.Run(latency)
	one(t, "SYN at b", w.Take(SideB))
	w.Host(SideB, b.SYNACK(isnA, LinuxSYNOpts))
	w.Run(latency)
	g := one(t, "SYN-ACK at the far side", w.TakeFar(SideA))
	if len(g.ENO()) != 0 {
		t.Fatalf("G_B answered a SYN with two ENO options with ENO %x (ENO-6)", g.ENO())
	}
	f.inIdentical(t, SideB, a.ACK(0, isnB+1))
	f.inIdentical(t, SideB, a.Data(0, isnB+1, []byte("plain MARK from a")))
	f.outIdentical(t, SideB, b.Data(0, a.Seq(17), []byte("plain MARK from b")))
	f.plainFlow(t, SideB, false)
}

// TestInsideSYNWithENO: host a speaks TCP-ENO itself. Its SYN passes
// untouched, and so does everything after: end to end wins (docs/protocol.md
// §7, engine contract).
func TestInsideSYNWithENO(t *testing.T) {
	f := onlyA(t)
	a, b := f.a, f.b
	f.outIdentical(t, SideA, a.SYN(LinuxSYNOpts, enoSYN))
	f.inIdentical(t, SideA, b.SYNACK(isnA, LinuxSYNOpts, enoSYNACK))
	f.outIdentical(t, SideA, a.ACK(0, isnB+1, ENOAck))
	f.outIdentical(t, SideA, a.Data(0, isnB+1, []byte("host's own tcpcrypt bytes")))
	f.inIdentical(t, SideA, b.Data(0, a.Seq(25), []byte("far host's own bytes")))
	f.plainFlow(t, SideA, false)
}

// TestSYNWithData: ENO may not ride with SYN data (ENO-42), so G_A leaves
// the data out of the SYN it offers ENO on. The far host, without ENO,
// acknowledges only the ISN; a sends the data again as its third segment,
// as a Fast Open client does when a server refuses its data, and from then
// on the connection is plain TCP.
func TestSYNWithData(t *testing.T) {
	f := onlyA(t)
	w, a, b := f.w, f.a, f.b
	w.Host(SideA, a.Seg(packettest.SYN, isnA, 0, []byte("syn data"), LinuxSYNOpts))
	w.Run(latency)
	checkSYN(t, one(t, "SYN at the far side", w.TakeFar(SideB)))
	f.inIdentical(t, SideA, b.SYNACK(isnA, LinuxSYNOpts))
	f.outIdentical(t, SideA, a.Data(0, isnB+1, []byte("syn data")))
	f.inIdentical(t, SideA, b.ACK(0, a.Seq(8)))
	f.plainFlow(t, SideA, true)
}

// TestSYNWithTFO: no ENO beside a non-empty Fast Open option (ENO-43):
// G_A leaves the cookie out of the SYN it offers ENO on.
func TestSYNWithTFO(t *testing.T) {
	f := onlyA(t)
	w, a, b := f.w, f.a, f.b
	tfo := []byte{34, 10, 1, 2, 3, 4, 5, 6, 7, 8}
	w.Host(SideA, a.SYN(PlainSYNOpts, tfo))
	w.Run(latency)
	s := one(t, "SYN at the far side", w.TakeFar(SideB))
	checkSYNWith(t, s, PlainSYNOpts)
	if s.Option(34) != nil {
		t.Fatalf("SYN with ENO carries the Fast Open cookie: %x", s.Options)
	}
	f.inIdentical(t, SideA, b.SYNACK(isnA, PlainSYNOpts))
	f.outIdentical(t, SideA, a.ACK(0, isnB+1))
	f.plainFlow(t, SideA, true)
}

// TestThirdSegmentWithoutENO: G_B answered as host B, but the active
// opener's third segment comes without ENO (the SYN-ACK's option was
// stripped on the way back, docs/protocol.md §6 third case): G_B falls back
// (ENO-28) and the connection is plain TCP.
func TestThirdSegmentWithoutENO(t *testing.T) {
	f := onlyB(t)
	w, a, b := f.w, f.a, f.b
	w.SendFar(SideA, a.SYN(LinuxSYNOpts, enoSYN))
	w.Run(latency)
	one(t, "SYN at b", w.Take(SideB))
	w.Host(SideB, b.SYNACK(isnA, LinuxSYNOpts))
	w.Run(latency)
	checkSYNACK(t, one(t, "SYN-ACK at the far side", w.TakeFar(SideA)))
	w.SendFar(SideA, a.ACK(0, isnB+1))
	w.Run(latency)
	g := one(t, "third segment at b", w.Take(SideB))
	if !g.Has(packettest.ACK) || g.Seq != isnA+1 || g.Ack != isnB+1 {
		t.Fatalf("third segment at b: %v", g)
	}
	f.inIdentical(t, SideB, a.Data(0, isnB+1, []byte("plain MARK from a")))
	f.outIdentical(t, SideB, b.Data(0, a.Seq(17), []byte("plain MARK from b")))
	f.plainFlow(t, SideB, true)
}
