package engine

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// closePair closes the pair's connection: a's FIN, then b's, and a's last
// ACK, which reaches G_B only if lastAck.
func closePair(t *testing.T, pr *pair, h *hosts, lastAck bool) {
	t.Helper()
	pr.toB(pr.aSends(h, nil, finF))
	pr.tsB++
	_, out := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF|finF, 509, tsOpt(pr.tsB, pr.tsA), nil))
	h.bNext++
	for _, o := range out {
		pr.ga.push(Outside, o)
	}
	pr.tsA++
	_, out = pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF, 502, tsOpt(pr.tsA, pr.tsB), nil))
	if lastAck {
		for _, o := range out {
			pr.gb.push(Outside, o)
		}
	}
}

// A SYN reusing the tuple of an encrypted connection that had closed was
// dropped for 30 s, or for the 2 h idle timeout when the last ACK was
// lost. As Linux in TIME-WAIT, the appliance takes it for a new connection
// when its ISN lies beyond the old connection's last sequence number or its
// timestamp is newer (RFC 6191); any other SYN gets a challenge ACK and the
// old record stays. From outside, only a close acknowledged both ways
// counts: with b's FIN unacknowledged (a's last ACK lost), G_B answers with
// a challenge ACK, G_A (in SYN-SENT) answers that with an RST as a's TCP
// would, the RST ends G_B's old record, and a's next SYN gets through.
func TestSYNAfterCloseStartsNewConnection(t *testing.T) {
	for _, lastAck := range []bool{true, false} {
		pr := handshake(t)
		h := newHosts()
		closePair(t, pr, &h, lastAck)
		// Lower ISN, older timestamp: the old connection's (a stray
		// duplicate, or forged).
		old := tcpFrame(addrA, addrB, h.aNext-100_000, 0, synF, 64240, synOpts(1460, pr.tsA-10), nil)
		toIn, toOut := pr.ga.push(Inside, old)
		none(t, "old SYN: on the wire", toOut)
		one(t, "old SYN: challenge ACK to a", toIn)
		if fi := flowInfo(t, pr.ga.e); !fi.Encrypted {
			t.Fatalf("lastAck %v: the old record is gone: %+v", lastAck, fi)
		}
		// Lower ISN, newer timestamp: new.
		syn := tcpFrame(addrA, addrB, h.aNext-100_000, 0, synF, 64240, synOpts(1460, pr.tsA+1), nil)
		_, toOut = pr.ga.push(Inside, syn)
		s := one(t, "new SYN on the wire", toOut)
		if option(s.opts, 69) == nil || s.seq != h.aNext-100_000 {
			t.Fatalf("lastAck %v: new SYN on the wire: %+v", lastAck, s)
		}
		if fi := flowInfo(t, pr.ga.e); fi.State != "syn-sent" {
			t.Fatalf("lastAck %v: G_A flow %+v", lastAck, fi)
		}
		synThroughB(t, pr, s, lastAck)
		// Without timestamps, a higher ISN is what counts.
		pr = handshake(t)
		h = newHosts()
		closePair(t, pr, &h, lastAck)
		_, toOut = pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext+100_000, 0, synF, 64240, packettest.MSSOption(1460), nil))
		synThroughB(t, pr, one(t, "new SYN without timestamps", toOut), lastAck)
	}
}

// synThroughB delivers a's new SYN to G_B and checks that it reaches b,
// through the challenge ACK and RST when b's FIN was not acknowledged.
func synThroughB(t *testing.T, pr *pair, syn segv, lastAck bool) {
	t.Helper()
	toIn, toOut := pr.gb.push(Outside, syn.frame())
	if !lastAck {
		none(t, "SYN at b while its FIN is unacknowledged", toIn)
		ch := one(t, "G_B's challenge ACK", toOut)
		_, toOut = pr.ga.push(Outside, ch.frame())
		r := one(t, "G_A's RST for a in SYN-SENT", toOut)
		if r.flags != rstF || r.seq != ch.ack {
			t.Fatalf("RST: %+v, want at %x", r, ch.ack)
		}
		toIn, _ = pr.gb.push(Outside, r.frame())
		if g := one(t, "RST at b", toIn); g.flags&rstF == 0 || pr.gb.e.NumFlows() != 0 {
			t.Fatalf("RST at b: %+v, %d flows", g, pr.gb.e.NumFlows())
		}
		toIn, _ = pr.gb.push(Outside, syn.frame()) // a's SYN, resent
	}
	if g := one(t, "new SYN at b", toIn); g.flags != synF {
		t.Fatalf("lastAck %v: at b %+v", lastAck, g)
	}
	if fi := flowInfo(t, pr.gb.e); fi.State != "syn-received" {
		t.Fatalf("lastAck %v: G_B flow %+v", lastAck, fi)
	}
}

