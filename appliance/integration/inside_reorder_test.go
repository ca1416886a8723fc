package integration

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestInsideReorder: the inside link between hA and gwA reorders and
// duplicates frames (the impairment bump there: 3 % held back behind up to
// three later ones, 0.5 % sent twice), as a LAG or a multi-queue path on
// the inside may. Plain TCP carries that at full rate; the appliance seals
// hA's bytes in stream order, so it holds the segments that overtook an
// earlier one and seals them once the hole arrives
// (appliance/engine/hosthold.go). 100 MB each way arrive exact and
// encrypted; gwA held segments and dropped none for a hole (host_gap,
// which counted every such segment before it held them).
func TestInsideReorder(t *testing.T) {
	e := newEncEnvOpts(t, encOpts{net: 98, inside: true})
	e.startBump(t, "--reorder", "0.03", "--hold-frames", "3", "--hold-time", "5ms", "--dup", "0.005", "--seed", "13")
	dst := netip.AddrPortFrom(e.topo.Addr(topology.HostB).V4, 5001)
	const n = 100 << 20
	var r result
	d, ok := e.measure(t, func() { r = e.transfer(t, topology.HostA, dst, e.streamB, n, n, 4*time.Minute) })
	checkTransfer(t, r, n, n)
	e.bumpReorderedAndDuplicated(t, e.startBump(t))
	if !ok {
		return
	}
	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		encryptedDelta(t, gw, d[gw], 1)
		noWindowDrops(t, gw, d[gw])
	}
	a := d[topology.GwA]
	if a.Drops["host_gap"] != 0 {
		t.Errorf("gwA dropped %d of hA's segments past a hole (drops %v, events %v)", a.Drops["host_gap"], nonZero(a.Drops), nonZero(a.Events))
	}
	if a.Events["host_segments_held"] == 0 {
		t.Errorf("gwA held none of hA's segments: the inside link did not reorder them (events %v)", nonZero(a.Events))
	}
	t.Logf("gwA held %d of hA's segments past a hole, answered with %d duplicate ACKs (its own and toward the far side)",
		a.Events["host_segments_held"], a.DupACKs)
}
