// Package topology builds tcpinc's standard test network in namespaces:
//
//	hA —veth— [gwA: in | out] —veth— rtr —veth— [gwB: out | in] —veth— hB
//	                                  |
//	                                  hF (far host, no appliance in front)
//
// With Options.InsideRouterMTU, side A has a router of its own between hA
// and gwA, whose link toward the appliance (up to gwA's inside port) has a
// smaller MTU than hA's and than the untrusted link's: it fragments what hA
// sends without DF.
//
//	hA —veth— rA —veth (smaller MTU)— [gwA: in | out] —veth (MTU)— rtr ...
//
// hA, hB and hF are hosts with one interface, eth0. rtr is the untrusted
// network: it routes between the sides and is where loss (nftables numgen
// drop rules), NAT (masquerade of side A toward side B) and captures happen.
// gwA and gwB are the appliance namespaces with two unaddressed ports named
// "in" (toward the host) and "out" (toward rtr).
//
// Modes of the appliance namespaces:
//   - ModeBridge (default): a kernel bridge joins in and out: the
//     kernel-forwarding control, and a working network without tcpincd.
//   - ModeBare: in and out are up but joined by nothing; the caller starts
//     `tcpincd --inside in --outside out` in gwA and gwB.
//   - ModeRouted: the gateways are IP routers (for tunnels such as
//     wireguard-go): in carries the hosts' gateway address, out an address on
//     a transit subnet toward rtr, and rtr routes the enclaves through them.
//
// Addressing, with N = Options.Net (default 77):
//
//	side A:  10.N.1.0/24,   fd00:N:1::/64   hA .2, gateway .1 (rtr:toA, or gwA:in when routed)
//	side B:  10.N.2.0/24,   fd00:N:2::/64   hB .2, gateway .1 (rtr:toB, or gwB:in when routed)
//	far F:   10.N.3.0/24,   fd00:N:3::/64   hF .2, gateway .1 (rtr:toF)
//	VLAN 100 on side A: 10.N.101.0/24, fd00:N:101::/64 (hA:eth0.100 .2, rtr:toA.100 .1)
//	VLAN 100 on side B: 10.N.102.0/24, fd00:N:102::/64 (hB:eth0.100 .2, rtr:toB.100 .1)
//	routed transit: gwA:out 10.N.11.2 — rtr:toA 10.N.11.1, gwB:out 10.N.12.2 — rtr:toB 10.N.12.1
//	  (and fd00:N:11::/64, fd00:N:12::/64 likewise)
//	inside router: hA on 10.N.21.0/24, fd00:N:21::/64 (hA .2, rA:toH .1);
//	  rA:toGw .3 on side A's subnet, default via rtr; rtr routes subnet 21 via rA
//
// Offloads (BASELINES' AF_XDP recipe): every interface that transmits into a
// gateway port (hA:eth0, rtr:toA, rtr:toB, hB:eth0) gets `tx off tso off gso
// off` (MTU-sized frames with full checksums reach the appliance) and `gro on`
// (a veth receives XDP_REDIRECTed frames only when its end runs NAPI). The
// same settings apply in every mode, so the bridge control and tcpinc see the
// same traffic. The same interfaces get a pfifo_fast qdisc, so a full veth
// ring pushes back on the sender instead of dropping (see queues).
package topology

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"sync"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
)

// Mode says what joins the two ports of each appliance namespace.
type Mode string

// Modes; see the package comment.
const (
	ModeBridge Mode = "bridge"
	ModeBare   Mode = "bare"
	ModeRouted Mode = "routed"
)

// Node names one namespace of the topology.
type Node string

// The nodes. NS(node) gives the namespace name (prefix + node).
const (
	HostA  Node = "hA"
	GwA    Node = "gwA"
	Router Node = "rtr"
	GwB    Node = "gwB"
	HostB  Node = "hB"
	HostF  Node = "hF"
	// InsideRouter is side A's own router (Options.InsideRouterMTU).
	InsideRouter Node = "rA"
)

// Nodes lists every node, in creation order (InsideRouter only exists with
// Options.InsideRouterMTU).
var Nodes = []Node{HostA, GwA, Router, GwB, HostB, HostF, InsideRouter}

