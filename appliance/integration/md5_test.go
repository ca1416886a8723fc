package integration

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestTCPMD5: routers sign their BGP sessions with TCP MD5 (RFC 2385),
// whose digest covers each segment's header (options aside) and data. An
// appliance that encrypted such a connection would hand the far host
// segments cut, acknowledged and windowed by the appliances, whose digests
// no longer match: the host drops them, and the connection stalls where
// plain TCP carries it. So gwA leaves a SYN that carries the MD5 option
// alone: the connection stays plain (fallback tcp_auth) and signed end to
// end, over IPv4 and IPv6.
func TestTCPMD5(t *testing.T) {
	e := newEncEnv(t, 90)
	a, b := e.topo.Addr(topology.HostA), e.topo.Addr(topology.HostB)
	const key = "tcpinc-md5-test-key"
	srv := e.startTool(t, topology.HostB, "stream-server", "stream server ready",
		"-listen", "[::]:5002", "-md5", key, "-md5peer", a.V4.String()+","+a.V6.String())
	path := filepath.Join(t.TempDir(), "md5.pcapng")
	c, err := e.topo.StartCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2 << 20
	d, ok := e.measure(t, func() {
		for _, dst := range []netip.AddrPort{netip.AddrPortFrom(b.V4, 5002), netip.AddrPortFrom(b.V6, 5002)} {
			r := e.transfer(t, topology.HostA, dst, srv, n, n, time.Minute, "-md5", key, "-idle", "15s")
			checkTransfer(t, r, n, n)
		}
	})
	if _, err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	keepCapture(t, path)
	// Every data segment crossed the untrusted link with its digest.
	if k := tsharkBytes(t, path, "tcp.option_kind == 19 && tcp.len > 0"); k < 4*n {
		t.Errorf("the capture holds %d bytes of TCP payload signed with MD5, want the transfers' %d", k, 4*n)
	}
	if !ok {
		return
	}
	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		if got := d[gw].Handshakes["encrypted"]; got != 0 {
			t.Errorf("%s: %d connections encrypted, want none", gw, got)
		}
	}
	if got := d[topology.GwA].Fallbacks["tcp_auth"]; got != 2 {
		t.Errorf("gwA: fallbacks %v; want two tcp_auth", nonZero(d[topology.GwA].Fallbacks))
	}
}
