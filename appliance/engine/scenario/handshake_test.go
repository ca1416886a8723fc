package scenario

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// TestHandshake: the success case of docs/protocol.md §6 through two appliances,
// every segment checked (see fixture.handshake), then data both ways with
// exact sequence numbers in both spaces (docs/architecture.md §2).
// ENO-1, ENO-9, ENO-17, ENO-26, ENO-27, ENO-34, ENO-37, TC-8, TC-D2, ENO-D7.
func TestHandshake(t *testing.T) {
	f := full(t)
	f.handshake(t)
	f.exchange(t)
	f.exchange(t)
}

// TestHandshakeWithPool: the same with the public-key work on a
// cryptopool.Pool: the results come back through Tick and nothing changes
// on the wire.
func TestHandshakeWithPool(t *testing.T) {
	f := newFixture(t, [2]bool{true, true}, true, nil)
	f.handshake(t)
	f.exchange(t)
}

// TestHandshakeLoss loses each handshake segment in turn on the untrusted
// link and checks the recovery.
func TestHandshakeLoss(t *testing.T) {
	// SYN lost: the host retransmits the same SYN and G_A adds the same
	// ENO bytes (ENO-31): the two SYNs on the link are identical.
	t.Run("SYN", func(t *testing.T) {
		f := full(t)
		w := f.w
		w.Link.Add(Rule{Dir: AtoB, Match: func(n int, _ Seg) bool { return n == 0 }, Drop: true})
		syn := f.a.SYN(LinuxSYNOpts)
		w.Host(SideA, syn)
		w.Run(time.Second)
		if got := w.Take(SideB); len(got) != 0 {
			t.Fatalf("b got %v though the SYN was lost", got)
		}
		w.Host(SideA, syn)
		w.Run(latency)
		sent := w.Link.Sent(AtoB)
		if len(sent) != 2 || !bytes.Equal(sent[0].Raw, sent[1].Raw) {
			t.Fatalf("retransmitted SYN differs on the link (ENO-31):\n %v\n %v", sent[0], sent[len(sent)-1])
		}
		checkSYN(t, sent[1])
		if g := one(t, "SYN at b", w.Take(SideB)); g.MSS() != 1440 {
			t.Fatalf("SYN at b: %v", g)
		}
		f.stepSYNACK(t)
		f.stepACK(t)
		f.stepInit(t)
		f.established(t)
		f.exchange(t)
	})
	// SYN-ACK lost: b retransmits it and G_B adds the same ENO bytes.
	t.Run("SYN-ACK", func(t *testing.T) {
		f := full(t)
		w := f.w
		f.stepSYN(t)
		w.Link.Add(Rule{Dir: BtoA, Match: func(n int, _ Seg) bool { return n == 0 }, Drop: true})
		sa := f.b.SYNACK(isnA, LinuxSYNOpts)
		w.Host(SideB, sa)
		w.Run(time.Second)
		if got := w.Take(SideA); len(got) != 0 {
			t.Fatalf("a got %v though the SYN-ACK was lost", got)
		}
		w.Host(SideB, sa)
		w.Run(latency)
		sent := w.Link.Sent(BtoA)
		if len(sent) != 2 || !bytes.Equal(sent[0].Raw, sent[1].Raw) {
			t.Fatalf("retransmitted SYN-ACK differs on the link (ENO-31):\n %v\n %v", sent[0], sent[len(sent)-1])
		}
		checkSYNACK(t, sent[1])
		g := one(t, "SYN-ACK at a", w.Take(SideA))
		if len(g.ENO()) != 0 || g.MSS() != 1440 {
			t.Fatalf("SYN-ACK at a: %v", g)
		}
		f.stepACK(t)
		f.stepInit(t)
		f.established(t)
		f.exchange(t)
	})
	// Third segment lost: Init1 still carries 45 02 (ENO-26), so G_B sees
	// an ACK with ENO and enables encryption (ENO-34); b must still get an
	// ACK that completes its handshake, and no Init bytes.
	t.Run("ACK", func(t *testing.T) {
		f := full(t)
		w := f.w
		f.stepSYN(t)
		f.stepSYNACK(t)
		n := f.mark(AtoB)
		w.Link.Add(Rule{Dir: AtoB, Match: func(_ int, s Seg) bool {
			return !s.Has(packettest.SYN) && len(s.Payload) == 0
		}, Drop: true})
		w.Host(SideA, f.a.ACK(0, isnB+1))
		w.Run(0)
		checkInit(t, "Init1", f.sentSince(AtoB, n), isnA+1, init1, magic1)
		m := f.mark(BtoA)
		w.Run(latency)
		got := w.Take(SideB)
		if len(got) == 0 {
			t.Fatal("b got no ACK: its handshake cannot complete")
		}
		for _, s := range got {
			if len(s.Payload) != 0 || s.Seq != isnA+1 || s.Ack != isnB+1 || s.Has(packettest.SYN) {
				t.Fatalf("b got %v, want the ACK at a's ISN+1 without Init bytes", s)
			}
		}
		checkInit(t, "Init2", f.sentSince(BtoA, m), isnB+1, init2, magic2)
		w.Run(3 * latency)
		f.established(t)
		f.exchange(t)
	})
	// Init1 lost: G_A retransmits it on its timer (initial RTO 200 ms) with
	// the same bytes (TC-45); the host never sees it.
	t.Run("Init1", func(t *testing.T) {
		f := full(t)
		w := f.w
		f.stepSYN(t)
		f.stepSYNACK(t)
		drop := w.Link.Add(Rule{Dir: AtoB, Match: func(_ int, s Seg) bool { return len(s.Payload) > 0 }, Drop: true, Times: -1})
		first := f.stepACK(t)
		w.Run(100 * time.Millisecond)
		if len(withData(w.Take(SideB))) != 0 {
			t.Fatal("b got data")
		}
		drop.Times = 0 // let the retransmission through
		drop.Hits = 1
		n := f.mark(AtoB)
		w.Run(200 * time.Millisecond)
		re := withData(f.sentSince(AtoB, n))
		if len(re) == 0 {
			t.Fatal("Init1 not retransmitted within 300 ms")
		}
		checkInit(t, "retransmitted Init1", re, isnA+1, init1, magic1)
		if !bytes.Equal(payload(re), payload(withData(first))) {
			t.Fatal("retransmitted Init1 differs from the original (TC-45)")
		}
		w.Run(5 * latency)
		for _, s := range w.Take(SideB) {
			if len(s.Payload) != 0 {
				t.Fatalf("b got Init bytes: %v", s)
			}
		}
		f.established(t)
		f.exchange(t)
	})
	// Init2 lost: G_B retransmits it with the same bytes.
	t.Run("Init2", func(t *testing.T) {
		f := full(t)
		w := f.w
		f.stepSYN(t)
		f.stepSYNACK(t)
		drop := w.Link.Add(Rule{Dir: BtoA, Match: func(_ int, s Seg) bool { return len(s.Payload) > 0 }, Drop: true, Times: -1})
		f.stepACK(t)
		n := f.mark(BtoA)
		w.Run(latency)
		first := withData(f.sentSince(BtoA, n))
		checkInit(t, "Init2", first, isnB+1, init2, magic2)
		drop.Times, drop.Hits = 0, 1
		n = f.mark(BtoA)
		w.Run(300 * time.Millisecond)
		re := withData(f.sentSince(BtoA, n))
		if len(re) == 0 {
			t.Fatal("Init2 not retransmitted within 300 ms")
		}
		checkInit(t, "retransmitted Init2", re, isnB+1, init2, magic2)
		if !bytes.Equal(payload(re), payload(first)) {
			t.Fatal("retransmitted Init2 differs from the original (TC-45)")
		}
		w.Run(5 * latency)
		for _, s := range w.Take(SideA) {
			if len(s.Payload) != 0 {
				t.Fatalf("a got Init bytes: %v", s)
			}
		}
		f.established(t)
		f.exchange(t)
	})
}

