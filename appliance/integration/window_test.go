package integration

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestZeroWindow: the client stops reading for 5 s while the server sends
// it 16 MB. Its receive buffer (2 MiB at most) fills and its window
// closes; the appliances carry that window across (gwA's wire window to
// gwB closes too), the server's stack probes the closed window for those
// seconds, and
// when the client reads again every byte arrives, encrypted. A window that
// never reopened, or an appliance that answered the probes wrongly, would
// leave the transfer stuck.
func TestZeroWindow(t *testing.T) {
	e := newEncEnv(t, 85)
	b := e.topo.Addr(topology.HostB)
	// A receive buffer of at most 2 MiB (Linux grows it up to 32 MiB by
	// default here, which would hold the whole transfer).
	if out, err := e.topo.Run(topology.HostA, "sysctl", "-qw", "net.ipv4.tcp_rmem=4096 131072 2097152"); err != nil {
		t.Fatalf("hA: %v\n%s", err, out)
	}
	dir := t.TempDir()
	inside, wire := filepath.Join(dir, "hA.pcapng"), filepath.Join(dir, "wire.pcapng")
	ci, err := e.topo.StartCaptureOn(topology.HostA, inside, topology.HostIface)
	if err != nil {
		t.Fatal(err)
	}
	cw, err := e.topo.StartCapture(wire)
	if err != nil {
		t.Fatal(err)
	}
	const n, m = 1 << 20, 16 << 20
	d, ok := e.measure(t, func() {
		r := e.transfer(t, topology.HostA, netip.AddrPortFrom(b.V4, 5001), e.streamB, n, m, time.Minute, "-readpause", "5s")
		checkTransfer(t, r, n, m)
	})
	for _, c := range []interface{ Stop() (string, error) }{ci, cw} {
		if _, err := c.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	keepCapture(t, inside)
	noMarker(t, wire, n+m)
	a := e.topo.Addr(topology.HostA).V4.String()
	// Linux keeps one unit of its window scale open (128 bytes here), so
	// "closed" is less than a segment's worth.
	closed := fmt.Sprintf("ip.src == %s && tcp.window_size < 1400 && tcp.flags.syn == 0 && tcp.flags.reset == 0", a)
	probes := fmt.Sprintf("ip.dst == %s && (tcp.analysis.keep_alive || tcp.analysis.zero_window_probe)", a)
	for _, c := range []struct{ what, path, filter string }{
		{"hA's closed window", inside, closed},
		{"gwA's closed wire window", wire, closed},
		{"the server's window probes, delivered to hA", inside, probes},
	} {
		k := tsharkCount(t, c.path, c.filter)
		t.Logf("%s: %d segments", c.what, k)
		if k == 0 {
			t.Errorf("no segment shows %s: the window never closed, or the probes were lost", c.what)
		}
	}
	if ok {
		for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
			encryptedDelta(t, gw, d[gw], 1)
		}
	}
}
