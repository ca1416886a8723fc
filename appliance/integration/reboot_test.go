package integration

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// reboot: gwA's machine reboots while an encrypted transfer from hA runs.
// Its tcpincd dies without a word (SIGKILL, as in a power loss or a kernel
// panic) and the BPF file system, with the pinned negotiated set, is
// emptied (gwA's pin removed); the hosts keep their connection. The tcpincd
// started after the "boot" finds no pin and loads the set's copy from its
// state_dir (written every state_interval), so hA's retransmissions and
// new data are reset, not passed: no frame to or from hB on the untrusted
// link carries the marker. Before the copy, they crossed in plaintext. New
// connections work and are encrypted afterwards.
func (e *encEnv) reboot(t *testing.T, dir string, dstB netip.AddrPort) {
	path := filepath.Join(dir, "reboot.pcapng")
	c, err := e.topo.StartCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	const huge = 1 << 30 // running long after the reboot, at 4 MB/s
	enc := make(chan result, 1)
	go func() {
		enc <- e.transfer(t, topology.HostA, dstB, e.streamB, huge, huge, 2*time.Minute, "-idle", "40s", "-rate", "4000000")
	}()
	// Long enough for the copy to be written since the handshake.
	time.Sleep(3*stateInterval + time.Second)
	t.Logf("%s: gwA loses power", stamp())
	p := e.gw[topology.GwA]
	delete(e.gw, topology.GwA)
	_ = p.StopWith(syscall.SIGKILL, 5*time.Second)
	e.removePins(t, topology.GwA)
	time.Sleep(time.Second)
	e.startDaemon(t, topology.GwA)
	out := e.gw[topology.GwA].Output()
	t.Logf("%s: gwA's tcpincd runs again:\n%s", stamp(), tailLines(out, 12))
	if !strings.Contains(out, "loading its disk copy") {
		t.Errorf("the daemon after the reboot did not load the disk copy:\n%s", out)
	}

	r := <-enc
	both := r.clientOut + "\n" + r.serverLine
	if r.clientErr == nil {
		t.Errorf("the encrypted transfer through the rebooted appliance completed without error:\n%s", both)
	}
	if strings.Contains(both, "CORRUPT") {
		t.Errorf("corrupt bytes delivered:\n%s", both)
	}
	if !strings.Contains(both, "reset by peer") {
		t.Errorf("neither host saw a reset:\n%s", both)
	}
	if sc, err := e.counters(topology.GwA); err != nil {
		t.Error(err)
	} else if sc.StrayResets == 0 {
		t.Errorf("the rebooted gwA reset no segment of the encrypted connection (stray_resets 0)")
	}

	var r2 result
	d, ok := e.measure(t, func() { r2 = e.transfer(t, topology.HostA, dstB, e.streamB, 8<<20, 8<<20, time.Minute) })
	checkTransfer(t, r2, 8<<20, 8<<20)
	if ok {
		for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
			encryptedDelta(t, gw, d[gw], 1)
		}
	}
	if _, err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	toB := filepath.Join(dir, "reboot-hB.pcapng")
	if out, err := exec.Command("tshark", "-r", path, "-Y", "ip.addr == "+dstB.Addr().String(), "-w", toB).CombinedOutput(); err != nil {
		t.Fatalf("tshark filter: %v\n%s", err, out)
	}
	noMarker(t, toB, 1<<20)
}

// removePins removes what gw's daemons pinned, as a reboot of gw's machine
// would: the pins' names hold the network namespace's inode number.
func (e *encEnv) removePins(t *testing.T, gw topology.Node) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+e.topo.NS(gw), &st); err != nil {
		t.Fatal(err)
	}
	pins, err := filepath.Glob(filepath.Join(e.pins, fmt.Sprintf("negotiated_%d_*", st.Ino)))
	if err != nil || len(pins) == 0 {
		t.Fatalf("no pin of %s's daemon in %s (%v)", gw, e.pins, err)
	}
	for _, p := range pins {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}
