package integration

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestPortReplacedDaemonExits: gwA's inside veth is deleted and created
// again with the same names, addresses and routes while tcpincd runs (as a
// NIC driver reload, a VM NIC hot-plug or a VF reset does), with each
// backend. The XDP program and the workers' sockets were on the deleted
// interface: tcpincd must say so and exit with a non-zero status within a
// few seconds, so that its service manager starts it again, and a daemon
// started again carries encrypted traffic over the new port. Before, it
// ran on forwarding nothing, every connection through gwA failed, and the
// status showed no warning.
func TestPortReplacedDaemonExits(t *testing.T) {
	e := newEncEnvOpts(t, encOpts{net: 71})
	b := e.topo.Addr(topology.HostB)
	e.eachBackend(t, func(t *testing.T) {
		p := e.gw[topology.GwA]
		e.replaceInsideLink(t)
		t0 := time.Now()
		select {
		case <-p.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("tcpincd still runs 10 s after its inside port was replaced\n%s", tailLines(p.Output(), 20))
		}
		delete(e.gw, topology.GwA)
		t.Logf("tcpincd exited %v after the port was replaced", time.Since(t0).Round(100*time.Millisecond))
		out := p.Output()
		var exit *exec.ExitError
		if err := p.Wait(); !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Errorf("tcpincd's exit: %v, want a non-zero status\n%s", err, tailLines(out, 20))
		}
		if !strings.Contains(out, `inside port "in" is another interface now`) || !strings.Contains(out, "port gone, shutting down") {
			t.Errorf("tcpincd does not say that its inside port was replaced:\n%s", tailLines(out, 20))
		}
		e.startDaemon(t, topology.GwA)
		e.waitPing(t, b.V4)
		const n = 1 << 20
		var r result
		d, ok := e.measure(t, func() {
			r = e.transfer(t, topology.HostA, netip.AddrPortFrom(b.V4, 5001), e.streamB, n, n, time.Minute)
		})
		checkTransfer(t, r, n, n)
		if ok {
			encryptedDelta(t, topology.GwA, d[topology.GwA], 1)
		}
	})
}

// replaceInsideLink deletes gwA's inside veth (hA's eth0 goes with it) and
// creates the pair again as the topology made it: same names, MTU,
// addresses, routes, offloads and qdiscs.
func (e *encEnv) replaceInsideLink(t *testing.T) {
	t.Helper()
	env := e.topo.Env()
	gw, ha := e.topo.NS(topology.GwA), e.topo.NS(topology.HostA)
	a := e.topo.Addr(topology.HostA)
	mtu := e.topo.Options().MTU
	steps := []func() error{
		func() error { _, err := env.Run("", "ip", "-n", gw, "link", "del", topology.InsidePort); return err },
		func() error { return env.AddVeth(gw, topology.InsidePort, ha, topology.HostIface, mtu) },
		func() error {
			return env.Sysctl(gw, "net.ipv6.conf."+topology.InsidePort+".disable_ipv6", "1")
		},
		func() error { return env.AddAddr(ha, topology.HostIface, a.V4.String()+"/24") },
		func() error { return env.AddAddr(ha, topology.HostIface, a.V6.String()+"/64") },
		func() error { return env.AddRoute(ha, "default", "via", a.Gateway4.String()) },
		func() error { return env.AddRoute(ha, "default", "via", a.Gateway6.String()) },
		func() error {
			return env.Ethtool(ha, topology.HostIface, "tx", "off", "tso", "off", "gso", "off", "gro", "on")
		},
		func() error {
			_, err := env.Run(ha, "tc", "qdisc", "replace", "dev", topology.HostIface, "root", "pfifo_fast")
			return err
		},
		func() error {
			_, err := env.Run(gw, "tc", "qdisc", "replace", "dev", topology.InsidePort, "root", "pfifo_fast")
			return err
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatalf("replace gwA's inside link: %v", err)
		}
	}
}