// Interface names inside the namespaces.
const (
	HostIface   = "eth0" // hA, hB, hF
	InsidePort  = "in"   // gwA, gwB: toward the host
	OutsidePort = "out"  // gwA, gwB: toward rtr
	RouterToA   = "toA"  // rtr: toward gwA
	RouterToB   = "toB"  // rtr: toward gwB
	RouterToF   = "toF"  // rtr: toward hF
	InsideToH   = "toH"  // rA: toward hA
	InsideToGw  = "toGw" // rA: toward gwA
	BridgeName  = "br0"  // gwA, gwB in ModeBridge
	VLANID      = 100
)

// DefaultPrefix is the namespace-name prefix of `tcpinc-topo` and the demo.
// Tests and the bench use their own prefix so they can run side by side.
const DefaultPrefix = "tci-"

// Options configure Up. The zero value is a usable bridge topology.
type Options struct {
	// Prefix of every namespace name (default DefaultPrefix).
	Prefix string
	// Net is N in the address plan 10.N.x.y / fd00:N:x::y (default 77).
	Net int
	// Mode of the appliance namespaces (default ModeBridge).
	Mode Mode
	// MTU of every link (default 1500).
	MTU int
	// SideBMTU, if set, is the MTU of side B's links instead (hB—gwB and
	// gwB—rtr): a far site with jumbo frames behind an untrusted network
	// whose side A has MTU. rtr routes between the two.
	SideBMTU int
	// InsideRouterMTU, if set, puts router rA between hA and gwA: hA's link
	// to rA has MTU, and rA's link toward the appliance (to gwA's inside
	// port) this smaller MTU, so rA fragments what hA sends without DF;
	// gwA's outside link has MTU, and gwA tells hA an MSS that fits it.
	// Not in ModeRouted.
	InsideRouterMTU int
	// VLAN adds VLAN 100 sub-interfaces on hA, rtr:toA, rtr:toB and hB with
	// their own subnets, so tagged frames cross the appliances.
	VLAN bool
	// NAT masquerades side A toward side B on rtr from the start (see SetNAT).
	NAT bool
	// DefaultOffloads leaves the veth offload defaults (TSO/GSO/checksum
	// offload on) instead of the AF_XDP recipe. Only for comparisons: tcpinc
	// needs the recipe.
	DefaultOffloads bool
	// Queues gives every veth this many RX and TX queues (default 1), for
	// tcpincd's multi-queue mode: a veth delivers a frame on the RX queue
	// of the TX queue its sender picked, which follows no RSS.
	Queues int
	// Logf, if set, receives every configuration command.
	Logf func(format string, args ...any)
}

// Addrs are the addresses of a host (or of a router leg).
type Addrs struct {
	V4, V6         netip.Addr // on eth0
	VLAN4, VLAN6   netip.Addr // on eth0.100; invalid when the topology has no VLAN (or for hF)
	Gateway4       netip.Addr // the host's IPv4 default gateway
	Gateway6       netip.Addr
	VLANGateway4   netip.Addr
	VLANGateway6   netip.Addr
	Prefix4Bits    int
	Prefix6Bits    int
	VLANPresent    bool
	Iface, VLANDev string
}

// LossDir selects which direction of the A<->B traffic SetLoss drops.
type LossDir string

// Loss directions.
const (
	LossBoth LossDir = "both"
	LossAtoB LossDir = "a2b" // packets from side A toward side B (rtr: in toA, out toB)
	LossBtoA LossDir = "b2a"
)

// Topology is a running instance. Methods are safe for concurrent use.
type Topology struct {
	opt Options
	env *netns.Env

	mu  sync.Mutex
	nat bool
}

