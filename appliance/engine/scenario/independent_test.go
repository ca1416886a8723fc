package scenario

// An independent far side. Host mode (the interop tests' other
// implementation) and this package's Peer are built on the appliance's own
// codecs, packages eno and tcpcrypt, so a byte-layout mistake they share
// with the engine (a swapped key label, a wrong nonce or transcript, the
// session ID's first byte) passes every interop test. Here the engine
// talks to a far host written from the RFC text alone
// (independent_rfc_test.go): everything it puts on the wire or reads from
// it is built and checked without eno, tcpcrypt or cryptopool. Those
// packages appear only to configure the engine under test (its TEP and
// AEAD lists), which TestIndependentFarSideImports enforces.
//
// Each test also takes the liberties the RFCs give the far side and that
// the appliance itself never takes: reserved bits set, unknown TEPs and
// AEADs, a second global suboption, an "ignored" tail on Init messages,
// short resumption nonces, resumption in both roles.

import (
	"bytes"
	"crypto/ecdh"
	"go/ast"
	"go/parser"
	"go/token"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// received adds segments that reached the far side to its model of the
// appliance's stream (SYNs carry no stream bytes) and returns the bytes
// received in order so far.
func received(t *testing.T, s *Stream, segs []Seg) []byte {
	t.Helper()
	for _, g := range segs {
		if g.Has(packettest.SYN) {
			continue
		}
		if err := s.AddSeg(g); err != nil {
			t.Fatal(err)
		}
	}
	return s.Contiguous()
}

// x25519Key is a fixed X25519 key of the far side (RFC 8548 §5).
func x25519Key(t *testing.T, fill byte) *ecdh.PrivateKey {
	t.Helper()
	k, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{fill}, x25519Len))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sharedSecret is ES, X25519 of our private key and the peer's Pub