// TestSimultaneousOpen: a and b open actively at the same time. Each
// appliance adds its SYN option (b = 0) and then meets the other's SYN:
// a role clash (ENO-30) that neither negotiates on its host's behalf. Both
// count it as simultaneous_open, the hosts' SYN-ACKs go on the link
// without ENO (ENO-33: an active opener may leave it out after such a
// SYN), and the connection carries plain TCP both ways, untouched.
func TestSimultaneousOpen(t *testing.T) {
	f := full(t)
	w, a, b := f.w, f.a, f.b
	if v := w.Host(SideA, a.SYN(LinuxSYNOpts)); v != engine.Forwarded {
		t.Fatalf("a's SYN at G_A: %v", v)
	}
	if v := w.Host(SideB, b.SYN(LinuxSYNOpts)); v != engine.Forwarded {
		t.Fatalf("b's SYN at G_B: %v", v)
	}
	w.Run(latency)
	for _, s := range []Side{SideA, SideB} {
		g := one(t, fmt.Sprintf("SYN at host %d", s), w.Take(s))
		if !g.Has(packettest.SYN) || g.Has(packettest.ACK) || len(g.ENO()) != 1 {
			t.Fatalf("host %d got %v, want the other's SYN with its appliance's ENO option", s, g)
		}
	}
	n := [2]int{f.mark(AtoB), f.mark(BtoA)}
	synackA, synackB := a.SYNACK(isnB, LinuxSYNOpts), b.SYNACK(isnA, LinuxSYNOpts)
	w.Host(SideA, synackA)
	w.Host(SideB, synackB)
	for i, d := range []Dir{AtoB, BtoA} {
		s := one(t, "SYN-ACK on the link", f.sentSince(d, n[i]))
		if len(s.ENO()) != 0 || !bytes.Equal(s.Raw, [][]byte{synackA, synackB}[i]) {
			t.Fatalf("SYN-ACK on the link %v: %v, want the host's unchanged, without ENO (ENO-33)", d, s)
		}
	}
	w.Run(latency)
	w.Take(SideA)
	w.Take(SideB)
	// Each far SYN-ACK repeats the SYN that crossed its appliance's: that
	// shows the simultaneous open (a blind SYN alone does not end the
	// negotiation).
	for _, s := range []Side{SideA, SideB} {
		fl := one2(t, w.Flows(s))
		if fl.State != "plain" || fl.Encrypted || fl.FallbackReason == "" {
			t.Fatalf("side %d flow: %+v", s, fl)
		}
		if n := w.G[s].Counters().Fallbacks[engine.FallbackSimultaneousOpen].Load(); n != 1 {
			t.Fatalf("side %d: %d simultaneous-open fallbacks, want 1", s, n)
		}
	}
	msg := []byte("plain after a simultaneous open")
	data := a.Data(0, isnB+1, msg)
	w.Host(SideA, data)
	w.Run(latency)
	if g := one(t, "data at b", w.Take(SideB)); !bytes.Equal(g.Raw, data) {
		t.Fatalf("b got %v, want a's segment untouched", g)
	}
}

