package engine

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// The sweep skips an open encrypted connection until its earliest timer
// (sweepDue): every live connection's 2 KB record was read every 200 ms
// before, whatever its timers (BenchmarkSweepOpen). Each timer that now
// relies on that due time still fires on time, after the sweep skipped
// the flow: no earlier than tickFlow's own test allows, no later than a
// sweep round (200 ms, the timers' coarseness) and one sweep after it.

// sweepLate is how late a timer may fire: a sweep round and one sweep.
const sweepLate = int64(200*time.Millisecond) + sweepEvery

// checkDue fails unless every flow's due time is no later than the one
// sweepDue gives it now, or past: something made tickFlow's work on a
// flow due earlier than the sweep was told without waking it (wake); and
// unless a flow with work due at once is visited at the next sweep.
func checkDue(t testing.TB, g *gw) {
	t.Helper()
	e := g.e
	if len(e.due) != len(e.list) {
		t.Fatalf("%d due times for %d flows", len(e.due), len(e.list))
	}
	for i, f := range e.list {
		if f.idx != i {
			t.Fatalf("flow %d listed at %d", f.idx, i)
		}
		d := e.due[i]
		// Work due whatever the clock: a visit at the next sweep.
		if f.state == stOpen && d > g.now && (f.rcv.roomWait || initOutstanding(&f.enc) || f.keys != nil && f.keys.Owed() && f.enc.finH < 0) {
			t.Fatalf("flow %d skipped until %d (now %d) with work due at once: owed %v, roomWait %v, Init out %v",
				i, d, g.now, f.keys.Owed(), f.rcv.roomWait, initOutstanding(&f.enc))
		}
		if fresh := e.sweepDue(g.now, f); d > g.now && d > fresh {
			t.Fatalf("flow %d (state %d) skipped until %d, but due at %d (now %d): owed %v, roomWait %v",
				i, f.state, d, fresh, g.now, f.keys != nil && f.keys.Owed(), f.rcv.roomWait)
		}
	}
}

// skipped ticks g for a sweep round and fails unless the sweep then skips
// f: its due time is in the future.
func skipped(t *testing.T, g *gw, f *flow) {
	t.Helper()
	for range sweepRounds + 1 {
		g.tick(sweepEvery)
	}
	if d := g.e.due[f.idx]; d <= g.now {
		t.Fatalf("an idle open flow is not skipped: due %d, now %d", d, g.now)
	}
	checkDue(t, g)
}

// firesAt ticks g every sweep from just before deadline until fired
// holds, and fails unless it came at deadline or later, within sweepLate,
// with the flow skipped until then. g's outputs are returned.
func firesAt(t *testing.T, what string, g *gw, f *flow, deadline int64, fired func() bool) (toIn, toOut [][]byte) {
	t.Helper()
	if fired() {
		t.Fatalf("%s: fired before the test", what)
	}
	if g.now < deadline-int64(time.Second) {
		g.now = deadline - int64(time.Second) - sweepEvery
		g.tick(sweepEvery)
		if fired() {
			t.Fatalf("%s: fired a second before its deadline", what)
		}
		if d := g.e.due[f.idx]; d <= g.now {
			t.Fatalf("%s: flow not skipped a second before its deadline (due %d, now %d)", what, d, g.now)
		}
	}
	for g.now < deadline+sweepLate {
		in, out := g.tick(sweepEvery)
		toIn, toOut = append(toIn, in...), append(toOut, out...)
		checkDue(t, g)
		if fired() {
			if g.now < deadline {
				t.Fatalf("%s: fired at %v, %v before its deadline", what, time.Duration(g.now), time.Duration(deadline-g.now))
			}
			return toIn, toOut
		}
	}
	t.Fatalf("%s: not fired %v after its deadline", what, time.Duration(sweepLate))
	return nil, nil
}

func TestSweepDueIdleRefresh(t *testing.T) {
	cfg := Config{TEPs: testTEPs, RekeyAfter: -1}
	pr := handshakeOn(t, newGW(t, cfg), newGW(t, cfg))
	f := pr.ga.onlyFlow()
	skipped(t, pr.ga, f)
	c := pr.ga.e.Counters()
	deadline := max(f.last, f.enc.refreshed) + int64(pr.ga.e.cfg.IdleTimeout/2)
	firesAt(t, "idle refresh", pr.ga, f, deadline, func() bool { return c.IdleRefreshes.Load() != 0 })
}

