package integration

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestAsymmetricRequire: gwA's policy requires encryption with hB, and one
// direction of each connection skips gwA (the bypass link of
// TestAsymmetricRouting). Such a connection cannot be encrypted, so under
// require it must not carry the hosts' bytes through gwA:
//
//   - return bypass, hA opens: hA's first segment after its SYN shows it
//     holds a SYN-ACK gwA never saw; gwA resets both hosts rather than
//     let the connection go on in plain TCP (or hang).
//   - outbound bypass, hB opens: gwA sees hB's SYN with ENO and hB's later
//     segments, never hA's SYN-ACK (it went around gwA without ENO, so gwB
//     gave up ENO, RFC 8547 §4.6). gwA must not pass hB's plaintext on to
//     hA as that of a plain connection it may have forgotten.
//
// Neither application may receive a byte of the other's stream.
func TestAsymmetricRequire(t *testing.T) {
	e := newEncEnvOpts(t, encOpts{net: 67})
	by := e.addBypass(t)
	srvA := e.startTool(t, topology.HostA, "stream-server", "stream server ready", "-listen", "[::]:5001")
	a, b := e.topo.Addr(topology.HostA), e.topo.Addr(topology.HostB)
	e.putConfig(t, topology.GwA, fmt.Sprintf(`{"policies": [{"prefix": "%s/32", "policy": "require"}, {"prefix": "%s/128", "policy": "require"}]}`, b.V4, b.V6))
	for _, c := range []struct {
		name  string
		mode  asymMode
		fromB bool
	}{
		{"return-bypass/hA-opens", asymReturn, false},
		{"outbound-bypass/hB-opens", asymOutbound, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			by.route(t, c.mode)
			defer by.route(t, asymSymmetric)
			src, dst, srv := topology.HostA, netip.AddrPortFrom(b.V4, 5001), e.streamB
			if c.fromB {
				src, dst, srv = topology.HostB, netip.AddrPortFrom(a.V4, 5001), srvA
			}
			var r result
			d, ok := e.measure(t, func() { r = e.asymRun(t, src, dst, srv, 1<<20) })
			t.Logf("after %v: client: %s\nserver: %s", r.elapsed.Round(10*time.Millisecond), strings.TrimSpace(tailLines(r.clientOut, 2)), r.serverLine)
			if ok {
				for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
					t.Logf("%s: handshakes %v fallbacks %v drops %v", gw, nonZero(d[gw].Handshakes), nonZero(d[gw].Fallbacks), nonZero(d[gw].Drops))
				}
			}
			if r.clientErr == nil || r.recvBytes != 0 || r.srvRecvBytes != 0 {
				t.Errorf("the connection carried bytes although gwA requires encryption with hB: the client received %d, the server %d (client error: %v)",
					r.recvBytes, r.srvRecvBytes, r.clientErr)
			}
			if !c.fromB && !strings.Contains(r.clientOut, "reset by peer") {
				t.Errorf("hA's connection was not reset (a hang until the client's idle timeout?)")
			}
		})
	}
}
