package integration

import (
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestHostTCPOptionVariants: hosts whose stacks leave out TCP options that
// Linux sends by default (Windows does not send timestamps; some stacks
// lack window scaling or SACK). The appliances translate whatever the two
// hosts negotiated: windows without scaling (at most 64 KiB), segments
// without timestamps, recovery without SACK (where the ACKs of a release
// must reach the sender as one: appliance/engine/release.go); a server
// that answers with SYN cookies; hosts announcing the largest window scale.
// 8 MB each way over IPv4 and IPv6, encrypted, with and without 2 % loss on
// the untrusted link.
func TestHostTCPOptionVariants(t *testing.T) {
	e := newEncEnv(t, 86)
	set := func(kv ...string) {
		t.Helper()
		for _, n := range []topology.Node{topology.HostA, topology.HostB} {
			for _, s := range kv {
				if out, err := e.topo.Run(n, "sysctl", "-qw", s); err != nil {
					t.Fatalf("%s: sysctl %s: %v\n%s", n, s, err, out)
				}
			}
		}
	}
	rmem, err := e.topo.Run(topology.HostA, "sysctl", "-n", "net.ipv4.tcp_rmem")
	if err != nil {
		t.Fatalf("sysctl: %v\n%s", err, rmem)
	}
	defaults := []string{"net.ipv4.tcp_timestamps=1", "net.ipv4.tcp_sack=1", "net.ipv4.tcp_window_scaling=1", "net.ipv4.tcp_syncookies=1",
		"net.ipv4.tcp_rmem=" + strings.Join(strings.Fields(rmem), " ")}
	for _, c := range []struct {
		name   string
		sysctl []string
		loss   []float64
	}{
		{"no-timestamps", []string{"net.ipv4.tcp_timestamps=0"}, []float64{0, 2}},
		{"no-window-scaling", []string{"net.ipv4.tcp_window_scaling=0"}, []float64{0, 2}},
		{"no-sack", []string{"net.ipv4.tcp_sack=0"}, []float64{0, 2}},
		{"none-of-them", []string{"net.ipv4.tcp_timestamps=0", "net.ipv4.tcp_sack=0", "net.ipv4.tcp_window_scaling=0"}, []float64{0, 2}},
		// The server answers every SYN with a SYN cookie and keeps no
		// state until the third segment, whose ACK (and, with timestamps,
		// TSecr, where Linux encodes the window scale and SACK) must
		// come back as it sent them.
		{"syncookies", []string{"net.ipv4.tcp_syncookies=2"}, []float64{0, 2}},
		{"syncookies-no-timestamps", []string{"net.ipv4.tcp_syncookies=2", "net.ipv4.tcp_timestamps=0"}, []float64{0}},
		// Receive buffers of up to 1 GiB: Linux announces the largest
		// window scale, 14, so a window counts in units of 16 KiB.
		{"window-scale-14", []string{"net.ipv4.tcp_rmem=4096 131072 1073741824"}, []float64{0, 2}},
	} {
		for _, loss := range c.loss {
			t.Run(fmt.Sprintf("%s/loss=%v%%", c.name, loss), func(t *testing.T) {
				set(defaults...)
				set(c.sysctl...)
				e.setLoss(t, loss)
				defer e.setLoss(t, 0)
				cookies := e.nstat(t, topology.HostB, "TcpExtSyncookiesRecv")
				e.encryptedToB(t, e.streamB, 5001, 8<<20, 2*time.Minute)
				cookies = e.nstat(t, topology.HostB, "TcpExtSyncookiesRecv") - cookies
				if strings.HasPrefix(c.name, "syncookies") && cookies < 2 {
					t.Fatalf("hB took %d SYN cookies back, want one per transfer (IPv4, IPv6) at least", cookies)
				}
			})
		}
	}
	set(defaults...)
}

// TestHostKeepAlive: hosts whose sockets send TCP keep-alive probes (an
// old segment, one before the next sequence number, that the peer must
// answer with an ACK) while an encrypted connection is quiet. The
// appliances answer or carry the probes (docs/protocol.md: host keep-alives
// are passed on); if no answer came back, three unanswered probes would
// reset the connection. Each side sends half its 2 MB, stays quiet 6 s
// with probes every second, then sends the rest, over IPv4 and IPv6.
func TestHostKeepAlive(t *testing.T) {
	e := newEncEnv(t, 87)
	server := e.startTool(t, topology.HostB, "stream-server", "stream server ready", "-listen", "[::]:5002", "-keepalive", "1s", "-gap", "6s")
	probes := func() (a, b uint64) {
		return e.nstat(t, topology.HostA, "TcpExtTCPKeepAlive"), e.nstat(t, topology.HostB, "TcpExtTCPKeepAlive")
	}
	a0, b0 := probes()
	d, ok := e.measure(t, func() {
		e.encryptedToB(t, server, 5002, 2<<20, 2*time.Minute, "-keepalive", "1s", "-gap", "6s")
	})
	a1, b1 := probes()
	t.Logf("keep-alive probes sent: hA %d, hB %d; handled by gwA %d, gwB %d", a1-a0, b1-b0, d[topology.GwA].Events["keepalives"], d[topology.GwB].Events["keepalives"])
	// Two quiet spells of 6 s: at least 4 probes each side in each.
	if a1-a0 < 8 || b1-b0 < 8 {
		t.Errorf("keep-alive probes sent: hA %d, hB %d; want at least 8 each", a1-a0, b1-b0)
	}
	if ok {
		for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
			if n := d[gw].Events["keepalives"]; n < 8 {
				t.Errorf("%s: %d keep-alives handled, want at least 8 (events %v)", gw, n, d[gw].Events)
			}
		}
	}
}

