package integration

import (
	"net/netip"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestJumboMTU: every link at MTU 9000, as in many data centres, with the
// default backend (AF_PACKET on veth; native XDP refuses such an MTU on
// veth and the classifier runs in generic mode). Encrypted connections
// to hB and plain ones to hF, over IPv4 and IPv6, carry 16 MB each way;
// frames far above 1500 bytes cross the untrusted link both ways, and no
// plaintext of the encrypted ones does.
func TestJumboMTU(t *testing.T) {
	e := newEncEnvOpts(t, encOpts{net: 83, mtu: 9000})
	f := e.topo.Addr(topology.HostF)
	wire := filepath.Join(t.TempDir(), "wire.pcapng")
	c, err := e.topo.StartCapture(wire)
	if err != nil {
		t.Fatal(err)
	}
	const n = 16 << 20
	e.encryptedToB(t, e.streamB, 5001, n, 2*time.Minute)
	for _, dst := range []netip.AddrPort{netip.AddrPortFrom(f.V4, 5001), netip.AddrPortFrom(f.V6, 5001)} {
		r := e.transfer(t, topology.HostA, dst, e.streamF, n, n, 2*time.Minute)
		checkTransfer(t, r, n, n)
	}
	if _, err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	// The encrypted transfers' frames: the capture without hF's.
	enc := filepath.Join(t.TempDir(), "enc.pcapng")
	if out, err := exec.Command("tshark", "-r", wire, "-Y", "!(ip.addr == "+f.V4.String()+" || ipv6.addr == "+f.V6.String()+")", "-w", enc).CombinedOutput(); err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	noMarker(t, enc, 4*n)
	for _, c := range []struct{ what, path, filter string }{
		{"encrypted", enc, "frame.len > 2000 && tcp.len > 0"},
		{"plain", wire, "frame.len > 6000 && tcp.len > 0 && (ip.addr == " + f.V4.String() + " || ipv6.addr == " + f.V6.String() + ")"},
	} {
		k := tsharkCount(t, c.path, c.filter)
		t.Logf("%s: %d jumbo frames on the untrusted link", c.what, k)
		if k == 0 {
			t.Errorf("%s: no frame above the 1500-byte MTU crossed the untrusted link: the test proves nothing", c.what)
		}
	}
}