// (RFC 8548 §3.3, §5).
func sharedSecret(t *testing.T, priv *ecdh.PrivateKey, peerPub []byte) []byte {
	t.Helper()
	pub, err := ecdh.X25519().NewPublicKey(peerPub)
	if err != nil {
		t.Fatal(err)
	}
	es, err := priv.ECDH(pub)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// checkSessionID compares an engine flow's session ID with the far side's.
func checkSessionID(t *testing.T, what string, fi engine.FlowInfo, s rfcSession) {
	t.Helper()
	if want := s.sessionID(); !bytes.Equal(fi.SessionID[:], want) {
		t.Errorf("%s: engine's session ID %x, far side's %x", what, fi.SessionID, want)
	}
}

// flowTo returns side s's flow whose far port is port.
func flowTo(t *testing.T, w *World, s Side, port uint16) engine.FlowInfo {
	t.Helper()
	for _, fi := range w.Flows(s) {
		if fi.Outside.Port() == port {
			return fi
		}
	}
	t.Fatalf("side %d has no flow to far port %d", s, port)
	return engine.FlowInfo{}
}

// TestIndependentFarB: G_A is host A; the far host B is the one written
// from the RFC text. B takes the liberties of RFC 8547 §4.2 and §4.5 in its
// option, picks ChaCha20-Poly1305, pads Init2, sets the reserved frame
// bits and rekeys; G_A must answer the rekey at once under generation 1.
func TestIndependentFarB(t *testing.T) {
	f := newFixture(t, [2]bool{true, false}, false, func(_ Side, c *engine.Config) {
		c.TEPs = []tcpcrypt.TEP{tcpcrypt.TEPX25519, tcpcrypt.TEPX448}
		c.AEADs = []cryptopool.Suite{cryptopool.AES128GCM, cryptopool.ChaCha20Poly1305}
	})
	w, a, b := f.w, f.a, f.b

	w.Host(SideA, a.SYN(LinuxSYNOpts))
	w.Run(latency)
	optA := onlyENO(t, "SYN at the far host", one(t, "SYN at the far host", w.TakeFar(SideB)))
	if want := []byte{enoKind, 4, 0x24, tepX25519}; !bytes.Equal(optA, want) { // X448, X25519
		t.Errorf("G_A's SYN option % x, want % x", optA, want)
	}
	// B's SYN-ACK option: global suboption 0x1f (b = 1, and a = 1 and the
	// z bits, which A ignores, §4.2), X448, a TEP nobody defined, a second
	// global suboption (only the first counts, §4.2), and X25519 last: the
	// negotiated TEP is the last valid one in B's option (§4.5).
	optB := []byte{enoKind, 7, 0x1f, 0x24, 0x30, 0x00, tepX25519}
	w.SendFar(SideB, b.SYNACK(isnA, LinuxSYNOpts, optB))
	w.Run(latency)
	for _, s := range w.Take(SideA) {
		if len(enoOptions(s)) != 0 {
			t.Errorf("an ENO option reached host a: %v", s)
		}
	}
	w.Host(SideA, a.ACK(0, b.Seq(0)))
	w.Run(latency)

	fromA := NewStream(isnA)
	segs := w.TakeFar(SideB)
	if len(segs) == 0 || len(enoOptions(segs[0])) == 0 {
		t.Fatalf("A's third segment must carry an ENO option (RFC 8547 §4.6): %v", segs)
	}
	init1Raw, m1 := parseInit1(t, received(t, fromA, segs))
	if len(init1Raw) != 77 || !slices.Equal(m1.aeads, []uint16{aeadAES128GCM, aeadChaCha}) || len(m1.ignored) != 0 {
		t.Errorf("Init1: %d bytes, AEADs %04x, ignored % x; want 77 bytes, 0001 0010, none (RFC 8548 §4.1)",
			len(init1Raw), m1.aeads, m1.ignored)
	}

	// B picks ChaCha20-Poly1305, its own preference (RFC 8548 §3.3), and
	// sends Init2 with 3 bytes A must ignore (§4.1): B's frames start at 77.
	privB := x25519Key(t, 7)
	m2 := init2Msg{aead: aeadChaCha, nonce: bytes.Repeat([]byte{0x42}, nonceLen),
		pub: privB.PublicKey().Bytes(), ignored: []byte{0xde, 0xad, 0xbe}}
	init2Raw := m2.bytes()
	sess := rfcSession{
		ss:      freshSecret(m1.nonce, optA, optB, init1Raw, init2Raw, sharedSecret(t, privB, m1.pub)),
		tepByte: tepX25519,
		aead:    aeadChaCha,
	}
	_, kba0 := sess.keys(t, 0)
	// cres and fres bits set: A must ignore them (RFC 8548 §4.2, §4.2.1).
	offB := len(init2Raw)
	hello := kba0.seal(uint64(offB), rfcFrame{control: 0xfe, flags: 0xfc, data: []byte("hello")})
	w.SendFar(SideB, b.Data(0, a.Seq(len(init1Raw)), concat(init2Raw, hello)))
	w.Run(latency)
	if got := payload(w.Take(SideA)); string(got) != "hello" {
		t.Fatalf("host a got %q, want hello; flows %+v", got, w.Flows(SideA))
	}
	checkSessionID(t, "fresh", one2(t, w.Flows(SideA)), sess)
	offB += len(hello)

	// B rekeys with a data frame, cres bits set (control 0x81): A raises
	// its generation and sends at once a frame with rekey = 1 under
	// generation 1, empty as its host has nothing to send (RFC 8548 §3.8).
	kab1, kba1 := sess.keys(t, 1)
	again := kba1.seal(uint64(offB), rfcFrame{control: 0x81, data: []byte("again")})
	w.SendFar(SideB, b.Data(offB, a.Seq(len(init1Raw)), again))
	w.Run(3 * latency)
	if got := payload(w.Take(SideA)); string(got) != "again" {
		t.Fatalf("host a got %q after B's rekey, want again", got)
	}
	stream := received(t, fromA, w.TakeFar(SideB))
	if len(stream) <= len(init1Raw) {
		t.Fatal("G_A did not answer B's rekey (RFC 8548 §3.8)")
	}
	answer, offA := openFrameAt(t, kab1, stream, len(init1Raw))
	if answer.control != 0x01 || answer.flags != 0 || len(answer.data) != 0 {
		t.Errorf("G_A's answer: control %#x flags %#x data %q, want an empty frame with control 0x01", answer.control, answer.flags, answer.data)
	}

	// Host a's data: generation 1, rekey = 0 (RFC 8548 §3.8: rekey = 1
	// only on the first frame under a new generation).
	w.Host(SideA, a.Data(0, b.Seq(len("helloagain")), []byte("world")))
	w.Run(3 * latency)
	data, _ := openFrameAt(t, kab1, received(t, fromA, w.TakeFar(SideB)), offA)
	if data.control != 0 || data.flags != 0 || string(data.data) != "world" {
		t.Errorf("host a's frame: control %#x flags %#x data %q, want control 0 and world", data.control, data.flags, data.data)
	}
}

// TestIndependentFarA: G_B is host B; the far host A is the one written
// from the RFC text. Then the far host resumes the session (RFC 8548 §3.5)
// as the active opener, and host b resumes the next one as the active
// opener, so that G_B is host A of a session whose original A was the far
// host.
func TestIndependentFarA(t *testing.T) {
	f := newFixtureCache(t, [2]bool{false, true}, false, true, func(_ Side, c *engine.Config) {
		c.TEPs = []tcpcrypt.TEP{tcpcrypt.TEPX25519, tcpcrypt.TEPP256}
		c.AEADs = []cryptopool.Suite{cryptopool.AES256GCM, cryptopool.AES128GCM}
	})
	w, a, b := f.w, f.a, f.b

	// A's SYN option: global suboption 0x1c (b = 0, z bits set, which B
	// ignores; RFC 8547 §4.2), P-256, a TEP nobody defined, X25519.
	optA := []byte{enoKind, 6, 0x1c, 0x21, 0x30, tepX25519}
	w.SendFar(SideA, a.SYN(LinuxSYNOpts, optA))
	w.Run(latency)
	one(t, "SYN at host b", w.Take(SideB))
	w.Host(SideB, b.SYNACK(isnA, LinuxSYNOpts))
	w.Run(latency)
	optB := onlyENO(t, "SYN-ACK at the far host", one(t, "SYN-ACK at the far host", w.TakeFar(SideA)))
	// b = 1 and one TEP, the one B wants (RFC 8547 §4.2, §4.5).
	if want := []byte{enoKind, 4, 0x01, tepX25519}; !bytes.Equal(optB, want) {
		t.Errorf("G_B's SYN-ACK option % x, want % x", optB, want)
	}

	// Init1 in A's third segment (which carries the non-SYN ENO option,
	// RFC 8547 §4.6), listing an AEAD nobody defined and one twice, with 4
	// bytes B must ignore (RFC 8548 §4.1).
	privA := x25519Key(t, 9)
	m1 := init1Msg{aeads: []uint16{0x9999, aeadAES128GCM, aeadAES256GCM, aeadAES128GCM},
		nonce: bytes.Repeat([]byte{0x11}, nonceLen), pub: privA.PublicKey().Bytes(), ignored: []byte{1, 2, 3, 4}}
	init1Raw := m1.bytes()
	w.SendFar(SideA, a.Seg(packettest.ACK|packettest.PSH, a.Seq(0), b.Seq(0), init1Raw, ENOAck))
	w.Run(3 * latency)
	if got := payload(w.Take(SideB)); len(got) != 0 {
		t.Fatalf("host b got %d bytes of Init1", len(got))
	}
	fromB := NewStream(isnB)
	init2Raw, m2 := parseInit2(t, received(t, fromB, w.TakeFar(SideA)))
	// B chooses by its own preference among A's list (RFC 8548 §3.3).
	if len(init2Raw) != 74 || m2.aead != aeadAES256GCM || len(m2.ignored) != 0 {
		t.Errorf("Init2: %d bytes, AEAD %#04x, ignored % x; want 74 bytes, 0x0002, none", len(init2Raw), m2.aead, m2.ignored)
	}
	ss0 := freshSecret(m1.nonce, optA, optB, init1Raw, init2Raw, sharedSecret(t, privA, m2.pub))
	sess := rfcSession{ss: ss0, tepByte: tepX25519, aead: m2.aead}
	kab, kba := sess.keys(t, 0)
	ping := kab.seal(uint64(len(init1Raw)), rfcFrame{data: []byte("ping")})
	w.SendFar(SideA, a.Data(len(init1Raw), b.Seq(len(init2Raw)), ping))
	w.Run(3 * latency)
	if got := payload(w.Take(SideB)); string(got) != "ping" {
		t.Fatalf("host b got %q, want ping", got)
	}
	checkSessionID(t, "fresh", one2(t, w.Flows(SideB)), sess)
	w.Host(SideB, b.Data(0, a.Seq(4), []byte("pong")))
	w.Run(3 * latency)
	if pong, _ := openFrameAt(t, kba, received(t, fromB, w.TakeFar(SideA)), len(init2Raw)); string(pong.data) != "pong" {
		t.Fatalf("G_B's frame holds %q, want pong", pong.data)
	}

	// Resumption with ss[1], the far host (original A) the active opener:
	// its suboption is TEP byte with v = 1, resume[1]{0..8}, nonce_a
	// (RFC 8548 §3.5, Figure 2); G_B answers with b = 1 and TEP byte,
	// resume[1]{9..17}, nonce_b (Figure 3).
	ss1 := nextSecret(ss0)
	resume1 := resumeID(ss1)
	a2 := &Host{Addr: netip.AddrPortFrom(a.Addr.Addr(), 40001), Peer: a.Peer, ISN: 20000}
	b2 := &Host{Addr: a2.Peer, Peer: a2.Addr, ISN: 30000}
	nonceA := []byte{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7}
	optA2 := enoOption(concat([]byte{tepX25519Data}, resume1[:resumeHalfLen], nonceA))
	w.SendFar(SideA, a2.SYN(LinuxSYNOpts, optA2))
	w.Run(latency)
	one(t, "resuming SYN at host b", w.Take(SideB))
	w.Host(SideB, b2.SYNACK(a2.ISN, LinuxSYNOpts))
	w.Run(latency)
	optB2 := onlyENO(t, "resuming SYN-ACK at the far host", one(t, "resuming SYN-ACK at the far host", w.TakeFar(SideA)))
	subs := suboptions(t, optB2)
	if len(subs) != 2 || subs[0].first != 0x01 || subs[1].first != tepX25519Data ||
		len(subs[1].data) < resumeHalfLen || !bytes.Equal(subs[1].data[:resumeHalfLen], resume1[resumeHalfLen:]) ||
		len(subs[1].data) > resumeHalfLen+maxResumeNonce {
		t.Fatalf("G_B did not resume: % x, want 01 a3 % x and a nonce", optB2, resume1[resumeHalfLen:])
	}
	nonceB := subs[1].data[resumeHalfLen:]
	// The session nonce is nonce_a | nonce_b and the session ID's first
	// byte is B's TEP byte, v = 1 (RFC 8548 §3.4, §3.5); the original A
	// sends with k_ab, and frames start at offset 0: no Init messages.
	sess1 := rfcSession{ss: ss1, sn: concat(nonceA, nonceB), tepByte: tepX25519Data, aead: m2.aead}
	kab, kba = sess1.keys(t, 0)
	resumed := kab.seal(0, rfcFrame{data: []byte("resumed")})
	w.SendFar(SideA, a2.Seg(packettest.ACK|packettest.PSH, a2.Seq(0), b2.Seq(0), resumed, ENOAck))
	w.Run(3 * latency)
	if got := payload(w.Take(SideB)); string(got) != "resumed" {
		t.Fatalf("host b got %q on the resumed connection, want resumed", got)
	}
	if fi := flowTo(t, w, SideB, a2.Addr.Port()); !fi.Resumed {
		t.Errorf("G_B's flow is not marked resumed: %+v", fi)
	}
	checkSessionID(t, "resumed by the far host", flowTo(t, w, SideB, a2.Addr.Port()), sess1)
	w.Host(SideB, b2.Data(0, a2.Seq(len("resumed")), []byte("back")))
	w.Run(3 * latency)
	if back, _ := openFrameAt(t, kba, received(t, NewStream(b2.ISN), w.TakeFar(SideA)), 0); string(back.data) != "back" {
		t.Fatalf("G_B's frame holds %q, want back", back.data)
	}

	// Resumption with ss[2], host b the active opener: G_B is host A of
	// this connection but was B originally, so it offers resume[2]{9..17}
	// with its nonce, and the far host (original A) answers as host B with
	// resume[2]{0..8} and a 3-byte nonce. sn is still the original A's
	// nonce first, and G_B still sends with k_ba (RFC 8548 §3.5).
	ss2 := nextSecret(ss1)
	resume2 := resumeID(ss2)
	b3 := &Host{Addr: netip.AddrPortFrom(b.Addr.Addr(), 8080), Peer: netip.AddrPortFrom(a.Addr.Addr(), 50000), ISN: 40000}
	a3 := &Host{Addr: b3.Peer, Peer: b3.Addr, ISN: 50000}
	w.Host(SideB, b3.SYN(LinuxSYNOpts))
	w.Run(latency)
	optB3 := onlyENO(t, "G_B's resuming SYN", one(t, "G_B's resuming SYN", w.TakeFar(SideA)))
	var nonceB3 []byte
	found := false
	for _, s := range suboptions(t, optB3) {
		if s.first == tepX25519Data && len(s.data) >= resumeHalfLen && bytes.Equal(s.data[:resumeHalfLen], resume2[resumeHalfLen:]) {
			nonceB3, found = s.data[resumeHalfLen:], true
		}
	}
	if !found || len(nonceB3) > maxResumeNonce {
		t.Fatalf("G_B's SYN option % x does not offer ss[2] with % x", optB3, resume2[resumeHalfLen:])
	}
	nonceA3 := []byte{1, 2, 3}
	optA3 := enoOption([]byte{0x01}, concat([]byte{tepX25519Data}, resume2[:resumeHalfLen], nonceA3))
	w.SendFar(SideA, a3.SYNACK(b3.ISN, LinuxSYNOpts, optA3))
	w.Run(latency)
	one(t, "resuming SYN-ACK at host b", w.Take(SideB))
	w.Host(SideB, b3.ACK(0, a3.Seq(0)))
	w.Host(SideB, b3.Data(0, a3.Seq(0), []byte("hi from b")))
	w.Run(3 * latency)
	sess2 := rfcSession{ss: ss2, sn: concat(nonceA3, nonceB3), tepByte: tepX25519Data, aead: m2.aead}
	kab, kba = sess2.keys(t, 0)
	stream := received(t, NewStream(b3.ISN), w.TakeFar(SideA))
	if hi, _ := openFrameAt(t, kba, stream, 0); string(hi.data) != "hi from b" {
		t.Fatalf("G_B's frame holds %q, want hi from b", hi.data)
	}
	checkSessionID(t, "resumed by host b", flowTo(t, w, SideB, a3.Addr.Port()), sess2)
	reply := kab.seal(0, rfcFrame{data: []byte("hi from far")})
	w.SendFar(SideA, a3.Data(0, b3.Seq(len(stream)), reply))
	w.Run(3 * latency)
	if got := payload(w.Take(SideB)); string(got) != "hi from far" {
		t.Fatalf("host b got %q, want hi from far", got)
	}
}

// TestIndependentSimultaneousOpen: the far host's SYN crosses host a's and
// sets b = 1, so G_A stays host A (RFC 8547 §4.3); each side repeats its
// SYN-form option unchanged in its SYN-ACK (RFC 8547 §4.6, Figure 12).
func TestIndependentSimultaneousOpen(t *testing.T) {
	f := onlyA(t)
	w, a, b := f.w, f.a, f.b
	w.Host(SideA, a.SYN(LinuxSYNOpts))
	w.Run(latency)
	optA := onlyENO(t, "SYN at the far host", one(t, "SYN at the far host", w.TakeFar(SideB)))
	if want := []byte{enoKind, 3, tepX25519}; !bytes.Equal(optA, want) {
		t.Errorf("G_A's SYN option % x, want % x", optA, want)
	}
	optB := []byte{enoKind, 4, 0x01, tepX25519}
	w.SendFar(SideB, b.SYN(LinuxSYNOpts, optB))
	w.Run(latency)
	w.Take(SideA)
	w.Host(SideA, a.SYNACK(isnB, LinuxSYNOpts))
	w.Run(latency)
	synack := one(t, "host a's SYN-ACK at the far host", w.TakeFar(SideB))
	if !synack.Has(packettest.SYN|packettest.ACK) || !bytes.Equal(onlyENO(t, "host a's SYN-ACK", synack), optA) {
		t.Fatalf("host a's SYN-ACK %v must repeat A's SYN option % x", synack, optA)
	}
	w.SendFar(SideB, b.SYNACK(isnA, LinuxSYNOpts, optB))
	w.Run(3 * latency)
	w.Take(SideA)

	fromA := NewStream(isnA)
	init1Raw, m1 := parseInit1(t, received(t, fromA, w.TakeFar(SideB)))
	if len(init1Raw) != 75 || !slices.Equal(m1.aeads, []uint16{aeadAES128GCM}) {
		t.Errorf("Init1: %d bytes, AEADs %04x; want 75 bytes, 0001", len(init1Raw), m1.aeads)
	}
	privB := x25519Key(t, 5)
	init2Raw := init2Msg{aead: aeadAES128GCM, nonce: bytes.Repeat([]byte{3}, nonceLen), pub: privB.PublicKey().Bytes()}.bytes()
	sess := rfcSession{
		ss:      freshSecret(m1.nonce, optA, optB, init1Raw, init2Raw, sharedSecret(t, privB, m1.pub)),
		tepByte: tepX25519,
		aead:    aeadAES128GCM,
	}
	kab, kba := sess.keys(t, 0)
	sim := kba.seal(uint64(len(init2Raw)), rfcFrame{data: []byte("sim")})
	w.SendFar(SideB, b.Seg(packettest.ACK|packettest.PSH, b.Seq(0), a.Seq(len(init1Raw)), concat(init2Raw, sim), ENOAck))
	w.Run(3 * latency)
	if got := payload(w.Take(SideA)); string(got) != "sim" {
		t.Fatalf("host a got %q, want sim", got)
	}
	checkSessionID(t, "simultaneous open", one2(t, w.Flows(SideA)), sess)
	w.Host(SideA, a.Data(0, b.Seq(len("sim")), []byte("ok")))
	w.Run(3 * latency)
	ok, offA := openFrameAt(t, kab, received(t, fromA, w.TakeFar(SideB)), len(init1Raw))
	if string(ok.data) != "ok" {
		t.Fatalf("G_A's frame holds %q, want ok", ok.data)
	}

	// Both close. A FIN leaves as FINp, flags bit 0, on the last frame,
	// with TCP FIN on the segment holding its last byte; a host sees the
	// far side's FIN only with its FINp frame (RFC 8548 §3.7, §4.2.1).
	offB := len(init2Raw) + len(sim)
	bye := kba.seal(uint64(offB), rfcFrame{flags: 0x01, data: []byte("bye")})
	w.SendFar(SideB, b.Seg(packettest.ACK|packettest.FIN, b.Seq(offB), a.Seq(offA), bye))
	w.Run(3 * latency)
	last := one(t, "data at host a", withData(w.Take(SideA)))
	if string(last.Payload) != "bye" || !last.Has(packettest.FIN) {
		t.Fatalf("host a got %v %q, want bye with FIN", last, last.Payload)
	}
	w.Host(SideA, a.Seg(packettest.ACK|packettest.FIN, a.Seq(len("ok")), b.Seq(len("simbye")+1), nil))
	w.Run(3 * latency)
	stream := received(t, fromA, w.TakeFar(SideB))
	fin, end := openFrameAt(t, kab, stream, offA)
	if fin.flags != 0x01 || len(fin.data) != 0 || fromA.FIN != end {
		t.Fatalf("G_A's last frame: flags %#x data %q, TCP FIN at %d; want an empty FINp frame ending at %d with FIN",
			fin.flags, fin.data, fromA.FIN, end)
	}
}

// TestIndependentFarSideImports keeps the far side independent: its two
// files import neither package eno nor host mode, use packages tcpcrypt
// and cryptopool only for the names that configure the engine under test,
// and call none of this package's helpers built on those codecs.
func TestIndependentFarSideImports(t *testing.T) {
	const module = "github.com/tcpinc/tcpinc/"
	forbidden := []string{module + "appliance/eno", module + "hostmode"}
	configOnly := map[string][]string{
		module + "appliance/tcpcrypt": {"TEP", "TEPX25519", "TEPX448", "TEPP256"},
		module + "cryptopool":         {"Suite", "AES128GCM", "AES256GCM", "ChaCha20Poly1305"},
	}
	// Peer is built on eno and tcpcrypt (peer.go); the method Seg.ENO
	// scans with package eno (seg.go), and hasENOAck calls it
	// (fixture_test.go). A Host's field Peer is an address, and allowed.
	codecHelpers := []string{"Peer", "NewPeer", "hasENOAck"}

	for _, name := range []string{"independent_test.go", "independent_rfc_test.go"} {
		file, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		allowed := map[string][]string{} // local package name -> names it may be used for
		for _, imp := range file.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, p := range forbidden {
				if path == p || strings.HasPrefix(path, p+"/") {
					t.Errorf("%s imports %s", name, path)
				}
			}
			if names, ok := configOnly[path]; ok {
				local := path[strings.LastIndex(path, "/")+1:]
				if imp.Name != nil {
					local = imp.Name.Name
				}
				allowed[local] = names
			}
		}
		var inspect func(ast.Node) bool
		inspect = func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok {
					if names, ok := allowed[x.Name]; ok && !slices.Contains(names, n.Sel.Name) {
						t.Errorf("%s uses %s.%s: only %v may configure the engine", name, x.Name, n.Sel.Name, names)
					}
				}
				if n.Sel.Name == "ENO" {
					t.Errorf("%s uses the method ENO, which is built on package eno", name)
				}
				ast.Inspect(n.X, inspect) // n.Sel names a field or method, not a helper
				return false
			case *ast.KeyValueExpr:
				ast.Inspect(n.Value, inspect) // n.Key names a field
				return false
			case *ast.Ident:
				if slices.Contains(codecHelpers, n.Name) {
					t.Errorf("%s uses %s, which is built on the appliance's codecs", name, n.Name)
				}
			}
			return true
		}
		ast.Inspect(file, inspect)
	}
}
