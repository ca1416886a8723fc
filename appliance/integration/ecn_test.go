package integration

import (
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestECN: hosts that negotiate ECN (RFC 3168, Linux's tcp_ecn=1) across
// encrypted connections, with rtr marking 2 % of the ECN-capable packets
// CE both ways, as an AQM on the untrusted path would instead of dropping
// them. The marks must reach the receiving hosts and their ECE echoes the
// senders (appliance/engine/ecn.go). Before, every segment the appliances
// built left Not-ECT, so no router could mark one and the hosts never
// heard of congestion but through loss. 8 MB each way over IPv4 and IPv6.
func TestECN(t *testing.T) {
	e := newEncEnv(t, 88)
	for _, n := range []topology.Node{topology.HostA, topology.HostB} {
		if out, err := e.topo.Run(n, "sysctl", "-qw", "net.ipv4.tcp_ecn=1"); err != nil {
			t.Fatalf("%s: %v\n%s", n, err, out)
		}
	}
	mark := [][]string{
		{"add", "table", "inet", "tcpinc_ce"},
		{"add", "chain", "inet", "tcpinc_ce", "forward", "{ type filter hook forward priority 0; }"},
		{"add", "rule", "inet", "tcpinc_ce", "forward", "ip", "ecn", "{ ect0, ect1 }", "numgen", "random", "mod", "100", "<", "2", "ip", "ecn", "set", "ce", "counter"},
		{"add", "rule", "inet", "tcpinc_ce", "forward", "ip6", "ecn", "{ ect0, ect1 }", "numgen", "random", "mod", "100", "<", "2", "ip6", "ecn", "set", "ce", "counter"},
	}
	for _, args := range mark {
		if out, err := e.topo.Run(topology.Router, append([]string{"nft"}, args...)...); err != nil {
			t.Fatalf("nft %v: %v\n%s", args, err, out)
		}
	}
	t.Cleanup(func() { _, _ = e.topo.Run(topology.Router, "nft", "delete", "table", "inet", "tcpinc_ce") })
	type counts struct{ ect4, ect6, ce, echoed uint64 }
	read := func(n topology.Node) counts {
		return counts{
			ect4:   e.nstat(t, n, "IpExtInECT0Pkts"),
			ect6:   e.nstat(t, n, "Ip6InECT0Pkts"),
			ce:     e.nstat(t, n, "IpExtInCEPkts") + e.nstat(t, n, "Ip6InCEPkts"),
			echoed: e.nstat(t, n, "TcpExtTCPDeliveredCE"),
		}
	}
	a0, b0 := read(topology.HostA), read(topology.HostB)
	e.encryptedToB(t, e.streamB, 5001, 8<<20, 2*time.Minute)
	a1, b1 := read(topology.HostA), read(topology.HostB)
	for _, h := range []struct {
		name     string
		from, to counts
	}{{"hA", a0, a1}, {"hB", b0, b1}} {
		ect4, ect6 := h.to.ect4-h.from.ect4, h.to.ect6-h.from.ect6
		ce, echoed := h.to.ce-h.from.ce, h.to.echoed-h.from.echoed
		t.Logf("%s received %d ECT(0) packets over IPv4, %d over IPv6 and %d CE; %d of its packets were acknowledged with ECE", h.name, ect4, ect6, ce, echoed)
		// Every data segment of either family arrives ECT(0): the
		// codepoint is where IPv4's TOS and IPv6's traffic class keep it.
		if ect4 < 500 || ect6 < 500 || ce == 0 || echoed == 0 {
			t.Errorf("%s: ECT(0) received %d (IPv4) and %d (IPv6), %d CE, %d packets acknowledged with ECE: the ECN signals did not cross", h.name, ect4, ect6, ce, echoed)
		}
	}
}