func TestSweepDueRekeyByTime(t *testing.T) {
	cfg := Config{TEPs: testTEPs, RekeyAfter: 10 * time.Minute}
	pr := handshakeOn(t, newGW(t, cfg), newGW(t, cfg))
	f := pr.ga.onlyFlow()
	skipped(t, pr.ga, f)
	c := pr.ga.e.Counters()
	deadline := f.enc.genStart + int64(cfg.RekeyAfter)
	_, out := firesAt(t, "rekey by time", pr.ga, f, deadline, func() bool { return c.Rekeys.Load() != 0 })
	if len(out) != 1 {
		t.Fatalf("%d frames sent at the rekey, want its empty frame", len(out))
	}
}

// The second host probe: the first comes with the idle refresh.
func TestSweepDueHostProbe(t *testing.T) {
	cfg := Config{TEPs: testTEPs, RekeyAfter: -1, IdleTimeout: 20 * time.Minute}
	pr := handshakeOn(t, newGW(t, cfg), newGW(t, cfg))
	f := pr.ga.onlyFlow()
	skipped(t, pr.ga, f)
	c := pr.ga.e.Counters()
	first := int64(f.hostSeen)<<30 + pr.ga.e.probeAfter()
	firesAt(t, "first host probe", pr.ga, f, first, func() bool { return c.HostProbes.Load() == 1 })
	every := min(max(int64(cfg.IdleTimeout)/hostProbes, hostProbeMin), hostProbeMax)
	skipped(t, pr.ga, f)
	toIn, _ := firesAt(t, "second host probe", pr.ga, f, first+every, func() bool { return c.HostProbes.Load() == 2 })
	if len(toIn) != 1 {
		t.Fatalf("%d segments to a at the second probe, want the probe", len(toIn))
	}
}

// Bytes held past a hole go after bufIdle of silence (releaseIdle).
func TestSweepDueBufferRelease(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	pr.aSends(&h, []byte("lost"), pshF) // never reaches G_B
	past := pr.aSends(&h, []byte("held past the hole"), pshF)
	pr.toB(past)
	f := pr.gb.onlyFlow()
	if f.bufBytes() == 0 || f.rcv.held.n == 0 {
		t.Fatalf("G_B holds %d bytes of buffers, %d ranges: want the bytes past the hole", f.bufBytes(), f.rcv.held.n)
	}
	skipped(t, pr.gb, f)
	firesAt(t, "buffer release", pr.gb, f, f.last+bufIdle, func() bool { return f.bufBytes() == 0 })
}

// R rekeys while G_A skips the flow: G_A answers at once, or at its next
// sweep, not when its own timers come.
func TestSweepDueOwedAnswer(t *testing.T) {
	pr := handshakeOn(t, newGW(t, Config{TEPs: testTEPs, RekeyAfter: -1}), newGW(t, Config{TEPs: testTEPs, RekeyAfter: 10 * time.Minute}))
	f := pr.ga.onlyFlow()
	skipped(t, pr.ga, f)
	pr.gb.now = pr.gb.onlyFlow().enc.genStart + int64(10*time.Minute)
	pr.ga.now = pr.gb.now
	_, rekey := pr.gb.tick(sweepEvery)
	if len(rekey) != 1 || pr.gb.e.Counters().Rekeys.Load() != 1 {
		t.Fatalf("G_B's rekey by time: %d frames, %d rekeys", len(rekey), pr.gb.e.Counters().Rekeys.Load())
	}
	_, out := pr.ga.push(Outside, rekey[0])
	checkDue(t, pr.ga)
	for end := pr.ga.now + sweepLate; f.keys.Owed() && pr.ga.now < end; {
		_, o := pr.ga.tick(sweepEvery)
		out = append(out, o...)
		checkDue(t, pr.ga)
	}
	if f.keys.Owed() || len(out) == 0 {
		t.Fatalf("G_A owes the answer to R's rekey %v after it: %d frames out", time.Duration(sweepLate), len(out))
	}
}

