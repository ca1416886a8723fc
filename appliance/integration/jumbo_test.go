package integration

import (
	"fmt"
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

// TestJumboFarSide: side B is a data centre with jumbo frames (hB, gwB and
// rtr's leg toward them at MTU 9000); side A and its leg of the untrusted
// network have 1500. hB announces MSS 8960 (8940 over IPv6). gwA must tell
// hA what its outside link carries less the frame overhead, 1440 (IPv6
// 1420), not hB's MSS less 20: told 8940, hA, bound only by its own
// 1500-byte link, sends 1448-byte segments, and each one sealed is 20 bytes
// too large for the untrusted link, so gwA cuts it into two frames. Checked
// where it shows, at hA: the MSS in the SYN-ACKs hA gets, and the size of
// hA's data segments; the transfers arrive whole, encrypted.
func TestJumboFarSide(t *testing.T) {
	e := newEncEnvOpts(t, encOpts{net: 80, sideB: 9000})
	atA := filepath.Join(t.TempDir(), "hA.pcapng")
	c, err := e.topo.StartCaptureOn(topology.HostA, atA, topology.HostIface)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8 << 20
	e.encryptedToB(t, e.streamB, 5001, n, 2*time.Minute)
	if _, err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	keepCapture(t, atA)
	a := e.topo.Addr(topology.HostA)
	for _, f := range []struct {
		name, src, dst string
		told, data     int // told MSS, and hA's largest data segment with timestamps
	}{
		{"IPv4", "ip.src == " + a.V4.String(), "ip.dst == " + a.V4.String(), 1440, 1428},
		{"IPv6", "ipv6.src == " + a.V6.String(), "ipv6.dst == " + a.V6.String(), 1420, 1408},
	} {
		synAck := "tcp.flags.syn == 1 && tcp.flags.ack == 1 && " + f.dst
		if k := tsharkCount(t, atA, synAck+" && tcp.options.mss_val == "+fmt.Sprint(f.told)); k == 0 {
			t.Errorf("%s: no SYN-ACK told hA MSS %d", f.name, f.told)
		}
		if k := tsharkCount(t, atA, synAck+" && tcp.options.mss_val != "+fmt.Sprint(f.told)); k != 0 {
			t.Errorf("%s: %d SYN-ACKs told hA another MSS than %d", f.name, k, f.told)
		}
		full := tsharkCount(t, atA, f.src+" && tcp.len == "+fmt.Sprint(f.data))
		over := tsharkCount(t, atA, f.src+" && tcp.len > "+fmt.Sprint(f.data))
		t.Logf("%s: hA sent %d segments of %d data bytes, %d larger", f.name, full, f.data, over)
		if full < n/f.data/2 || over != 0 {
			t.Errorf("%s: hA sent %d full segments of %d bytes and %d larger; want most of %d bytes in full ones and none larger", f.name, full, f.data, over, n)
		}
	}
}
