package integration

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestPathMTU: the path MTU falls in the middle of encrypted transfers, and
// real routers report it with real packet-too-big messages (ICMPv4
// "fragmentation needed", ICMPv6 "packet too big"):
//
//   - inside enclave B: hB routes for a host hB2 behind it, and the route's
//     MTU drops to 1000 (IPv4) / 1280 (IPv6). hB's packet-too-big about a
//     segment gwB delivered quotes plaintext: gwB keeps it inside and lowers
//     its own delivery segments, or that direction is black-holed;
//   - on the untrusted link: rtr's routes between hA and hB2 drop to 1200 /
//     1280 both ways. gwA and gwB check, translate and obey rtr's messages;
//     frames sealed before are resent in smaller segments.
//
// Each transfer (rate-limited so that the MTU drops in its middle) must
// complete intact and encrypted, the routers must have sent packet-too-big
// messages, and no frame on the untrusted link carries the stream's marker.
func TestPathMTU(t *testing.T) {
	e := newEncEnv(t, 94)
	hb2, b2 := e.hostBehindB(t)
	srv, err := e.topo.Env().Start(hb2, "stream-server-hB2", e.toolArgs("stream-server", "-listen", "[::]:5001")...)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitOutput("stream server ready", 15*time.Second); err != nil {
		t.Fatalf("stream server on hB2: %v\n%s", err, srv.Output())
	}
	path := filepath.Join(t.TempDir(), "pmtu.pcapng")
	c, err := e.topo.StartCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	a := e.topo.Addr(topology.HostA)
	bHop := e.topo.Addr(topology.HostB)
	for _, v := range []struct {
		name          string
		dst, src      netip.Addr
		inside, link  int
		ipFlag, icmpC string // ip's family flag, nstat counter of packet-too-big sent
	}{
		{"IPv4", b2[0], a.V4, 1000, 1200, "-4", "IcmpOutDestUnreachs"},
		{"IPv6", b2[1], a.V6, 1280, 1280, "-6", "Icmp6OutPktTooBigs"},
	} {
		dst := netip.AddrPortFrom(v.dst, 5001)
		// Host routes with a locked MTU, more specific than the subnet
		// routes (which stay): a forwarding router honours them.
		host := func(a netip.Addr) string { return netip.PrefixFrom(a, a.BitLen()).String() }
		t.Run(v.name+"/inside-B", func(t *testing.T) {
			// hB's route to hB2 is the enclave's narrow link.
			e.mtuTransfer(t, topology.HostB, v.icmpC, dst, srv, func() error {
				_, err := e.topo.Run(topology.HostB, "ip", v.ipFlag, "route", "replace", host(v.dst), "dev", "tob2", "mtu", "lock", fmt.Sprint(v.inside))
				return err
			})
			if _, err := e.topo.Run(topology.HostB, "ip", v.ipFlag, "route", "del", host(v.dst)); err != nil {
				t.Fatal(err)
			}
		})
		t.Run(v.name+"/untrusted-link", func(t *testing.T) {
			routes := [][]string{
				{host(v.dst), "via", hostAddr(bHop, v.dst.Is6()).String(), "dev", topology.RouterToB},
				{host(v.src), "dev", topology.RouterToA},
			}
			e.mtuTransfer(t, topology.Router, v.icmpC, dst, srv, func() error {
				for _, r := range routes {
					args := append(append([]string{"ip", v.ipFlag, "route", "replace"}, r...), "mtu", "lock", fmt.Sprint(v.link))
					if _, err := e.topo.Run(topology.Router, args...); err != nil {
						return err
					}
				}
				return nil
			})
			for _, r := range routes {
				if _, err := e.topo.Run(topology.Router, "ip", v.ipFlag, "route", "del", r[0]); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	if _, err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	noMarker(t, path, 4*mtuBytes)
}

func hostAddr(a topology.Addrs, v6 bool) netip.Addr {
	if v6 {
		return a.V6
	}
	return a.V4
}

// mtuBytes is each transfer's size each way; at mtuRate it takes about 4 s.
const (
	mtuBytes = 12 << 20
	mtuRate  = 3 << 20
)

// mtuTransfer runs a transfer from hA to dst, calls narrow 1.5 s into it,
// and checks that it completes intact and encrypted and that router sent
// packet-too-big messages (nstat counter icmpC).
func (e *encEnv) mtuTransfer(t *testing.T, router topology.Node, icmpC string, dst netip.AddrPort, srv *netns.Process, narrow func() error) {
	t.Helper()
	before := e.nstat(t, router, icmpC)
	var r result
	var nerr error
	d, ok := e.measure(t, func() {
		done := make(chan result, 1)
		go func() {
			done <- e.transfer(t, topology.HostA, dst, srv, mtuBytes, mtuBytes, 2*time.Minute, "-rate", fmt.Sprint(mtuRate))
		}()
		time.Sleep(1500 * time.Millisecond)
		nerr = narrow()
		r = <-done
	})
	if nerr != nil {
		t.Fatalf("lowering the MTU: %v", nerr)
	}
	checkTransfer(t, r, mtuBytes, mtuBytes)
	if ok {
		for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
			encryptedDelta(t, gw, d[gw], 1)
		}
	}
	sent := e.nstat(t, router, icmpC) - before
	if sent == 0 {
		t.Errorf("%s sent no packet-too-big (%s): the MTU drop was not exercised", router, icmpC)
	}
	t.Logf("%s sent %d packet-too-big", router, sent)
}

// nstat reads one of the kernel's absolute SNMP counters in n's namespace.
func (e *encEnv) nstat(t *testing.T, n topology.Node, name string) uint64 {
	t.Helper()
	out, err := e.topo.Run(n, "nstat", "-a", "-z", "-s", name)
	if err != nil {
		t.Fatalf("nstat in %s: %v\n%s", n, err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == name {
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatalf("nstat %q: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("nstat in %s has no %s:\n%s", n, name, out)
	return 0
}

// hostBehindB adds namespace hB2 behind hB (hB routes for it: a router
// inside enclave B) on subnet 10.N.4.0/24, fd00:N:4::/64, and a route to it
// in rtr via hB. It returns the namespace and hB2's addresses.
func (e *encEnv) hostBehindB(t *testing.T) (string, [2]netip.Addr) {
	t.Helper()
	env, net := e.topo.Env(), e.topo.Options().Net
	ns := encPrefix + "hB2"
	t.Cleanup(func() { _ = netns.Delete(ns, time.Second) })
	b := e.topo.Addr(topology.HostB)
	addr := [2]netip.Addr{netip.MustParseAddr(fmt.Sprintf("10.%d.4.2", net)), netip.MustParseAddr(fmt.Sprintf("fd00:%d:4::2", net))}
	hop := [2]string{fmt.Sprintf("10.%d.4.1", net), fmt.Sprintf("fd00:%d:4::1", net)}
	hbNS := e.topo.NS(topology.HostB)
	steps := []func() error{
		func() error { return env.AddNamespace(ns) },
		func() error { return env.AddVeth(hbNS, "tob2", ns, "eth0", 0) },
		func() error { return env.AddAddr(hbNS, "tob2", hop[0]+"/24") },
		func() error { return env.AddAddr(hbNS, "tob2", hop[1]+"/64") },
		func() error { return env.AddAddr(ns, "eth0", addr[0].String()+"/24") },
		func() error { return env.AddAddr(ns, "eth0", addr[1].String()+"/64") },
		func() error { return env.AddRoute(ns, "default", "via", hop[0]) },
		func() error { return env.AddRoute(ns, "default", "via", hop[1]) },
		func() error { return env.Sysctl(hbNS, "net.ipv4.ip_forward", "1") },
		func() error { return env.Sysctl(hbNS, "net.ipv6.conf.all.forwarding", "1") },
		func() error {
			return env.AddRoute(e.topo.NS(topology.Router), fmt.Sprintf("10.%d.4.0/24", net), "via", b.V4.String(), "dev", topology.RouterToB)
		},
		func() error {
			return env.AddRoute(e.topo.NS(topology.Router), fmt.Sprintf("fd00:%d:4::/64", net), "via", b.V6.String(), "dev", topology.RouterToB)
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	// hB answers for hB2 now: wait until hA reaches it through both
	// appliances (IPv6 neighbour discovery included).
	for _, a := range addr {
		deadline := time.Now().Add(15 * time.Second)
		for {
			out, err := e.topo.Run(topology.HostA, "ping", "-n", "-c", "1", "-W", "1", a.String())
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("ping %s (hB2, behind hB): %v\n%s", a, err, out)
			}
		}
	}
	return ns, addr
}
