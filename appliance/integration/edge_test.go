package integration

import (
	"bytes"
	"context"
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

// edgeTarget is one path an edge scenario runs over: plain (hF, past gwA
// only, which passes it on as plain TCP) or encrypted (hB, through both
// appliances).
type edgeTarget struct {
	name string
	enc  bool
	srv  *netns.Process
	dst  netip.Addr
}

// TestEdges: TCP edge cases with real sockets (edge_tool_test.go), each
// over the plain path and through the encrypting pair over IPv4 and IPv6,
// with the same outcome expected on both except where the documents say
// otherwise (urgent data, docs/protocol.md §13): a server that speaks
// first, half-closes (RFC 9293 §3.6), 1-byte round trips, urgent data,
// RSTs from either side at rest, mid-transfer and right after the
// handshake (RFC 9293 §3.10.7), a close with unread data (RFC 1122
// §4.2.2.13), a simultaneous close, and a tuple reused while the server
// holds it in TIME-WAIT. Without loss, then with 3 % loss on both paths.
// No plaintext of the encrypted connections crosses the untrusted link.
func TestEdges(t *testing.T) {
	e := newEncEnv(t, 74)
	b, f := e.topo.Addr(topology.HostB), e.topo.Addr(topology.HostF)
	srvB := e.startTool(t, topology.HostB, "edge-server", "edge server ready")
	srvF := e.startTool(t, topology.HostF, "edge-server", "edge server ready")
	targets := []edgeTarget{{"plain-v4", false, srvF, f.V4}, {"enc-v4", true, srvB, b.V4}, {"enc-v6", true, srvB, b.V6}}
	wire := e.startWireCapture(t, "edges.pcapng")
	for _, loss := range []float64{0, 3} {
		t.Run(fmt.Sprintf("loss=%v%%", loss), func(t *testing.T) {
			e.setEdgeLoss(t, loss)
			defer e.setEdgeLoss(t, 0)
			for _, scen := range edgeScens {
				if loss > 0 && (scen == "rst-server-mid" || scen == "rst-immediate") {
					// Plain TCP itself cannot promise their outcome under
					// loss: an RST that finds the client behind (data
					// lost) gets a challenge ACK (RFC 5961 §3.2), and if
					// that is lost nothing more comes; an RST after a
					// lost third ACK ends the connection in SYN-RECEIVED
					// (RFC 9293 §3.10.7.3), never accepted.
					continue
				}
				t.Run(scen, func(t *testing.T) {
					for _, tg := range targets {
						e.edgeCase(t, scen, tg, loss)
					}
				})
			}
			if loss > 0 {
				n := e.edgeLossDropped(t)
				t.Logf("the loss rules dropped %d packets", n)
				if n == 0 {
					t.Errorf("the loss rules dropped nothing")
				}
			}
		})
	}
	if _, err := wire.Stop(); err != nil {
		t.Fatal(err)
	}
	markerOnlyInPlain(t, wire.Path, b, 1<<20)
}

// edgeCase runs scen once over tg and checks the outcome; through the
// appliances, also that the connection was encrypted (no fallback to plain
// TCP, which would pass every check above it).
func (e *encEnv) edgeCase(t *testing.T, scen string, tg edgeTarget, loss float64) {
	t.Helper()
	rounds := map[bool]map[string]int{false: {"pingpong": 1000, "reuse": 20}, true: {"pingpong": 200, "reuse": 10}}[loss > 0][scen]
	var c, s map[string]string
	run := func() { c, s = e.edgeRun(t, scen, tg, rounds, loss > 0) }
	if !tg.enc {
		run()
	} else if d, ok := e.measure(t, run); ok {
		for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
			want := uint64(max(rounds, 1))
			if scen != "reuse" {
				want = 1
			}
			if n := d[gw].Handshakes["encrypted"]; n < want && scen != "rst-immediate" {
				t.Errorf("%s %s: %s counted %d encrypted handshakes, want %d (handshakes %v)", scen, tg.name, gw, n, want, d[gw].Handshakes)
			}
			if n := sum(d[gw].Fallbacks); n != 0 || d[gw].AuthFailures != 0 {
				t.Errorf("%s %s: %s: fallbacks %v, %d authentication failures", scen, tg.name, gw, nonZero(d[gw].Fallbacks), d[gw].AuthFailures)
			}
		}
		// The host's URG flag is dropped and counted (docs/protocol.md §13).
		if strings.HasPrefix(scen, "oob") && d[topology.GwA].Events["urg_stripped"] == 0 {
			t.Errorf("%s %s: gwA counted no urgent flag stripped (events %v)", scen, tg.name, nonZero(d[topology.GwA].Events))
		}
	}
	checkEdge(t, scen, tg, rounds, c, s)
}

