package integration

import (
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
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
			// The case needs hA's SYN through the old daemon before the
			// restart, and the restart done before hA's first SYN
			// retransmission (1 s): on a loaded machine the client may
			// start after the pause, or the new daemon come up late, and
			// then the connection simply opens through the new daemon,
			// which proves nothing. Such a run is repeated.
			for try := 1; ; try++ {
				if e.restartBeforeSYNACK(t, dst) || t.Failed() {
					break
				}
				if try == 3 {
					t.Errorf("to %v: in %d tries, hA's SYN never passed the old daemon with the restart done within 900 ms of it: the case was not exercised", dst, try)
					break
				}
			}
		}
	})
}

// restartBeforeSYNACK runs the case once and checks it; it reports whether
// the run exercised it (hA's first SYN crossed the untrusted link before
// gwA's daemon was killed, and gwB went on within 900 ms of that SYN).
func (e *encEnv) restartBeforeSYNACK(t *testing.T, dst netip.AddrPort) bool {
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
	killed := time.Now()
	_ = p.StopWith(syscall.SIGKILL, 5*time.Second)
	e.startDaemon(t, topology.GwA)
	cont()
	went := time.Now()
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
	syn, ok := firstFrameTime(t, path, "tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.option_kind == 69")
	switch {
	case !ok:
		t.Logf("no SYN with TCP-ENO of the connection on the untrusted link: not exercised")
		return false
	case !syn.Before(killed):
		t.Logf("hA's first SYN crossed the link %v after the old daemon was killed: not exercised", syn.Sub(killed).Round(time.Millisecond))
		return false
	case went.Sub(syn) > 900*time.Millisecond:
		t.Logf("gwB went on %v after hA's first SYN crossed the link: too late, not exercised", went.Sub(syn).Round(time.Millisecond))
		return false
	}
	t.Logf("exercised: hA's first SYN crossed the link %v before the kill, gwB went on %v after it", killed.Sub(syn).Round(time.Millisecond), went.Sub(syn).Round(time.Millisecond))
	return true
}

// firstFrameTime is the capture time of the first frame of path that
// matches filter.
func firstFrameTime(t *testing.T, path, filter string) (time.Time, bool) {
	t.Helper()
	out, err := exec.Command("tshark", "-r", path, "-n", "-Y", filter, "-T", "fields", "-e", "frame.time_epoch").Output()
	if err != nil {
		t.Fatalf("tshark -r %s -Y %q: %v", path, filter, err)
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return time.Time{}, false
	}
	sec, frac, _ := strings.Cut(f[0], ".")
	s, err1 := strconv.ParseInt(sec, 10, 64)
	ns, err2 := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("tshark frame.time_epoch %q", f[0])
	}
	return time.Unix(s, ns), true
}