// TestDSCPMarkedMidConnection: both hosts mark their sockets EF (DSCP 46)
// halfway through an encrypted transfer, as OpenSSH marks a session once
// it turns interactive. The untrusted link and each receiving host must see
// the mark on the packets sent after it, over IPv4 and IPv6, as over a
// plain path. Before, the appliances built every segment with the DSCP of
// the connection's SYN (or SYN-ACK): the mark never left the enclave.
func TestDSCPMarkedMidConnection(t *testing.T) {
	e := newEncEnv(t, 91)
	const table = "tcpinc_dscp"
	count := map[topology.Node]string{topology.HostA: "input", topology.HostB: "input", topology.Router: "forward"}
	for n, hook := range count {
		for _, args := range [][]string{
			{"add", "table", "inet", table},
			{"add", "chain", "inet", table, "c", "{ type filter hook " + hook + " priority 0; }"},
			{"add", "counter", "inet", table, "ef4"},
			{"add", "counter", "inet", table, "ef6"},
			{"add", "rule", "inet", table, "c", "ip", "dscp", "ef", "meta", "l4proto", "tcp", "counter", "name", "ef4"},
			{"add", "rule", "inet", table, "c", "ip6", "dscp", "ef", "meta", "l4proto", "tcp", "counter", "name", "ef6"},
		} {
			if out, err := e.topo.Run(n, append([]string{"nft"}, args...)...); err != nil {
				t.Fatalf("%s: nft %v: %v\n%s", n, args, err, out)
			}
		}
		t.Cleanup(func() { _, _ = e.topo.Run(n, "nft", "delete", "table", "inet", table) })
	}
	// bytes is what counter counted: bytes, not packets, as GRO may have
	// merged packets before nft saw them.
	bytes := func(n topology.Node, counter string) uint64 {
		out, err := e.topo.Run(n, "nft", "list", "counter", "inet", table, counter)
		if err != nil {
			t.Fatalf("%s: nft list counter %s: %v\n%s", n, counter, err, out)
		}
		_, after, _ := strings.Cut(out, " bytes ")
		v, err := strconv.ParseUint(strings.Fields(after + " x")[0], 10, 64)
		if err != nil {
			t.Fatalf("%s: counter %s: %q", n, counter, out)
		}
		return v
	}
	const n = 4 << 20
	server := e.startTool(t, topology.HostB, "stream-server", "stream server ready", "-listen", "[::]:5003", "-gap", "500ms", "-dscp", "46")
	e.encryptedToB(t, server, 5003, n, 2*time.Minute, "-gap", "500ms", "-dscp", "46")
	// Every byte of the second half goes marked: n/2 each way, so each host
	// receives at least n/2 bytes in EF packets per family, and the router
	// forwards twice that.
	for node := range count {
		want := uint64(n / 2)
		if node == topology.Router {
			want = n
		}
		ef4, ef6 := bytes(node, "ef4"), bytes(node, "ef6")
		t.Logf("%s: %d bytes of TCP packets marked EF over IPv4, %d over IPv6", node, ef4, ef6)
		if ef4 < want || ef6 < want {
			t.Errorf("%s: %d bytes of TCP packets marked EF over IPv4 and %d over IPv6, want at least %d each: the hosts' mark did not cross the appliances", node, ef4, ef6, want)
		}
	}
}

