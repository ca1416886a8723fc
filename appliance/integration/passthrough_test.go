package integration

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// prefix names this suite's namespaces (tdi-hA, tdi-gwA, ...).
const prefix = "tdi-"

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("integration tests need root (network namespaces, XDP, AF_XDP); CI runs them as root")
	}
	for _, tool := range []string{"ip", "nft", "ethtool", "ping", "curl", "python3", "iperf3", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (.ci/run installs it): %v", tool, err)
		}
	}
}

// buildDaemon builds cmd/tcpincd into a temporary directory.
func buildDaemon(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tcpincd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/tcpinc/tcpinc/cmd/tcpincd").CombinedOutput()
	if err != nil {
		t.Fatalf("go build tcpincd: %v\n%s", err, out)
	}
	return bin
}

func up(t *testing.T, net int) *topology.Topology {
	t.Helper()
	_ = topology.Down(prefix) // a leftover from a crashed run
	topo, err := topology.Up(topology.Options{Prefix: prefix, Net: net, Mode: topology.ModeBare, VLAN: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.Down(); err != nil {
			t.Errorf("topology down: %v", err)
		}
	})
	return topo
}

// startDaemon runs tcpincd in gw and waits until its workers run.
func startDaemon(t *testing.T, topo *topology.Topology, gw topology.Node, bin string, args ...string) *netns.Process {
	t.Helper()
	// A state_dir of its own: not the machine's, and not shared with the
	// other gateway's daemon.
	full := append([]string{bin, "--inside", topology.InsidePort, "--outside", topology.OutsidePort, "--admin", "", "--state-dir", t.TempDir()}, args...)
	p, err := topo.Start(gw, "tcpincd-"+string(gw), full...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitOutput("tcpincd running", 15*time.Second); err != nil {
		t.Fatalf("tcpincd in %s did not start: %v\n%s", gw, err, p.Output())
	}
	return p
}

// stopDaemon stops tcpincd with sig (SIGTERM or SIGINT) and returns its
// output; a clean shutdown exits 0 within the daemon's bound.
func stopDaemon(t *testing.T, p *netns.Process, sig syscall.Signal) string {
	t.Helper()
	if err := p.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("tcpincd did not stop within 10 s after %v\n%s", sig, p.Output())
	}
	if err := p.Wait(); err != nil {
		t.Errorf("tcpincd exit: %v\n%s", err, p.Output())
	}
	return p.Output()
}

// xdpAttached reports whether an XDP program is attached to iface in gw.
func xdpAttached(t *testing.T, topo *topology.Topology, gw topology.Node, iface string) bool {
	t.Helper()
	out, err := topo.Run(gw, "ip", "-d", "link", "show", "dev", iface)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(out, "xdp")
}

func ping(t *testing.T, topo *topology.Topology, dst netip.Addr) {
	t.Helper()
	if out, err := topo.Run(topology.HostA, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", dst.String()); err != nil {
		t.Errorf("ping %s: %v\n%s", dst, err, out)
	}
}

// udpEcho is a UDP echo server (dual stack) for hB; python3 is installed
// everywhere the tests run, nc may not be.
const udpEcho = `
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 9000))
print("echo ready", flush=True)
while True:
    d, a = s.recvfrom(65535)
    s.sendto(d, a)
`