// TestPortMTULowered: every link of the path (the hosts', both gateways'
// ports, rtr's) goes from 1500 to 1400 bytes in the middle of an encrypted
// transfer, and rtr's packet-too-big messages are dropped (a filter on the
// way): nothing tells anyone but the interfaces themselves. The hosts
// follow their interfaces (segments of 1400 bytes); the appliances must
// follow their ports: tcpincd reads their MTU every second and lowers its
// engines' segment caps, for live flows too, so that a host's full
// segment goes on as frames that fit (the frames sealed before, larger,
// are cut). Each transfer, over IPv4 and then IPv6, must complete intact
// and encrypted, each daemon must log the change and report the MTU in
// use in its status; then the links go back to 1500 and so must the
// status. Before, the AF_PACKET sockets refused every frame sealed from a
// full host segment (20 bytes over the MTU, counted tx_errors only) and
// the transfer stalled (the host at cwnd 1, a retransmission timeout of
// 26 s) while a plain one carried on.
func TestPortMTULowered(t *testing.T) {
	e := newEncEnvOpts(t, encOpts{net: 72})
	for _, args := range [][]string{
		{"nft", "add table inet tei_mtu"},
		{"nft", "add chain inet tei_mtu out { type filter hook output priority 0 ; }"},
		{"nft", "add rule inet tei_mtu out icmp type destination-unreachable icmp code frag-needed counter drop"},
		{"nft", "add rule inet tei_mtu out icmpv6 type packet-too-big counter drop"},
	} {
		if out, err := e.topo.Run(topology.Router, args...); err != nil {
			t.Fatalf("rtr: %v: %v\n%s", args, err, out)
		}
	}
	links := []struct {
		n     topology.Node
		iface string
	}{
		{topology.HostA, topology.HostIface}, {topology.GwA, topology.InsidePort}, {topology.GwA, topology.OutsidePort},
		{topology.Router, topology.RouterToA}, {topology.Router, topology.RouterToB},
		{topology.GwB, topology.OutsidePort}, {topology.GwB, topology.InsidePort}, {topology.HostB, topology.HostIface},
	}
	setMTU := func(mtu int) error {
		for _, l := range links {
			if err := e.topo.Env().SetMTU(e.topo.NS(l.n), l.iface, mtu); err != nil {
				return err
			}
		}
		return nil
	}
	b := e.topo.Addr(topology.HostB)
	for _, backend := range []string{"afpacket", "afxdp"} {
		e.backend = backend
		e.writeConf(t)
		e.restartDaemons(t)
		for _, dst := range []netip.Addr{b.V4, b.V6} {
			t.Run(backend+"/"+map[bool]string{true: "IPv4", false: "IPv6"}[dst.Is4()], func(t *testing.T) {
				e.lowerMTUInTransfer(t, dst, setMTU)
			})
		}
	}
}

// lowerMTUInTransfer runs an encrypted transfer from hA to dst (hB's
// stream server), calls setMTU(1400) 1.5 s into it, checks the transfer,
// the daemons' logs and status, then sets the MTU back to 1500.
func (e *encEnv) lowerMTUInTransfer(t *testing.T, dst netip.Addr, setMTU func(int) error) {
	t.Helper()
	var r result
	var merr error
	d, ok := e.measure(t, func() {
		done := make(chan result, 1)
		go func() {
			done <- e.transfer(t, topology.HostA, netip.AddrPortFrom(dst, 5001), e.streamB, mtuBytes, mtuBytes, 2*time.Minute,
				"-rate", fmt.Sprint(mtuRate))
		}()
		time.Sleep(1500 * time.Millisecond)
		merr = setMTU(1400)
		r = <-done
	})
	if merr != nil {
		t.Fatalf("lowering the MTU: %v", merr)
	}
	checkTransfer(t, r, mtuBytes, mtuBytes)
	if ok {
		for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
			encryptedDelta(t, gw, d[gw], 1)
		}
	}
	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		e.waitPortMTU(t, gw, 1400)
		if out := e.gw[gw].Output(); !strings.Contains(out, `msg="port MTU changed" port=inside iface=in from=1500 to=1400`) {
			t.Errorf("%s did not log its inside port's MTU change:\n%s", gw, tailLines(out, 20))
		}
	}
	if err := setMTU(1500); err != nil {
		t.Fatalf("raising the MTU again: %v", err)
	}
	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		e.waitPortMTU(t, gw, 1500)
	}
}

// waitPortMTU waits up to 5 s for gw's status to report mtu for both ports.
func (e *encEnv) waitPortMTU(t *testing.T, gw topology.Node, mtu int) {
	t.Helper()
	var st struct {
		Ports []struct {
			Name string `json:"name"`
			MTU  int    `json:"mtu"`
		} `json:"ports"`
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := e.admin(gw, "/api/v1/status", &st)
		if err == nil && len(st.Ports) == 2 && st.Ports[0].MTU == mtu && st.Ports[1].MTU == mtu {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s's status: ports %+v (%v), want MTU %d on both", gw, st.Ports, err, mtu)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}
