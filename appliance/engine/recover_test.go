package engine

import (
	"bytes"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet"
)

// panicking is a KeyLog hook that panics, as a bug in the engine would, at
// the point where a flow's keys are in place.
func panicking(KeyLogEntry) bool { panic("injected engine bug") }

// A panic in the middle of an encrypted connection's data (here the key
// log hook, at a rekey) costs that connection, not the daemon: the frame
// is dropped, the panic counted, the record dropped, and its tuple stays
// negotiated, so the host's next segment is reset as a stray instead of
// passing in plaintext. The engine carries on: a new connection on the
// same tuple is encrypted again.
func TestPanicCostsOnlyItsFlow(t *testing.T) {
	pr := handshake(t)
	pr.ga.e.deps.KeyLog = panicking
	pr.ga.panics = 1
	pr.ga.e.cfg.RekeyBytes = 2000
	h := newHosts()
	chunk := bytes.Repeat([]byte{'p'}, 1400)
	var wire []segv
	for i := 0; i < 3 && pr.ga.e.Counters().Panics.Load() == 0; i++ {
		wire = append(wire, pr.aSends(&h, chunk, pshF)...)
	}
	c := pr.ga.e.Counters()
	if c.Panics.Load() != 1 {
		t.Fatalf("panics %d, want 1 (no rekey reached the key log?)", c.Panics.Load())
	}
	if n := pr.ga.e.NumFlows(); n != 0 {
		t.Fatalf("%d flows after the panic, want 0", n)
	}
	for _, w := range wire {
		if bytes.Contains(w.payload, chunk[:64]) {
			t.Fatal("plaintext on the wire")
		}
	}
	// a goes on: its segment is reset, nothing leaves.
	wire, toA := pr.aSendsAt(&h, h.aNext, chunk, pshF)
	// Only the stray reset's probe (strayReset): an empty ACK.
	if len(wire) > 1 || len(wire) == 1 && (len(wire[0].payload) != 0 || wire[0].flags != ackF) {
		t.Fatalf("to the wire after the panic: %+v, want at most an empty ACK", wire)
	}
	if len(toA) != 1 || toA[0].flags&packet.FlagRST == 0 || c.StrayResets.Load() != 1 {
		t.Fatalf("to a: %+v, stray resets %d; want one RST", toA, c.StrayResets.Load())
	}
	// The engine still works: a new connection on the tuple.
	pr.ga.e.deps.KeyLog = nil
	pr.gb.undrained = true // it still holds the old connection
	handshakeOn(t, pr.ga, newGW(t, Config{TEPs: testTEPs}))
}

// A panic while the key exchange completes (B computing its session from
// Init1, after it sent Init2) drops G_B's record and keeps the tuple
// negotiated: A's Init1, resent, is not passed to host b as data (garbage
// for b) but answered with a reset, and so is b's next segment.
func TestPanicInKeyExchangeNeverPassesInit1(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	gb := newGWDeps(t, Config{TEPs: testTEPs}, Deps{KeyLog: panicking})
	gb.panics = 1
	o := toThirdSegment(ga, gb)
	third, init1 := o[0], o[1]
	gb.push(Outside, third)
	toIn, toOut := gb.push(Outside, init1)
	// (Init2 went out before the key log was called; the panic came after.)
	if gb.e.Counters().Panics.Load() != 1 || len(toIn) != 0 || gb.e.NumFlows() != 0 {
		t.Fatalf("panics %d, %d frames to b, %d flows; want 1, 0, 0", gb.e.Counters().Panics.Load(), len(toIn), gb.e.NumFlows())
	}
	toIn, toOut = gb.push(Outside, init1) // A resends it
	for _, f := range toIn {              // b gets the stray reset's probe at most
		if s := parse(t, f); len(s.payload) != 0 {
			t.Fatalf("Init1 resent after the panic reached b: %d bytes", len(s.payload))
		}
	}
	if len(toOut) != 1 || parse(t, toOut[0]).flags&packet.FlagRST == 0 {
		t.Fatalf("answer to the resent Init1: %d frames, want an RST", len(toOut))
	}
	toIn, toOut = gb.push(Inside, tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF|pshF, 509, tsOpt(3, 2), []byte("hello")))
	if len(toIn) != 1 || parse(t, toIn[0]).flags&packet.FlagRST == 0 {
		t.Fatalf("b's data after the panic: %d frames to b, want an RST", len(toIn))
	}
	for _, f := range toOut { // the probe of the wire end at most
		if s := parse(t, f); len(s.payload) != 0 {
			t.Fatalf("b's data left in plaintext after the panic: %q", s.payload)
		}
	}
	ga.undrained = true // its Init1 was never answered; not the point here
}

