package scenario

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// peerB sets up G_A (with host a) against a host-based tcpcrypt peer in role
// B on the far side, through the key exchange. It returns the peer.
func peerB(t *testing.T, f *fixture) *Peer {
	t.Helper()
	w, a, b := f.w, f.a, f.b
	p := NewPeer(tcpcrypt.RoleB, isnA)
	w.Host(SideA, a.SYN(LinuxSYNOpts))
	w.Run(latency)
	syn := one(t, "SYN at the peer", w.TakeFar(SideB))
	checkSYN(t, syn)
	opt, err := p.AnswerSYN(syn.ENO()[0])
	if err != nil {
		t.Fatal(err)
	}
	w.SendFar(SideB, b.SYNACK(isnA, LinuxSYNOpts, opt))
	w.Run(latency)
	one(t, "SYN-ACK at a", w.Take(SideA))
	w.Host(SideA, a.ACK(0, isnB+1))
	w.Run(latency)
	for _, s := range w.TakeFar(SideB) {
		if err := p.Receive(s); err != nil {
			t.Fatalf("peer: %v", err)
		}
	}
	if !p.Ready() {
		t.Fatal("peer has no keys after Init1")
	}
	w.SendFar(SideB, b.Seg(packettest.ACK|packettest.PSH, b.Seq(0), a.Seq(init1), p.Init, ENOAck))
	w.Run(latency)
	for _, s := range w.Take(SideA) {
		if len(s.Payload) != 0 {
			t.Fatalf("a got Init2 bytes: %v", s)
		}
	}
	fa := one2(t, w.Flows(SideA))
	if !fa.Encrypted || fa.SessionID != p.Session.ID {
		t.Fatalf("G_A's flow %+v, want encrypted with the peer's session ID %x", fa, p.Session.ID)
	}
	return p
}

// peerFeed gives the peer everything that reached the far side.
func peerFeed(t *testing.T, f *fixture, p *Peer, s Side) {
	t.Helper()
	for _, g := range f.w.TakeFar(s) {
		if g.Has(packettest.SYN) {
			continue
		}
		if err := p.Receive(g); err != nil {
			t.Fatalf("peer: %v at %v", err, g)
		}
	}
}

// TestFramesFromAppliance: a host-based tcpcrypt peer decrypts what G_A
// sends: one frame per host segment at the right stream offsets (the first
// right after Init1, TC-D7), FINp only on the last frame with TCP FIN on its
// segment (TC-49, TC-D8), and G_A acknowledges the peer's Init2 itself
// (the host never saw it).
func TestFramesFromAppliance(t *testing.T) {
	f := onlyA(t)
	w, a, b := f.w, f.a, f.b
	p := peerB(t, f)
	var acked bool
	for _, s := range w.Link.Sent(AtoB) {
		acked = acked || s.Ack == b.Seq(init2)
	}
	if !acked {
		t.Fatal("G_A never acknowledged Init2 on the link")
	}
	w.Host(SideA, a.Data(0, isnB+1, []byte("hello")))
	w.Host(SideA, a.Data(5, isnB+1, []byte(", world")))
	w.Host(SideA, a.Seg(packettest.ACK|packettest.FIN, a.Seq(12), isnB+1, nil))
	w.Run(latency)
	peerFeed(t, f, p, SideB)
	want := []PeerFrame{
		{Offset: init1, Data: []byte("hello")},
		{Offset: init1 + 5 + ovh, Data: []byte(", world")},
		{Offset: init1 + 12 + 2*ovh, Data: []byte{}, FIN: true},
	}
	if len(p.Frames) != len(want) {
		t.Fatalf("peer opened %d frames %+v, want %d", len(p.Frames), p.Frames, len(want))
	}
	for i, g := range p.Frames {
		if g.Offset != want[i].Offset || !bytes.Equal(g.Data, want[i].Data) || g.FIN != want[i].FIN || g.Rekey {
			t.Fatalf("frame %d: %+v, want %+v", i, g, want[i])
		}
	}
	var fin *Seg
	for _, s := range w.Link.Sent(AtoB) {
		if s.Has(packettest.FIN) {
			fin = &s
		}
	}
	if fin == nil || fin.Seq+uint32(len(fin.Payload)) != a.Seq(init1+12+3*ovh) {
		t.Fatalf("TCP FIN segment %v does not end with the FINp frame", fin)
	}
}

// wireFrames splits a stream of frames (after the Init message) into its
// frames: offset, clen and the control byte's rekey bit, which travel in
// the clear.
type wireFrame struct {
	Off   int
	Clen  int
	Rekey bool
}

