package integration

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestNeighbourMACChange: a machine next to gwA takes another MAC address
// while connections through gwA are open, and keeps its IP addresses: the
// outside router replaced, or failed over to a box with a MAC of its own
// (rtr's leg toward gwA), or the inside host's NIC replaced or its bond
// failed over (hA's eth0). The machine on the other side of gwA learns the
// new MAC (here its neighbour entries are flushed, as a gratuitous ARP or
// unsolicited neighbour advertisement, RFC 4861 §7.2.6, or an entry gone
// stale leads to), and plain TCP goes on: the frames a host sends carry the
// new MAC, and the segments lost meanwhile are retransmitted (RFC 6298).
// An encrypted connection must go on too. The appliance originates the
// frames of an encrypted connection (RFC 8548 §3.6, §4.2) from the
// Ethernet header of the handshake's segments; with it kept for good, every
// frame toward the machine went to its old MAC and was dropped there, and
// the connection stalled while a plain one through the same box carried on.
func TestNeighbourMACChange(t *testing.T) {
	e := newEncEnvOpts(t, encOpts{net: 65})
	for _, c := range []struct {
		name         string
		node         topology.Node // whose interface takes a new MAC
		iface        string
		learner      topology.Node // who learns it, and its interface toward it
		learnerIface string
		newMAC       string
	}{
		{"outside-router", topology.Router, topology.RouterToA, topology.HostA, topology.HostIface, "02:00:00:00:65:01"},
		{"inside-host", topology.HostA, topology.HostIface, topology.Router, topology.RouterToA, "02:00:00:00:65:02"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.macChange(t, c.node, c.iface, c.learner, c.learnerIface, c.newMAC)
		})
	}
}

// macChange runs encrypted transfers from hA to hB (IPv4 and IPv6) and a
// plain one to hF, 2 MB each way at 400 kB/s, and 1.5 s into them gives
// node's iface the MAC mac; 1 s later learner forgets its neighbours on
// learnerIface (and so learns the new MAC). Every transfer must complete
// intact, the encrypted ones listed encrypted by gwA.
func (e *encEnv) macChange(t *testing.T, node topology.Node, iface string, learner topology.Node, learnerIface, mac string) {
	b, f := e.topo.Addr(topology.HostB), e.topo.Addr(topology.HostF)
	const n, rate = 2 << 20, 400000
	runs := []*bgStream{
		e.startStream(t, topology.HostA, netip.AddrPortFrom(b.V4, 5001), e.streamB, n, rate, 10*time.Second),
		e.startStream(t, topology.HostA, netip.AddrPortFrom(b.V6, 5001), e.streamB, n, rate, 10*time.Second),
		e.startStream(t, topology.HostA, netip.AddrPortFrom(f.V4, 5001), e.streamF, n, rate, 10*time.Second),
	}
	for _, r := range runs[:2] {
		e.waitEncrypted(t, r)
	}
	time.Sleep(time.Until(runs[0].t0.Add(1500 * time.Millisecond)))
	old := strings.TrimSpace(e.runIn(node, "cat", "/sys/class/net/"+iface+"/address"))
	if out, err := e.topo.Run(node, "ip", "link", "set", iface, "address", mac); err != nil {
		t.Fatalf("%s: set %s's MAC: %v\n%s", node, iface, err, out)
	}
	t.Logf("%s: %s's MAC %s -> %s", stamp(), node, old, mac)
	time.Sleep(time.Second)
	if out, err := e.topo.Run(learner, "ip", "neigh", "flush", "dev", learnerIface); err != nil {
		t.Fatalf("%s: flush neighbours: %v\n%s", learner, err, out)
	}
	for i, r := range runs {
		res := r.wait(t, 40*time.Second)
		what := []string{"encrypted IPv4", "encrypted IPv6", "plain (to hF)"}[i]
		if res.clientErr != nil && i == 2 {
			t.Errorf("the plain transfer failed too: the test's network is broken\n%v", res.clientErr)
			continue
		}
		if res.clientErr != nil {
			fl, _, _ := e.flowOf(topology.GwA, r.local, r.dst)
			t.Errorf("%s transfer after %s's MAC changed: %v\nserver: %s\ngwA's record: %+v", what, node, res.clientErr, res.serverLine, fl)
			continue
		}
		checkTransfer(t, res, n, n)
	}
}
