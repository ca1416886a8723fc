package impair

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
)

// Node is the name (after the topology prefix) of the namespace Insert adds.
const Node = "imp"

// The bump's interfaces in that namespace.
const (
	PortA = "bumpA" // toward the gateway: the moved end (rtr's former toA)
	PortB = "bumpB" // toward the replaced end (rtr:toA, a new veth)
)

// Link is a bump spliced into a link of a topology.
type Link struct {
	NS  string // the bump's namespace, prefix + Node
	env *netns.Env
}

// Insert splices a namespace (prefix+"imp") into the link between gwA:out
// and rtr:toA of the deploy/topology instance whose namespaces carry prefix:
//
//	gwA:out —veth— imp:bumpA  [tcpinc-impair]  imp:bumpB —veth— rtr:toA
//
// rtr's end of the old veth moves into the new namespace and is renamed bumpA;
// rtr gets a new veth end named toA with the old MAC address, MTU and
// addresses, so routes, nftables rules (loss, NAT, which match on names)
// and captures on rtr:toA keep working. The topology must not have VLANs
// (the emulated VLAN device hangs off the old toA). Run the forwarder in
// NS (`ip netns exec NS tcpinc-impair`, or Start); until it runs, the link
// carries nothing. Close removes the namespace (gwA:out loses its peer, so
// call it when the topology goes down).
func Insert(prefix string) (*Link, error) { return InsertAt(prefix, "rtr", "toA") }

// InsertAt is Insert on another link: node's interface iface (node without
// the prefix) is the end that moves into the bump's namespace and is
// replaced, with its addresses and the routes through it. InsertAt(prefix,
// "hA", "eth0") puts the bump on the inside link, between hA and gwA:in.
func InsertAt(prefix, node, iface string) (*Link, error) {
	at, imp := prefix+node, prefix+Node // the namespace whose end moves, the bump's
	if _, err := netns.Run(at, "ip", "link", "show", iface+".100"); err == nil {
		return nil, fmt.Errorf("impair: %s has VLAN devices on %s; build the topology without VLAN", at, iface)
	}
	out, err := netns.Run(at, "ip", "-j", "addr", "show", "dev", iface)
	if err != nil {
		return nil, err
	}
	var links []struct {
		MTU      int    `json:"mtu"`
		Address  string `json:"address"`
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
			Scope     string `json:"scope"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		return nil, fmt.Errorf("impair: parse addresses of %s:%s: %v\n%s", at, iface, err, out)
	}
	old := links[0]
	routes, err := gatewayRoutes(at, iface)
	if err != nil {
		return nil, err
	}
	l := &Link{NS: imp, env: netns.NewEnv()}
	fail := func(err error) (*Link, error) {
		_ = l.env.Close()
		return nil, err
	}
	e := l.env
	if err := e.AddNamespace(imp); err != nil {
		return fail(err)
	}
	for _, c := range []string{"all", "default"} {
		if err := e.Sysctl(imp, "net.ipv6.conf."+c+".disable_ipv6", "1"); err != nil {
			return fail(err)
		}
	}
	steps := [][]string{
		{"ip", "-n", at, "link", "set", iface, "netns", imp},
		{"ip", "-n", imp, "link", "set", iface, "name", PortA},
		{"ip", "-n", imp, "link", "set", "dev", PortA, "up"},
	}
	for _, s := range steps {
		if _, err := netns.Cmd(s...); err != nil {
			return fail(err)
		}
	}
	if err := e.AddVeth(imp, PortB, at, iface, old.MTU); err != nil {
		return fail(err)
	}
	steps = [][]string{
		{"ip", "-n", at, "link", "set", iface, "down"},
		{"ip", "-n", at, "link", "set", iface, "address", old.Address},
		{"ip", "-n", at, "link", "set", iface, "up"},
	}
	for _, a := range old.AddrInfo {
		if a.Scope != "global" {
			continue
		}
		steps = append(steps, []string{"ip", "-n", at, "addr", "add", a.Local + "/" + strconv.Itoa(a.PrefixLen), "dev", iface, "nodad"})
	}
	for _, r := range routes {
		steps = append(steps, append([]string{"ip", "-n", at}, append(r, "dev", iface)...))
	}
	for _, s := range steps {
		if _, err := netns.Cmd(s...); err != nil {
			return fail(err)
		}
	}
	// Offloads as the topology sets them for interfaces that transmit into
	// a gateway port or its path (BASELINES' AF_XDP recipe): full-size,
	// fully checksummed frames; GRO (NAPI) on imp:bumpA so that gwA's in-kernel
	// fast path (XDP_REDIRECT into out) can deliver to it; a qdisc so a
	// full veth ring pushes back instead of dropping.
	for _, p := range [][2]string{{at, iface}, {imp, PortA}, {imp, PortB}} {
		if err := e.Ethtool(p[0], p[1], "tx", "off", "tso", "off", "gso", "off"); err != nil {
			return fail(err)
		}
		if _, err := netns.Run(p[0], "tc", "qdisc", "replace", "dev", p[1], "root", "pfifo_fast"); err != nil {
			return fail(err)
		}
	}
	for _, p := range [][2]string{{at, iface}, {imp, PortA}} {
		if err := e.Ethtool(p[0], p[1], "gro", "on"); err != nil {
			return fail(err)
		}
	}
	return l, nil
}

// gatewayRoutes lists the routes through a gateway on ns's interface iface,
// both families, as `ip route add` arguments without the device: they go
// with the device and come back on its replacement.
func gatewayRoutes(ns, iface string) ([][]string, error) {
	var out [][]string
	for _, fam := range []string{"-4", "-6"} {
		js, err := netns.Run(ns, "ip", fam, "-j", "route", "show", "dev", iface)
		if err != nil {
			return nil, err
		}
		var rs []struct {
			Dst     string `json:"dst"`
			Gateway string `json:"gateway"`
		}
		if err := json.Unmarshal([]byte(js), &rs); err != nil {
			return nil, fmt.Errorf("impair: parse routes of %s:%s: %v\n%s", ns, iface, err, js)
		}
		for _, r := range rs {
			if r.Gateway != "" {
				out = append(out, []string{fam, "route", "add", r.Dst, "via", r.Gateway})
			}
		}
	}
	return out, nil
}

// Start runs the forwarder binary (cmd/tcpinc-impair) in the bump's
// namespace with args and waits until it forwards.
func (l *Link) Start(bin string, args ...string) (*netns.Process, error) {
	full := append([]string{bin, "--a", PortA, "--b", PortB}, args...)
	p, err := netns.StartProcess(l.NS, "tcpinc-impair", full...)
	if err != nil {
		return nil, err
	}
	if err := p.WaitOutput("forwarding", 10*time.Second); err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("tcpinc-impair did not start: %w\n%s", err, p.Output())
	}
	return p, nil
}

// Close removes the bump's namespace and everything in it; call it
// before the topology's Down (its veths end in gwA and rtr).
func (l *Link) Close() error { return l.env.Close() }
