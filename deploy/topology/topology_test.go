package topology

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
)

// The tests use their own prefixes ("tt-...") so they never touch the demo's
// topology (tci-) or the bench's.

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("topology tests need root (network namespaces, veth, nftables); CI runs them as root")
	}
	for _, tool := range []string{"ip", "nft", "ethtool", "ping", "curl", "python3", "tshark"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (.ci/run installs it): %v", tool, err)
		}
	}
}

func up(t *testing.T, opt Options) *Topology {
	t.Helper()
	topo, err := Up(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.Down(); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	return topo
}

func ping(topo *Topology, from Node, dst netip.Addr, extra ...string) (string, error) {
	args := append([]string{"ping", "-n", "-c", "2", "-i", "0.1", "-W", "1"}, extra...)
	return topo.Run(from, append(args, dst.String())...)
}

func mustPing(t *testing.T, topo *Topology, from Node, dst netip.Addr, extra ...string) string {
	t.Helper()
	out, err := ping(topo, from, dst, extra...)
	if err != nil {
		t.Fatalf("ping %s -> %s: %v", from, dst, err)
	}
	return out
}

// httpServer serves dir on hB port 8080, dual stack, and returns the process
// (its output is the access log, one line per request with the client address).
func httpServer(t *testing.T, topo *Topology, dir string) *netns.Process {
	t.Helper()
	srv, err := topo.Start(HostB, "http.server", "python3", "-u", "-m", "http.server", "8080", "--bind", "::", "--directory", dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitOutput("Serving HTTP", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return srv
}

func url(a netip.Addr, path string) string {
	return "http://" + netip.AddrPortFrom(a, 8080).String() + "/" + path
}

func curlHash(t *testing.T, topo *Topology, from Node, u string) string {
	t.Helper()
	out, err := topo.Run(from, "sh", "-c", "curl -sS --fail --max-time 10 '"+u+"' | sha256sum")
	if err != nil {
		t.Fatalf("curl %s: %v", u, err)
	}
	return strings.Fields(out)[0]
}

func TestBridgeTopology(t *testing.T) {
	requireRoot(t)
	topo := up(t, Options{Prefix: "tt-topo-", Net: 91, VLAN: true})
	a, b, f := topo.Addr(HostA), topo.Addr(HostB), topo.Addr(HostF)

	t.Run("ping", func(t *testing.T) {
		for _, dst := range []netip.Addr{b.V4, b.V6, f.V4, f.V6} {
			mustPing(t, topo, HostA, dst)
		}
		// One router between hA and hB: the appliances are layer-2 bumps.
		if out := mustPing(t, topo, HostA, b.V4); !strings.Contains(out, "ttl=63") {
			t.Errorf("want ttl=63 (one routed hop), got:\n%s", out)
		}
	})

	t.Run("offloads", func(t *testing.T) {
		out, err := topo.Run(HostA, "ethtool", "-k", HostIface)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"tx-checksumming: off", "tcp-segmentation-offload: off",
			"generic-segmentation-offload: off", "generic-receive-offload: on"} {
			if !strings.Contains(out, want) {
				t.Errorf("hA eth0: want %q", want)
			}
		}
		for _, nb := range append(topo.neighbours(), [2]string{topo.NS(GwA), InsidePort}, [2]string{topo.NS(GwB), OutsidePort}) {
			out, err := netns.Run(nb[0], "tc", "qdisc", "show", "dev", nb[1])
			if err != nil || !strings.Contains(out, "pfifo_fast") {
				t.Errorf("%s:%s: want a pfifo_fast qdisc, got %q %v", nb[0], nb[1], out, err)
			}
		}
	})

	// A file with random content, served by hB and fetched by hA over v4, v6 and the VLAN.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	content := make([]byte, 1<<20)
	_, _ = rand.Read(content)
	if err := os.WriteFile(filepath.Join(dir, "blob"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	want := hex.EncodeToString(sum[:])
	srv := httpServer(t, topo, dir)

	t.Run("curl", func(t *testing.T) {
		for _, dst := range []netip.Addr{b.V4, b.V6} {
			if got := curlHash(t, topo, HostA, url(dst, "blob")); got != want {
				t.Errorf("curl %s: sha256 %s, want %s", dst, got, want)
			}
		}
	})

	t.Run("vlan", func(t *testing.T) {
		if !a.VLANPresent || !b.VLANPresent {
			t.Fatal("VLAN addresses missing")
		}
		capture, err := topo.StartCapture(filepath.Join(t.TempDir(), "vlan.pcapng"), RouterToA)
		if err != nil {
			t.Fatal(err)
		}
		mustPing(t, topo, HostA, b.VLAN4)
		mustPing(t, topo, HostA, b.VLAN6)
		if got := curlHash(t, topo, HostA, url(b.VLAN4, "blob")); got != want {
			t.Errorf("curl over VLAN: sha256 %s, want %s", got, want)
		}
		path, err := capture.Stop()
		if err != nil {
			t.Fatal(err)
		}
		// The frames between gwA and rtr carry the 802.1Q tag, both ways.
		out, err := netns.Cmd("tshark", "-n", "-r", path, "-Y", fmt.Sprintf("vlan.id == %d", VLANID),
			"-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.srcport")
		if err != nil {
			t.Fatal(err)
		}
		var up, down, v6 bool
		for _, line := range strings.Split(out, "\n") {
			f := strings.Split(line, "\t")
			if len(f) < 4 {
				continue
			}
			up = up || f[0] == a.VLAN4.String() && f[3] != ""
			down = down || f[1] == a.VLAN4.String() && f[3] != ""
			v6 = v6 || f[2] == b.VLAN6.String()
		}
		if !up || !down || !v6 {
			t.Errorf("capture on rtr:%s: tagged TCP from hA %v, to hA %v, tagged IPv6 to hB %v; tshark:\n%s",
				RouterToA, up, down, v6, out)
		}
	})

	t.Run("loss", func(t *testing.T) {
		if err := topo.SetLoss(100, LossAtoB); err != nil {
			t.Fatal(err)
		}
		if _, err := ping(topo, HostA, b.V4); err == nil {
			t.Error("ping got through 100% loss")
		}
		n, err := topo.LossDropped()
		if err != nil {
			t.Fatal(err)
		}
		if n < 2 {
			t.Errorf("loss counter %d, want >= 2", n)
		}
		// Side B to hF is not on the lossy path.
		mustPing(t, topo, HostB, f.V4)

		if err := topo.SetLoss(30, LossBoth); err != nil {
			t.Fatal(err)
		}
		out, _ := topo.Run(HostA, "ping", "-n", "-q", "-c", "100", "-i", "0.005", "-w", "2", b.V4.String())
		n, err = topo.LossDropped()
		if err != nil {
			t.Fatal(err)
		}
		// P(no drop in 100 tries at 30% each way) is negligible; so is P(all dropped).
		if n == 0 || strings.Contains(out, " 0 received") {
			t.Errorf("30%% loss: %d dropped, ping says:\n%s", n, out)
		}
		if err := topo.SetLoss(0, LossBoth); err != nil {
			t.Fatal(err)
		}
		mustPing(t, topo, HostA, b.V4)
	})

	t.Run("nat", func(t *testing.T) {
		rtrB4, rtrB6 := topo.RouterAddr(HostB)
		if err := topo.SetNAT(true); err != nil {
			t.Fatal(err)
		}
		before := srv.Output()
		curlHash(t, topo, HostA, url(b.V4, "blob?nat4"))
		curlHash(t, topo, HostA, url(b.V6, "blob?nat6"))
		log := strings.TrimPrefix(srv.Output(), before)
		for _, w := range []string{rtrB4.String() + " - - ", rtrB6.String() + " - - "} {
			if !strings.Contains(log, w) {
				t.Errorf("with NAT hB should see the client as %q; access log:\n%s", w, log)
			}
		}
		if strings.Contains(log, a.V4.String()) {
			t.Errorf("hA's address %s reached hB through the NAT:\n%s", a.V4, log)
		}
		if err := topo.SetNAT(false); err != nil {
			t.Fatal(err)
		}
		before = srv.Output()
		curlHash(t, topo, HostA, url(b.V4, "blob?direct"))
		if log := strings.TrimPrefix(srv.Output(), before); !strings.Contains(log, a.V4.String()+" - - ") {
			t.Errorf("without NAT hB should see %s; access log:\n%s", a.V4, log)
		}
	})

	t.Run("down", func(t *testing.T) {
		pid := srv.Pid()
		if err := topo.Down(); err != nil {
			t.Fatal(err)
		}
		if left, _ := netns.List("tt-topo-"); len(left) != 0 {
			t.Errorf("namespaces left after Down: %v", left)
		}
		if netns.Alive(pid) {
			t.Errorf("http server (pid %d) survived Down", pid)
		}
	})
}

func TestBareAndRoutedModes(t *testing.T) {
	requireRoot(t)
	bare := up(t, Options{Prefix: "tt-bare-", Net: 92, Mode: ModeBare})
	// Nothing joins in and out until an appliance runs there.
	if _, err := ping(bare, HostA, bare.Addr(HostB).V4); err == nil {
		t.Error("bare mode forwards without an appliance")
	}
	mustPing(t, bare, Router, bare.Addr(HostF).V4)
	if out, _ := bare.Run(GwA, "ip", "-o", "addr", "show", "dev", InsidePort); strings.Contains(out, "inet") {
		t.Errorf("gwA:in has addresses in bare mode:\n%s", out)
	}

	routed := up(t, Options{Prefix: "tt-rtd-", Net: 93, Mode: ModeRouted})
	b := routed.Addr(HostB)
	// hA -> gwA -> rtr -> gwB -> hB: three routed hops.
	if out := mustPing(t, routed, HostA, b.V4); !strings.Contains(out, "ttl=61") {
		t.Errorf("routed mode: want ttl=61, got:\n%s", out)
	}
	mustPing(t, routed, HostA, b.V6)
	gwB4, _ := routed.GatewayOutsideAddr(GwB)
	mustPing(t, routed, GwA, gwB4)

	// Both side by side, then both gone.
	for _, p := range []string{"tt-bare-", "tt-rtd-"} {
		if !Exists(p) {
			t.Errorf("%s topology missing", p)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{
		{Net: 300}, {Mode: "mesh"}, {MTU: 500}, {Prefix: "bad/prefix"},
	} {
		if err := o.fill(); err == nil {
			t.Errorf("%+v: want error", o)
		}
	}
	o := Options{}
	if err := o.fill(); err != nil || o.Prefix != DefaultPrefix || o.Mode != ModeBridge || o.MTU != 1500 {
		t.Errorf("defaults: %+v %v", o, err)
	}
}

func TestSumNftCounters(t *testing.T) {
	js := `{"nftables":[{"metainfo":{"version":"1.0.6"}},{"table":{"family":"inet","name":"tcpinc_loss"}},
{"rule":{"expr":[{"match":{}},{"counter":{"packets":7,"bytes":588}},{"drop":null}]}},
{"rule":{"expr":[{"counter":{"packets":5,"bytes":420}},{"drop":null}]}}]}`
	n, err := sumNftCounters([]byte(js))
	if err != nil || n != 12 {
		t.Fatalf("got %d, %v; want 12", n, err)
	}
	if _, err := sumNftCounters([]byte("{")); err == nil {
		t.Error("bad json: want error")
	}
}

func TestDroppedFrames(t *testing.T) {
	for _, c := range []struct {
		out   string
		n     uint64
		found bool
	}{
		{"Capturing on 'toA'\n6 packets captured\n", 0, false},
		{"1200 packets captured\n0 packets dropped from toA\n", 0, true},
		{"1200 packets captured\n3 packets dropped from toA\n1 packet dropped from toB\n", 4, true},
	} {
		n, found := droppedFrames(c.out)
		if n != c.n || found != c.found {
			t.Errorf("droppedFrames(%q) = %d, %v; want %d, %v", c.out, n, found, c.n, c.found)
		}
	}
}
