package integration

import (
	"bufio"
	"bytes"
	"context"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestAFPacketBackend: on veth, tcpincd's default backend (auto) is the
// AF_PACKET one, on both ports of both gateways, and says why; encrypted
// transfers through it arrive intact, GRO super-segments do cross it (its
// port statistics under /metrics), and the untrusted link carries no
// plaintext (the capture-based check of TestEncrypted).
func TestAFPacketBackend(t *testing.T) {
	e := newEncEnv(t, 89)
	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		var st struct {
			Ports []struct {
				Name          string `json:"name"`
				Backend       string `json:"backend"`
				BackendReason string `json:"backend_reason"`
				Queues        int    `json:"queues"`
			} `json:"ports"`
		}
		if err := e.admin(gw, "/api/v1/status", &st); err != nil {
			t.Fatal(err)
		}
		if len(st.Ports) != 2 {
			t.Fatalf("%s status lists %d ports", gw, len(st.Ports))
		}
		for _, p := range st.Ports {
			if p.Backend != "afpacket" || !strings.HasPrefix(p.BackendReason, "auto: ") || p.Queues != 1 {
				t.Errorf("%s port %s: backend %q (%q), %d queues; want afpacket chosen by auto on veth, 1 queue", gw, p.Name, p.Backend, p.BackendReason, p.Queues)
			}
		}
	}

	// The impairment bump writes one frame per system call (it cuts
	// super-segments itself, deploy/impair/segment.go), and rtr forwards
	// each as it comes: so that GRO on gwB's outside port has bursts of the
	// ciphertext to coalesce, as behind a NIC that moderates its
	// interrupts, it holds frames for up to 100 µs.
	if out, err := e.topo.Run(topology.GwB, "sh", "-c", "echo 100000 > /sys/class/net/"+topology.OutsidePort+"/gro_flush_timeout"); err != nil {
		t.Fatalf("gro_flush_timeout on gwB's outside port: %v\n%s", err, out)
	}
	before := map[topology.Node]map[string]float64{}
	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		before[gw] = e.backendMetrics(t, gw)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "afpacket.pcapng")
	c, err := e.topo.StartCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	b := e.topo.Addr(topology.HostB)
	const n = 8 << 20
	// The third transfer's segments from hA carry an IPv6 destination
	// options header: GRO coalesces behind it, and the port must step
	// over it (afpacket.ParseTCP) rather than refuse the super-segments.
	mid := map[topology.Node]map[string]float64{} // after the transfers without options
	d, ok := e.measure(t, func() {
		for _, c := range []struct {
			dst   netip.AddrPort
			extra []string
		}{{netip.AddrPortFrom(b.V4, 5001), nil}, {netip.AddrPortFrom(b.V6, 5001), nil}, {netip.AddrPortFrom(b.V6, 5001), []string{"-dstopts"}}} {
			if c.extra != nil {
				for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
					mid[gw] = e.backendMetrics(t, gw)
				}
			}
			r := e.transfer(t, topology.HostA, c.dst, e.streamB, n, n, 2*time.Minute, c.extra...)
			checkTransfer(t, r, n, n)
		}
	})
	if ok {
		for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
			encryptedDelta(t, gw, d[gw], 3)
		}
	}
	if _, err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	noMarker(t, path, 6*n)
	if k := tsharkBytes(t, path, "ipv6.dstopts && tcp.len > 0"); k < n {
		t.Errorf("the capture holds %d bytes of TCP payload behind a destination options header, want the third transfer's %d at least: the test proves nothing", k, n)
	}

	// hA sends MTU-sized segments (its offloads are off); GRO on gwA's
	// inside port coalesces them after the classifier passes them, so the
	// port receives super-segments, and the classifier passed more frames
	// than the stack-side drop program saw skbs. The same on gwB's outside
	// port for the ciphertext from rtr (held for GRO, above), and on gwB's
	// inside port for hB's answer. gwA's outside port is only logged: the
	// impairment bump in front of it forwards one frame per system call, so
	// each NAPI poll of the port sees one frame and GRO has nothing to
	// coalesce.
	for _, pc := range []struct {
		gw     topology.Node
		port   string
		expect bool
	}{{topology.GwA, "inside", true}, {topology.GwB, "outside", true}, {topology.GwB, "inside", true}, {topology.GwA, "outside", false}} {
		after := e.backendMetrics(t, pc.gw)
		delta := func(ev string) float64 { k := pc.port + "/" + ev; return after[k] - before[pc.gw][k] }
		sup, passed, dropped := delta("rx_super_segments"), delta("xdp_to_stack"), delta("tc_stack_dropped")
		t.Logf("%s %s: %.0f frames received, %.0f super-segments standing for %.0f segments; classifier passed %.0f frames to the stack, %.0f skbs dropped after the tap; sent %.0f frames, %.0f of them GSO, %.0f engine frames merged",
			pc.gw, pc.port, delta("rx_frames"), sup, delta("rx_segments"), passed, dropped, delta("tx_frames"), delta("tx_super_segments"), delta("tx_coalesced"))
		if pc.expect && (sup == 0 || passed <= dropped || dropped == 0) {
			t.Errorf("%s %s: no GRO super-segments crossed the AF_PACKET port (super-segments %.0f, passed %.0f, dropped skbs %.0f)", pc.gw, pc.port, sup, passed, dropped)
		}
		// The engine hands its frames to these ports as super-frames
		// (engine.GSOSink): gwA's outside port sends hA's data sealed,
		// gwB's inside port the plaintext for hB. Over the first two
		// transfers, few of its frames are left to merge one by one
		// (merge.go), which made every super-frame stand for several
		// merged frames before, and most super-frames go out with their
		// payload lent from the engine's rings (engine.TailSink), not
		// copied into the port's slot. (The third transfer's frames carry
		// a destination options header: the engine computes their
		// checksums, sends them one by one, and the port merges them.)
		if pc.gw == topology.GwA && pc.port == "outside" || pc.gw == topology.GwB && pc.port == "inside" {
			k := func(ev string) float64 { return mid[pc.gw][pc.port+"/"+ev] - before[pc.gw][pc.port+"/"+ev] }
			gso, merged, tails := k("tx_super_segments"), k("tx_coalesced"), k("tx_tails")
			if gso == 0 || merged >= gso || tails < gso/2 {
				t.Errorf("%s %s, transfers without options: %.0f GSO frames, %.0f of them with lent payloads, %.0f engine frames merged; want the engine's super-frames, most with lent payloads, few merges", pc.gw, pc.port, gso, tails, merged)
			} else {
				t.Logf("%s %s, transfers without options: %.0f GSO frames, %.0f of them with lent payloads, %.0f engine frames merged", pc.gw, pc.port, gso, tails, merged)
			}
		}
		if bad := delta("rx_bad") + delta("rx_truncated"); bad != 0 {
			t.Errorf("%s %s: %.0f frames rejected or truncated", pc.gw, pc.port, bad)
		}
	}

	// The daemon turned GRO on for its ports (veth has it off by default)
	// and puts it back when it stops.
	for _, want := range []string{"on", "off"} {
		if want == "off" {
			e.stopDaemon(t, topology.GwB)
		}
		for _, port := range []string{topology.InsidePort, topology.OutsidePort} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			out, err := e.topo.Command(ctx, topology.GwB, "ethtool", "-k", port).Output()
			cancel()
			if err != nil {
				t.Fatalf("ethtool -k %s: %v", port, err)
			}
			if !strings.Contains(string(out), "generic-receive-offload: "+want) {
				t.Errorf("gwB %s: GRO is not %s %s", port, want, map[string]string{"on": "while the daemon runs", "off": "after it stopped"}[want])
			}
		}
	}
}

