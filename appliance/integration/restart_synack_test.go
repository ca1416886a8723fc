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

// TestRestartBeforeSYNACK, narrowed from TestChaos (a restart of gwA's
// tcpincd and a pause of gwB's in one round; chaos_test.go): hA's SYN leaves through gwA
// with TCP-ENO and waits in gwB's port (tcpincd there stopped for a
// moment, as a paused VM or a slow path would hold it); gwA's tcpincd
// restarts; gwB goes on and its SYN-ACK, with ENO (gwB holds the tuple as
// negotiated), reaches the new gwA daemon before hA's first SYN
// retransmission (1 s). The new daemon has no record of the connection,
// and the tuple is not in its negotiated set (the old one never saw the
// SYN-ACK): it passes the SYN-ACK, hA answers and its first bytes go to
// the untrusted link as they are. A restart may reset encrypted
// connections in flight (docs/architecture.md §3), but no byte of a
// connection that negotiated TCP-ENO may cross the link in plaintext.
func TestRestartBeforeSYNACK(t *testing.T) {
	e := newEncEnvOpts(t, encOpts{net: 94})
	b := e.topo.Addr(topology.HostB)
	e.eachBackend(t, func(t *testing.T) {
		for _, dst := range []netip.AddrPort{netip.AddrPortFrom(b.V4, 5001), netip.AddrPortFrom(b.V6, 5001)} {
			e.restartBeforeSYNACK(t, dst)
		}
	})
}

func (e *encEnv) restartBeforeSYNACK(t *testing.T, dst netip.AddrPort) {
	const n = 64 << 10
	wire, err := e.topo.StartCapture(filepath.Join(t.TempDir(), "restart.pcapng"))
	if err != nil {
		t.Fatal(err)
	}
	gwB := e.gw[topology.GwB]
	if err := syscall.Kill(gwB.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	cont := func() { _ = syscall.Kill(gwB.Pid(), syscall.SIGCONT) }
	defer cont()
	r := e.startStreamNoWait(t, topology.HostA, dst, e.streamB, n, 0, 30*time.Second)
	t0 := time.Now()
	time.Sleep(100 * time.Millisecond) // the SYN passed gwA, waits in gwB's port
	p := e.gw[topology.GwA]
	delete(e.gw, topology.GwA)
	_ = p.StopWith(syscall.SIGKILL, 5*time.Second)
	e.startDaemon(t, topology.GwA)
	cont()
	at := time.Since(t0)
	t.Logf("%s: to %v: gwA's tcpincd restarted and gwB's went on %v after hA's SYN", stamp(), dst, at.Round(time.Millisecond))
	if at > 900*time.Millisecond {
		t.Logf("too late: hA's SYN retransmission (1 s) may reach the new daemon first")
	}
	res := r.wait(t, 40*time.Second)
	t.Logf("client: %v %s\nserver: %s", res.clientErr, tailLines(res.clientOut, 2), res.serverLine)
	if strings.Contains(res.clientOut+res.serverLine, "CORRUPT") {
		t.Errorf("an application read bytes that were never sent")
	}
	if _, err := wire.Stop(); err != nil {
		t.Fatal(err)
	}
	if !r.local.IsValid() {
		t.Fatalf("the client never connected: %v", res.clientErr)
	}
	path := strings.TrimSuffix(wire.Path, ".pcapng") + "-conn.pcapng"
	filter := fmt.Sprintf("tcp.port == %d && tcp.port == %d", r.local.Port(), dst.Port())
	if out, err := exec.Command("tshark", "-r", wire.Path, "-Y", filter, "-w", path).CombinedOutput(); err != nil {
		t.Fatalf("tshark filter: %v\n%s", err, out)
	}
	out, _ := exec.Command("tshark", "-r", path, "-n", "-T", "fields", "-e", "frame.time_relative", "-e", "tcp.srcport", "-e", "tcp.dstport",
		"-e", "tcp.flags.str", "-e", "tcp.len", "-e", "tcp.option_kind").Output()
	t.Logf("the connection on the untrusted link (time, ports, flags, length, options):\n%s", tailLines(string(out), 30))
	noMarker(t, path, 0)
}