func splitFrames(t *testing.T, st []byte, start int) []wireFrame {
	t.Helper()
	var out []wireFrame
	for i := start; i+3 <= len(st); {
		cl := int(binary.BigEndian.Uint16(st[i+1:]))
		if i+3+cl > len(st) {
			break
		}
		out = append(out, wireFrame{Off: i, Clen: cl, Rekey: st[i]&1 != 0})
		i += 3 + cl
	}
	return out
}

// peerA sets up a host-based tcpcrypt peer in role A on the far side
// against G_B (with host b), sending its Init1 in the given pieces.
func peerA(t *testing.T, f *fixture, cuts []int) *Peer {
	t.Helper()
	w, a, b := f.w, f.a, f.b
	p := NewPeer(tcpcrypt.RoleA, isnB)
	w.SendFar(SideA, a.SYN(LinuxSYNOpts, p.SYNOption()))
	w.Run(latency)
	one(t, "SYN at b", w.Take(SideB))
	w.Host(SideB, b.SYNACK(isnA, LinuxSYNOpts))
	w.Run(latency)
	sa := one(t, "SYN-ACK at the peer", w.TakeFar(SideA))
	checkSYNACK(t, sa)
	if err := p.GotSYNACK(sa.ENO()[0]); err != nil {
		t.Fatal(err)
	}
	w.SendFar(SideA, a.ACK(0, isnB+1, ENOAck))
	prev := 0
	for _, c := range append(cuts, len(p.Init)) {
		fl := uint8(packettest.ACK)
		if c == len(p.Init) {
			fl |= packettest.PSH
		}
		w.SendFar(SideA, a.Seg(fl, a.Seq(prev), isnB+1, p.Init[prev:c], ENOAck))
		prev = c
	}
	w.Run(latency)
	for _, s := range w.Take(SideB) {
		if len(s.Payload) != 0 {
			t.Fatalf("b got Init1 bytes: %v", s)
		}
	}
	w.Run(latency)
	peerFeed(t, f, p, SideA)
	if !p.Ready() {
		t.Fatal("peer has no keys: no Init2 from G_B")
	}
	fb := one2(t, w.Flows(SideB))
	if !fb.Encrypted || fb.SessionID != p.Session.ID {
		t.Fatalf("G_B's flow %+v, want encrypted with the peer's session ID %x", fb, p.Session.ID)
	}
	return p
}

