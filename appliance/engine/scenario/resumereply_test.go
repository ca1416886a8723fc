package scenario

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// resumeOffer makes G_A cache a session with a far host-based peer (role
// B), then opens a second connection from a; it returns the second
// connection's hosts and G_A's SYN as it crossed the link, which offers
// resumption.
func resumeOffer(t *testing.T, mod func(s Side, c *engine.Config)) (*fixture, *Host, *Host, Seg) {
	t.Helper()
	f := newFixtureCache(t, [2]bool{true, false}, false, true, mod)
	w := f.w
	peerB(t, f)
	w.Run(latency)
	w.TakeFar(SideB)
	a2 := &Host{Addr: netip.AddrPortFrom(f.a.Addr.Addr(), 40001), Peer: f.a.Peer, ISN: 7000}
	b2 := &Host{Addr: a2.Peer, Peer: a2.Addr, ISN: 9000}
	w.Host(SideA, a2.SYN(LinuxSYNOpts))
	w.Run(latency)
	syn := one(t, "second SYN at the far side", w.TakeFar(SideB))
	e := syn.ENO()
	if len(e) != 1 || !bytes.Contains(e[0], []byte{0xa3}) {
		t.Fatalf("second SYN's ENO %x offers no resumption", e)
	}
	return f, a2, b2, syn
}

// linuxNoNOP is LinuxSYNOpts without its NOP: 19 bytes, leaving 21 for a
// resumption answer (docs/protocol.md §5).
var linuxNoNOP = []byte{2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 3, 3, 7}

// badHalf is a resumption suboption answer (RFC 8548 §3.5 Figure 3: TEP
// byte with v = 1, identifier half, nonce) whose half is A's own, not the
// other one.
func badHalf(syn Seg) []byte {
	e := syn.ENO()[0]
	i := bytes.IndexByte(e, 0xa3)
	sub := append([]byte{0xa3}, e[i+1:i+10]...) // A's half, echoed
	return append(sub, 1, 2, 3, 4, 5, 6, 7, 8)  // B's nonce
}

// TestResumeReplyMismatch: G_A offered resumption and the SYN-ACK's only
// suboption is a resumption suboption of the same TEP whose identifier
// half does not match (TC-23). G_A must ignore it, and as it was the only
// one, leave TCP-ENO off (TC-24): no Init1, no more ENO options, not
// encrypted; under the require policy both hosts are reset.
func TestResumeReplyMismatch(t *testing.T) {
	t.Run("opportunistic", func(t *testing.T) {
		f, a2, b2, syn := resumeOffer(t, nil)
		w := f.w
		opt := append([]byte{69, 0, 0x01}, badHalf(syn)...)
		opt[1] = byte(len(opt))
		w.SendFar(SideB, b2.SYNACK(a2.ISN, linuxNoNOP, opt))
		w.Run(latency)
		one(t, "SYN-ACK at a", w.Take(SideA))
		goesPlain(t, f, a2, b2, "after ignoring the only suboption (TC-24)")
		fa := flowOf(t, w, SideA, 40001)
		if fa.Encrypted || fa.FallbackReason == "" {
			t.Fatalf("second flow %+v, want plain TCP with a reason", fa)
		}
	})
	t.Run("nonce over 8 bytes", func(t *testing.T) {
		// The same wrong half followed by a 9-byte nonce (RFC 8548 §3.5
		// allows 0..8): still a resumption suboption of the same TEP with
		// an identifier half that does not match, which A MUST ignore,
		// not take as a fresh offer of that TEP.
		f, a2, b2, syn := resumeOffer(t, nil)
		w := f.w
		opt := append([]byte{69, 0, 0x01}, badHalf(syn)...)
		opt = append(opt, 9)
		opt[1] = byte(len(opt))
		w.SendFar(SideB, b2.SYNACK(a2.ISN, []byte{2, 4, 0x05, 0xb4}, opt))
		w.Run(latency)
		one(t, "SYN-ACK at a", w.Take(SideA))
		n := f.mark(AtoB)
		w.Host(SideA, a2.ACK(0, b2.ISN+1))
		w.Run(latency)
		for _, s := range f.sentSince(AtoB, n) {
			if len(s.ENO()) != 0 || len(s.Payload) != 0 {
				t.Fatalf("G_A went on with TCP-ENO (ENO option or an Init1) after a mismatched resumption answer: %v", s)
			}
		}
		if fa := flowOf(t, w, SideA, 40001); fa.Encrypted || fa.FallbackReason == "" {
			t.Fatalf("second flow %+v, want plain TCP with a reason", fa)
		}
	})
	t.Run("require", func(t *testing.T) {
		f, a2, b2, syn := resumeOffer(t, func(_ Side, c *engine.Config) {
			c.Policies = []engine.PolicyRule{{Prefix: netip.PrefixFrom(packettest.HostB4, 32), Policy: engine.Require}}
		})
		w := f.w
		opt := append([]byte{69, 0, 0x01}, badHalf(syn)...)
		opt[1] = byte(len(opt))
		w.SendFar(SideB, b2.SYNACK(a2.ISN, linuxNoNOP, opt))
		w.Run(2 * latency)
		var rstA, rstFar bool
		for _, s := range w.Take(SideA) {
			rstA = rstA || s.Has(packettest.RST)
		}
		for _, s := range w.TakeFar(SideB) {
			rstFar = rstFar || s.Has(packettest.RST)
			if len(s.Payload) != 0 {
				t.Fatalf("bytes toward the far side: %v", s)
			}
		}
		if !rstA || !rstFar {
			t.Fatalf("require policy: RST to a %v, toward the far side %v; want both", rstA, rstFar)
		}
	})
}