// TestFlowLabelFollowsRepath: Linux draws a new IPv6 flow label for a
// connection at each retransmission timeout (net.core.txrehash), so that
// routers that hash the flow label for ECMP move it off a path that
// failed. The untrusted link goes dark for 1.5 s in the middle of an
// encrypted IPv6 transfer: both hosts time out and relabel, and the wire
// frames of each appliance must carry the new labels, as the hosts' own
// packets would over a plain path. Before, every frame kept the label of
// the connection's SYN (or SYN-ACK): no repathing past the appliances.
func TestFlowLabelFollowsRepath(t *testing.T) {
	e := newEncEnv(t, 84)
	a6, b6 := e.topo.Addr(topology.HostA).V6, e.topo.Addr(topology.HostB).V6
	rehash := func() [2]uint64 {
		return [2]uint64{e.nstat(t, topology.HostA, "TcpExtTcpTimeoutRehash"), e.nstat(t, topology.HostB, "TcpExtTcpTimeoutRehash")}
	}
	path := filepath.Join(t.TempDir(), "repath.pcapng")
	c, err := e.topo.StartCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	r0 := rehash()
	const n = 4 << 20
	// The link goes dark 1 s after the client connected, both directions
	// sending by then (1 s after the client was started was, on a loaded
	// machine, before its handshake: only hA's SYN timed out).
	run := e.startStream(t, topology.HostA, netip.AddrPortFrom(b6, 5001), e.streamB, n, 1000000, 30*time.Second)
	time.Sleep(time.Second)
	const table = "tei_dark"
	rtr := e.topo.NS(topology.Router)
	if err := netns.Nft(rtr, "table inet "+table+" {\n  chain forward {\n    type filter hook forward priority filter; policy accept;\n    meta nfproto ipv6 meta l4proto tcp drop\n  }\n}\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := netns.Nft(rtr, "delete table inet "+table+"\n"); err != nil {
		t.Fatal(err)
	}
	checkTransfer(t, run.wait(t, 2*time.Minute), n, n)
	if _, err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	r1 := rehash()
	rehashed := [2]uint64{r1[0] - r0[0], r1[1] - r0[1]}
	out, err := exec.Command("tshark", "-r", path, "-n", "-Y", "ipv6 && tcp", "-T", "fields", "-e", "ipv6.src", "-e", "ipv6.flow").Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", path, err)
	}
	labels := map[string]map[string]bool{a6.String(): {}, b6.String(): {}}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) == 2 && labels[f[0]] != nil {
			labels[f[0]][f[1]] = true
		}
	}
	t.Logf("timeouts with a new flow label: hA %d, hB %d; labels on the untrusted link: from hA's side %d, from hB's side %d", rehashed[0], rehashed[1], len(labels[a6.String()]), len(labels[b6.String()]))
	if rehashed[0] == 0 || rehashed[1] == 0 {
		t.Fatalf("timeouts with a new flow label: hA %d, hB %d; want at least one each: the test did not make both hosts time out", rehashed[0], rehashed[1])
	}
	for src, l := range labels {
		if len(l) < 2 {
			t.Errorf("frames from %s crossed the untrusted link with %d flow label(s), want the hosts' new labels too", src, len(l))
		}
	}
}

// TestEncryptedOverVLAN: hosts on VLAN 100 sub-interfaces, so every frame
// of their connections crosses both appliances with an 802.1Q tag. 4 MB
// each way over IPv4 and IPv6 must arrive encrypted and byte for byte,
// and every frame from hA's VLAN addresses on the untrusted link must keep
// VLAN ID 100. (The encrypted tests ran untagged only; the passthrough
// test carries VLAN traffic with the engine off.) The PCP that
// tmpl.follow copies is checked by engine TestFollowVLANPriority: this
// kernel refuses to change a VLAN device's egress-qos-map.
func TestEncryptedOverVLAN(t *testing.T) {
	e := newEncEnvOpts(t, encOpts{net: 82, vlan: true})
	a, b := e.topo.Addr(topology.HostA), e.topo.Addr(topology.HostB)
	if !a.VLANPresent || !b.VLANPresent {
		t.Fatal("topology has no VLAN addresses")
	}
	path := filepath.Join(t.TempDir(), "vlan.pcapng")
	c, err := e.topo.StartCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 4 << 20
	d, ok := e.measure(t, func() {
		for _, dst := range []netip.Addr{b.VLAN4, b.VLAN6} {
			checkTransfer(t, e.transfer(t, topology.HostA, netip.AddrPortFrom(dst, 5001), e.streamB, n, n, 2*time.Minute), n, n)
		}
	})
	if _, err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if ok {
		for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
			encryptedDelta(t, gw, d[gw], 2)
		}
	}
	out, err := exec.Command("tshark", "-r", path, "-n", "-Y", "tcp", "-T", "fields", "-E", "separator=|",
		"-e", "ip.src", "-e", "ipv6.src", "-e", "vlan.id", "-e", "tcp.len").Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", path, err)
	}
	frames, payload := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 4 || (f[0] != a.VLAN4.String() && f[1] != a.VLAN6.String()) {
			continue
		}
		frames++
		if f[2] != fmt.Sprint(topology.VLANID) {
			t.Fatalf("a frame from hA's VLAN address with VLAN ID %q on the untrusted link", f[2])
		}
		l, _ := strconv.Atoi(f[3])
		payload += l
	}
	t.Logf("TCP frames from hA's VLAN addresses on the untrusted link: %d, all tagged %d, %d payload bytes", frames, topology.VLANID, payload)
	if payload < 2*n {
		t.Errorf("%d payload bytes from hA's VLAN addresses on the untrusted link, want at least %d", payload, 2*n)
	}
}