// edgeRun runs the edge client on hA against tg and returns its fields and
// the server's for the same connection (empty for reuse, where the client
// checks every connection itself).
func (e *encEnv) edgeRun(t *testing.T, scen string, tg edgeTarget, rounds int, lossy bool) (client, server map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dst := netip.AddrPortFrom(tg.dst, uint16(edgePort(scen))).String()
	out, err := e.topo.RunContext(ctx, topology.HostA, e.toolArgs("edge-client", "-addr", dst, "-scen", scen, "-rounds", strconv.Itoa(rounds))...)
	if err != nil {
		t.Errorf("%s %s: client: %v\n%s", scen, tg.name, err, out)
	}
	client, server = fields(out), map[string]string{}
	line := "(none)"
	if scen != "reuse" && client["local"] != "" {
		tag := "EDGESRV scen=" + scen + " peer=" + client["local"] + " "
		// The server prints when its end is over; it may lag the client.
		if err := tg.srv.WaitOutput(tag, 20*time.Second); err == nil {
			for _, l := range strings.Split(tg.srv.Output(), "\n") {
				if strings.HasPrefix(l, tag) {
					server, line = fields(l), l
				}
			}
		} else if !(lossy && scen == "rst-immediate") {
			t.Errorf("%s %s: the server printed nothing for %s: %v", scen, tg.name, client["local"], err)
		}
	}
	t.Logf("%-8s client: %s | server: %s", tg.name, strings.TrimSpace(out), line)
	return client, server
}

// checkEdge compares a scenario's outcome at both ends with what TCP
// specifies, the same over both paths except for urgent data.
func checkEdge(t *testing.T, scen string, tg edgeTarget, rounds int, c, s map[string]string) {
	t.Helper()
	want := func(side string, m map[string]string, kv ...string) {
		t.Helper()
		for i := 0; i+1 < len(kv); i += 2 {
			if v := m[kv[i]]; !strings.Contains("|"+kv[i+1]+"|", "|"+v+"|") || v == "" {
				t.Errorf("%s %s: %s %s=%q, want %s (all: %v)", scen, tg.name, side, kv[i], v, kv[i+1], m)
			}
		}
	}
	n := strconv.Itoa
	switch scen {
	case "banner":
		want("client", c, "got", n(replyLen), "err", "nil")
		want("server", s, "err", "nil")
	case "banner-close":
		want("client", c, "got", "3000", "err", "nil")
		want("server", s, "err", "nil")
	case "shutwr":
		want("client", c, "got", n(shutwrLen), "err", "nil")
		want("server", s, "err", "nil")
	case "pingpong":
		want("client", c, "got", n(rounds), "err", "nil")
		want("server", s, "rounds", n(rounds), "err", "EOF")
	case "oob", "oob-inline":
		// Plain: the urgent byte marks offset 3 and is read out of band,
		// or in band with SO_OOBINLINE. Encrypted: the appliance drops
		// the host's URG flag and never sends URGp (RFC 8548 §3.7 leaves
		// its reference point open, docs/protocol.md §13, U-3), so the
		// byte arrives in band with no mark either way.
		got, oob, mark := `"abcXdef"`, `""`, "-1"
		if !tg.enc {
			mark = "3"
			if scen == "oob" {
				got, oob = `"abcdef"`, `"X"`
			}
		}
		want("server", s, "got", got, "oob", oob, "mark", mark, "err", "EOF")
		want("client", c, "got", "0", "err", "nil")
	case "rst-client":
		// The server's write fails on the RST: ECONNRESET, or EPIPE if
		// the reset was noted before the write began.
		want("client", c, "err", "nil")
		want("server", s, "err", "ECONNRESET|EPIPE")
	case "rst-server-idle", "unread-close", "rst-server-mid":
		// recvStream checked every byte before the RST (rst-server-mid).
		want("server", s, "err", "nil")
		want("client", c, "err", "ECONNRESET")
		if scen != "rst-server-mid" {
			want("client", c, "got", "0")
		}
	case "simclose":
		want("client", c, "got", n(simcloseLen), "err", "nil", "werr", "nil")
		want("server", s, "got", n(simcloseLen), "err", "nil", "werr", "nil")
	case "reuse":
		want("client", c, "got", n(rounds), "err", "nil")
	case "rst-immediate":
		want("client", c, "err", "nil")
		if len(s) > 0 {
			want("server", s, "got", "0", "err", "ECONNRESET")
		}
	default:
		t.Errorf("no expectation for scenario %q", scen)
	}
}

