package integration

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestSYNsWithENODropped: the untrusted network drops every SYN that
// carries a TCP-ENO option (kind 69), as some middleboxes drop segments
// with options they do not know. Plain TCP crosses it; so must a
// connection through the appliances: gwA sends hA's first SYNs with
// TCP-ENO (engine.syns_with_eno, 3 by default), lets the next
// retransmission go without it (RFC 8547 §4.6), and the connection stays
// plain, counted as the syn_retries fallback. Before, every
// retransmission carried the option and the connection never opened.
func TestSYNsWithENODropped(t *testing.T) {
	e := newEncEnv(t, 92)
	const rules = `table inet tcpinc_enodrop {
  chain forward {
    type filter hook forward priority -20; policy accept;
    tcp flags & (syn | ack) == syn tcp option 69 exists counter drop
  }
}
`
	if err := netns.Nft(e.topo.NS(topology.Router), rules); err != nil {
		t.Fatal(err)
	}
	dst := netip.AddrPortFrom(e.topo.Addr(topology.HostB).V4, 5001)
	const n = 1 << 20
	var r result
	d, ok := e.measure(t, func() { r = e.transfer(t, topology.HostA, dst, e.streamB, n, n, time.Minute) })
	checkTransfer(t, r, n, n)
	dropped, err := e.topo.RouterCounted("tcpinc_enodrop")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the transfer took %v; rtr dropped %d SYNs with TCP-ENO", r.elapsed.Round(time.Millisecond), dropped)
	if dropped != 3 {
		t.Errorf("rtr dropped %d SYNs with TCP-ENO, want the 3 that engine.syns_with_eno lets out with it", dropped)
	}
	if !ok {
		return
	}
	a := d[topology.GwA]
	if a.Fallbacks["syn_retries"] != 1 {
		t.Errorf("gwA: fallbacks %v; want one syn_retries", nonZero(a.Fallbacks))
	}
}
