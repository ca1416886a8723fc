package integration

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestTCPFastOpen: Linux hosts with TCP Fast Open (RFC 7413) on, client
// and server. tcpcrypt has no SYN data (RFC 8547 §4.7), so the appliances
// negotiate a Fast Open client's cookie request like any SYN and keep the
// cookie the server grants from reaching the client (docs/protocol.md §4):
// every connection to hB is encrypted, none carries data in its SYN, and
// each asks for a cookie again. To hF, which speaks no TCP-ENO, Fast Open
// works as on any path: from the second connection on, the client's data
// rides in the SYN. Then hA gets a cookie from hB over a plain connection
// (gwA bypasses hB for a while, as a far appliance that was down would
// leave it): its next connections send data in their SYNs, gwA leaves the
// data and the cookie out and offers ENO, and they are encrypted. Three
// connections each way, IPv4 and IPv6, 1 MB each way, byte for byte.
func TestTCPFastOpen(t *testing.T) {
	e := newEncEnv(t, 89)
	for _, n := range []topology.Node{topology.HostA, topology.HostB, topology.HostF} {
		if out, err := e.topo.Run(n, "sysctl", "-qw", "net.ipv4.tcp_fastopen=3"); err != nil {
			t.Fatalf("%s: %v\n%s", n, err, out)
		}
	}
	srvB := e.startTool(t, topology.HostB, "stream-server", "stream server ready", "-listen", "[::]:5003", "-tfo")
	srvF := e.startTool(t, topology.HostF, "stream-server", "stream server ready", "-listen", "[::]:5003", "-tfo")
	const n = 1 << 20
	active := func() uint64 { return e.nstat(t, topology.HostA, "TcpExtTCPFastOpenActive") }
	requests := func(h topology.Node) uint64 { return e.nstat(t, h, "TcpExtTCPFastOpenCookieReqd") }

	a0, r0 := active(), requests(topology.HostB)
	d, ok := e.measure(t, func() {
		b := e.topo.Addr(topology.HostB)
		for _, dst := range []netip.AddrPort{netip.AddrPortFrom(b.V4, 5003), netip.AddrPortFrom(b.V6, 5003)} {
			for range 3 {
				checkTransfer(t, e.transfer(t, topology.HostA, dst, srvB, n, n, time.Minute, "-tfo"), n, n)
			}
		}
	})
	if ok {
		for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
			encryptedDelta(t, gw, d[gw], 6)
		}
	}
	sent, asked := active()-a0, requests(topology.HostB)-r0
	t.Logf("to hB: %d connections with data in the SYN, %d cookie requests at hB", sent, asked)
	if sent != 0 || asked < 6 {
		t.Errorf("to hB: %d connections sent data in their SYN (want 0: no cookie may reach hA), hB saw %d cookie requests (want 6)", sent, asked)
	}

	a0, r0 = active(), requests(topology.HostF)
	f := e.topo.Addr(topology.HostF)
	for _, dst := range []netip.AddrPort{netip.AddrPortFrom(f.V4, 5003), netip.AddrPortFrom(f.V6, 5003)} {
		for range 3 {
			checkTransfer(t, e.transfer(t, topology.HostA, dst, srvF, n, n, time.Minute, "-tfo"), n, n)
		}
	}
	sent, asked = active()-a0, requests(topology.HostF)-r0
	t.Logf("to hF: %d connections with data in the SYN, %d cookie requests at hF", sent, asked)
	if sent < 4 {
		t.Errorf("to hF: %d connections sent data in their SYN, want 4 (all but the first per address family)", sent)
	}

	// A cookie from hB, over connections gwA leaves plain (bypass).
	b := e.topo.Addr(topology.HostB)
	dsts := []netip.AddrPort{netip.AddrPortFrom(b.V4, 5003), netip.AddrPortFrom(b.V6, 5003)}
	e.putConfig(t, topology.GwA, fmt.Sprintf(`{"policies": [{"prefix": "%s/32", "policy": "bypass"}, {"prefix": "%s/128", "policy": "bypass"}]}`, b.V4, b.V6))
	for _, dst := range dsts {
		checkTransfer(t, e.transfer(t, topology.HostA, dst, srvB, n, n, time.Minute, "-tfo"), n, n)
	}
	e.putConfig(t, topology.GwA, `{"policies": []}`)
	a0, fail0 := active(), e.nstat(t, topology.HostA, "TcpExtTCPFastOpenActiveFail")
	d, ok = e.measure(t, func() {
		for _, dst := range dsts {
			for range 2 {
				checkTransfer(t, e.transfer(t, topology.HostA, dst, srvB, n, n, time.Minute, "-tfo"), n, n)
			}
		}
	})
	// TCPFastOpenActive counts SYNs whose data the server acknowledged,
	// TCPFastOpenActiveFail those whose data it did not.
	taken, refused := active()-a0, e.nstat(t, topology.HostA, "TcpExtTCPFastOpenActiveFail")-fail0
	t.Logf("to hB with a cookie: %d connections had the data of their SYN acknowledged, %d not; gwA held back %d", taken, refused, d[topology.GwA].Events["syn_data_held_back"])
	if taken != 0 || refused < 4 {
		t.Errorf("to hB with a cookie: %d connections had the data of their SYN acknowledged, %d not; want 0 and 4 (the client holds a cookie, gwA leaves the data out)", taken, refused)
	}
	if ok {
		if n := d[topology.GwA].Events["syn_data_held_back"]; n < 4 {
			t.Errorf("gwA: syn_data_held_back %d, want 4", n)
		}
		for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
			encryptedDelta(t, gw, d[gw], 4)
		}
	}
}
