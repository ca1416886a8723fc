package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// fragPrefix names the namespaces of the fragment test.
const fragPrefix = "tfr-"

// fragFile writes size bytes of random data with marker every 512 bytes.
func fragFile(t *testing.T, path string, size int) [32]byte {
	t.Helper()
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := 0; i+len(marker) <= size; i += 512 {
		copy(b[i:], marker)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// tsharkCount counts the frames of a capture that match a display filter.
func tsharkCount(t *testing.T, path, filter string) int {
	t.Helper()
	out, err := exec.Command("tshark", "-r", path, "-n", "-Y", filter, "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark -r %s -Y %q: %v", path, filter, err)
	}
	s := strings.TrimSpace(string(out))
	if s == "" {
		return 0
	}
	return len(strings.Split(s, "\n"))
}

// tsharkBytes sums the TCP payload bytes of the frames of a capture that
// match a display filter (a capture of a veth sees GSO super-frames whole,
// so frames are not segments).
func tsharkBytes(t *testing.T, path, filter string) int {
	t.Helper()
	out, err := exec.Command("tshark", "-r", path, "-n", "-Y", filter, "-T", "fields", "-e", "tcp.len").Output()
	if err != nil {
		t.Fatalf("tshark -r %s -Y %q: %v", path, filter, err)
	}
	sum := 0
	for _, l := range strings.Fields(string(out)) {
		n, err := strconv.Atoi(l)
		if err != nil {
			t.Fatalf("tshark -r %s -Y %q: tcp.len %q", path, filter, l)
		}
		sum += n
	}
	return sum
}

// TestFragmentedInsideEncrypted: an inside router (rA) whose link toward the
// appliance has a smaller MTU than the inside host's (1280 against 1500),
// and the host (hA, the HTTP server) sending without DF: rA fragments every
// full-sized segment. A 10 MB download from hB through both appliances
// arrives intact and encrypted; the untrusted link carries no marker and
// no fragment (the engine reassembles and seals into frames that fit), and
// the inside link does carry fragments (else the test proves nothing).
// Before, the engine dropped the first fragments and the workers forwarded
// the later ones as they came: the transfer stalled and plaintext crossed.
// It runs with one queue per port and with two: on the AF_PACKET backend,
// whose fanout puts a datagram's fragments on one worker by their
// addresses, and on AF_XDP, where they arrive on either queue; the worker
// that receives them steers them to the flow's owner
// (appliance/fragsteer.go). With two queues the download crawled (about
// 30 KB/s, half the runs past the timeout) until the steering kept the
// datagrams of a connection in order.
func TestFragmentedInsideEncrypted(t *testing.T) {
	t.Run("1 queue", func(t *testing.T) { fragmentedInside(t, 1, "", false) })
	t.Run("2 queues", func(t *testing.T) { fragmentedInside(t, 2, "", false) })
	t.Run("2 queues afxdp", func(t *testing.T) { fragmentedInside(t, 2, "afxdp", false) })
}

// TestFragmentedInsidePlain: the same downloads, with gwB's engine off, so
// the connections stay plain. gwA holds every fragment until its datagram
// is whole and checks out, and then lets the original fragments go on
// (engine/frag.go: a forged first fragment must not decide a datagram):
// both downloads arrive intact, and the untrusted link carries the
// fragments as the inside host's router cut them.
func TestFragmentedInsidePlain(t *testing.T) { fragmentedInside(t, 1, "", true) }

func fragmentedInside(t *testing.T, queues int, backend string, plain bool) {
	requireRoot(t)
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatalf("tshark not installed (.ci/run installs it): %v", err)
	}
	e := &encEnv{gw: map[topology.Node]*netns.Process{}}
	if e.daemon = os.Getenv("TEI_TCPINCD"); e.daemon == "" {
		e.daemon = buildDaemon(t)
	}
	lockPrefix(t, fragPrefix)
	_ = topology.Down(fragPrefix)
	var err error
	e.topo, err = topology.Up(topology.Options{Prefix: fragPrefix, Net: 79, Mode: topology.ModeBare, InsideRouterMTU: 1280, Queues: queues})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.topo.Down(); err != nil {
			t.Errorf("topology down: %v", err)
		}
	})
	// hA sends without DF (RFC 1191 path MTU discovery off).
	if out, err := e.topo.Run(topology.HostA, "sysctl", "-qw", "net.ipv4.ip_no_pmtu_disc=1"); err != nil {
		t.Fatalf("sysctl: %v %s", err, out)
	}
	e.queues, e.backend = queues, backend
	e.writeConf(t)
	if plain {
		conf, err := os.ReadFile(e.conf)
		if err != nil {
			t.Fatal(err)
		}
		off := filepath.Join(t.TempDir(), "engine-off.yaml")
		if err := os.WriteFile(off, bytes.Replace(conf, []byte("engine:\n"), []byte("engine:\n  enabled: false\n"), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		e.daemonArgs = map[topology.Node][]string{topology.GwB: {"--config", off}}
	}
	e.startDaemon(t, topology.GwA)
	e.startDaemon(t, topology.GwB)

	dir := t.TempDir()
	const size = 10 << 20
	sum := fragFile(t, filepath.Join(dir, "file"), size)
	srv, err := e.topo.Start(topology.HostA, "http-hA", "python3", "-u", "-m", "http.server", "--bind", "::", "--directory", dir, "8000")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitOutput("Serving HTTP", 15*time.Second); err != nil {
		t.Fatalf("http server: %v\n%s", err, srv.Output())
	}
	e.waitPing(t, e.topo.Addr(topology.HostB).V4)

	capDir := t.TempDir()
	outside, err := e.topo.StartCapture(filepath.Join(capDir, "untrusted.pcapng"))
	if err != nil {
		t.Fatal(err)
	}
	inside, err := e.topo.StartCaptureOn(topology.InsideRouter, filepath.Join(capDir, "inside.pcapng"), topology.InsideToGw)
	if err != nil {
		t.Fatal(err)
	}
	a := e.topo.Addr(topology.HostA)
	v6, err := startTranslator(t, e.topo, a.V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		addr netip.Addr
	}{{"IPv4", a.V4}, {"IPv6", v6}} {
		got := filepath.Join(dir, "got-"+c.name)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
		url := fmt.Sprintf("http://%s/file", netip.AddrPortFrom(c.addr, 8000))
		out, err := e.topo.Command(ctx, topology.HostB, "curl", "-sS", "--fail", "--max-time", "90",
			"-o", got, "-w", "%{local_port}", url).CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("%s: curl %s: %v %s", c.name, url, err, out)
			for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
				var st map[string]any
				if err := e.admin(gw, "/api/v1/status", &st); err == nil {
					t.Logf("%s counters: %v", gw, st["counters"])
				}
			}
			if out, err := e.topo.Run(topology.HostA, "ss", "-tni", "sport = :8000"); err == nil {
				t.Logf("hA sockets:\n%s", out)
			}
			for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
				var fl any
				if err := e.admin(gw, "/api/v1/flows", &fl); err == nil {
					t.Logf("%s flows: %v", gw, fl)
				}
			}
			continue
		}
		b, err := os.ReadFile(got)
		if err != nil || len(b) != size || sha256.Sum256(b) != sum {
			t.Errorf("%s: downloaded %d bytes (%v), want %d with the same sha256", c.name, len(b), err, size)
			continue
		}
		// e.flow names the ports (8000, client) the way each gateway
		// lists this download: gwA has the server inside, gwB outside.
		port, _ := strconv.Atoi(strings.TrimSpace(string(out)))
		if plain {
			if f, err := e.flow(topology.GwA, 8000, uint16(port)); err != nil || f.Encrypted {
				t.Errorf("%s: gwA reports the download %+v (%v), want plain", c.name, f, err)
			}
			continue
		}
		encrypted := true
		for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
			f, err := e.flow(gw, 8000, uint16(port))
			if err != nil || !f.Encrypted {
				t.Errorf("%s: %s reports the download %+v (%v), want encrypted", c.name, gw, f, err)
				encrypted = false
			}
		}
		if encrypted {
			t.Logf("%s: %d bytes, sha256 equal, encrypted at both appliances", c.name, size)
		}
	}
	for _, c := range []*topology.Capture{outside, inside} {
		if _, err := c.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	const fragFilter = "ip.flags.mf == 1 || ip.frag_offset > 0 || ipv6.fragment"
	if plain {
		if n := tsharkCount(t, outside.Path, "ip.flags.mf == 1"); n < size/1500 {
			t.Errorf("the untrusted link carried %d first fragments of IPv4 datagrams, want the inside router's, one per segment", n)
		}
	} else {
		noMarker(t, outside.Path, size)
		if n := tsharkCount(t, outside.Path, fragFilter); n != 0 {
			t.Errorf("%d IP fragments on the untrusted link", n)
		}
	}
	keepCapture(t, inside.Path)
	if n := tsharkCount(t, inside.Path, "ip.flags.mf == 1"); n < size/1500 {
		t.Errorf("the inside link carried %d first fragments of IPv4 datagrams, want one per segment: the test proves nothing", n)
	}
	if n := tsharkCount(t, inside.Path, "ipv6.fragment && tcp"); n < size/1500 {
		t.Errorf("the inside link carried %d first fragments of IPv6 datagrams (Fragment header, TCP), want one per segment: the test proves nothing", n)
	}
	raw, _ := os.ReadFile(inside.Path)
	if !bytes.Contains(raw, []byte(marker)) {
		t.Error("the marker is not on the inside link: the capture proves nothing")
	}
	var st struct {
		Counters struct {
			Fragments map[string]uint64 `json:"fragments"`
		} `json:"counters"`
	}
	if err := e.admin(topology.GwA, "/api/v1/status", &st); err != nil {
		t.Error(err)
	} else if st.Counters.Fragments["reassembled"] < size/1500 {
		t.Errorf("gwA reassembled %d datagrams, want about one per full segment of each download (%v)", st.Counters.Fragments["reassembled"], st.Counters.Fragments)
	} else {
		t.Logf("gwA fragments: %v", st.Counters.Fragments)
	}
}

