package integration

import (
	"errors"
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
	for _, backend := range []string{"afpacket", "afxdp"} {
		t.Run(backend, func(t *testing.T) {
			e.backend = backend
			e.writeConf(t)
			e.restartDaemons(t)
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
