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