// startTranslator makes rA a stateless IPv4/IPv6 translator (SIIT, RFC
// 7915) with tayga, so that hA, an IPv4 host, is reachable over IPv6 at the
// address it returns (hA's IPv4 address under the prefix fd00:N:64::/96);
// IPv6 clients get an IPv4 address from a pool. Linux TCP never sends an
// IPv6 fragment (it lowers its segment size to the path MTU, and
// ip6_fragment refuses a TCP packet larger than the MTU) and IPv6 routers
// do not fragment; a translator does (RFC 7915 §5.1.1): an IPv4 datagram
// without DF that is too big for the IPv6 side (tayga: 1280 bytes) leaves
// in IPv6 fragments. So hA sending without DF gives real IPv6 fragments of
// real TCP on the link toward gwA.
func startTranslator(t *testing.T, topo *topology.Topology, hA4 netip.Addr) (netip.Addr, error) {
	t.Helper()
	if _, err := exec.LookPath("tayga"); err != nil {
		return netip.Addr{}, fmt.Errorf("tayga not installed (.ci/run installs it): %v", err)
	}
	n := topo.Options().Net
	prefix := fmt.Sprintf("fd00:%d:64::", n)
	pool := fmt.Sprintf("10.%d.99.0/24", n)
	dir := t.TempDir()
	conf := filepath.Join(dir, "tayga.conf")
	body := fmt.Sprintf("tun-device nat64\nipv4-addr 10.%d.99.1\nipv6-addr fd00:%d:65::1\nprefix %s/96\ndynamic-pool %s\ndata-dir %s\n",
		n, n, prefix, pool, dir)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		return netip.Addr{}, err
	}
	run := func(node topology.Node, args ...string) error {
		if out, err := topo.Run(node, args...); err != nil {
			return fmt.Errorf("%s: %v: %v %s", node, args, err, out)
		}
		return nil
	}
	ra := topology.InsideRouter
	if err := run(ra, "tayga", "--mktun", "-c", conf); err != nil {
		return netip.Addr{}, err
	}
	for _, c := range [][]string{
		{"ip", "link", "set", "nat64", "up"},
		{"ip", "route", "add", pool, "dev", "nat64"},
		{"ip", "-6", "route", "add", prefix + "/96", "dev", "nat64"},
	} {
		if err := run(ra, c...); err != nil {
			return netip.Addr{}, err
		}
	}
	_, leg6 := topo.InsideRouterAddr()
	if err := run(topology.Router, "ip", "-6", "route", "add", prefix+"/96", "via", leg6.String()); err != nil {
		return netip.Addr{}, err
	}
	if _, err := topo.Start(ra, "tayga", "tayga", "-c", conf, "--nodetach"); err != nil {
		return netip.Addr{}, err
	}
	b := hA4.As4()
	return netip.MustParseAddr(fmt.Sprintf("%s%x:%x", prefix, uint16(b[0])<<8|uint16(b[1]), uint16(b[2])<<8|uint16(b[3]))), nil
}
