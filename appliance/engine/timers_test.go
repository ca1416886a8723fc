package engine

import (
	"net/netip"
	"testing"
	"time"
)

// Many flows: sweeps visit a slice of the table each time and still expire
// every stale flow within a few hundred milliseconds of its deadline; the
// flow list stays consistent with the map; the cap is enforced and counted.
func TestSweepExpiresManyFlows(t *testing.T) {
	g := newGW(t, Config{TEPs: testTEPs, MaxFlows: 3000, MaxEmbryonic: 3000})
	for i := 0; i < 3100; i++ {
		a := netip.AddrPortFrom(addrA.Addr(), uint16(10000+i))
		g.e.Handle(0, Inside, tcpFrame(a, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil), g.tx)
		g.out.take()
	}
	// All are handshakes: the newest 3000 stay (flood.go).
	if g.e.NumFlows() != 3000 || g.e.Counters().EmbryonicEvicted.Load() != 100 {
		t.Fatalf("flows %d, evicted %d", g.e.NumFlows(), g.e.Counters().EmbryonicEvicted.Load())
	}
	g.now = int64(DefaultHandshakeTimeout) + 1
	for i := 0; i < 25 && g.e.NumFlows() > 0; i++ {
		g.tick(int64(10 * time.Millisecond))
	}
	if g.e.NumFlows() != 0 || len(g.e.list) != 0 {
		t.Fatalf("%d flows (%d listed) left after 250 ms of sweeps", g.e.NumFlows(), len(g.e.list))
	}
}

// Closed encrypted connections (both FINs acknowledged) and plain records
// only wait for their removal, and the sweep skips them until it is due
// (sweepDue): they stay until then and go within a sweep round after; a
// plain record whose connection sends again is kept; and a Reconfigure
// that shortens a timer applies to records already skipped.
func TestSweepClosedAndPlainRecords(t *testing.T) {
	cfg := Config{TEPs: testTEPs, HandshakeTimeout: 5 * time.Second, PlainRetention: 3 * time.Second}
	ga, gb := newGW(t, cfg), newGW(t, cfg)
	const n = 40
	for i := range n {
		exchangeAndClose(t, ga, gb, netip.AddrPortFrom(addrA.Addr(), uint16(20000+i)))
	}
	// Two plain connections (no ENO in the SYN-ACK).
	plain := func(port uint16) netip.AddrPort {
		ap := netip.AddrPortFrom(addrA.Addr(), port)
		ga.push(Inside, tcpFrame(ap, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
		ga.push(Outside, tcpFrame(addrB, ap, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
		ga.push(Inside, tcpFrame(ap, addrB, isnA+1, isnB+1, ackF, 502, nil, nil))
		return ap
	}
	p1, p2 := plain(30001), plain(30002)
	if got := ga.e.NumFlows(); got != n+2 {
		t.Fatalf("%d records, want %d", got, n+2)
	}
	start := ga.now
	step := int64(10 * time.Millisecond)
	tickUntil := func(end int64) {
		for ga.now < end {
			ga.tick(step)
		}
	}
	// Past the plain retention, with p2 sending again at 2 s (and 4.5 s):
	// p1 goes within a sweep round (200 ms), p2 stays, and so do the
	// closed ones.
	tickUntil(start + int64(2*time.Second))
	ga.push(Inside, tcpFrame(p2, addrB, isnA+1, isnB+1, ackF|pshF, 502, nil, []byte("x")))
	tickUntil(start + int64(3*time.Second+300*time.Millisecond))
	if _, ok := ga.e.Lookup(p1, addrB); ok {
		t.Fatal("plain record kept past its retention")
	}
	if _, ok := ga.e.Lookup(p2, addrB); !ok {
		t.Fatal("plain record of a connection that sent 1.3 s ago removed")
	}
	if got := ga.e.NumFlows(); got != n+1 {
		t.Fatalf("%d records at 3.3 s, want the %d closed ones and p2", got, n)
	}
	// The closed ones stay HandshakeTimeout after their close.
	tickUntil(start + int64(4*time.Second+500*time.Millisecond))
	ga.push(Inside, tcpFrame(p2, addrB, isnA+2, isnB+1, ackF|pshF, 502, nil, []byte("y")))
	tickUntil(start + int64(4*time.Second+800*time.Millisecond))
	if got := ga.e.NumFlows(); got != n+1 {
		t.Fatalf("%d records at 4.8 s, want %d", got, n+1)
	}
	tickUntil(start + int64(5*time.Second+300*time.Millisecond))
	if got := ga.e.NumFlows(); got != 1 {
		t.Fatalf("%d records at 5.3 s, want p2 only", got)
	}
	if len(ga.e.list) != 1 || len(ga.e.due) != 1 {
		t.Fatalf("list %d, due %d, want 1", len(ga.e.list), len(ga.e.due))
	}

	// gb's closed records wait for 5 s too (a sweep round has seen them);
	// an IdleTimeout of 1 s set now takes them within about a second, not
	// at their close deadline.
	for range 30 {
		gb.tick(step)
	}
	cfg.IdleTimeout = time.Second
	if err := gb.e.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	deadline := gb.now + int64(1500*time.Millisecond)
	for gb.now < deadline && gb.e.NumFlows() > 0 {
		gb.tick(step)
	}
	if got := gb.e.NumFlows(); got != 0 {
		t.Fatalf("%d closed records left 1.5 s after IdleTimeout became 1 s", got)
	}
}

// BenchmarkTickClosed is the sweep's cost with a table of closed
// connections waiting out their HandshakeTimeout, as at a high connection
// rate (3,000 connections per second keep 90,000 such records): per Tick
// that runs a sweep, which visits a twentieth of the table.
func BenchmarkTickClosed(b *testing.B) {
	const n = 90000
	e, err := New(Config{TEPs: testTEPs, MaxFlows: n}, Deps{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		k := flowKey{in: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 40000), out: addrB}
		f := e.newFlow(0, k, Opportunistic)
		f.state, f.closeAt = stOpen, int64(time.Hour)
	}
	var tx [2]TxSink
	now := int64(time.Second)
	for b.Loop() {
		now += sweepEvery
		e.Tick(now, tx)
	}
	if e.NumFlows() != n {
		b.Fatalf("%d flows left", e.NumFlows())
	}
}

// A key exchange that times out is a failed handshake. G_B took a's third
// segment and waits for Init1, which never comes: the timeout aborted the
// flow but counted it nowhere among the handshakes (only the Init
// retransmission limit counted), so handshake_failures under-reported.
func TestKeyExchangeTimeoutCounted(t *testing.T) {
	cfg := Config{TEPs: testTEPs, HandshakeTimeout: 2 * time.Second}
	ga, gb := newGW(t, cfg), newGW(t, cfg)
	o := toThirdSegment(ga, gb)
	gb.push(Outside, o[0]) // the third segment; Init1 (o[1]) is lost
	gb.e.Flows(func(f FlowInfo) {
		if f.State != "key-exchange" {
			t.Fatalf("G_B's flow is %s, want key-exchange", f.State)
		}
	})
	for range 40 {
		gb.tick(int64(100 * time.Millisecond))
	}
	if n := gb.e.NumFlows(); n != 0 {
		t.Fatalf("%d flows after the handshake timeout", n)
	}
	if n := gb.e.Counters().HandshakeFailures.Load(); n != 1 {
		t.Fatalf("handshake failures %d, want 1", n)
	}
}