// serveBlobAndEcho serves a random 20 MB file as /blob over HTTP on port 8080
// and runs udpEcho on node; it returns the file's sha256 in hex.
func serveBlobAndEcho(t *testing.T, topo *topology.Topology, node topology.Node) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, 20<<20)
	if _, err := rand.Read(blob); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "blob"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(blob)
	srv, err := topo.Start(node, "http", "python3", "-u", "-m", "http.server", "8080", "--bind", "::", "--directory", dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitOutput("Serving HTTP", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	echo, err := topo.Start(node, "udp-echo", "python3", "-u", "-c", udpEcho)
	if err != nil {
		t.Fatal(err)
	}
	if err := echo.WaitOutput("echo ready", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(sum[:])
}

// udpClient sends a random datagram to argv[1]:9000 and checks the echo.
const udpClient = `
import os, socket, sys
host = sys.argv[1]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(1)
msg = os.urandom(1000)
for _ in range(5):
    s.sendto(msg, (host, 9000))
    try:
        d, _ = s.recvfrom(65535)
    except socket.timeout:
        continue
    if d == msg:
        print("echo ok")
        sys.exit(0)
    sys.exit("echo differs")
sys.exit("no echo")
`

func udp(t *testing.T, topo *topology.Topology, dst netip.Addr) {
	t.Helper()
	if out, err := topo.Run(topology.HostA, "python3", "-c", udpClient, dst.String()); err != nil || !strings.Contains(out, "echo ok") {
		t.Errorf("UDP echo via %s: %v\n%s", dst, err, out)
	}
}

func curlHash(t *testing.T, topo *topology.Topology, dst netip.Addr, want string) {
	t.Helper()
	u := "http://" + netip.AddrPortFrom(dst, 8080).String() + "/blob"
	out, err := topo.Run(topology.HostA, "sh", "-c", "curl -sS --fail --max-time 60 '"+u+"' | sha256sum")
	if err != nil {
		t.Errorf("curl %s: %v\n%s", u, err, out)
		return
	}
	if got := strings.Fields(out)[0]; got != want {
		t.Errorf("curl %s: sha256 %s, want %s", u, got, want)
	}
}

func iperf(t *testing.T, topo *topology.Topology, dst netip.Addr) float64 {
	t.Helper()
	out, err := topo.Run(topology.HostA, "iperf3", "-c", dst.String(), "-t", "3", "-f", "m", "--connect-timeout", "3000")
	if err != nil {
		t.Errorf("iperf3: %v\n%s", err, out)
		return 0
	}
	m := regexp.MustCompile(`([\d.]+) Mbits/sec.*receiver`).FindStringSubmatch(out)
	if m == nil {
		t.Errorf("iperf3: no receiver line\n%s", out)
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	if v <= 0 {
		t.Errorf("iperf3: %v Mbit/s", v)
	}
	return v
}

// counters are the worker counters tcpincd logs at shutdown, summed over
// both directions.
type counters struct{ frames, inserts, drops, kernelFast, toPeer uint64 }

var counterLine = regexp.MustCompile(`msg=counters from=\w+ frames=(\d+) .*fastpath_inserts=(\d+) .*drop_no_tx_frame=(\d+) drop_tx_ring_full=(\d+) drop_too_big=(\d+)`)

var (
	classifierFast   = regexp.MustCompile(`msg=classifier .*FastPath:(\d+)`)
	classifierToPeer = regexp.MustCompile(`msg=classifier .*ToPeer:(\d+)`)
)

func parseCounters(t *testing.T, out string) counters {
	t.Helper()
	var c counters
	ms := counterLine.FindAllStringSubmatch(out, -1)
	if len(ms) != 2 {
		t.Fatalf("want 2 counter lines in the shutdown log, got %d:\n%s", len(ms), out)
	}
	for _, m := range ms {
		n := func(i int) uint64 { v, _ := strconv.ParseUint(m[i], 10, 64); return v }
		c.frames += n(1)
		c.inserts += n(2)
		c.drops += n(3) + n(4) + n(5)
	}
	// The classifier's count of TCP frames it forwarded on the fast path.
	for _, m := range classifierFast.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseUint(m[1], 10, 64)
		c.kernelFast += v
	}
	// Every frame the classifier forwarded in the kernel, non-TCP too.
	for _, m := range classifierToPeer.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseUint(m[1], 10, 64)
		c.toPeer += v
	}
	return c
}

// TestPassthrough runs real traffic through the appliance pair, once with the
// fast path and once with every frame through user space: ping (v4, v6,
// VLAN), UDP echo (v4, v6), iperf3, and HTTP downloads of a random 20 MB file
// (v4, v6, VLAN) whose sha256 must match, with the engine off. The fast-path
// run must insert flows and move fewer frames through the workers; the other
// must forward no frame at all in the kernel.
func TestPassthrough(t *testing.T) {
	requireRoot(t)
	bin := buildDaemon(t)
	topo := up(t, 95)
	b := topo.Addr(topology.HostB)
	if !b.VLANPresent {
		t.Fatal("topology has no VLAN addresses")
	}

	want := serveBlobAndEcho(t, topo, topology.HostB)
	if _, err := topo.Start(topology.HostB, "iperf3", "iperf3", "-s", "-p", "5201"); err != nil {
		t.Fatal(err)
	}

	// Passthrough: the engine is off in both runs. The second run's file
	// also pins the workers to the first two CPUs and logs at debug; the
	// flag turns the fast path off over the file's fast_path: true.
	plain := filepath.Join(t.TempDir(), "plain.yaml")
	if err := os.WriteFile(plain, []byte("engine:\n  enabled: false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "tcpincd.yaml")
	if err := os.WriteFile(conf, []byte("cpus: [0, 1]\nlog_level: debug\nfast_path: true\nengine:\n  enabled: false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	results := map[string]counters{}
	for _, mode := range []struct {
		name string
		args []string
	}{{"fast-path", []string{"--config", plain}}, {"no-fast-path", []string{"--config", conf, "--no-fast-path"}}} {
		t.Run(mode.name, func(t *testing.T) {
			gwA := startDaemon(t, topo, topology.GwA, bin, mode.args...)
			gwB := startDaemon(t, topo, topology.GwB, bin, mode.args...)
			for _, gw := range []*netns.Process{gwA, gwB} {
				if out := gw.Output(); !strings.Contains(out, "xdp_mode=") || !strings.Contains(out, "bind_mode=") ||
					strings.Count(out, "redirect_ready=true") != 2 {
					t.Errorf("start log lacks the XDP and bind modes, or a port cannot forward in the kernel:\n%s", out)
				}
			}
			for _, dst := range []netip.Addr{b.V4, b.V6, b.VLAN4, b.VLAN6} {
				ping(t, topo, dst)
			}
			udp(t, topo, b.V4)
			udp(t, topo, b.V6)
			mbps := iperf(t, topo, b.V4)
			if mode.name == "no-fast-path" && !strings.Contains(gwA.Output(), "cpus=\"[0 1]\"") && !strings.Contains(gwA.Output(), "cpus=[0 1]") {
				t.Errorf("the configuration file's cpus did not reach the daemon:\n%s", gwA.Output())
			}
			for _, dst := range []netip.Addr{b.V4, b.V6, b.VLAN4} {
				curlHash(t, topo, dst, want)
			}
			var c counters
			for i, gw := range []*netns.Process{gwA, gwB} {
				sig := syscall.SIGTERM
				if i == 1 {
					sig = syscall.SIGINT
				}
				out := stopDaemon(t, gw, sig)
				ci := parseCounters(t, out)
				c.frames += ci.frames
				c.inserts += ci.inserts
				c.drops += ci.drops
				c.kernelFast += ci.kernelFast
				c.toPeer += ci.toPeer
				if i == 0 {
					t.Logf("gwA log:\n%s", out)
				}
			}
			for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
				for _, iface := range []string{topology.InsidePort, topology.OutsidePort} {
					if xdpAttached(t, topo, gw, iface) {
						t.Errorf("%s:%s still has an XDP program after a clean shutdown", gw, iface)
					}
				}
			}
			t.Logf("%s: iperf3 %.0f Mbit/s; workers: %d frames, %d fast-path inserts, %d drops; kernel fast path: %d TCP frames",
				mode.name, mbps, c.frames, c.inserts, c.drops, c.kernelFast)
			results[mode.name] = c
		})
	}
	fast, slow := results["fast-path"], results["no-fast-path"]
	if fast.inserts == 0 {
		t.Errorf("fast-path run inserted no flows")
	}
	if slow.inserts != 0 {
		t.Errorf("no-fast-path run inserted %d flows", slow.inserts)
	}
	if fast.kernelFast == 0 || slow.kernelFast != 0 {
		t.Errorf("TCP frames forwarded in the kernel: %d with the fast path (want > 0), %d without (want 0)", fast.kernelFast, slow.kernelFast)
	}
	// --no-fast-path is honest: the kernel forwarded nothing, not even
	// ARP, ND or ping (xsk.Bump.SetFastPath(false)).
	if fast.toPeer == 0 || slow.toPeer != 0 {
		t.Errorf("frames forwarded in the kernel: %d with the fast path (want > 0), %d without (want 0)", fast.toPeer, slow.toPeer)
	}
	if fast.frames >= slow.frames {
		t.Errorf("fast path moved %d frames through the workers, not fewer than %d without it", fast.frames, slow.frames)
	}
}

// TestKillAndRestart: SIGKILL leaves no XDP program behind (the bpf_links go
// with the process), or the next start removes it; either way tcpincd starts
// again and forwards.
func TestKillAndRestart(t *testing.T) {
	requireRoot(t)
	bin := buildDaemon(t)
	topo := up(t, 96)
	b := topo.Addr(topology.HostB)
	gwB := startDaemon(t, topo, topology.GwB, bin)
	defer stopDaemon(t, gwB, syscall.SIGTERM)

	gwA := startDaemon(t, topo, topology.GwA, bin)
	ping(t, topo, b.V4)
	if !xdpAttached(t, topo, topology.GwA, topology.InsidePort) {
		t.Fatal("no XDP program on gwA:in while tcpincd runs")
	}
	if err := gwA.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-gwA.Done()
	// The kernel releases the links when the process's descriptors close;
	// give it a moment.
	var left []string
	deadline := time.Now().Add(3 * time.Second)
	for {
		left = left[:0]
		for _, iface := range []string{topology.InsidePort, topology.OutsidePort} {
			if xdpAttached(t, topo, topology.GwA, iface) {
				left = append(left, iface)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("after SIGKILL, XDP programs left on gwA: %v (the next start must clean them)", left)

	gwA = startDaemon(t, topo, topology.GwA, bin)
	ping(t, topo, b.V4)
	ping(t, topo, b.V6)

	// A second daemon on the same interfaces must refuse to start rather
	// than detach the running one's programs as stale.
	second, err := topo.Start(topology.GwA, "tcpincd-second", bin, "--inside", topology.InsidePort, "--outside", topology.OutsidePort, "--state-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-second.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a second tcpincd on the same interfaces kept running")
	}
	if err := second.Wait(); err == nil || !strings.Contains(second.Output(), "another tcpincd is running") {
		t.Errorf("second tcpincd: exit %v, want a failure naming the running one\n%s", err, second.Output())
	}
	ping(t, topo, b.V4)
	for _, iface := range []string{topology.InsidePort, topology.OutsidePort} {
		if !xdpAttached(t, topo, topology.GwA, iface) {
			t.Errorf("restarted tcpincd has no XDP program on gwA:%s", iface)
		}
	}
	out := stopDaemon(t, gwA, syscall.SIGINT)
	for _, iface := range []string{topology.InsidePort, topology.OutsidePort} {
		if xdpAttached(t, topo, topology.GwA, iface) {
			t.Errorf("gwA:%s keeps an XDP program after the restarted daemon stopped\n%s", iface, out)
		}
	}
}