// TestResumeReplyToFreshOffer: G_A offered only a fresh key exchange (no
// cached secret) and the SYN-ACK's only suboption is a resumption answer
// (v = 1 and 9 bytes or more: an identifier half and a nonce, RFC 8548
// §3.5 Figure 3). Nothing was offered that it could answer, so G_A ignores
// it (docs/protocol.md U-5) and, as it was the only one, leaves TCP-ENO
// off (TC-24): no Init1, no ENO option, plain TCP with a reason.
func TestResumeReplyToFreshOffer(t *testing.T) {
	f := newFixture(t, [2]bool{true, false}, false, nil)
	w := f.w
	w.Host(SideA, f.a.SYN(LinuxSYNOpts))
	w.Run(latency)
	syn := one(t, "SYN at the far side", w.TakeFar(SideB))
	if e := syn.ENO(); len(e) != 1 || bytes.Contains(e[0], []byte{0xa3}) {
		t.Fatalf("SYN's ENO %x: want one option offering no resumption", e)
	}
	sub := append([]byte{0xa3}, 1, 2, 3, 4, 5, 6, 7, 8, 9) // v = 1, an identifier half
	sub = append(sub, 11, 12, 13, 14, 15, 16, 17, 18)      // a nonce
	opt := append([]byte{69, 0, 0x01}, sub...)
	opt[1] = byte(len(opt))
	w.SendFar(SideB, f.b.SYNACK(f.a.ISN, linuxNoNOP, opt))
	w.Run(latency)
	one(t, "SYN-ACK at a", w.Take(SideA))
	goesPlain(t, f, f.a, f.b, "after a resumption answer to a fresh offer")
	if fa := one2(t, w.Flows(SideA)); fa.Encrypted || fa.FallbackReason == "" {
		t.Fatalf("flow %+v, want plain TCP with a reason", fa)
	}
}

// goesPlain has a send its third segment and data after the SYN-ACK and
// checks that G_A sent R neither an ENO option nor bytes of its own (an
// Init1): the connection went on as plain TCP.
func goesPlain(t *testing.T, f *fixture, a, b *Host, after string) {
	t.Helper()
	w := f.w
	n := f.mark(AtoB)
	w.Host(SideA, a.ACK(0, b.ISN+1))
	w.Host(SideA, a.Data(0, b.ISN+1, []byte("plain after all")))
	w.Run(latency)
	for _, s := range f.sentSince(AtoB, n) {
		if len(s.ENO()) != 0 {
			t.Fatalf("G_A sent an ENO option %s: %v", after, s)
		}
		if len(s.Payload) != 0 && !bytes.Equal(s.Payload, []byte("plain after all")) {
			t.Fatalf("G_A sent stream bytes of its own (an Init1?) %s: %v", after, s)
		}
	}
}
