package scenario

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// TestSYNOptionRepack: a's SYN fills the 40-byte option space, with NOP
// padding. G_A repacks the options without NOPs so that ENO fits (issue 4
// item 1, docs/protocol.md §5): every other option is kept byte for byte.
func TestSYNOptionRepack(t *testing.T) {
	f := onlyA(t)
	w, a := f.w, f.a
	exp := append([]byte{253, 16, 0x12, 0x34}, bytes.Repeat([]byte{0xee}, 12)...)
	opts := [][]byte{{2, 4, 0x05, 0xb4}, {1, 1, 4, 2}, {1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 0}, {1, 3, 3, 7}, exp}
	all := bytes.Join(opts, nil)
	if len(all) != 40 {
		t.Fatalf("test options are %d bytes", len(all))
	}
	w.Host(SideA, a.SYN(all))
	w.Run(latency)
	s := one(t, "SYN at the far side", w.TakeFar(SideB))
	checkSYNWith(t, s, all)
}

func checkSYNWith(t *testing.T, s Seg, hostOpts []byte) {
	t.Helper()
	if e := s.ENO(); len(e) != 1 || !bytes.Equal(e[0], enoSYN) {
		t.Fatalf("SYN carries ENO %x, want one option %x", e, enoSYN)
	}
	if !sameOpts(plainOpts(s.Options), plainOpts(hostOpts)) {
		t.Fatalf("SYN options %x, host sent %x: options other than NOP changed", s.Options, hostOpts)
	}
}

// TestSYNNoRoom: a SYN whose options leave no room for ENO even without
// NOPs goes out unchanged, and the connection is plain.
func TestSYNNoRoom(t *testing.T) {
	f := onlyA(t)
	a, b := f.a, f.b
	exp := append([]byte{253, 20, 0x12, 0x34}, bytes.Repeat([]byte{0xee}, 16)...)
	all := bytes.Join([][]byte{{2, 4, 0x05, 0xb4}, {4, 2}, {8, 10, 0, 0, 0, 7, 0, 0, 0, 0}, {3, 3, 7}, exp}, nil)
	if len(all) != 39 {
		t.Fatalf("test options are %d bytes", len(all))
	}
	f.outIdentical(t, SideA, a.SYN(all))
	f.inIdentical(t, SideA, b.SYNACK(isnA, PlainSYNOpts))
	f.outIdentical(t, SideA, a.ACK(0, isnB+1))
	f.plainFlow(t, SideA, false)
}

// TestPeerMSS: b advertises MSS 536. a is told 516 (clamped by 20); a
// sends a larger segment anyway (as with segmentation offload gone wrong).
// G_A never puts a wire segment larger than b's MSS on the link (engine
// contract), and b gets every byte.
func TestPeerMSS(t *testing.T) {
	f := full(t)
	w, a, b := f.w, f.a, f.b
	f.stepSYN(t)
	w.Host(SideB, b.SYNACK(isnA, []byte{2, 4, 0x02, 0x18, 4, 2}))
	w.Run(2 * latency)
	if g := one(t, "SYN-ACK at a", w.Take(SideA)); g.MSS() != 516 {
		t.Fatalf("SYN-ACK at a: MSS %d, want 516", g.MSS())
	}
	w.Host(SideA, a.ACK(0, isnB+1))
	w.Run(4 * latency)
	f.established(t)
	p := chunk('m', 1400)
	w.Host(SideA, a.Data(0, isnB+1, p))
	w.Run(2 * latency)
	for _, s := range w.Link.Sent(AtoB) {
		if len(s.Payload) > 536 {
			t.Fatalf("wire segment of %d bytes, larger than b's MSS 536: %v", len(s.Payload), s)
		}
	}
	wireStream(t, w, AtoB, isnA)
	if st := hostStream(t, w.All[SideB], isnA); !bytes.Equal(st.Contiguous(), p) {
		t.Fatalf("b has %d bytes, want %d", len(st.Contiguous()), len(p))
	}
}

// TestPolicyRequire: policy "require" for b's prefix and a far side without
// TCP-ENO: G_A resets both ends instead of falling back (engine contract,
// RFC 8547 §4.7 mandatory encryption mode). No plain data can flow.
func TestPolicyRequire(t *testing.T) {
	f := newFixture(t, [2]bool{true, false}, false, func(_ Side, c *engine.Config) {
		c.Policies = []engine.PolicyRule{{Prefix: netip.PrefixFrom(packettest.HostB4, 32), Policy: engine.Require}}
	})
	w, a, b := f.w, f.a, f.b
	w.Host(SideA, a.SYN(LinuxSYNOpts))
	w.Run(latency)
	checkSYN(t, one(t, "SYN at the far side", w.TakeFar(SideB)))
	w.SendFar(SideB, b.SYNACK(isnA, LinuxSYNOpts))
	w.Run(2 * latency)
	g := one(t, "segment at a", w.Take(SideA))
	if !g.Has(packettest.RST) {
		t.Fatalf("a got %v, want RST", g)
	}
	r := one(t, "segment at the far side", w.TakeFar(SideB))
	if !r.Has(packettest.RST) || r.Seq != isnA+1 {
		t.Fatalf("far side got %v, want RST at %d", r, isnA+1)
	}
}

// TestPolicyBypass: policy "bypass" leaves the SYN and the whole
// connection untouched.
func TestPolicyBypass(t *testing.T) {
	f := newFixture(t, [2]bool{true, false}, false, func(_ Side, c *engine.Config) {
		c.Policies = []engine.PolicyRule{{Prefix: netip.PrefixFrom(packettest.HostB4, 24), Policy: engine.Bypass}}
	})
	a, b := f.a, f.b
	f.outIdentical(t, SideA, a.SYN(LinuxSYNOpts))
	f.inIdentical(t, SideA, b.SYNACK(isnA, LinuxSYNOpts, enoSYNACK))
	f.outIdentical(t, SideA, a.ACK(0, isnB+1))
	f.outIdentical(t, SideA, a.Data(0, isnB+1, []byte("plain MARK")))
	f.plainFlow(t, SideA, false)
}

// TestHandshakeIPv6: the full handshake and data exchange over IPv6.
func TestHandshakeIPv6(t *testing.T) {
	f := full(t)
	f.a.Addr = netip.AddrPortFrom(packettest.HostA6, 40000)
	f.a.Peer = netip.AddrPortFrom(packettest.HostB6, 443)
	f.b.Addr, f.b.Peer = f.a.Peer, f.a.Addr
	f.handshake(t)
	f.exchange(t)
	f.exchange(t)
}