// setEdgeLoss drops pct percent of the packets rtr forwards between side A
// and side B, and between side A and hF, in both directions, so that the
// plain path sees the loss of the encrypted one. RSTs are spared: TCP never
// resends one (RFC 9293 §3.10.7), so a lost RST on a quiet connection is a
// hang on any path, and the scenarios are about the resets delivered.
func (e *encEnv) setEdgeLoss(t *testing.T, pct float64) {
	t.Helper()
	const tbl = "tei_edge_loss"
	var sb strings.Builder
	fmt.Fprintf(&sb, "table inet %s {}\ndelete table inet %s\n", tbl, tbl)
	if pct > 0 {
		thr := int(pct*100 + 0.5)
		a, far := `"`+topology.RouterToA+`"`, `{ "`+topology.RouterToB+`", "`+topology.RouterToF+`" }`
		fmt.Fprintf(&sb, "table inet %s {\n  chain forward {\n    type filter hook forward priority -10; policy accept;\n", tbl)
		for _, dir := range [][2]string{{a, far}, {far, a}} {
			fmt.Fprintf(&sb, "    iifname %s oifname %s tcp flags & rst == 0 numgen random mod 10000 < %d counter drop\n", dir[0], dir[1], thr)
		}
		sb.WriteString("  }\n}\n")
	}
	if err := netns.Nft(e.topo.NS(topology.Router), sb.String()); err != nil {
		t.Fatal(err)
	}
}

// edgeLossDropped sums the packets setEdgeLoss's rules dropped.
func (e *encEnv) edgeLossDropped(t *testing.T) uint64 {
	t.Helper()
	out, err := e.topo.Run(topology.Router, "nft", "list", "table", "inet", "tei_edge_loss")
	if err != nil {
		t.Errorf("nft list: %v\n%s", err, out)
	}
	var total uint64
	w := strings.Fields(out)
	for i := 0; i+1 < len(w); i++ {
		if w[i] == "packets" {
			v, _ := strconv.ParseUint(w[i+1], 10, 64)
			total += v
		}
	}
	return total
}

// startWireCapture captures the untrusted link (rtr's side of gwA's link,
// which the plain path to hF crosses too) into a file named name.
func (e *encEnv) startWireCapture(t *testing.T, name string) *topology.Capture {
	t.Helper()
	c, err := e.topo.StartCapture(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// markerOnlyInPlain checks a capture of the untrusted link that holds
// plain connections to hF and encrypted ones to enc: the plain ones show
// the marker (so the search can find it), and no frame to or from enc
// does (noMarker, with at least minPayload bytes of payload).
func markerOnlyInPlain(t *testing.T, path string, enc topology.Addrs, minPayload int) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(marker)) {
		t.Errorf("the plain connections to hF do not show the marker on the link: the marker check would prove nothing")
	}
	toEnc := strings.TrimSuffix(path, ".pcapng") + "-enc.pcapng"
	filter := fmt.Sprintf("ip.addr == %s || ipv6.addr == %s", enc.V4, enc.V6)
	if out, err := exec.Command("tshark", "-r", path, "-Y", filter, "-w", toEnc).CombinedOutput(); err != nil {
		t.Fatalf("tshark filter: %v\n%s", err, out)
	}
	noMarker(t, toEnc, minPayload)
}

