package scenario

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// secondConn runs a second connection between the same two addresses (new
// source port and ISNs) up to the third segment and returns its hosts and
// the SYN and SYN-ACK as they crossed the link.
func secondConn(t *testing.T, f *fixture) (a2, b2 *Host, syn, synack Seg) {
	t.Helper()
	w := f.w
	a2 = &Host{Addr: netip.AddrPortFrom(f.a.Addr.Addr(), 40001), Peer: f.a.Peer, ISN: 7000}
	b2 = &Host{Addr: a2.Peer, Peer: a2.Addr, ISN: 9000}
	n := f.mark(AtoB)
	w.Host(SideA, a2.SYN(LinuxSYNOpts))
	w.Run(latency)
	syn = one(t, "second SYN on the link", f.sentSince(AtoB, n))
	one(t, "second SYN at b", w.Take(SideB))
	n = f.mark(BtoA)
	w.Host(SideB, b2.SYNACK(a2.ISN, LinuxSYNOpts))
	w.Run(latency)
	synack = one(t, "second SYN-ACK on the link", f.sentSince(BtoA, n))
	g := one(t, "second SYN-ACK at a", w.Take(SideA))
	if len(g.ENO()) != 0 || g.Ack != a2.ISN+1 {
		t.Fatalf("second SYN-ACK at a: %v", g)
	}
	return a2, b2, syn, synack
}

// flowOf returns side s's flow whose inside port is port.
func flowOf(t *testing.T, w *World, s Side, port uint16) engine.FlowInfo {
	t.Helper()
	for _, fl := range w.Flows(s) {
		if fl.Inside.Port() == port {
			return fl
		}
	}
	t.Fatalf("side %d has no flow for inside port %d", s, port)
	return engine.FlowInfo{}
}

// TestResumption: after one fresh connection, a second one between the same
// addresses resumes (RFC 8548 §3.5). A's SYN carries the resumption
// suboption (a3, 9-byte half, 8-byte nonce: 20 bytes with the option
// header, TC-18) and still keeps every host option (40 bytes in all, no
// NOPs: docs/protocol.md §5); B's SYN-ACK carries b = 1 and its own half and
// nonce (21 bytes), repacked without NOPs. There are no Init messages:
// frames start at stream offset 0 both ways (TC-4); the session ID starts
// with a3 (ENO-D7) and is the same at both ends.
func TestResumption(t *testing.T) {
	f := newFixtureCache(t, [2]bool{true, true}, false, true, nil)
	f.handshake(t)
	f.exchange(t)
	w := f.w
	a2, b2, syn, synack := secondConn(t, f)
	e := syn.ENO()
	if len(e) != 1 || len(e[0]) != 20 || !bytes.HasPrefix(e[0], []byte{69, 20, 0xa3}) {
		t.Fatalf("second SYN's ENO %x, want 45 14 a3 + 9-byte half + 8-byte nonce", e)
	}
	if !sameOpts(plainOpts(syn.Options), plainOpts(LinuxSYNOpts)) {
		t.Fatalf("second SYN options %x lost host options %x", syn.Options, LinuxSYNOpts)
	}
	e = synack.ENO()
	if len(e) != 1 || len(e[0]) != 21 || !bytes.HasPrefix(e[0], []byte{69, 21, 0x01, 0xa3}) {
		t.Fatalf("second SYN-ACK's ENO %x, want 45 15 01 a3 + half + nonce", e)
	}
	if !sameOpts(plainOpts(synack.Options), plainOpts(LinuxSYNOpts)) {
		t.Fatalf("second SYN-ACK options %x lost host options %x", synack.Options, LinuxSYNOpts)
	}
	n := f.mark(AtoB)
	w.Host(SideA, a2.ACK(0, b2.ISN+1))
	w.Run(0)
	for _, s := range f.sentSince(AtoB, n) {
		if len(s.Payload) != 0 {
			t.Fatalf("resumed connection sent stream bytes before any host data (an Init?): %v", s)
		}
	}
	w.Run(latency)
	w.Take(SideB)
	n = f.mark(AtoB)
	w.Host(SideA, a2.Data(0, b2.ISN+1, []byte("resumed MARK")))
	w.Run(0)
	s := one(t, "data on the link", withData(f.sentSince(AtoB, n)))
	if s.Seq != a2.ISN+1 || len(s.Payload) != 12+ovh {
		t.Fatalf("resumed data on the link: %v, want the first frame at offset 0", s)
	}
	w.Run(latency)
	g := one(t, "data at b", withData(w.Take(SideB)))
	if g.Seq != a2.ISN+1 || string(g.Payload) != "resumed MARK" {
		t.Fatalf("b got %v %q", g, g.Payload)
	}
	w.Host(SideB, b2.Data(0, a2.Seq(12), []byte("resumed reply")))
	w.Run(2 * latency)
	g = one(t, "data at a", withData(w.Take(SideA)))
	if g.Seq != b2.ISN+1 || string(g.Payload) != "resumed reply" {
		t.Fatalf("a got %v %q", g, g.Payload)
	}
	fa := flowOf(t, w, SideA, 40001)
	var fb engine.FlowInfo
	for _, fl := range w.Flows(SideB) {
		if fl.Outside.Port() == 40001 {
			fb = fl
		}
	}
	if !fa.Resumed || !fb.Resumed || fa.SessionID != fb.SessionID || fa.SessionID[0] != 0xa3 {
		t.Fatalf("resumed flows: A resumed %v id %x, B resumed %v id %x", fa.Resumed, fa.SessionID, fb.Resumed, fb.SessionID)
	}
	first := flowOf(t, w, SideA, 40000)
	if first.SessionID == fa.SessionID {
		t.Fatal("the resumed session ID equals the first one (ENO-75)")
	}
}

