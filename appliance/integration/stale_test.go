package integration

import (
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestStaleAttachmentIsCleaned leaves an XDP program attached to gwA:in the
// way a crashed run of an older daemon (or anything else) could: through
// netlink, not a bpf_link, so it outlives every process. tcpincd must
// detach it on start (xsk.CleanupStale), then forward, then leave nothing.
func TestStaleAttachmentIsCleaned(t *testing.T) {
	requireRoot(t)
	bin := buildDaemon(t)
	topo := up(t, 97)
	b := topo.Addr(topology.HostB)

	// An XDP_PASS program, pinned in a private bpffs so that ip(8) can
	// attach it by path.
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "bpf", "bpf", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount bpffs: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		License:      "Dual MIT/GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}, // XDP_PASS
	})
	if err != nil {
		t.Fatal(err)
	}
	pin := filepath.Join(dir, "stale")
	if err := prog.Pin(pin); err != nil {
		t.Fatal(err)
	}
	if out, err := topo.Run(topology.GwA, "ip", "link", "set", "dev", topology.InsidePort, "xdpgeneric", "pinned", pin); err != nil {
		t.Fatalf("attach the stale program: %v\n%s", err, out)
	}
	prog.Close()
	if err := prog.Unpin(); err != nil {
		t.Fatal(err)
	}
	if !xdpAttached(t, topo, topology.GwA, topology.InsidePort) {
		t.Fatal("the stale program is not attached")
	}

	gwB := startDaemon(t, topo, topology.GwB, bin)
	defer stopDaemon(t, gwB, syscall.SIGTERM)
	gwA := startDaemon(t, topo, topology.GwA, bin)
	ping(t, topo, b.V4)
	out := stopDaemon(t, gwA, syscall.SIGTERM)
	for _, iface := range []string{topology.InsidePort, topology.OutsidePort} {
		if xdpAttached(t, topo, topology.GwA, iface) {
			t.Errorf("gwA:%s has an XDP program after tcpincd stopped\n%s", iface, out)
		}
	}
}