// backendMetrics reads gw's tcpinc_port_backend_events_total series of the
// afpacket backend, keyed "port/event".
func (e *encEnv) backendMetrics(t *testing.T, gw topology.Node) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := e.topo.Command(ctx, gw, "curl", "-sS", "--fail-with-body", "--max-time", "5", "http://"+adminAddr+"/metrics").Output()
	if err != nil {
		t.Fatalf("metrics of %s: %v: %s", gw, err, out)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "tcpinc_port_backend_events_total{") || !strings.Contains(line, `backend="afpacket"`) {
			continue
		}
		labels := fields(strings.NewReplacer("{", " ", "}", " ", ",", " ", `"`, "").Replace(line))
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metrics of %s: %q: %v", gw, line, err)
		}
		m[labels["port"]+"/"+labels["event"]] = v
	}
	if len(m) == 0 {
		t.Fatalf("%s exports no afpacket backend counters:\n%s", gw, out)
	}
	return m
}

// TestSuperFramesAtMSS1376: hB announces MSS 1376 (its routes' advmss, as
// behind a tunnel or a clamping router). A frame then carries 1344 data
// bytes, a super-frame's segments are 1364, and 48 of them with the
// headers would be 65,538 bytes (65,558 over IPv6): longer than the kernel
// has the device segment, so with the queue bypass the kernel dropped such
// a frame, and then its resends, built the same (449 frames dropped at
// gwA's outside port in one run, one transfer 8 times slower). 16 MB each
// way over IPv4 and IPv6 arrive whole and encrypted, and no port drops a
// frame: super-frames stay within 65,535 bytes, and a frame the bypass
// drops for any other reason goes again through the queueing layer.
func TestSuperFramesAtMSS1376(t *testing.T) {
	e := newEncEnvOpts(t, encOpts{net: 81})
	b := e.topo.Addr(topology.HostB)
	for _, r := range [][]string{
		{"-4", "route", "change", "default", "via", b.Gateway4.String(), "dev", topology.HostIface, "advmss", "1376"},
		{"-6", "route", "change", "default", "via", b.Gateway6.String(), "dev", topology.HostIface, "advmss", "1376"},
	} {
		if out, err := e.topo.Run(topology.HostB, append([]string{"ip"}, r...)...); err != nil {
			t.Fatalf("ip %v: %v %s", r, err, out)
		}
	}
	const n = 16 << 20
	e.encryptedToB(t, e.streamB, 5001, n, 2*time.Minute)
	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		m := e.backendMetrics(t, gw)
		t.Logf("%s: outside tx_super_segments %v tx_dropped %v bypass_off %v; inside tx_super_segments %v tx_dropped %v bypass_off %v", gw,
			m["outside/tx_super_segments"], m["outside/tx_dropped"], m["outside/bypass_off"],
			m["inside/tx_super_segments"], m["inside/tx_dropped"], m["inside/bypass_off"])
		if m["outside/tx_dropped"] != 0 || m["inside/tx_dropped"] != 0 {
			t.Errorf("%s's ports dropped frames", gw)
		}
	}
}
