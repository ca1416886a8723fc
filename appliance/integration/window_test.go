package integration

import (
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestZeroWindow: the client stops reading for 5 s while the server sends
// it 16 MB. Its receive buffer fills and it advertises a zero window; the
// appliances carry that window across (gwA's wire window to gwB closes
// too), the server's stack probes the closed window for those seconds, and
// when the client reads again every byte arrives, encrypted. A window that
// never reopened, or an appliance that answered the probes wrongly, would
// leave the transfer stuck.
func TestZeroWindow(t *testing.T) {
	e := newEncEnv(t, 85)
	b := e.topo.Addr(topology.HostB)
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
	zero := func(path, what string) {
		t.Helper()
		// Segments from hA's side announcing a closed window (not its SYN).
		filter := fmt.Sprintf("ip.src == %s && tcp.window_size == 0 && tcp.flags.syn == 0 && tcp.flags.reset == 0", a)
		out, err := exec.Command("tshark", "-r", path, "-n", "-Y", filter, "-T", "fields", "-e", "frame.number").Output()
		if err != nil {
			t.Fatalf("tshark %s: %v", path, err)
		}
		k := len(strings.Fields(string(out)))
		t.Logf("%s: %d segments with a zero window", what, k)
		if k == 0 {
			t.Errorf("%s: no zero window: the client's window never closed, the test proves nothing", what)
		}
	}
	zero(inside, "hA's link")
	zero(wire, "the untrusted link (gwA's wire window)")
	if ok {
		for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
			encryptedDelta(t, gw, d[gw], 1)
		}
	}
}