func (o *Options) fill() error {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Net == 0 {
		o.Net = 77
	}
	if o.Net < 1 || o.Net > 254 {
		return fmt.Errorf("topology: Net %d out of range 1..254", o.Net)
	}
	if o.Mode == "" {
		o.Mode = ModeBridge
	}
	switch o.Mode {
	case ModeBridge, ModeBare, ModeRouted:
	default:
		return fmt.Errorf("topology: unknown mode %q (bridge, bare, routed)", o.Mode)
	}
	if o.MTU == 0 {
		o.MTU = 1500
	}
	if o.Queues < 0 || o.Queues > 64 {
		return fmt.Errorf("topology: %d queues (1..64)", o.Queues)
	}
	if o.MTU < 1280 || o.MTU > 65535 {
		return fmt.Errorf("topology: MTU %d out of range 1280..65535 (IPv6 needs 1280)", o.MTU)
	}
	if o.SideBMTU != 0 && (o.SideBMTU < 1280 || o.SideBMTU > 65535) {
		return fmt.Errorf("topology: side B MTU %d out of range 1280..65535", o.SideBMTU)
	}
	if o.InsideRouterMTU != 0 && (o.InsideRouterMTU < 1280 || o.InsideRouterMTU >= o.MTU || o.Mode == ModeRouted) {
		return fmt.Errorf("topology: inside router MTU %d: must be 1280..%d, not in routed mode", o.InsideRouterMTU, o.MTU-1)
	}
	// Namespace names are file names; keep them plain.
	for _, r := range o.Prefix {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("topology: prefix %q: only letters, digits, '-', '_', '.'", o.Prefix)
		}
	}
	return nil
}

// v4 returns 10.N.subnet.host; v6 returns fd00:N:subnet::host (N and subnet
// written as decimal digits read as hex, so 10.77.1.2 pairs with fd00:77:1::2).
func (o *Options) v4(subnet, host int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(o.Net), byte(subnet), byte(host)})
}

func (o *Options) v6(subnet, host int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("fd00:%d:%d::%d", o.Net, subnet, host))
}

// Subnet numbers of the address plan.
const (
	subnetA, subnetB, subnetF      = 1, 2, 3
	subnetTransA, subnetTransB     = 11, 12
	subnetVLANA, subnetVLANB       = 101, 102
	subnetInA, insideRtrNum        = 21, 3
	hostNum, gwNum, transGwNum     = 2, 1, 2
	transRtrNum                    = 1
	prefix4Bits, prefix6Bits   int = 24, 64
)

func cidr(a netip.Addr) string {
	if a.Is4() {
		return fmt.Sprintf("%s/%d", a, prefix4Bits)
	}
	return fmt.Sprintf("%s/%d", a, prefix6Bits)
}

func (o *Options) net4(subnet int) string { return cidr(o.v4(subnet, 0)) }
func (o *Options) net6(subnet int) string { return cidr(o.v6(subnet, 0)) }

// Up builds the topology. On failure everything created so far is removed.
// A stale topology with the same prefix (from a crashed run) is removed first.
func Up(opt Options) (*Topology, error) {
	if err := netns.RequireRoot(); err != nil {
		return nil, err
	}
	if err := opt.fill(); err != nil {
		return nil, err
	}
	t := &Topology{opt: opt, env: netns.NewEnv()}
	t.env.Logf = opt.Logf
	if err := t.build(); err != nil {
		if cerr := t.env.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, fmt.Errorf("topology up: %w", err)
	}
	if opt.NAT {
		if err := t.SetNAT(true); err != nil {
			_ = t.Down()
			return nil, err
		}
	}
	return t, nil
}

