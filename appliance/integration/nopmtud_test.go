package integration

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestNoPMTUDHostsAcrossNarrowLink: hosts with path MTU discovery off
// (net.ipv4.ip_no_pmtu_disc=1) send without DF and count on routers to
// fragment. Here the untrusted link narrows to 1200 bytes at rtr, and rtr's
// "fragmentation needed" messages are dropped (a filter that is common on
// the way): plain TCP between such hosts keeps working, because rtr
// fragments their datagrams. The appliances' frames must then go without
// DF too (engine/wire.go, tmpl.follow and finish): with DF they were
// dropped at rtr, the message about it never came, and the encrypted
// connection stalled. An encrypted transfer each way over IPv4 must
// complete intact, rtr must have fragmented, and the untrusted link must
// carry no plaintext, fragments included.
func TestNoPMTUDHostsAcrossNarrowLink(t *testing.T) {
	e := newEncEnv(t, 99)
	for _, n := range []topology.Node{topology.HostA, topology.HostB} {
		if out, err := e.topo.Run(n, "sysctl", "-qw", "net.ipv4.ip_no_pmtu_disc=1"); err != nil {
			t.Fatalf("%s: sysctl: %v\n%s", n, err, out)
		}
	}
	a, b := e.topo.Addr(topology.HostA).V4, e.topo.Addr(topology.HostB).V4
	for _, args := range [][]string{
		{"ip", "route", "replace", b.String() + "/32", "dev", topology.RouterToB, "mtu", "lock", "1200"},
		{"ip", "route", "replace", a.String() + "/32", "dev", topology.RouterToA, "mtu", "lock", "1200"},
		{"nft", "add table ip tei_pmtud"},
		{"nft", "add chain ip tei_pmtud out { type filter hook output priority 0 ; }"},
		{"nft", "add rule ip tei_pmtud out icmp type destination-unreachable icmp code frag-needed counter drop"},
	} {
		if out, err := e.topo.Run(topology.Router, args...); err != nil {
			t.Fatalf("rtr: %v: %v\n%s", args, err, out)
		}
	}
	path := filepath.Join(t.TempDir(), "nopmtud.pcapng")
	c, err := e.topo.StartCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 4 << 20
	frags := e.nstat(t, topology.Router, "IpFragCreates")
	var r result
	d, ok := e.measure(t, func() {
		r = e.transfer(t, topology.HostA, netip.AddrPortFrom(b, 5001), e.streamB, n, n, 45*time.Second)
	})
	checkTransfer(t, r, n, n)
	if ok {
		for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
			encryptedDelta(t, gw, d[gw], 1)
		}
	}
	created := e.nstat(t, topology.Router, "IpFragCreates") - frags
	if created == 0 {
		t.Error("rtr fragmented nothing: the narrow link was not exercised")
	}
	if _, err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("rtr made %d fragments", created)
	noMarker(t, path, n)
}