// G_B's delivery ring fills while the sweep skips the flow: the bytes
// waiting for room (roomWait) have it visit at the next sweep.
func TestSweepDueRoomWait(t *testing.T) {
	pr := handshakeDeliverCap(t, 4096)
	f := pr.gb.onlyFlow()
	skipped(t, pr.gb, f)
	h := newHosts()
	var want, got []byte
	for i := range 8 {
		chunk := bytes.Repeat([]byte{byte('a' + i)}, 1000)
		want = append(want, chunk...)
		atB, _ := pr.toB(pr.aSends(&h, chunk, pshF))
		for _, s := range atB {
			if s.seq == isnA+1+uint32(len(got)) { // not a nudge (dupack.go)
				got = append(got, s.payload...)
			}
		}
	}
	if !f.rcv.roomWait {
		t.Fatal("no bytes wait for room in G_B's ring")
	}
	if d := pr.gb.e.due[f.idx]; d > pr.gb.now {
		t.Fatalf("bytes wait for room, and the sweep skips the flow until %d (now %d)", d, pr.gb.now)
	}
	checkDue(t, pr.gb)
	// The sweep's retry finds no room either: the flow stays due.
	for range 3 {
		pr.gb.tick(sweepEvery)
		if !f.rcv.roomWait {
			t.Fatal("room in G_B's ring with no ACK from b")
		}
		checkDue(t, pr.gb)
	}
	for round := 0; len(got) < len(want) && round < 8; round++ {
		got = append(got, pr.bAcksHas(&h, len(got))...)
		pr.gb.tick(sweepEvery)
		checkDue(t, pr.gb)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("b got %d of %d bytes", len(got), len(want))
	}
}

// idleUntil ticks g every sweep until end: the sweep visits f when its
// timers say, as in a long run.
func idleUntil(g *gw, end int64) {
	for g.now < end {
		g.tick(sweepEvery)
	}
}

// The idle refresh when it comes after a host probe: R's segment moved
// f.last, and L's silence (hostSeen) still sets the probes, one of which
// comes just before the refresh. The sweep, told the next probe 75 s on,
// sent the refresh late.
func TestSweepDueRefreshAfterProbe(t *testing.T) {
	cfg := Config{TEPs: testTEPs, RekeyAfter: -1, IdleTimeout: 20 * time.Minute}
	pr := handshakeOn(t, newGW(t, cfg), newGW(t, cfg))
	h := newHosts()
	f := pr.ga.onlyFlow()
	skipped(t, pr.ga, f)
	pr.gb.now = pr.ga.now + int64(5*time.Minute+30*time.Second)
	idleUntil(pr.ga, pr.gb.now)
	pr.tsB++
	_, wire := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF|pshF, 509, tsOpt(pr.tsB, pr.tsA), []byte("from b")))
	if len(wire) != 1 {
		t.Fatalf("%d frames for b's data", len(wire))
	}
	if toIn, _ := pr.ga.push(Outside, wire[0]); len(toIn) != 1 {
		t.Fatalf("%d segments to a for b's data", len(toIn))
	}
	c := pr.ga.e.Counters()
	deadline := max(f.last, f.enc.refreshed) + int64(cfg.IdleTimeout/2)
	if probe := int64(f.hostSeen)<<30 + pr.ga.e.probeAfter(); probe >= deadline {
		t.Fatalf("the first probe at %v, not before the refresh at %v", time.Duration(probe), time.Duration(deadline))
	}
	idleUntil(pr.ga, deadline-int64(2*time.Second))
	if c.HostProbes.Load() == 0 || c.IdleRefreshes.Load() != 0 {
		t.Fatalf("%d probes, %d refreshes 2 s before the refresh", c.HostProbes.Load(), c.IdleRefreshes.Load())
	}
	firesAt(t, "idle refresh after probes", pr.ga, f, deadline, func() bool { return c.IdleRefreshes.Load() != 0 })
}

// The appliance's own frame (here its rekey by time) that R does not
// acknowledge is resent at ownedDue, its host being no part of it.
func TestSweepDueOwnedResend(t *testing.T) {
	cfg := Config{TEPs: testTEPs, RekeyAfter: 10 * time.Minute}
	pr := handshakeOn(t, newGW(t, cfg), newGW(t, cfg))
	f := pr.ga.onlyFlow()
	skipped(t, pr.ga, f)
	c := pr.ga.e.Counters()
	firesAt(t, "rekey by time", pr.ga, f, f.enc.genStart+int64(cfg.RekeyAfter), func() bool { return c.Rekeys.Load() != 0 })
	if f.enc.ownedDue == 0 {
		t.Fatal("the rekey frame is not the appliance's own")
	}
	if d := pr.ga.e.due[f.idx]; d <= pr.ga.now || d > f.enc.ownedDue {
		t.Fatalf("skipped until %d (now %d), want until the resend at %d", d, pr.ga.now, f.enc.ownedDue)
	}
	firesAt(t, "owned frame resent", pr.ga, f, f.enc.ownedDue, func() bool { return c.FrameRetransmits.Load() != 0 })
}

