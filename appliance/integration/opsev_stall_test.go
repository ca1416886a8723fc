package integration

import (
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestStalledDaemonSYNBacklog: tcpincd in gwA stops for 8 s (SIGSTOP, as
// a paused virtual machine, a live migration or a host swapping stops it)
// while hA opens connections to hB, and goes on (SIGCONT). Their SYNs
// waited in gwA's port for the whole stall, each host's retransmissions
// beside its first SYN (Linux 6.x sends one a second at first,
// tcp_syn_linear_timeouts; RFC 6298 §2.1's 1 s initial timeout), and the
// engine takes them all in one go. It must not count those copies as SYNs
// with TCP-ENO the path left unanswered (RFC 8547 §4.6 lets a retransmitted
// SYN go without ENO so that a path which drops SYNs with unknown options
// still connects, Config.SYNsWithENO): none of them had left the appliance
// yet. Each connection must complete intact and encrypted, with no
// fallback, and no byte of it in plaintext on the untrusted link. Before,
// the fourth copy turned each connection opened 3 s or more before the
// SIGCONT plain (fallback syn_retries), and its bytes crossed the link in
// the clear.
func TestStalledDaemonSYNBacklog(t *testing.T) {
	e := newEncEnvOpts(t, encOpts{net: 64})
	b := e.topo.Addr(topology.HostB)
	e.eachBackend(t, func(t *testing.T) {
		e.stallSYNs(t, []netip.AddrPort{netip.AddrPortFrom(b.V4, 5001), netip.AddrPortFrom(b.V6, 5001)})
	})
}

// stallSYNs stops gwA's tcpincd, opens two connections to each of dsts
// 0.5 s into the stall, goes on after 8 s and checks the connections.
func (e *encEnv) stallSYNs(t *testing.T, dsts []netip.AddrPort) {
	const n = 64 << 10
	const stall = 8 * time.Second
	wire, err := e.topo.StartCapture(filepath.Join(t.TempDir(), "stall.pcapng"))
	if err != nil {
		t.Fatal(err)
	}
	gw := e.gw[topology.GwA]
	var runs []*bgStream
	var enc []string // tshark filters of the connections
	d, ok := e.measure(t, func() {
		if err := syscall.Kill(gw.Pid(), syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		cont := func() { _ = syscall.Kill(gw.Pid(), syscall.SIGCONT) }
		defer cont() // also when startStream fails the test
		t0 := time.Now()
		time.Sleep(500 * time.Millisecond)
		for i := range 2 * len(dsts) {
			runs = append(runs, e.startStreamNoWait(t, topology.HostA, dsts[i%len(dsts)], e.streamB, n, 0, 30*time.Second))
		}
		time.Sleep(time.Until(t0.Add(stall)))
		cont()
		t.Logf("%s: tcpincd in gwA went on after %v stopped", stamp(), time.Since(t0).Round(time.Millisecond))
		for _, r := range runs {
			r.exit(30 * time.Second)
		}
		// At once: a plain record is kept only plainRetention.
		for _, r := range runs {
			if !r.local.IsValid() {
				continue
			}
			fl, found, err := e.flowOf(topology.GwA, r.local, r.dst)
			switch {
			case err != nil:
				t.Error(err)
			case !found:
				t.Errorf("gwA keeps no record of %v -> %v", r.local, r.dst)
			case !fl.Encrypted:
				t.Errorf("%v -> %v, opened while tcpincd in gwA was stopped, is not encrypted: %s, fallback %q", r.local, r.dst, fl.State, fl.FallbackReason)
			}
			enc = append(enc, fmt.Sprintf("(tcp.port == %d && tcp.port == %d)", r.local.Port(), r.dst.Port()))
		}
		for _, r := range runs {
			checkTransfer(t, r.wait(t, 0), n, n)
		}
	})
	if ok {
		for _, g := range []topology.Node{topology.GwA, topology.GwB} {
			t.Logf("%s over the stall: handshakes %v fallbacks %v", g, nonZero(d[g].Handshakes), nonZero(d[g].Fallbacks))
			if n := sum(d[g].Fallbacks); n != 0 {
				t.Errorf("%s: %d connections fell back to plain TCP %v", g, n, nonZero(d[g].Fallbacks))
			}
		}
	}
	if _, err := wire.Stop(); err != nil {
		t.Fatal(err)
	}
	if len(enc) == 0 {
		return
	}
	path := strings.TrimSuffix(wire.Path, ".pcapng") + "-conns.pcapng"
	if out, err := exec.Command("tshark", "-r", wire.Path, "-Y", strings.Join(enc, " || "), "-w", path).CombinedOutput(); err != nil {
		t.Fatalf("tshark filter: %v\n%s", err, out)
	}
	noMarker(t, path, len(enc)*n)
}
