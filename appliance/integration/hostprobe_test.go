package integration

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestHostProbes: idle encrypted connections whose hosts send no
// keep-alives of their own, with engine.idle_timeout at 2 s. Once a host
// has been silent half that long, its appliance sends it a TCP keep-alive probe
// (docs/protocol.md §15); ten unanswered, a second apart here, end the
// appliance's record.
//
// alive: each side sends half of its 1 MB, stays quiet 15 s (longer than
// the 1 s before the first probe and the ten probes after it), then sends
// the rest. The hosts' kernels answer the probes (PAWS takes them), the
// records stay, and the transfer completes with equal hashes both ways.
//
// gone: while a connection is quiet, hA drops everything that reaches it
// for it (nftables on its input): gwA's probes go unanswered and gwA ends
// its record, its tuple lingering in the negotiated set. gwB's next frame
// is then reset, and hB's connection with it. Before, no probe went, and
// both appliances kept their records for good, refreshing each other.
func TestHostProbes(t *testing.T) {
	const idle = 2 * time.Second
	e := newEncEnvOpts(t, encOpts{net: 77, idle: idle})
	b := e.topo.Addr(topology.HostB).V4
	gws := []topology.Node{topology.GwA, topology.GwB}

	t.Run("alive", func(t *testing.T) {
		server := e.startTool(t, topology.HostB, "stream-server", "stream server ready", "-listen", "[::]:5004", "-keepalive", "-1s", "-gap", "15s")
		defer func() { _ = server.Stop() }()
		keepAlives := func() uint64 {
			return e.nstat(t, topology.HostA, "TcpExtTCPKeepAlive") + e.nstat(t, topology.HostB, "TcpExtTCPKeepAlive")
		}
		ka := keepAlives()
		const n = 1 << 20
		d, ok := e.measure(t, func() {
			r := e.transfer(t, topology.HostA, netip.AddrPortFrom(b, 5004), server, n, n, time.Minute, "-keepalive", "-1s", "-gap", "15s")
			checkTransfer(t, r, n, n)
		})
		if k := keepAlives() - ka; k != 0 {
			t.Errorf("the hosts sent %d keep-alive probes of their own, want none", k)
		}
		for _, gw := range gws {
			t.Logf("%s: %d host probes, %d hosts gone", gw, d[gw].Events["host_probes"], d[gw].Events["host_gone"])
			if ev := d[gw].Events; ok && (ev["host_probes"] < 3 || ev["host_gone"] != 0) {
				t.Errorf("%s: %d host probes, %d hosts gone; want at least 3 probes in 15 s, none gone", gw, ev["host_probes"], ev["host_gone"])
			}
		}
	})

	t.Run("gone", func(t *testing.T) {
		server := e.startTool(t, topology.HostB, "stream-server", "stream server ready", "-listen", "[::]:5005", "-keepalive", "-1s", "-gap", "2m")
		defer func() { _ = server.Stop() }()
		client, err := e.topo.Start(topology.HostA, "stream-client-gone", e.toolArgs("stream-client", "-addr", netip.AddrPortFrom(b, 5005).String(),
			"-n", "65536", "-m", "65536", "-keepalive", "-1s", "-gap", "2m")...)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = client.StopWith(syscall.SIGKILL, time.Second) }()
		if err := client.WaitOutput("connected", 10*time.Second); err != nil {
			t.Fatalf("client: %v\n%s", err, client.Output())
		}
		local, err := netip.ParseAddrPort(connectedRe.FindStringSubmatch(client.Output())[1])
		if err != nil {
			t.Fatal(err)
		}
		port := local.Port()
		// Both halves of 32 KB cross at once; then both hosts are quiet.
		time.Sleep(time.Second)
		for _, gw := range gws {
			if f, err := e.flow(gw, port, 5005); err != nil || !f.Encrypted {
				t.Fatalf("%s: %+v, %v; want the connection encrypted", gw, f, err)
			}
		}
		before := map[topology.Node]statusCounters{}
		for _, gw := range gws {
			if before[gw], err = e.counters(gw); err != nil {
				t.Fatal(err)
			}
		}
		const table = "tcpinc_gone"
		for _, args := range [][]string{
			{"add", "table", "inet", table},
			{"add", "chain", "inet", table, "in", "{ type filter hook input priority 0; }"},
			{"add", "rule", "inet", table, "in", "tcp", "sport", "5005", "drop"},
		} {
			if out, err := e.topo.Run(topology.HostA, append([]string{"nft"}, args...)...); err != nil {
				t.Fatalf("nft %v: %v\n%s", args, err, out)
			}
		}
		defer func() { _, _ = e.topo.Run(topology.HostA, "nft", "delete", "table", "inet", table) }()
		t0 := time.Now()
		// gwA: the first probe 1 s after hA's last segment, ten a
		// second apart: gone after about 10 to 11 s.
		goneAt := func(gw topology.Node, within time.Duration) time.Duration {
			for time.Since(t0) < within {
				if _, err := e.flow(gw, port, 5005); err != nil && strings.Contains(err.Error(), "lists no flow") {
					return time.Since(t0)
				}
				time.Sleep(200 * time.Millisecond)
			}
			t.Fatalf("%s still lists the connection %v after hA went silent", gw, within)
			return 0
		}
		a := goneAt(topology.GwA, 30*time.Second)
		bGone := goneAt(topology.GwB, a+10*time.Second)
		t.Logf("gwA forgot the connection %v after hA went silent, gwB %v", a.Round(100*time.Millisecond), bGone.Round(100*time.Millisecond))
		if a < 8*time.Second {
			t.Errorf("gwA forgot the connection %v after hA went silent: before its ten probes", a)
		}
		delta := map[topology.Node]map[string]uint64{}
		var strays uint64
		for _, gw := range gws {
			c, err := e.counters(gw)
			if err != nil {
				t.Fatal(err)
			}
			delta[gw] = c.minus(before[gw]).Events
			if gw == topology.GwA {
				strays = c.StrayResets - before[gw].StrayResets
			}
		}
		if ev := delta[topology.GwA]; ev["host_probes"] < 10 || ev["host_gone"] != 1 || strays == 0 {
			t.Errorf("gwA: %d probes, %d hosts gone, %d stray resets; want 10 probes, 1 gone and gwB's frame reset", ev["host_probes"], ev["host_gone"], strays)
		}
		if n := delta[topology.GwB]["host_gone"]; n != 0 {
			t.Errorf("gwB: %d hosts gone, want none (hB answers)", n)
		}
		// hB's connection was reset: no socket of it is left.
		out, err := e.topo.Run(topology.HostB, "ss", "-tnH", "sport", "= :5005")
		if err != nil {
			t.Fatalf("ss: %v\n%s", err, out)
		}
		if regexp.MustCompile(fmt.Sprintf(`:%d\b`, port)).MatchString(out) {
			t.Errorf("hB still has the connection:\n%s", out)
		}
	})
}
