package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestMPTCP: hosts that open Multipath TCP connections (RFC 8684; Linux
// and Go do when asked). The SYNs carry MP_CAPABLE and TCP-ENO both, and
// the connections are encrypted; the segments the appliances cut from
// frames carry no MPTCP data mappings, so the hosts fall back to plain
// single-path TCP at the first data (RFC 8684 §3.7, the fallback MPTCP
// has for middleboxes that drop its options), and every byte arrives.
func TestMPTCP(t *testing.T) {
	e := newEncEnv(t, 88)
	for _, n := range []topology.Node{topology.HostA, topology.HostB} {
		if out, err := e.topo.Run(n, "sysctl", "-w", "net.mptcp.enabled=1"); err != nil {
			t.Fatalf("%s: %v\n%s", n, err, out)
		}
	}
	srv := e.startTool(t, topology.HostB, "stream-server", "stream server ready", "-listen", "[::]:5003", "-mptcp")
	for _, r := range e.encryptedToB(t, srv, 5003, 4<<20, time.Minute, "-mptcp", "-idle", "15s") {
		t.Logf("client: %s", strings.TrimSpace(r.clientOut))
	}
}
