package backend

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance"
	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/netns/netnstest"
)

// TestGenericXDPSuperSegments: the AF_PACKET backend with its classifier
// in generic XDP mode (config xdp_mode: generic), the fast path on, hosts
// sending with TSO, a Passthrough appliance (as tcpincd without the
// engine). Generic XDP runs on the skb after GRO (or on a GSO skb a local
// sender handed the device), so a fast-path frame can be a 64 KB
// super-segment; redirected to the other port, the kernel drops it
// (xdp_ok_fwd_dev: longer than the MTU) after the program counted it
// ToPeer, and the connection stalls. The program now sends a frame longer
// than the other port forwards to the workers (Oversize), whose AF_PACKET
// port takes the super-segment and sends it on with GSO.
func TestGenericXDPSuperSegments(t *testing.T) {
	netnstest.RequireRoot(t, "network namespaces, XDP, AF_PACKET")
	const pfx = "bkgx-"
	nsA, nsBump, nsB := pfx+"a", pfx+"bump", pfx+"b"
	for _, ns := range []string{nsA, nsBump, nsB} {
		netnstest.New(t, pfx, ns)
	}
	for i, ns := range []string{nsA, nsB} {
		p := fmt.Sprintf("p%d", i)
		netnstest.Sh(t, "ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", p, "netns", nsBump)
		netnstest.Sh(t, "ip", "netns", "exec", nsBump, "sysctl", "-qw", "net.ipv6.conf."+p+".disable_ipv6=1")
		netnstest.Sh(t, "ip", "-n", ns, "addr", "add", fmt.Sprintf("10.81.0.%d/24", i+1), "dev", "eth0")
		netnstest.Sh(t, "ip", "-n", ns, "link", "set", "eth0", "up")
		netnstest.Sh(t, "ip", "-n", nsBump, "link", "set", p, "up")
	}
	cfg := config.Default()
	cfg.Inside, cfg.Outside, cfg.Backend, cfg.XDPMode, cfg.FastPath, cfg.Queues = "p0", "p1", AFPacket, "generic", true, 1
	var x *Ports
	if err := netns.Do(nsBump, func() (err error) { x, err = Open(cfg); return }); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Do(nsBump, x.Close); err != nil {
			t.Error(err)
		}
	}()
	inside, outside := x.Queues()
	a, err := appliance.New(inside, outside, appliance.Options{FastPath: x.Bump, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	err = netnstest.Transfer(nsA, nsB, "10.81.0.2", 50<<20, 1, 40*time.Second)
	a.Stop()
	st := x.Bump.Stats()
	t.Logf("inside: %+v", st.Inside)
	t.Logf("p1: %+v", x.PacketStats(1))
	if err != nil {
		t.Fatal(err)
	}
	if st.Inside.FastPath == 0 {
		t.Error("nothing took the fast path: the test proves nothing")
	}
	if st.Inside.Oversize == 0 || st.Inside.RedirectMiss != 0 {
		t.Errorf("%d frames too long for the other port sent to the workers, %d redirect misses; want some and none", st.Inside.Oversize, st.Inside.RedirectMiss)
	}
	if n := x.BackendCounters(0)["xdp_oversize"]; n != st.Inside.Oversize {
		t.Errorf("backend counter xdp_oversize %d, classifier %d", n, st.Inside.Oversize)
	}
}
