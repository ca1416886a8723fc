package integration

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// The bypass link of TestAsymmetricRouting: a veth pair between hA and rtr
// that skips gwA, on a subnet of its own, 10.N.31.0/24 and fd00:N:31::/64
// (hA .2, rtr .1). It carries nothing until a route sends traffic over it.
const (
	asymBypassHost = "byp" // hA's end
	asymBypassRtr  = "byA" // rtr's end
	asymBypassNet  = 31
)

// asymMode says which direction of side A's traffic with side B skips gwA.
type asymMode int

const (
	asymSymmetric asymMode = iota // both directions through gwA
	asymReturn                    // B -> A over the bypass: rtr routes hA's address there
	asymOutbound                  // A -> B over the bypass: hA routes side B's subnet there
)

type asymBypass struct {
	e                        *encEnv
	host4, host6, rtr4, rtr6 netip.Addr
	cur                      asymMode
}

// addBypass adds the bypass link (removed with the topology).
func (e *encEnv) addBypass(t *testing.T) *asymBypass {
	t.Helper()
	o := e.topo.Options()
	v4 := func(h int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(o.Net), asymBypassNet, byte(h)}) }
	v6 := func(h int) netip.Addr {
		return netip.MustParseAddr(fmt.Sprintf("fd00:%d:%d::%d", o.Net, asymBypassNet, h))
	}
	b := &asymBypass{e: e, host4: v4(2), host6: v6(2), rtr4: v4(1), rtr6: v6(1)}
	env, hA, rtr := e.topo.Env(), e.topo.NS(topology.HostA), e.topo.NS(topology.Router)
	if err := env.AddVeth(hA, asymBypassHost, rtr, asymBypassRtr, o.MTU); err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		ns, iface, cidr string
	}{
		{hA, asymBypassHost, b.host4.String() + "/24"}, {hA, asymBypassHost, b.host6.String() + "/64"},
		{rtr, asymBypassRtr, b.rtr4.String() + "/24"}, {rtr, asymBypassRtr, b.rtr6.String() + "/64"},
	} {
		if err := env.AddAddr(a.ns, a.iface, a.cidr); err != nil {
			t.Fatal(err)
		}
	}
	// Reverse-path filtering would drop what comes in on the leg that is
	// not the route back: hB's segments reaching hA over the bypass, or
	// hA's reaching rtr through gwA while rtr routes hA over the bypass.
	for ns, ifaces := range map[string][]string{hA: {topology.HostIface, asymBypassHost}, rtr: {topology.RouterToA, asymBypassRtr}} {
		for _, i := range append([]string{"all", "default"}, ifaces...) {
			if err := env.Sysctl(ns, "net.ipv4.conf."+i+".rp_filter", "0"); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b
}

// route puts the routes of mode m in place (and takes the others away).
func (b *asymBypass) route(t *testing.T, m asymMode) {
	t.Helper()
	e := b.e
	a := e.topo.Addr(topology.HostA)
	bn4, bn6 := e.topo.SideNets(topology.HostB)
	env, hA, rtr := e.topo.Env(), e.topo.NS(topology.HostA), e.topo.NS(topology.Router)
	switch b.cur {
	case asymReturn:
		for _, d := range []string{a.V4.String() + "/32", a.V6.String() + "/128"} {
			if out, err := e.topo.Run(topology.Router, "ip", "route", "del", d); err != nil {
				t.Errorf("rtr: route del %s: %v\n%s", d, err, out)
			}
		}
	case asymOutbound:
		for _, d := range []string{bn4.String(), bn6.String()} {
			if out, err := e.topo.Run(topology.HostA, "ip", "route", "del", d); err != nil {
				t.Errorf("hA: route del %s: %v\n%s", d, err, out)
			}
		}
	}
	b.cur = asymSymmetric
	var routes [][]string
	switch m {
	case asymReturn:
		routes = [][]string{
			{rtr, a.V4.String() + "/32", "via", b.host4.String(), "dev", asymBypassRtr},
			{rtr, a.V6.String() + "/128", "via", b.host6.String(), "dev", asymBypassRtr},
		}
	case asymOutbound:
		// From hA's own address: the bypass link's would bring the
		// answers back over it too.
		routes = [][]string{
			{hA, bn4.String(), "via", b.rtr4.String(), "dev", asymBypassHost, "src", a.V4.String()},
			{hA, bn6.String(), "via", b.rtr6.String(), "dev", asymBypassHost, "src", a.V6.String()},
		}
	}
	for _, r := range routes {
		if err := env.AddRoute(r[0], r[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	b.cur = m
}

// routeChange: an encrypted connection from hA to dst on hB, both
// directions through both appliances, sending 0.5 MB/s each way; once both
// appliances list it encrypted, the return path moves onto the bypass, so
// gwB's frames reach hA as they are. hA's stack cannot read them: their
// sequence numbers are the wire's, ahead of the host's by the key exchange
// and every frame header so far, so it never takes one as the next bytes,
// and the ACK numbers hB's appliance sends are the wire's too, past
// anything hA sent. What follows (a stall, a reset, how each host ends) is
// logged; the test asserts only that no byte reaching an application is
// wrong, and returns the connection for the marker check.
func (e *encEnv) routeChange(t *testing.T, by *asymBypass, dst netip.AddrPort) asymConn {
	t.Helper()
	p, r, seed := e.startPaced(t, "stream-client-route", dst, 32<<20) // 64 s at the rate: it runs past the test's look at it
	defer p.Stop()
	c := asymConn{name: t.Name(), a: r.local, b: dst}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		fa, okA, errA := e.flowOf(topology.GwA, c.a, c.b)
		fb, okB, errB := e.flowOf(topology.GwB, c.a, c.b)
		if okA && okB && fa.Encrypted && fb.Encrypted {
			t.Logf("both appliances list %v <-> %v encrypted (session %s)", c.a, c.b, fa.SessionID)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the connection is not listed encrypted by both appliances: gwA %+v %v %v, gwB %+v %v %v", fa, okA, errA, fb, okB, errB)
		}
	}
	c.enc = true
	time.Sleep(time.Second)
	before := map[topology.Node]statusCounters{}
	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		n, err := e.counters(gw)
		if err != nil {
			t.Fatal(err)
		}
		before[gw] = n
	}
	sockets := func(when string) {
		t.Logf("%s:\nhA: %shB: %s", when, e.runIn(topology.HostA, "ss", "-tnio", "dst", dst.String()),
			e.runIn(topology.HostB, "ss", "-tnio", "src", dst.String(), "and", "dst", c.a.String()))
	}
	sockets("sockets before the route change")
	by.route(t, asymReturn)
	moved := time.Now()
	t.Logf("%s: hB -> hA now bypasses gwA", stamp())
	select {
	case <-p.Done():
	case <-time.After(3 * time.Second):
		sockets("3 s after the route change")
	}
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Errorf("the client still runs %v after the route change", time.Since(moved).Round(time.Second))
	}
	ended := time.Since(moved)
	r.clientOut = p.Output()
	parseClient(&r, r.clientOut)
	parseServer(&r, e.streamB, seed, 2*time.Second)
	both := r.clientOut + "\n" + r.serverLine
	how := "the client ended without an error"
	switch {
	case strings.Contains(both, "reset by peer"):
		how = "a host saw a reset"
	case strings.Contains(r.clientOut, "i/o timeout"):
		how = "it stalled until the client's own idle timeout (10 s); no reset reached it"
	case strings.Contains(r.clientOut, "tool error"):
		how = "the client failed"
	}
	t.Logf("%v after the route change: %s\nclient: %s\nserver: %s", ended.Round(100*time.Millisecond), how,
		strings.TrimSpace(tailLines(r.clientOut, 3)), r.serverLine)
	if strings.Contains(both, "CORRUPT") {
		t.Errorf("a host's application received bytes that are not the stream sent (ciphertext taken as data?):\n%s", both)
	}
	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		now, err := e.counters(gw)
		if err != nil {
			t.Error(err)
			continue
		}
		d := now.minus(before[gw])
		fl, found, _ := e.flowOf(gw, c.a, c.b)
		t.Logf("%s since the route change: drops %v events %v stray_resets %d auth_failures %d; record found=%v state %q",
			gw, nonZero(d.Drops), nonZero(d.Events), now.StrayResets-before[gw].StrayResets, d.AuthFailures, found, fl.State)
	}
	sockets("sockets once the client ended")
	return c
}

// startPaced starts a stream client on hA sending and receiving total bytes
// to and from dst at 500 kB/s (so a route can change under it), waits for
// it to connect and returns it, what it printed so far and its seed.
func (e *encEnv) startPaced(t *testing.T, name string, dst netip.AddrPort, total int) (*netns.Process, result, uint64) {
	t.Helper()
	e.seed += 10
	p, err := e.topo.Start(topology.HostA, name, e.toolArgs("stream-client", "-addr", dst.String(),
		"-n", fmt.Sprint(total), "-m", fmt.Sprint(total), "-seed", fmt.Sprint(e.seed), "-rate", "500000", "-idle", "5s")...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitOutput("connected ", 10*time.Second); err != nil {
		p.Stop()
		t.Fatalf("client: %v\n%s", err, p.Output())
	}
	var r result
	parseClient(&r, p.Output())
	return p, r, e.seed
}