// closedPair is an encrypted connection that has just closed both ways:
// a sent "first", b answered with secret and its FIN, a its own FIN, and b
// the last ACK. The records stay, for a new SYN on the tuple (reuse).
func closedPair(t *testing.T) (pr *pair, h hosts, secret []byte) {
	pr = handshake(t)
	h = newHosts()
	pr.toB(pr.aSends(&h, []byte("first"), pshF))
	pr.bAcks(&h, h.aNext)
	pr.tsB++
	secret = []byte("SECRET-BYE")
	_, out := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF|pshF|finF, 509, tsOpt(pr.tsB, pr.tsA), secret))
	one(t, "b's FIN on the wire", out)
	h.bNext += uint32(len(secret)) + 1
	for _, o := range out {
		pr.ga.push(Outside, o)
	}
	pr.tsA++
	_, out = pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF|finF, 502, tsOpt(pr.tsA, pr.tsB), nil))
	h.aNext++
	for _, o := range out {
		pr.gb.push(Outside, o)
	}
	pr.tsB++
	pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF, 509, tsOpt(pr.tsB, pr.tsA), nil))
	return pr, h, secret
}

// Once a SYN from outside has taken a closed encrypted connection's tuple
// (here in plain TCP: the far host offers no TCP-ENO), a late
// retransmission of the old connection from the inside host (it missed the
// last ACK and resends its data and FIN) must not leave as plaintext, nor
// the far side's old FIN frame reach the host undecrypted: both are still
// the old record's until the host answers the new SYN.
func TestReusedTupleOldSegmentsStayEncrypted(t *testing.T) {
	pr, h, secret := closedPair(t)
	// a's new SYN (newer timestamp), without TCP-ENO: G_B keeps it plain.
	toIn, _ := pr.gb.push(Outside, tcpFrame(addrA, addrB, h.aNext+1000, 0, synF, 64240, synOpts(1460, pr.tsA+1), nil))
	one(t, "new SYN at b", toIn)
	if fi := flowInfo(t, pr.gb.e); fi.State != "plain" {
		t.Fatalf("G_B flow %+v", fi)
	}
	// b resends its data and FIN; the far side its FIN frame.
	_, out := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext-uint32(len(secret))-1, h.aNext, ackF|pshF|finF, 509, tsOpt(pr.tsB, pr.tsA), secret))
	for _, o := range out {
		if bytes.Contains(o, secret) {
			t.Fatal("the old connection's data left in plaintext")
		}
	}
	toIn, _ = pr.gb.push(Outside, tcpFrame(addrA, addrB, h.aNext-1+20, h.bNext, ackF|finF, 502, nil, []byte("ciphertext of the old FIN frame")))
	for _, f := range toIn {
		if s := parse(t, f); len(s.payload) > 0 {
			t.Fatalf("old wire bytes reached b: %+v", s)
		}
	}
	// A forged SYN-ACK from outside does not end the old record.
	pass(t, pr.gb, Outside, tcpFrame(addrA, addrB, 4242, 777+1, synF|ackF, 65160, nil, nil))
	_, out = pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext-uint32(len(secret))-1, h.aNext, ackF|pshF|finF, 509, tsOpt(pr.tsB, pr.tsA), secret))
	for _, o := range out {
		if bytes.Contains(o, secret) {
			t.Fatal("the old connection's data left in plaintext after a forged SYN-ACK")
		}
	}
	// b accepts the new connection: the tuple is the plain connection's.
	pass(t, pr.gb, Inside, tcpFrame(addrB, addrA, 777, h.aNext+1001, synF|ackF, 65160, synOpts(1460, pr.tsB+1), nil))
	pass(t, pr.gb, Inside, tcpFrame(addrB, addrA, 778, h.aNext+1001, ackF|pshF, 509, nil, []byte("plain now")))
}