// A packet-too-big about a frame in flight lowers the segment size while
// the sweep skips the flow for an hour: it comes back after pmtuExpiry.
func TestSweepDuePMTUExpiry(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	orig := pr.aSends(&h, bytes.Repeat([]byte("0123456789abcdef"), 88)[:1400], pshF) // never acknowledged
	f := pr.ga.onlyFlow()
	skipped(t, pr.ga, f)
	idleUntil(pr.ga, f.last+bufIdle+int64(time.Second))
	if d := pr.ga.e.due[f.idx]; d <= pr.ga.now+int64(pmtuExpiry) {
		t.Fatalf("skipped until %v, want past the PTB's expiry", time.Duration(d))
	}
	if _, out := pr.ga.push(Outside, ptb(outsideRouter, addrA.Addr(), 1000, tcpFrameFrom(orig[0]), 548)); len(out) != 0 || f.pmssR == 0 {
		t.Fatalf("the PTB in flight: %d frames out, pmssR %d", len(out), f.pmssR)
	}
	checkDue(t, pr.ga)
	c := pr.ga.e.Counters()
	firesAt(t, "PMTU expiry", pr.ga, f, f.pmtuAt+pmtuExpiry, func() bool { return c.PMTUExpired.Load() != 0 })
}

// R rekeys while its window has no room for G_A's answer (b's window is
// closed): the answer stays owed, and the sweep visits the flow at every
// pass until it goes, at b's next window.
func TestSweepDueOwedAnswerWaitsForWindow(t *testing.T) {
	pr := handshakeOn(t, newGW(t, Config{TEPs: testTEPs, RekeyAfter: -1}), newGW(t, Config{TEPs: testTEPs, RekeyAfter: 10 * time.Minute}))
	h := newHosts()
	f := pr.ga.onlyFlow()
	pr.tsB++
	_, wire := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF, 0, tsOpt(pr.tsB, pr.tsA), nil))
	for _, w := range wire {
		pr.ga.push(Outside, w)
	}
	if f.emptyFrameFits() {
		t.Fatalf("R's window still has room (%d frames from G_B for b's closed window)", len(wire))
	}
	skipped(t, pr.ga, f)
	pr.gb.now = pr.gb.onlyFlow().enc.genStart + int64(10*time.Minute)
	pr.ga.now = pr.gb.now
	_, rekey := pr.gb.tick(sweepEvery)
	if len(rekey) != 1 {
		t.Fatalf("G_B's rekey by time: %d frames", len(rekey))
	}
	if pr.ga.push(Outside, rekey[0]); !f.keys.Owed() {
		t.Fatal("G_A answered R's rekey past R's closed window")
	}
	for range sweepRounds + 1 {
		pr.ga.tick(sweepEvery)
		checkDue(t, pr.ga)
	}
	pr.tsB++
	_, wire = pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF, 509, tsOpt(pr.tsB, pr.tsA), nil))
	var out [][]byte
	for _, w := range wire {
		_, o := pr.ga.push(Outside, w)
		out = append(out, o...)
	}
	for end := pr.ga.now + sweepLate; f.keys.Owed() && pr.ga.now < end; {
		_, o := pr.ga.tick(sweepEvery)
		out = append(out, o...)
	}
	if f.keys.Owed() || len(out) == 0 {
		t.Fatalf("R's window opened: owed %v, %d frames", f.keys.Owed(), len(out))
	}
}

// Host A's resumed session whose far side sends bytes that make no frame
// (a middlebox's, not G_B's): it ends at the handshake timeout after them
// (firstFrameLate), the sweep skipping it meanwhile.
func TestSweepDueFirstFrameLate(t *testing.T) {
	cfg := Config{TEPs: testTEPs, HandshakeTimeout: 30 * time.Second}
	ga, gb := newGWCache(t, cfg), newGWCache(t, cfg)
	connect(t, ga, gb, 40001)
	ap := netip.AddrPortFrom(addrA.Addr(), 40002)
	connectAddrs(t, ga, gb, ap, addrB)
	f := ga.e.flows[flowKey{in: ap, out: addrB}]
	if f == nil || f.sess == nil || !f.sess.Resumed {
		t.Fatal("no resumed session")
	}
	skipped(t, ga, f)
	// A frame header of 64 bytes, and no more of it.
	ga.push(Outside, tcpFrame(addrB, ap, isnB+1, isnA+1, ackF|pshF, 509, tsOpt(10, 3), []byte{0, 0x40, 0}))
	if f.enc.initDue <= 0 {
		t.Fatalf("R's first bytes set no deadline for a frame (initDue %d)", f.enc.initDue)
	}
	checkDue(t, ga)
	c := ga.e.Counters()
	failures := c.HandshakeFailures.Load()
	firesAt(t, "first frame late", ga, f, f.enc.initDue, func() bool { return c.HandshakeFailures.Load() != failures })
}