func (t *Topology) build() error {
	o, e := &t.opt, t.env
	ns := t.NS
	for _, n := range Nodes {
		if n == InsideRouter && o.InsideRouterMTU == 0 {
			continue
		}
		if err := e.AddNamespace(ns(n)); err != nil {
			return err
		}
		// No duplicate address detection anywhere, link-local addresses
		// included: a tentative link-local stalls neighbour discovery for
		// about two seconds after every Up.
		for _, c := range []string{"all", "default"} {
			if err := e.Sysctl(ns(n), "net.ipv6.conf."+c+".accept_dad", "0"); err != nil {
				return err
			}
		}
	}
	type link struct {
		a   Node
		ia  string
		b   Node
		ib  string
		mtu int
	}
	sideB := o.MTU
	if o.SideBMTU != 0 {
		sideB = o.SideBMTU
	}
	links := []link{
		{HostA, HostIface, GwA, InsidePort, o.MTU},
		{GwA, OutsidePort, Router, RouterToA, o.MTU},
		{Router, RouterToB, GwB, OutsidePort, sideB},
		{GwB, InsidePort, HostB, HostIface, sideB},
		{Router, RouterToF, HostF, HostIface, o.MTU},
	}
	if o.InsideRouterMTU != 0 {
		links[0] = link{InsideRouter, InsideToGw, GwA, InsidePort, o.InsideRouterMTU}
		links = append(links, link{HostA, HostIface, InsideRouter, InsideToH, o.MTU})
	}
	for _, l := range links {
		if err := e.AddVethQueues(ns(l.a), l.ia, ns(l.b), l.ib, l.mtu, o.Queues); err != nil {
			return err
		}
	}
	// Hosts are hosts, rtr is a router for both families.
	for _, n := range []Node{HostA, HostB, HostF} {
		if err := e.Sysctl(ns(n), "net.ipv6.conf.all.accept_ra", "0"); err != nil {
			return err
		}
	}
	if err := t.routerSysctls(Router); err != nil {
		return err
	}
	if err := t.gateways(); err != nil {
		return err
	}
	if err := t.insideRouter(); err != nil {
		return err
	}
	if err := t.addressHosts(); err != nil {
		return err
	}
	if !o.DefaultOffloads {
		if err := t.offloads(); err != nil {
			return err
		}
	}
	if err := t.queues(); err != nil {
		return err
	}
	// Loss rules live in their own table from the start, so SetLoss only
	// rewrites one chain and LossDropped always finds it.
	return t.SetLoss(0, LossBoth)
}