// TestEdgeStreams: streams at the edges of TCP's flow control. A receiver
// that stops reading for 12 s while 16 MB come its way: its window stays
// closed through the server's persist probes, backing off to several
// seconds apart (RFC 9293 §3.8.6.1), longer than the appliances' plain
// retention, and every byte arrives once it reads again, over the plain
// path and encrypted. Then hosts announcing a small MSS, 536 (the IPv4
// default, RFC 9293 §3.7.1) and 88, with and without loss: frames fit the
// segments the receiver allows, data and options within its MSS (RFC
// 6691).
func TestEdgeStreams(t *testing.T) {
	e := newEncEnv(t, 73)
	b, f := e.topo.Addr(topology.HostB), e.topo.Addr(topology.HostF)
	t.Run("zero-window-12s", func(t *testing.T) {
		rmem, err := e.topo.Run(topology.HostA, "sysctl", "-n", "net.ipv4.tcp_rmem")
		if err != nil {
			t.Fatalf("hA: %v\n%s", err, rmem)
		}
		// At most 2 MiB of receive buffer (TestZeroWindow), restored after.
		if out, err := e.topo.Run(topology.HostA, "sysctl", "-qw", "net.ipv4.tcp_rmem=4096 131072 2097152"); err != nil {
			t.Fatalf("hA: %v\n%s", err, out)
		}
		defer e.topo.Run(topology.HostA, "sysctl", "-qw", "net.ipv4.tcp_rmem="+strings.Join(strings.Fields(rmem), " "))
		wire := e.startWireCapture(t, "zerowin.pcapng")
		const n, m = 1 << 20, 16 << 20
		for _, tg := range []struct {
			dst netip.Addr
			srv *netns.Process
		}{{f.V4, e.streamF}, {b.V4, e.streamB}} {
			d, ok := e.measure(t, func() {
				r := e.transfer(t, topology.HostA, netip.AddrPortFrom(tg.dst, 5001), tg.srv, n, m, 2*time.Minute, "-readpause", "12s")
				checkTransfer(t, r, n, m)
			})
			if ok && tg.dst == b.V4 {
				for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
					encryptedDelta(t, gw, d[gw], 1)
					t.Logf("%s: drops %v events %v", gw, nonZero(d[gw].Drops), nonZero(d[gw].Events))
				}
			}
		}
		if _, err := wire.Stop(); err != nil {
			t.Fatal(err)
		}
		markerOnlyInPlain(t, wire.Path, b, n+m)
	})
	for _, mss := range []int{536, 88} {
		for _, loss := range []float64{0, 2} {
			t.Run(fmt.Sprintf("advmss=%d/loss=%v%%", mss, loss), func(t *testing.T) {
				e.setAdvMSS(t, mss)
				e.setLoss(t, loss)
				defer e.setLoss(t, 0)
				size := int64(1 << 20)
				if mss < 200 {
					size = 512 << 10
				}
				wire := e.startWireCapture(t, "mss.pcapng")
				e.encryptedToB(t, e.streamB, 5001, size, 2*time.Minute)
				if _, err := wire.Stop(); err != nil {
					t.Fatal(err)
				}
				noMarker(t, wire.Path, int(2*size))
				checkWireMSS(t, wire.Path, mss)
			})
		}
	}
}

// setAdvMSS makes hA and hB announce mss in their SYNs (the advmss of
// their default routes, IPv4 and IPv6).
func (e *encEnv) setAdvMSS(t *testing.T, mss int) {
	t.Helper()
	for _, h := range []topology.Node{topology.HostA, topology.HostB} {
		a := e.topo.Addr(h)
		for _, r := range [][]string{
			{"-4", "route", "change", "default", "via", a.Gateway4.String(), "dev", topology.HostIface, "advmss", strconv.Itoa(mss)},
			{"-6", "route", "change", "default", "via", a.Gateway6.String(), "dev", topology.HostIface, "advmss", strconv.Itoa(mss)},
		} {
			if out, err := e.topo.Run(h, append([]string{"ip"}, r...)...); err != nil {
				t.Fatalf("%s: ip %v: %v %s", h, r, err, out)
			}
		}
	}
}

// checkWireMSS: every SYN on the untrusted link announces at most mss, and
// every segment there carries at most mss bytes of data and TCP options
// beyond the fixed header (RFC 6691; both hosts announce mss).
func checkWireMSS(t *testing.T, path string, mss int) {
	t.Helper()
	out, err := exec.Command("tshark", "-r", path, "-n", "-Y", "tcp.flags.syn == 1", "-T", "fields", "-e", "tcp.options.mss_val").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	syns := strings.Fields(string(out))
	for _, v := range syns {
		if k, _ := strconv.Atoi(v); k == 0 || k > mss {
			t.Errorf("a SYN on the untrusted link announces MSS %s, want at most %d", v, mss)
		}
	}
	if len(syns) < 4 {
		t.Errorf("%d SYNs with an MSS on the untrusted link, want 4 at least (%q)", len(syns), syns)
	}
	out, err = exec.Command("tshark", "-r", path, "-n", "-Y", "tcp.len > 0", "-T", "fields", "-e", "tcp.len", "-e", "tcp.hdr_len").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	sizes, over := map[int]int{}, 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var data, hdr int
		if _, err := fmt.Sscan(line, &data, &hdr); err != nil {
			continue
		}
		sizes[data]++
		if data+hdr-20 > mss {
			over++
		}
	}
	t.Logf("SYN MSS on the untrusted link %v; segment payload sizes (count) %v", syns, sizes)
	if over > 0 {
		t.Errorf("%d segments on the untrusted link carry more than the MSS %d in data and options", over, mss)
	}
}