// TestFramesSpanningAndSharing drives G_B with a host-based peer that
// frames its stream its own way (docs/protocol.md §12: receivers must cope):
// Init1 split over three segments (TC-7), one maximum-size frame (clen
// 65535) over 47 segments, three small frames in one segment, and two
// frames cut in the middle of the second. b gets every plaintext byte at
// its host offset in segments no larger than its MSS. G_B acknowledges the
// big frame's bytes while it is incomplete (partial-frame custody, package
// engine's doc) but never its last byte, nor any later frame, before b
// acknowledged the plaintext; once b did, its ACK lies on a frame edge.
func TestFramesSpanningAndSharing(t *testing.T) {
	f := onlyB(t)
	w, a, b := f.w, f.a, f.b
	p := peerA(t, f, []int{10, 50})
	// b's SYN-ACK offered 65535 bytes, never scaled (RFC 7323 §2.2): its
	// first ACK opens the scaled window, as a host's ACK of the first data
	// would, so that the whole big frame and what follows fit.
	w.Host(SideB, b.ACK(0, a.Seq(0)))
	w.Run(latency)
	var plain, wire []byte
	send := func(frames ...[]byte) []byte {
		var seg []byte
		for _, fr := range frames {
			seg = append(seg, fr...)
		}
		return seg
	}
	woff := int(p.SendOff)
	put := func(seg []byte) {
		w.SendFar(SideA, a.Data(woff, b.Seq(init2), seg))
		woff += len(seg)
		wire = append(wire, seg...)
	}
	big := chunk('B', tcpcrypt.MaxData)
	fr := p.Seal(big, false)
	if len(fr) != tcpcrypt.MaxFrameLen {
		t.Fatalf("big frame is %d bytes", len(fr))
	}
	plain = append(plain, big...)
	for i := 0; i < len(fr); i += 1400 {
		put(fr[i:min(i+1400, len(fr))])
		w.Run(0)
	}
	small := [][]byte{[]byte("one"), []byte("two"), []byte("three")}
	var frames [][]byte
	for _, s := range small {
		frames = append(frames, p.Seal(s, false))
		plain = append(plain, s...)
	}
	put(send(frames...))
	x, y := chunk('X', 1000), chunk('Y', 1000)
	both := send(p.Seal(x, false), p.Seal(y, false))
	plain = append(append(plain, x...), y...)
	put(both[:1500])
	put(both[1500:])
	w.Run(2 * latency)
	st := hostStream(t, w.All[SideB], isnA)
	if !bytes.Equal(st.Contiguous(), plain) || st.Holes() {
		t.Fatalf("b has %d contiguous bytes, want %d", len(st.Contiguous()), len(plain))
	}
	for _, s := range w.All[SideB] {
		if len(s.Payload) > 1460 {
			t.Fatalf("segment to b larger than its MSS 1460: %v", s)
		}
	}
	// Before b acknowledged anything: ACKs inside the big frame, up to
	// one byte before its end, and at least one past its start.
	bigEnd := a.Seq(init1 + tcpcrypt.MaxFrameLen)
	var inside bool
	var last uint32
	for _, s := range w.Link.Sent(BtoA) {
		if s.Has(packettest.SYN) {
			continue
		}
		if int32(s.Ack-bigEnd) >= 0 {
			t.Fatalf("G_B acknowledged %d, the whole big frame (end %d), before b acknowledged it: %v", s.Ack, bigEnd, s)
		}
		if int32(s.Ack-last) < 0 {
			t.Fatalf("G_B's ACK went back from %d: %v", last, s)
		}
		inside = inside || int32(s.Ack-a.Seq(init1)) > 0
		last = s.Ack
	}
	if !inside {
		t.Fatal("G_B never acknowledged a byte of the incomplete big frame")
	}
	// b acknowledges half of the big frame, then everything.
	n := f.mark(BtoA)
	w.Host(SideB, b.ACK(0, a.Seq(30000)))
	w.Run(latency)
	for _, s := range f.sentSince(BtoA, n) {
		if int32(s.Ack-bigEnd) >= 0 || int32(s.Ack-last) < 0 {
			t.Fatalf("after b acknowledged half the big frame G_B sent ACK %d (before: %d, frame end %d)", s.Ack, last, bigEnd)
		}
	}
	n = f.mark(BtoA)
	w.Host(SideB, b.ACK(0, a.Seq(len(plain))))
	w.Run(latency)
	edges := map[uint32]bool{}
	for _, x := range splitFrames(t, append(make([]byte, init1), wire...), init1) {
		edges[a.Seq(x.Off+3+x.Clen)] = true
	}
	for _, s := range f.sentSince(BtoA, n) {
		if !edges[s.Ack] {
			t.Fatalf("G_B acknowledged %d, inside a frame, after b acknowledged everything: %v", s.Ack, s)
		}
		last = s.Ack
	}
	if last != a.Seq(woff) {
		t.Fatalf("last ACK on the link %d, want %d (all frames)", last, a.Seq(woff))
	}
}

// TestBadInit: the far side's Init1 has a bad magic (U-1): G_B aborts the
// connection, RST to b and toward the far side, and b never gets a byte.
func TestBadInit(t *testing.T) {
	f := onlyB(t)
	w, a, b := f.w, f.a, f.b
	p := NewPeer(tcpcrypt.RoleA, isnB)
	w.SendFar(SideA, a.SYN(LinuxSYNOpts, p.SYNOption()))
	w.Run(latency)
	w.Take(SideB)
	w.Host(SideB, b.SYNACK(isnA, LinuxSYNOpts))
	w.Run(latency)
	sa := one(t, "SYN-ACK at the peer", w.TakeFar(SideA))
	if err := p.GotSYNACK(sa.ENO()[0]); err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), p.Init...)
	bad[0] ^= 0xff
	w.SendFar(SideA, a.ACK(0, isnB+1, ENOAck))
	w.SendFar(SideA, a.Seg(packettest.ACK|packettest.PSH, a.Seq(0), isnB+1, bad, ENOAck))
	w.Run(2 * latency)
	var rstB, rstFar bool
	for _, s := range w.All[SideB] {
		if len(s.Payload) != 0 {
			t.Fatalf("b got bytes: %v", s)
		}
		rstB = rstB || s.Has(packettest.RST)
	}
	for _, s := range w.TakeFar(SideA) {
		rstFar = rstFar || s.Has(packettest.RST)
	}
	if !rstB || !rstFar {
		t.Fatalf("bad Init1: RST to b %v, toward the far side %v; want both (U-1, TC-D2 abort)", rstB, rstFar)
	}
}

