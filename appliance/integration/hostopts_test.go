package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

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
