package engine

import (
	"net/netip"
	"testing"
)

// A retransmitted SYN of a connection left plain from its SYN is the same
// connection: it passes, and the counts (fallbacks, flows) and the record
// (its ID, its age) stay as they were. Before, every SYN of a host retrying
// a dead bypass server, or of a far side without TCP-ENO whose SYN-ACK was
// lost, made a new record and counted one more fallback: the fallback
// figures counted SYNs, not connections (visibility review).
func TestRetransmittedSYNOfPlainConnectionCountedOnce(t *testing.T) {
	pol := []PolicyRule{{Prefix: netip.MustParsePrefix(addrB.Addr().String() + "/32"), Policy: Bypass}}
	g := newGW(t, Config{TEPs: testTEPs, Policies: pol})
	for range 4 { // a's SYN, unanswered, three more times
		if _, out := g.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil)); len(out) != 1 {
			t.Fatalf("bypass SYN: %d frames out", len(out))
		}
		g.now += 1e9
	}
	far := netip.MustParseAddrPort("198.51.100.7:5000")
	for range 3 { // a far SYN without TCP-ENO whose SYN-ACK is lost
		if in, _ := g.push(Outside, tcpFrame(far, addrA, 777, 0, synF, 64240, synOpts(1460, 1), nil)); len(in) != 1 {
			t.Fatalf("far SYN: %d frames in", len(in))
		}
		g.now += 1e9
	}
	c := g.e.Counters()
	if b, n, fl := c.Fallbacks[FallbackBypass].Load(), c.Fallbacks[FallbackNoENO].Load(), c.Flows.Load(); b != 1 || n != 1 || fl != 2 {
		t.Fatalf("fallbacks bypass %d, no_eno %d, flows %d; want 1, 1, 2", b, n, fl)
	}
	var ids []uint64
	g.e.Flows(func(fi FlowInfo) { ids = append(ids, fi.ID) })
	if len(ids) != 2 || ids[0] != 1 || ids[1] != 2 {
		t.Fatalf("flow IDs %v, want [1 2]", ids)
	}
	// A new connection on the tuple (another ISN) is one.
	g.push(Inside, tcpFrame(addrA, addrB, isnA+100000, 0, synF, 64240, synOpts(1460, 1), nil))
	if b := c.Fallbacks[FallbackBypass].Load(); b != 2 {
		t.Fatalf("fallbacks bypass %d after a new SYN, want 2", b)
	}
}
