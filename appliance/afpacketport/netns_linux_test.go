package afpacketport

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/tcpinc/tcpinc/afpacket"
	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/netns/netnstest"
)

// Test helpers for network namespaces. Every namespace a test creates is
// named with the prefix "afpp-" and removed in t.Cleanup, also on failure.

func requireRoot(t testing.TB) {
	t.Helper()
	netnstest.RequireRoot(t, "network namespaces, AF_PACKET, XDP")
}

func sh(t testing.TB, args ...string) string { t.Helper(); return netnstest.Sh(t, args...) }

func newNetns(t testing.TB, name string) { t.Helper(); netnstest.New(t, "afpp-", name) }

// vethPair creates a veth pair a (in namespace nsA) <-> b (in nsB), both up.
func vethPair(t testing.TB, nsA, a, nsB, b string) {
	t.Helper()
	sh(t, "ip", "-n", nsA, "link", "add", a, "type", "veth", "peer", "name", b, "netns", nsB)
	sh(t, "ip", "-n", nsA, "link", "set", a, "up")
	sh(t, "ip", "-n", nsB, "link", "set", b, "up")
}

func noIPv6(t testing.TB, ns string, devs ...string) {
	t.Helper()
	for _, d := range devs {
		sh(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf."+d+".disable_ipv6=1")
	}
}

func ethtoolK(t testing.TB, ns, dev string, feat ...string) {
	t.Helper()
	sh(t, append([]string{"ip", "netns", "exec", ns, "ethtool", "-K", dev}, feat...)...)
}

// feature reports the state of one ethtool -k feature ("on" or "off").
func feature(t testing.TB, ns, dev, name string) string {
	t.Helper()
	for _, l := range strings.Split(sh(t, "ip", "netns", "exec", ns, "ethtool", "-k", dev), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ": "); ok && k == name {
			return strings.Fields(v)[0]
		}
	}
	t.Fatalf("%s has no feature %q", dev, name)
	return ""
}

func ifindex(ns, dev string) (int, error) {
	var idx int
	err := netns.Do(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err == nil {
			idx = ifi.Index
		}
		return err
	})
	return idx, err
}

// openPort opens a Port on dev in ns, closed when the test ends.
func openPort(t testing.TB, ns, dev string, o Options) *Port {
	t.Helper()
	idx, err := ifindex(ns, dev)
	if err != nil {
		t.Fatal(err)
	}
	var p *Port
	if err := netns.Do(ns, func() (err error) { p, err = Open(idx, o); return }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// openSocket opens a plain afpacket socket on dev in ns.
func openSocket(t testing.TB, ns, dev string, o afpacket.Options) *afpacket.Socket {
	t.Helper()
	idx, err := ifindex(ns, dev)
	if err != nil {
		t.Fatal(err)
	}
	var s *afpacket.Socket
	if err := netns.Do(ns, func() (err error) { s, err = afpacket.Open(idx, o); return }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// enableGRO turns GRO on for dev in ns with EnableGRO (not ethtool(8)) and
// checks with ethtool that it took.
func enableGRO(t testing.TB, ns, dev string) {
	t.Helper()
	idx, err := ifindex(ns, dev)
	if err != nil {
		t.Fatal(err)
	}
	var before, after bool
	if err := netns.Do(ns, func() (err error) {
		if before, err = GRO(idx); err != nil {
			return err
		}
		if err := EnableGRO(idx); err != nil {
			return err
		}
		after, err = GRO(idx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := feature(t, ns, dev, "generic-receive-offload"); got != "on" || !after {
		t.Fatalf("GRO on %s is %s after EnableGRO (GRO reports %v)", dev, got, after)
	}
	if before { // a fresh veth has GRO off: the helper must see the change
		t.Fatalf("GRO reports %s on before EnableGRO", dev)
	}
}

// attachXDPPass attaches a program returning XDP_PASS to dev in ns (native
// mode) until the test ends. On a veth this takes TSO and GSO from the peer,
// so the peer sends segments of at most the MTU, which GRO coalesces again
// after the program.
func attachXDPPass(t testing.TB, ns, dev string) {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		License:      "Dual MIT/GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}, // XDP_PASS
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	idx, err := ifindex(ns, dev)
	if err != nil {
		t.Fatal(err)
	}
	var l link.Link
	if err := netns.Do(ns, func() (err error) {
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: idx, Flags: link.XDPDriverMode})
		return
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
}

// receiveAll reads from p until want frames came or a deadline passes,
// copying each out and releasing it.
func receiveAll(t testing.TB, p *Port, want int) ([][]byte, []uint16) {
	t.Helper()
	var frames [][]byte
	var gso []uint16
	d := make([]bump.Desc, 64)
	for deadline := time.Now().Add(5 * time.Second); len(frames) < want && time.Now().Before(deadline); {
		if err := p.Wait(50 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		n := p.Receive(d)
		for _, x := range d[:n] {
			frames = append(frames, append([]byte{}, p.Frame(x)...))
			gso = append(gso, x.GSO)
		}
		p.Release(d[:n])
	}
	return frames, gso
}

// readAll reads plain frames from s until want came or a deadline passes.
func readAll(t testing.TB, s *afpacket.Socket, off, want int) [][]byte {
	t.Helper()
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, off+afpacket.MaxFrame)
	}
	sizes := make([]int, len(bufs))
	var out [][]byte
	for deadline := time.Now().Add(5 * time.Second); len(out) < want && time.Now().Before(deadline); {
		_, _ = s.Wait(50*time.Millisecond, false)
		n, err := s.Read(bufs, sizes, off)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			out = append(out, append([]byte{}, bufs[i][off:off+sizes[i]]...))
		}
	}
	return out
}
