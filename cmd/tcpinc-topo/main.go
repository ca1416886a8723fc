// Command tcpinc-topo builds or removes tcpinc's standard test topology in
// network namespaces (see package deploy/topology for the layout and the
// address plan):
//
//	tcpinc-topo up   [-prefix tci-] [-net 77] [-mode bridge|bare|routed] [-mtu 1500] [-vlan] [-nat] [-loss PCT] [-loss-dir both|a2b|b2a] [-default-offloads] [-v]
//	tcpinc-topo down [-prefix tci-]
//	tcpinc-topo loss [-prefix tci-] [-net 77] -loss PCT [-loss-dir both]
//	tcpinc-topo nat  [-prefix tci-] [-net 77] on|off
//	tcpinc-topo show [-prefix tci-] [-net 77] [-mode ...] [-vlan]
//
// `up` leaves the namespaces in place for `ip netns exec tci-hA ...`; in bare
// mode start the appliances with
//
//	ip netns exec tci-gwA tcpincd --inside in --outside out
//
// `down` removes the namespaces and kills every process left in them.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	verb := os.Args[1]
	fs := flag.NewFlagSet("tcpinc-topo "+verb, flag.ExitOnError)
	prefix := fs.String("prefix", topology.DefaultPrefix, "namespace name prefix")
	netN := fs.Int("net", 77, "N in the address plan 10.N.x.y / fd00:N:x::y")
	mode := fs.String("mode", string(topology.ModeBridge), "appliance namespaces: bridge (kernel control), bare (for tcpincd), routed (for tunnels)")
	mtu := fs.Int("mtu", 1500, "MTU of every link")
	vlan := fs.Bool("vlan", false, "add VLAN 100 sub-interfaces on hA, hB and rtr")
	nat := fs.Bool("nat", false, "masquerade side A toward side B on rtr")
	loss := fs.Float64("loss", 0, "percent of A<->B packets rtr drops at random")
	lossDir := fs.String("loss-dir", string(topology.LossBoth), "loss direction: both, a2b, b2a")
	defOff := fs.Bool("default-offloads", false, "keep veth offload defaults instead of the AF_XDP recipe")
	verbose := fs.Bool("v", false, "print every configuration command")
	_ = fs.Parse(os.Args[2:])

	opt := topology.Options{
		Prefix: *prefix, Net: *netN, Mode: topology.Mode(*mode), MTU: *mtu,
		VLAN: *vlan, NAT: *nat, DefaultOffloads: *defOff,
	}
	if *verbose {
		opt.Logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	}
	switch verb {
	case "up":
		t, err := topology.Up(opt)
		if err != nil {
			fail(err)
		}
		if *loss > 0 {
			if err := t.SetLoss(*loss, topology.LossDir(*lossDir)); err != nil {
				_ = t.Down()
				fail(err)
			}
		}
		// The namespaces stay; the registry of this process is dropped.
		show(t)
	case "down":
		if err := topology.Down(*prefix); err != nil {
			fail(err)
		}
	case "loss", "nat", "show":
		if !topology.Exists(*prefix) {
			fail(fmt.Errorf("no topology with prefix %q (run up first)", *prefix))
		}
		t := topology.Attach(opt)
		switch verb {
		case "loss":
			if err := t.SetLoss(*loss, topology.LossDir(*lossDir)); err != nil {
				fail(err)
			}
			n, _ := t.LossDropped()
			fmt.Printf("loss %.2f%% %s (dropped so far: %d)\n", *loss, *lossDir, n)
		case "nat":
			on := fs.Arg(0) == "on"
			if !on && fs.Arg(0) != "off" {
				fail(fmt.Errorf("nat: want on or off"))
			}
			if err := t.SetNAT(on); err != nil {
				fail(err)
			}
		case "show":
			show(t)
		}
	default:
		usage()
	}
}

func show(t *topology.Topology) {
	o := t.Options()
	fmt.Printf("topology %q mode=%s mtu=%d vlan=%v\n", o.Prefix, o.Mode, o.MTU, o.VLAN)
	for _, n := range topology.Nodes {
		line := fmt.Sprintf("  %-4s ns=%s", n, t.NS(n))
		if a := t.Addr(n); a.V4.IsValid() {
			line += fmt.Sprintf("  %s %s", a.V4, a.V6)
			if a.VLANPresent {
				line += fmt.Sprintf("  vlan%d %s %s", topology.VLANID, a.VLAN4, a.VLAN6)
			}
		}
		fmt.Println(line)
	}
	if o.Mode == topology.ModeBare {
		fmt.Printf("start the appliances: ip netns exec %s tcpincd --inside in --outside out (and %s)\n",
			t.NS(topology.GwA), t.NS(topology.GwB))
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, strings.TrimSpace(`
usage: tcpinc-topo up|down|loss|nat|show [flags]   (tcpinc-topo up -h for flags)`))
	os.Exit(2)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tcpinc-topo:", err)
	os.Exit(1)
}