// TestInit2SharedWithFrame: a host-based peer in role B sends Init2 in two
// segments, the second of which also carries its first frame (TC-7: an
// Init message may end in the middle of a segment). a gets the frame's data
// at host offset 0. Both with the public-key work inline and on a pool
// (the session then completes in a later Tick).
func TestInit2SharedWithFrame(t *testing.T) {
	for _, pool := range []bool{false, true} {
		t.Run(map[bool]string{false: "inline", true: "pool"}[pool], func(t *testing.T) {
			init2SharedWithFrame(t, newFixture(t, [2]bool{true, false}, pool, nil))
		})
	}
}

func init2SharedWithFrame(t *testing.T, f *fixture) {
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
	if !p.Ready() {
		t.Fatal("peer has no keys")
	}
	rest := append(append([]byte(nil), p.Init[30:]...), p.Seal([]byte("first words from b"), false)...)
	w.SendFar(SideB, b.Seg(packettest.ACK, b.Seq(0), a.Seq(init1), p.Init[:30], ENOAck))
	w.SendFar(SideB, b.Seg(packettest.ACK|packettest.PSH, b.Seq(30), a.Seq(init1), rest))
	w.Run(latency)
	for _, s := range w.All[SideA] {
		if s.Has(packettest.RST) {
			t.Fatalf("G_A aborted the connection: a got %v (counters: %d authentication failures)", s, w.G[SideA].Counters().AuthFailures.Load())
		}
	}
	st := hostStream(t, w.All[SideA], isnB)
	if string(st.Contiguous()) != "first words from b" {
		t.Fatalf("a has %q", st.Contiguous())
	}
	if g := one2(t, w.Flows(SideA)); !g.Encrypted || g.SessionID != p.Session.ID {
		t.Fatalf("G_A's flow %+v", g)
	}
}

// TestInitRetransmitBackoff: Init1 never gets through, nor anything from
// G_B after the SYN-ACK (its RST when it gives up waiting). G_A retransmits it
// with exponential backoff (initial RTO 200 ms, doubled each time), the
// same bytes each time (TC-45), and after InitTries (8: 102 s, RFC 1122
// §4.2.3.5's R2) gives up with RST to both sides (engine contract,
// docs/protocol.md §9 abort). The key exchange's idle limit
// (HandshakeTimeout, 30 s) does not cut it short: a far appliance paused
// that long still answers.
func TestInitRetransmitBackoff(t *testing.T) {
	if initGiveUp < 100*time.Second {
		t.Fatalf("G_A gives up on its Init %v after the first, before RFC 1122's R2 (100 s)", initGiveUp)
	}
	f := full(t)
	w := f.w
	initUnanswered(t, f)
	start := w.Now
	w.Run(initGiveUp - time.Second)
	if n := w.G[SideA].Counters().HandshakeFailures.Load(); n != 0 {
		t.Fatalf("G_A gave up %v after Init1, before its last try", initGiveUp-time.Second)
	}
	w.Run(2 * time.Second)
	var at []int64
	for _, e := range w.Link.Log {
		if e.Dir == AtoB && len(e.Seg.Payload) > 0 && e.Seg.Seq == isnA+1 {
			at = append(at, e.At-start)
		}
	}
	if len(at) != 1+engine.DefaultInitTries {
		t.Fatalf("Init1 sent %d times (at %v), want the first and %d tries", len(at), at, engine.DefaultInitTries)
	}
	for i := 2; i < len(at); i++ {
		d1, d2 := at[i-1]-at[i-2], at[i]-at[i-1]
		if d2 < 2*d1-int64(2*time.Millisecond) || d2 > 2*d1+int64(2*time.Millisecond) {
			t.Fatalf("Init1 sent at %v (ns after the first): intervals do not double", at)
		}
	}
	if d := at[1] - at[0]; d < int64(190*time.Millisecond) || d > int64(210*time.Millisecond) {
		t.Fatalf("first retransmission after %v, want 200 ms", time.Duration(d))
	}
	wireStream(t, w, AtoB, isnA)
	var rstA bool
	for _, s := range w.All[SideA] {
		rstA = rstA || s.Has(packettest.RST)
	}
	var rstWire bool
	for _, s := range w.Link.Sent(AtoB) {
		rstWire = rstWire || s.Has(packettest.RST)
	}
	if !rstA || !rstWire {
		t.Fatalf("after the last try: RST to a %v, on the link %v; want both", rstA, rstWire)
	}
}