func (t *Topology) routerSysctls(n Node) error {
	for _, kv := range [][2]string{
		{"net.ipv4.ip_forward", "1"},
		{"net.ipv6.conf.all.forwarding", "1"},
		// Redirects would teach hosts shortcuts around the routed gateways.
		{"net.ipv4.conf.all.send_redirects", "0"},
	} {
		if err := t.env.Sysctl(t.NS(n), kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// gateways configures gwA/gwB per mode.
func (t *Topology) gateways() error {
	o, e := &t.opt, t.env
	for _, gw := range []Node{GwA, GwB} {
		g := t.NS(gw)
		if o.Mode == ModeRouted {
			continue
		}
		// Unaddressed bump ports: no IPv6 link-local addresses, no RS/ND noise.
		for _, p := range []string{"all", "default", InsidePort, OutsidePort} {
			if err := e.Sysctl(g, "net.ipv6.conf."+p+".disable_ipv6", "1"); err != nil {
				return err
			}
		}
		if o.Mode == ModeBridge {
			if err := e.AddBridge(g, BridgeName, InsidePort, OutsidePort); err != nil {
				return err
			}
		}
	}
	// rtr's legs. In bridge/bare mode rtr:toA is the hosts' gateway on side A's
	// subnet itself; in routed mode it sits on a transit subnet behind gwA.
	rtr := t.NS(Router)
	legs := []struct {
		gw              Node
		leg             string
		host            Node
		subnet, transit int
	}{
		{GwA, RouterToA, HostA, subnetA, subnetTransA},
		{GwB, RouterToB, HostB, subnetB, subnetTransB},
	}
	for _, l := range legs {
		if o.Mode != ModeRouted {
			if err := t.addBoth(rtr, l.leg, o.v4(l.subnet, gwNum), o.v6(l.subnet, gwNum)); err != nil {
				return err
			}
			continue
		}
		g := t.NS(l.gw)
		if err := t.routerSysctls(l.gw); err != nil {
			return err
		}
		if err := t.addBoth(g, InsidePort, o.v4(l.subnet, gwNum), o.v6(l.subnet, gwNum)); err != nil {
			return err
		}
		if err := t.addBoth(g, OutsidePort, o.v4(l.transit, transGwNum), o.v6(l.transit, transGwNum)); err != nil {
			return err
		}
		if err := t.addBoth(rtr, l.leg, o.v4(l.transit, transRtrNum), o.v6(l.transit, transRtrNum)); err != nil {
			return err
		}
		for _, r := range [][]string{
			{"default", "via", o.v4(l.transit, transRtrNum).String()},
			{"default", "via", o.v6(l.transit, transRtrNum).String()},
		} {
			if err := e.AddRoute(g, r...); err != nil {
				return err
			}
		}
		for _, r := range [][]string{
			{o.net4(l.subnet), "via", o.v4(l.transit, transGwNum).String()},
			{o.net6(l.subnet), "via", o.v6(l.transit, transGwNum).String()},
		} {
			if err := e.AddRoute(rtr, r...); err != nil {
				return err
			}
		}
	}
	return t.addBoth(rtr, RouterToF, o.v4(subnetF, gwNum), o.v6(subnetF, gwNum))
}

// insideRouter addresses rA and routes side A's inner subnet through it.
func (t *Topology) insideRouter() error {
	o, e := &t.opt, t.env
	if o.InsideRouterMTU == 0 {
		return nil
	}
	ra, rtr := t.NS(InsideRouter), t.NS(Router)
	if err := t.routerSysctls(InsideRouter); err != nil {
		return err
	}
	if err := t.addBoth(ra, InsideToH, o.v4(subnetInA, gwNum), o.v6(subnetInA, gwNum)); err != nil {
		return err
	}
	if err := t.addBoth(ra, InsideToGw, o.v4(subnetA, insideRtrNum), o.v6(subnetA, insideRtrNum)); err != nil {
		return err
	}
	for _, r := range [][]string{
		{"default", "via", o.v4(subnetA, gwNum).String()},
		{"default", "via", o.v6(subnetA, gwNum).String()},
	} {
		if err := e.AddRoute(ra, r...); err != nil {
			return err
		}
	}
	for _, r := range [][]string{
		{o.net4(subnetInA), "via", o.v4(subnetA, insideRtrNum).String()},
		{o.net6(subnetInA), "via", o.v6(subnetA, insideRtrNum).String()},
	} {
		if err := e.AddRoute(rtr, r...); err != nil {
			return err
		}
	}
	return nil
}

func (t *Topology) addBoth(ns, iface string, a4, a6 netip.Addr) error {
	if err := t.env.AddAddr(ns, iface, cidr(a4)); err != nil {
		return err
	}
	return t.env.AddAddr(ns, iface, cidr(a6))
}

func (t *Topology) addressHosts() error {
	o, e := &t.opt, t.env
	for _, h := range []Node{HostA, HostB, HostF} {
		a := t.Addr(h)
		n := t.NS(h)
		if err := t.addBoth(n, HostIface, a.V4, a.V6); err != nil {
			return err
		}
		if err := e.AddRoute(n, "default", "via", a.Gateway4.String()); err != nil {
			return err
		}
		if err := e.AddRoute(n, "default", "via", a.Gateway6.String()); err != nil {
			return err
		}
	}
	if !o.VLAN || o.Mode == ModeRouted {
		return nil
	}
	rtr := t.NS(Router)
	for _, s := range []struct {
		host       Node
		leg        string
		sub, other int
	}{
		{HostA, RouterToA, subnetVLANA, subnetVLANB},
		{HostB, RouterToB, subnetVLANB, subnetVLANA},
	} {
		hn := t.NS(s.host)
		hdev, err := e.AddVLAN(hn, HostIface, VLANID)
		if err != nil {
			return err
		}
		rdev, err := e.AddVLAN(rtr, s.leg, VLANID)
		if err != nil {
			return err
		}
		if err := t.addBoth(hn, hdev, o.v4(s.sub, hostNum), o.v6(s.sub, hostNum)); err != nil {
			return err
		}
		if err := t.addBoth(rtr, rdev, o.v4(s.sub, gwNum), o.v6(s.sub, gwNum)); err != nil {
			return err
		}
		// The other side's VLAN subnet is reached over the VLAN, so a
		// VLAN-to-VLAN connection is tagged on both appliances both ways.
		if err := e.AddRoute(hn, o.net4(s.other), "via", o.v4(s.sub, gwNum).String()); err != nil {
			return err
		}
		if err := e.AddRoute(hn, o.net6(s.other), "via", o.v6(s.sub, gwNum).String()); err != nil {
			return err
		}
	}
	return nil
}

// neighbours are the interfaces that transmit into a gateway port.
func (t *Topology) neighbours() [][2]string {
	n := [][2]string{
		{t.NS(HostA), HostIface},
		{t.NS(Router), RouterToA},
		{t.NS(Router), RouterToB},
		{t.NS(HostB), HostIface},
	}
	if t.opt.InsideRouterMTU != 0 {
		// hA sends to rA; rA into gwA (hA keeps the same settings).
		n = append(n, [2]string{t.NS(InsideRouter), InsideToGw})
	}
	return n
}

func (t *Topology) offloads() error {
	for _, nb := range t.neighbours() {
		if err := t.env.Ethtool(nb[0], nb[1], "tx", "off", "tso", "off", "gso", "off", "gro", "on"); err != nil {
			return err
		}
	}
	return nil
}

// queues gives the neighbours a qdisc. A veth has none by default
// (noqueue); when the peer runs NAPI (an XDP program, or GRO) and its
// 256-entry ring is full, the frame is dropped and counted as a TX drop on
// the sender. With a qdisc the kernel stops the queue instead and the
// sender waits (backpressure), as with a real NIC. Without it, 4 iperf3
// streams through the XDP fast path lost ~10 % of their segments at hA:eth0.
//
// The gateway ports get one too: in bridge and routed mode the kernel sends
// through them into neighbours that run NAPI (gro on). AF_XDP copy-mode TX and
// devmap redirects bypass the qdisc, so it changes nothing for tcpincd.
func (t *Topology) queues() error {
	ifaces := t.neighbours()
	for _, gw := range []Node{GwA, GwB} {
		ifaces = append(ifaces, [2]string{t.NS(gw), InsidePort}, [2]string{t.NS(gw), OutsidePort})
	}
	for _, nb := range ifaces {
		if _, err := t.env.Run(nb[0], "tc", "qdisc", "replace", "dev", nb[1], "root", "pfifo_fast"); err != nil {
			return err
		}
	}
	return nil
}

// Options returns the options the topology was built with (defaults filled in).
func (t *Topology) Options() Options { return t.opt }

// NS returns the namespace name of a node.
func (t *Topology) NS(n Node) string { return t.opt.Prefix + string(n) }

// Addr returns the addresses of host hA, hB or hF. For other nodes it
// returns the zero Addrs.
func (t *Topology) Addr(n Node) Addrs {
	o := &t.opt
	var sub, vsub int
	switch n {
	case HostA:
		sub, vsub = subnetA, subnetVLANA
		if o.InsideRouterMTU != 0 {
			sub, vsub = subnetInA, 0
		}
	case HostB:
		sub, vsub = subnetB, subnetVLANB
	case HostF:
		sub = subnetF
	default:
		return Addrs{}
	}
	a := Addrs{
		V4: o.v4(sub, hostNum), V6: o.v6(sub, hostNum),
		Gateway4: o.v4(sub, gwNum), Gateway6: o.v6(sub, gwNum),
		Prefix4Bits: prefix4Bits, Prefix6Bits: prefix6Bits,
		Iface: HostIface,
	}
	if vsub != 0 && o.VLAN && o.Mode != ModeRouted {
		a.VLANPresent = true
		a.VLAN4, a.VLAN6 = o.v4(vsub, hostNum), o.v6(vsub, hostNum)
		a.VLANGateway4, a.VLANGateway6 = o.v4(vsub, gwNum), o.v6(vsub, gwNum)
		a.VLANDev = fmt.Sprintf("%s.%d", HostIface, VLANID)
	}
	return a
}

// RouterAddr returns rtr's addresses on its leg toward side A, B or F
// (HostA, HostB, HostF). With NAT on, side B sees side A's connections
// coming from RouterAddr(HostB).
func (t *Topology) RouterAddr(side Node) (v4, v6 netip.Addr) {
	o := &t.opt
	sub, trans := 0, 0
	switch side {
	case HostA:
		sub, trans = subnetA, subnetTransA
	case HostB:
		sub, trans = subnetB, subnetTransB
	case HostF:
		sub = subnetF
	default:
		return netip.Addr{}, netip.Addr{}
	}
	if o.Mode == ModeRouted && trans != 0 {
		return o.v4(trans, transRtrNum), o.v6(trans, transRtrNum)
	}
	return o.v4(sub, gwNum), o.v6(sub, gwNum)
}

// InsideRouterAddr returns rA's addresses on its leg toward gwA (on side
// A's subnet); invalid without Options.InsideRouterMTU.
func (t *Topology) InsideRouterAddr() (v4, v6 netip.Addr) {
	o := &t.opt
	if o.InsideRouterMTU == 0 {
		return netip.Addr{}, netip.Addr{}
	}
	return o.v4(subnetA, insideRtrNum), o.v6(subnetA, insideRtrNum)
}

// GatewayOutsideAddr returns gwA's or gwB's address on its outside port in
// ModeRouted (the tunnel endpoint); invalid in the other modes.
func (t *Topology) GatewayOutsideAddr(gw Node) (v4, v6 netip.Addr) {
	o := &t.opt
	if o.Mode != ModeRouted {
		return netip.Addr{}, netip.Addr{}
	}
	switch gw {
	case GwA:
		return o.v4(subnetTransA, transGwNum), o.v6(subnetTransA, transGwNum)
	case GwB:
		return o.v4(subnetTransB, transGwNum), o.v6(subnetTransB, transGwNum)
	}
	return netip.Addr{}, netip.Addr{}
}

// SideNets returns side A's or side B's enclave subnets (HostA or HostB).
func (t *Topology) SideNets(side Node) (v4, v6 netip.Prefix) {
	a := t.Addr(side)
	return netip.PrefixFrom(a.V4, prefix4Bits).Masked(), netip.PrefixFrom(a.V6, prefix6Bits).Masked()
}

// Env returns the cleanup registry of the topology. Objects the caller adds
// through it (processes, extra interfaces) are removed by Down.
func (t *Topology) Env() *netns.Env { return t.env }

// Run runs a command in a node and returns its combined output.
func (t *Topology) Run(n Node, args ...string) (string, error) {
	return netns.Run(t.NS(n), args...)
}

// RunContext runs a command in a node, bounded by ctx (for long commands).
func (t *Topology) RunContext(ctx context.Context, n Node, args ...string) (string, error) {
	return netns.RunContext(ctx, t.NS(n), args...)
}

// Command returns an unstarted command that runs args in a node.
func (t *Topology) Command(ctx context.Context, n Node, args ...string) *exec.Cmd {
	full := netns.ExecArgs(t.NS(n), args...)
	return exec.CommandContext(ctx, full[0], full[1:]...)
}

// Start starts a background process in a node; Down stops it (process group)
// if the caller has not.
func (t *Topology) Start(n Node, name string, args ...string) (*netns.Process, error) {
	return t.env.Start(t.NS(n), name, args...)
}

// Down stops every process started through the topology, kills anything
// else left in its namespaces and deletes them. It is idempotent.
func (t *Topology) Down() error {
	err := t.env.Close()
	// Belt and braces: whatever the registry missed goes by name.
	return errors.Join(err, Down(t.opt.Prefix))
}

// Down removes the namespaces of a topology with the given prefix (also one
// left by another process or a crashed run) and every process inside them.
func Down(prefix string) error {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	var errs []error
	for i := len(Nodes) - 1; i >= 0; i-- {
		if err := netns.Delete(prefix+string(Nodes[i]), 2*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Exists reports whether any namespace of a topology with this prefix exists.
func Exists(prefix string) bool {
	for _, n := range Nodes {
		if netns.Exists(prefix + string(n)) {
			return true
		}
	}
	return false
}

// Attach returns a handle on a topology that already runs (built by another
// process, e.g. `tcpinc-topo up`) with the same options. Its Down removes the
// namespaces by name.
func Attach(opt Options) *Topology {
	if err := opt.fill(); err != nil {
		opt.Prefix = DefaultPrefix
	}
	return &Topology{opt: opt, env: netns.NewEnv()}
}