// A panic in a timer (Tick) is recovered too, and drops the flow the timer
// worked on.
func TestPanicInTickRecovered(t *testing.T) {
	pr := handshake(t)
	pr.ga.e.deps.KeyLog = panicking
	pr.ga.panics = 1
	pr.ga.e.cfg.RekeyAfter = 1 // due at once
	pr.ga.tick(int64(sweepEvery))
	pr.ga.tick(int64(sweepEvery))
	if c := pr.ga.e.Counters().Panics.Load(); c != 1 {
		t.Fatalf("panics %d, want 1", c)
	}
	if n := pr.ga.e.NumFlows(); n != 0 {
		t.Fatalf("%d flows after the panic, want 0", n)
	}
	pr.gb.undrained = true
}

// panicSink is a TxSink whose Buffer panics, as a bug on the way out would.
type panicSink struct{}

func (panicSink) Buffer() []byte { panic("injected engine bug") }
func (panicSink) Commit(int)     {}

// A panic in Tick outside the sweep of flows (here: sending a held ACK,
// flushHeldAcks) costs the flow it was for and leaves nothing half done:
// later Ticks run. Before, the held ACKs list kept the entry taken out, and
// every later Tick panicked on it: the worker's timers never ran again
// (a review of the recovery).
func TestPanicFlushingHeldAckLeavesTicksWorking(t *testing.T) {
	pr := handshake(t)
	g := pr.ga
	g.panics = 1
	f := g.onlyFlow()
	f.rcv.ackWait, f.rcv.releaseEnd, f.rcv.lastAckW = ackHeldTick|ackListed, 1, -1 // R is owed an ACK, due at this Tick
	g.e.ackHeld = append(g.e.ackHeld, f)
	g.e.Tick(g.now, [2]TxSink{g.tx[Inside], panicSink{}})
	if n := g.e.Counters().Panics.Load(); n != 1 {
		t.Fatalf("panics %d, want 1", n)
	}
	if n := g.e.NumFlows(); n != 0 {
		t.Fatalf("%d flows: the flow whose ACK panicked was not dropped", n)
	}
	for range 10 {
		g.tick(int64(time.Second))
	}
	if n := g.e.Counters().Panics.Load(); n != 1 {
		t.Fatalf("panics %d after ten more Ticks, want 1: the engine was left broken", n)
	}
	pr.gb.undrained = true // it still holds the connection
}

// Key exchanges the pool finished together: a panic in one's sessionDone
// costs that one only; the others come out encrypted. Before, the panic
// ended poll's batch, and the jobs after it were lost: their flows waited
// in key exchange, kexBusy, until they expired.
func TestPanicInOneKeyExchangeOthersComplete(t *testing.T) {
	pool, release := busyPool(t)
	ga := newGW(t, Config{TEPs: testTEPs})
	calls := 0
	gb := newGWDeps(t, Config{TEPs: testTEPs}, Deps{Pool: pool, KeyLog: func(KeyLogEntry) bool {
		if calls++; calls == 1 {
			panic("injected engine bug")
		}
		return true
	}})
	gb.panics = 1
	ga.undrained, gb.undrained = true, true
	kexFlows(t, ga, gb, 3) // G_B's three key exchanges wait behind the blocker
	release()
	deadline := time.Now().Add(5 * time.Second)
	for gb.e.Counters().Encrypted.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		gb.tick(1)
	}
	if n, p := gb.e.Counters().Encrypted.Load(), gb.e.Counters().Panics.Load(); n != 2 || p != 1 {
		t.Fatalf("encrypted %d, panics %d; want 2 and 1", n, p)
	}
	if n := gb.e.NumFlows(); n != 2 {
		t.Fatalf("%d flows, want the two that completed", n)
	}
}