// TestInitSilenceBounded: with init_tries raised (the config allows up to
// 32: 200 ms x (2^33 - 1) is decades), a key exchange whose far side never
// answers still ends: the idle limit, suspended while the Init is out,
// comes back after 2 min of silence. Before, G_A held such a record for as
// long as its retransmissions lasted.
func TestInitSilenceBounded(t *testing.T) {
	f := newFixture(t, [2]bool{true, true}, false, func(s Side, c *engine.Config) { c.InitTries = 14 })
	w := f.w
	initUnanswered(t, f)
	w.Run(3 * time.Minute)
	ga := w.G[SideA]
	if n := ga.NumFlows(); n != 0 {
		t.Fatalf("G_A holds %d flows 3 min after an Init nothing answered", n)
	}
	if n := ga.Counters().HandshakeFailures.Load(); n != 1 {
		t.Fatalf("G_A handshake failures %d, want 1", n)
	}
}

// initUnanswered runs the three-way handshake, after which nothing with
// data reaches G_B (Init1 and its retransmissions) and nothing at all comes
// back from it (its RST when it gives up waiting for Init1 among them).
func initUnanswered(t *testing.T, f *fixture) {
	t.Helper()
	f.stepSYN(t)
	f.stepSYNACK(t)
	f.w.Link.Add(Rule{Dir: AtoB, Match: isData, Drop: true, Times: -1})
	f.stepACK(t)
	f.w.Link.Add(Rule{Dir: BtoA, Match: func(int, Seg) bool { return true }, Drop: true, Times: -1})
}

// initGiveUp is when G_A gives up on an Init nothing acknowledges: InitRTO
// doubled over InitTries retransmissions after the first.
const initGiveUp = engine.DefaultInitRTO * (1<<(engine.DefaultInitTries+1) - 1)

// TestTimestampsOnInit: segments the appliances originate carry timestamps
// the hosts' PAWS and RTT logic accept (docs/architecture.md §2): Init1 carries a's
// latest TSval and, as TSecr, a TSval that came from b's side (b's latest,
// or the one a last echoed); Init2 the same the other way. An ACK segment
// echoes TS.Recent, never 0 (RFC 7323 §3.2, §4.3).
func TestTimestampsOnInit(t *testing.T) {
	f := full(t)
	w, a, b := f.w, f.a, f.b
	w.Host(SideA, a.SYN(PlainSYNOpts, packettest.TimestampOption(10, 0)))
	w.Run(latency)
	w.Take(SideB)
	w.Host(SideB, b.SYNACK(isnA, PlainSYNOpts, packettest.TimestampOption(500, 10)))
	w.Run(latency)
	w.Take(SideA)
	n, m := f.mark(AtoB), f.mark(BtoA)
	w.Host(SideA, a.ACK(0, isnB+1, packettest.TimestampOption(11, 500)))
	w.Run(0)
	for _, s := range withData(f.sentSince(AtoB, n)) {
		if v, e, ok := s.TS(); !ok || v != 11 || e != 500 {
			t.Fatalf("Init1 segment TS %d/%d (present %v), want TSval 11 (a's) TSecr 500 (b's)", v, e, ok)
		}
	}
	w.Run(latency)
	init2 := withData(f.sentSince(BtoA, m))
	if len(init2) == 0 {
		t.Fatal("no Init2")
	}
	for _, s := range init2 {
		if v, e, ok := s.TS(); !ok || v != 500 || (e != 11 && e != 10) {
			t.Fatalf("Init2 segment TS %d/%d (present %v), want TSval 500 (b's) and TSecr 11 (a's latest) or 10 (what b echoed)", v, e, ok)
		}
	}
}
