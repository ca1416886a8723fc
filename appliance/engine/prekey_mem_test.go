package engine

import (
	"net/netip"
	"testing"
	"time"
)

// Host data queued before the keys exist (pre-key queue) is charged to the
// flow memory budget; once sealed the queue's buffer goes, and its bytes go
// back to the budget with it. Every byte is given back when the flows go.
func TestPreKeyQueueGivesMemoryBack(t *testing.T) {
	m := NewMemory(64 << 20)
	ga, gb := newGWMem(t, Config{TEPs: testTEPs}, m), newGWMem(t, Config{TEPs: testTEPs}, m)
	a := netip.AddrPortFrom(addrA.Addr(), 40001)
	_, o := ga.push(Inside, tcpFrame(a, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	gb.push(Outside, one(t, "SYN", o).frame())
	_, o = gb.push(Inside, tcpFrame(addrB, a, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
	ga.push(Outside, one(t, "SYN-ACK", o).frame())
	_, third := ga.push(Inside, tcpFrame(a, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(2, 2), nil))
	// a's request before the key exchange has finished: queued.
	_, o = ga.push(Inside, tcpFrame(a, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(3, 2), make([]byte, 3000)))
	none(t, "pre-key data on the wire", o)
	if ga.e.Counters().PreKeyQueued.Load() != 1 {
		t.Fatal("the data was not queued before the keys")
	}
	for _, f := range third {
		_, back := gb.push(Outside, f)
		for _, b := range back {
			_, more := ga.push(Outside, b)
			for _, m := range more {
				gb.push(Outside, m)
			}
		}
	}
	for _, g := range []*gw{ga, gb} {
		g.now += int64(3 * time.Hour)
		for i := 0; i < 30 && g.e.NumFlows() > 0; i++ {
			g.tick(int64(10 * time.Millisecond))
		}
		if g.e.NumFlows() != 0 {
			t.Fatalf("%d flows left", g.e.NumFlows())
		}
	}
	if m.Used() != 0 {
		t.Fatalf("%d bytes still charged with no flows", m.Used())
	}
}