// A plain record that took a closed encrypted connection's tuple for a
// SYN from outside (reuse) keeps the old record aside, its tuple held in
// the negotiated set. Reclaimed for room before the inside host answered
// (a full table), it dropped the old record but left the tuple held with
// no record at all: never evicted, never expiring, and the plain
// connection the host then accepted on the tuple was reset as a stray
// (a soak review). Such a record is no longer reclaimed, and a displaced
// record dropped by any path lets its tuple linger as that of any
// connection that ended, never held for good.
func TestReclaimedReuseReleasesOldTuple(t *testing.T) {
	pr, h, _ := closedPair(t)
	gb := pr.gb
	toIn, _ := gb.push(Outside, tcpFrame(addrA, addrB, h.aNext+1000, 0, synF, 64240, synOpts(1460, pr.tsA+1), nil))
	one(t, "new SYN at b", toIn)
	gb.e.cfg.MaxFlows = 1
	other := netip.AddrPortFrom(packettest.HostA4, 40001)
	gb.push(Outside, tcpFrame(other, addrB, 5000, 0, synF, 64240, synOpts(1460, 9), nil))
	if c := gb.e.Counters().FlowsReclaimed.Load(); c != 0 {
		t.Fatalf("%d records reclaimed: the one keeping the old connection aside went", c)
	}
	// b accepts the new plain connection: its segments pass both ways.
	pass(t, gb, Inside, tcpFrame(addrB, addrA, 777, h.aNext+1001, synF|ackF, 65160, synOpts(1460, pr.tsB+1), nil))
	for i := range 3 {
		pass(t, gb, Outside, tcpFrame(addrA, addrB, h.aNext+1001+uint32(i), 778, ackF|pshF, 502, nil, []byte{'a'}))
		pass(t, gb, Inside, tcpFrame(addrB, addrA, 778+uint32(i), h.aNext+1002+uint32(i), ackF|pshF, 509, nil, []byte{'b'}))
	}
	k := flowKey{in: addrB, out: addrA}
	if gb.e.neg.has(k) {
		t.Fatal("the accepted plain connection's tuple is still in the negotiated set")
	}

	// Whatever drops a displaced record, its tuple is released.
	pr2, h2, _ := closedPair(t)
	g2 := pr2.gb
	g2.push(Outside, tcpFrame(addrA, addrB, h2.aNext+1000, 0, synF, 64240, synOpts(1460, pr2.tsA+1), nil))
	nf := g2.e.flows[k]
	if nf == nil || nf.prev == nil || !nf.prev.held {
		t.Fatalf("no plain record keeping the old one aside: %+v", nf)
	}
	g2.e.dropPrev(nf)
	g2.e.neg.mu.RLock()
	d, ok := g2.e.neg.m[setKeyOf(k)]
	g2.e.neg.mu.RUnlock()
	if !ok || d == 0 {
		t.Fatalf("the dropped record's tuple: in the set %v, deadline %d (0: held for good); want lingering", ok, d)
	}
}

// A plain record that keeps a closed encrypted connection aside (reuse)
// is not reclaimed while that connection holds its tuple, and every
// segment on the tuple refreshed it, the old connection's too: a sender
// knowing a closed connection's tuple could hold a table slot for as long
// as it kept sending (a diff review). Only the new connection's segments
// keep it now: PlainRetention after its SYN it goes, and the old record,
// back in its place, ends as it would have.
func TestReuseRecordNotKeptByOldSegments(t *testing.T) {
	pr, h, secret := closedPair(t)
	gb := pr.gb
	gb.push(Outside, tcpFrame(addrA, addrB, h.aNext+1000, 0, synF, 64240, synOpts(1460, pr.tsA+1), nil))
	if fi := flowInfo(t, gb.e); fi.State != "plain" {
		t.Fatalf("G_B flow %+v", fi)
	}
	retention := int64(gb.e.Config().PlainRetention)
	for elapsed := int64(0); elapsed < retention+int64(time.Minute); elapsed += int64(30 * time.Second) {
		gb.tick(int64(30 * time.Second))
		// b resends its data and FIN: the old connection's.
		gb.push(Inside, tcpFrame(addrB, addrA, h.bNext-uint32(len(secret))-1, h.aNext, ackF|pshF|finF, 509, tsOpt(pr.tsB, pr.tsA), secret))
	}
	gb.tick(int64(time.Second))
	gb.e.Flows(func(fi FlowInfo) {
		if fi.State == "plain" {
			t.Fatalf("the reuse record outlived PlainRetention on the old connection's segments: %+v", fi)
		}
	})
}
