package integration

import (
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestHostBlackHoleDetection: the untrusted link narrows to 1300 bytes
// both ways at rtr, and rtr's packet-too-big messages are dropped (a
// filter common on the way, above all for ICMPv6): a path-MTU black hole.
// The hosts run net.ipv4.tcp_mtu_probing=1 (RFC 4821 black-hole detection,
// for IPv6 too): after a few retransmission timeouts they lower their
// segment size and resend, and plain TCP between them recovers. The
// appliances must resend the frames they sealed before in segments that
// fit the hosts' new size plus the frame overhead (engine/pmtu.go,
// hostResized). A transfer each way, over IPv4 and then IPv6, must
// complete intact and encrypted, rtr must have dropped packet-too-big
// messages, both appliances must have counted host_resized, and the hosts
// must have needed few retransmission timeouts, as many as plain TCP
// needs here (5 in a transfer; 20 allowed): the appliances' frames follow
// the hosts' segments, and their resends do not hide the path from the
// hosts. Before, the frame at the host's SND.UNA was resent whole and
// dropped every time: the client gave up after 30 s without progress.
// (With new frames cut at the far side's MSS from the super-segments a
// host's port coalesced, or resends left small after a host resent a short
// segment, every flight cost a timeout: 70 in one transfer.)
func TestHostBlackHoleDetection(t *testing.T) {
	e := newEncEnvOpts(t, encOpts{net: 78})
	for _, n := range []topology.Node{topology.HostA, topology.HostB} {
		if out, err := e.topo.Run(n, "sysctl", "-qw", "net.ipv4.tcp_mtu_probing=1"); err != nil {
			t.Fatalf("%s: sysctl: %v\n%s", n, err, out)
		}
	}
	a, b := e.topo.Addr(topology.HostA), e.topo.Addr(topology.HostB)
	for _, args := range [][]string{
		{"ip", "-4", "route", "replace", b.V4.String() + "/32", "dev", topology.RouterToB, "mtu", "lock", "1300"},
		{"ip", "-4", "route", "replace", a.V4.String() + "/32", "dev", topology.RouterToA, "mtu", "lock", "1300"},
		{"ip", "-6", "route", "replace", b.V6.String() + "/128", "dev", topology.RouterToB, "mtu", "lock", "1300"},
		{"ip", "-6", "route", "replace", a.V6.String() + "/128", "dev", topology.RouterToA, "mtu", "lock", "1300"},
		{"nft", "add table inet tei_bh"},
		{"nft", "add chain inet tei_bh out { type filter hook output priority 0 ; }"},
		{"nft", "add rule inet tei_bh out icmp type destination-unreachable icmp code frag-needed counter drop"},
		{"nft", "add rule inet tei_bh out icmpv6 type packet-too-big counter drop"},
	} {
		if out, err := e.topo.Run(topology.Router, args...); err != nil {
			t.Fatalf("rtr: %v: %v\n%s", args, err, out)
		}
	}
	const n = 2 << 20
	timeouts := func() uint64 {
		return e.nstat(t, topology.HostA, "TcpExtTCPTimeouts") + e.nstat(t, topology.HostB, "TcpExtTCPTimeouts")
	}
	d, ok := e.measure(t, func() {
		for _, dst := range []netip.Addr{b.V4, b.V6} {
			before := timeouts()
			r := e.transfer(t, topology.HostA, netip.AddrPortFrom(dst, 5001), e.streamB, n, n, 90*time.Second)
			checkTransfer(t, r, n, n)
			if to := timeouts() - before; to > 20 {
				t.Errorf("to %v: the hosts had %d retransmission timeouts, want no more than 20", dst, to)
			}
		}
	})
	if ok {
		for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
			encryptedDelta(t, gw, d[gw], 2)
			if d[gw].Events["host_resized"] == 0 {
				t.Errorf("%s: host_resized 0: no host's retransmission showed a lower segment size", gw)
			}
		}
	}
	out, err := e.topo.Run(topology.Router, "nft", "list", "chain", "inet", "tei_bh", "out")
	if err != nil {
		t.Fatalf("rtr: nft list: %v\n%s", err, out)
	}
	dropped := regexp.MustCompile(`counter packets (\d+)`).FindAllStringSubmatch(out, -1)
	if len(dropped) != 2 {
		t.Fatalf("rtr: nft counters not found:\n%s", out)
	}
	for i, fam := range []string{"IPv4", "IPv6"} {
		if v, _ := strconv.Atoi(dropped[i][1]); v == 0 {
			t.Errorf("rtr dropped no %s packet-too-big: the black hole was not exercised\n%s", fam, out)
		}
	}
}