// TestNoResumption: with NoResumption on G_A (fingerprint avoidance,
// TC-40) the second connection offers a fresh exchange only (45 03 23)
// and runs Init1/Init2 again.
func TestNoResumption(t *testing.T) {
	f := newFixtureCache(t, [2]bool{true, true}, false, true, func(s Side, c *engine.Config) {
		c.NoResumption = s == SideA
	})
	f.handshake(t)
	f.exchange(t)
	w := f.w
	a2, b2, syn, synack := secondConn(t, f)
	if e := syn.ENO(); len(e) != 1 || !bytes.Equal(e[0], enoSYN) {
		t.Fatalf("second SYN's ENO %x, want %x", e, enoSYN)
	}
	if e := synack.ENO(); len(e) != 1 || !bytes.Equal(e[0], enoSYNACK) {
		t.Fatalf("second SYN-ACK's ENO %x, want %x", e, enoSYNACK)
	}
	n := f.mark(AtoB)
	w.Host(SideA, a2.ACK(0, b2.ISN+1))
	w.Run(0)
	checkInit(t, "Init1", f.sentSince(AtoB, n), a2.ISN+1, init1, magic1)
	w.Run(4 * latency)
	fa := flowOf(t, w, SideA, 40001)
	if !fa.Encrypted || fa.Resumed || fa.SessionID[0] != 0x23 {
		t.Fatalf("second flow %+v, want a fresh encrypted session", fa)
	}
}

// TestResumptionWithPeer resumes against the reference implementation: a
// host-based peer (role A) with its own tcpcrypt.Cache resumes the session
// of a first connection with G_B. G_B answers with the other identifier
// half (TC-19), both sides derive one session ID starting with a3, and
// frames run from offset 0 both ways, decrypted by each side (TC-4, TC-25,
// TC-38).
func TestResumptionWithPeer(t *testing.T) {
	f := newFixtureCache(t, [2]bool{false, true}, false, true, nil)
	w := f.w
	p := peerA(t, f, nil)
	cache := tcpcrypt.NewCache[string](tcpcrypt.CacheConfig{})
	cache.Store("b", p.Session)
	a2 := &Host{Addr: netip.AddrPortFrom(f.a.Addr.Addr(), 40001), Peer: f.a.Peer, ISN: 7000}
	b2 := &Host{Addr: a2.Peer, Peer: a2.Addr, ISN: 9000}
	p2 := NewPeer(tcpcrypt.RoleA, b2.ISN)
	if !p2.OfferResumption(cache, "b") {
		t.Fatal("peer cache has nothing to offer")
	}
	w.SendFar(SideA, a2.SYN(LinuxSYNOpts, p2.SYNOption()))
	w.Run(latency)
	one(t, "SYN at b", w.Take(SideB))
	w.Host(SideB, b2.SYNACK(a2.ISN, LinuxSYNOpts))
	w.Run(latency)
	sa := one(t, "SYN-ACK at the peer", w.TakeFar(SideA))
	e := sa.ENO()
	if len(e) != 1 || len(e[0]) != 21 || !bytes.HasPrefix(e[0], []byte{69, 21, 1, 0xa3}) {
		t.Fatalf("SYN-ACK ENO %x, want G_B's resumption suboption", e)
	}
	if err := p2.GotSYNACK(e[0]); err != nil {
		t.Fatal(err)
	}
	if !p2.Session.Resumed || p2.Session.ID[0] != 0xa3 {
		t.Fatalf("peer session %+v not resumed", p2.Session)
	}
	w.SendFar(SideA, a2.ACK(0, b2.ISN+1, ENOAck))
	fr := p2.Seal([]byte("resumed via the reference"), false)
	w.SendFar(SideA, a2.Data(0, b2.ISN+1, fr, ENOAck))
	w.Run(latency)
	var got []byte
	for _, s := range w.Take(SideB) {
		got = append(got, s.Payload...)
	}
	if string(got) != "resumed via the reference" {
		t.Fatalf("b got %q", got)
	}
	w.Host(SideB, b2.Data(0, a2.Seq(25), []byte("and back")))
	w.Run(latency)
	peerFeed(t, f, p2, SideA)
	if string(p2.Data()) != "and back" || p2.Frames[0].Offset != 0 {
		t.Fatalf("peer opened %+v", p2.Frames)
	}
	var fb engine.FlowInfo
	for _, fl := range w.Flows(SideB) {
		if fl.Outside.Port() == 40001 {
			fb = fl
		}
	}
	if !fb.Resumed || fb.SessionID != p2.Session.ID {
		t.Fatalf("G_B's flow resumed %v id %x, peer's id %x", fb.Resumed, fb.SessionID, p2.Session.ID)
	}
}