// TestForgedFrame: an attacker on the link changes one ciphertext byte of
// a frame (checksums fixed, so TCP accepts it). G_B's authentication fails:
// it aborts with RST to both hosts and counts it (TC-47); b never gets the
// forged bytes.
func TestForgedFrame(t *testing.T) {
	f := full(t)
	f.handshake(t)
	w := f.w
	w.Link.Add(Rule{Dir: AtoB, Match: isData, Mutate: func(fr []byte) { fr[len(fr)-1] ^= 0x01 }})
	w.Host(SideA, f.a.Data(0, isnB+1, []byte("MARK: forged in transit")))
	w.Run(3 * latency)
	var rstA, rstB bool
	for _, s := range w.All[SideB] {
		if len(s.Payload) != 0 {
			t.Fatalf("b got bytes of a forged frame: %v", s)
		}
		rstB = rstB || s.Has(packettest.RST)
	}
	for _, s := range w.Take(SideA) {
		rstA = rstA || s.Has(packettest.RST)
	}
	if !rstA || !rstB {
		t.Fatalf("forged frame: RST to a %v, to b %v; want both (TC-47)", rstA, rstB)
	}
	if n := w.G[SideB].Counters().AuthFailures.Load(); n != 1 {
		t.Fatalf("G_B counted %d authentication failures, want 1", n)
	}
}

// TestInit2CipherNotOffered: the far side's Init2 names an AEAD that A's
// Init1 did not offer. G_A must abort (TC-14): RST to a and toward the far
// side, and a gets no byte.
func TestInit2CipherNotOffered(t *testing.T) {
	key, err := newKey(tcpcrypt.TEPX25519)
	if err != nil {
		t.Fatal(err)
	}
	init2, err := tcpcrypt.AppendInit2(nil, cryptopool.ChaCha20Poly1305, make([]byte, tcpcrypt.NonceLen), key.Public)
	if err != nil {
		t.Fatal(err)
	}
	init2Aborts(t, init2, "Init2 with an AEAD A did not offer (TC-14)")
}

// TestInit2LowOrderKey: the far side's Init2 carries an X25519 Pub_B of
// small order (here 0, which makes the shared secret all zero whatever
// A's key). RFC 8548 §5: the all-zero secret aborts (TC-73); §3.3: a
// public key that fails validation aborts with an error distinct from end
// of stream (TC-11). G_A: RST to a and toward the far side, a gets no byte.
func TestInit2LowOrderKey(t *testing.T) {
	init2, err := tcpcrypt.AppendInit2(nil, cryptopool.AES128GCM, make([]byte, tcpcrypt.NonceLen), make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	init2Aborts(t, init2, "Init2 with a low-order X25519 key (TC-11, TC-73)")
}

// init2Aborts plays the far host B against G_A up to its Init2, sends
// init2, and checks that G_A aborts: RST to a and toward the far side, and
// no byte for a.
func init2Aborts(t *testing.T, init2 []byte, what string) {
	t.Helper()
	f := onlyA(t)
	w, a, b := f.w, f.a, f.b
	p := NewPeer(tcpcrypt.RoleB, isnA)
	w.Host(SideA, a.SYN(LinuxSYNOpts))
	w.Run(latency)
	syn := one(t, "SYN at the peer", w.TakeFar(SideB))
	opt, err := p.AnswerSYN(syn.ENO()[0])
	if err != nil {
		t.Fatal(err)
	}
	w.SendFar(SideB, b.SYNACK(isnA, LinuxSYNOpts, opt))
	w.Run(latency)
	w.Take(SideA)
	w.Host(SideA, a.ACK(0, isnB+1))
	w.Run(latency)
	peerFeed(t, f, p, SideB)
	w.SendFar(SideB, b.Seg(packettest.ACK|packettest.PSH, b.Seq(0), a.Seq(init1), init2, ENOAck))
	w.Run(2 * latency)
	var rstA, rstFar bool
	for _, s := range w.All[SideA] {
		if len(s.Payload) != 0 {
			t.Fatalf("%s: a got bytes: %v", what, s)
		}
		rstA = rstA || s.Has(packettest.RST)
	}
	for _, s := range w.TakeFar(SideB) {
		rstFar = rstFar || s.Has(packettest.RST)
	}
	if !rstA || !rstFar {
		t.Fatalf("%s: RST to a %v, toward the far side %v; want both", what, rstA, rstFar)
	}
}
