package integration

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestPortLinkDownReported: one of gwA's links goes down for 2.5 s and comes
// back while an encrypted and a plain transfer run: the outside link's
// cable pulled at the router (rtr takes its leg down and up: gwA's outside
// port loses its carrier), then gwA's inside port taken down and up on the
// box itself (an operator's mistake, a script). tcpincd must go on
// forwarding without a restart, and the transfers complete intact (the
// hosts retransmit, RFC 6298), as they do today; and it must say what
// happened, as the operator's first question is whether the box or its
// link failed: while the link is down, its status warns that the port's
// link is down, and its log says when the link went down and when it came
// back. Before, tcpincd said nothing, neither in its log nor in its
// status, and the status showed the port as if all were well.
func TestPortLinkDownReported(t *testing.T) {
	e := newEncEnvOpts(t, encOpts{net: 63})
	for _, c := range []struct {
		port  string        // the port's name in tcpincd's status and log
		node  topology.Node // where the link is taken down
		iface string        // and the interface, at either end of the port's link
	}{
		{"outside", topology.Router, topology.RouterToA},
		{"inside", topology.GwA, topology.InsidePort},
	} {
		t.Run(c.port, func(t *testing.T) { e.pullCable(t, c.port, c.node, c.iface) })
	}
}

// pullCable takes node's iface down for 2.5 s, 1 s into an encrypted
// transfer from hA to hB and a plain one to hF, and checks the transfers,
// gwA's status while the link is down and after, and its log.
func (e *encEnv) pullCable(t *testing.T, port string, node topology.Node, iface string) {
	b, f := e.topo.Addr(topology.HostB), e.topo.Addr(topology.HostF)
	// The addresses stay (IPv6 removes them at an administrative down
	// otherwise), as they do on a port that loses its carrier.
	if out, err := e.topo.Run(node, "sysctl", "-w", "net.ipv6.conf."+iface+".keep_addr_on_down=1"); err != nil {
		t.Fatalf("%s: %v\n%s", node, err, out)
	}
	const n, rate = 2 << 20, 400000
	runs := []*bgStream{
		e.startStream(t, topology.HostA, netip.AddrPortFrom(b.V4, 5001), e.streamB, n, rate, 20*time.Second),
		e.startStream(t, topology.HostA, netip.AddrPortFrom(f.V4, 5001), e.streamF, n, rate, 20*time.Second),
	}
	e.waitEncrypted(t, runs[0])
	gw := e.gw[topology.GwA]
	logFrom := len(gw.Output())
	time.Sleep(time.Until(runs[0].t0.Add(time.Second)))
	link := func(state string) {
		t.Helper()
		if out, err := e.topo.Run(node, "ip", "link", "set", iface, state); err != nil {
			t.Fatalf("%s: %s %s: %v\n%s", node, iface, state, err, out)
		}
		t.Logf("%s: %s's %s %s", stamp(), node, iface, state)
	}
	link("down")
	isUp := false
	defer func() {
		if !isUp { // the test failed while the link was down
			_, _ = e.topo.Run(node, "ip", "link", "set", iface, "up")
		}
	}()
	time.Sleep(2500 * time.Millisecond)
	downWarn := e.linkWarning(t, port)
	link("up")
	isUp = true
	for i, r := range runs {
		res := r.wait(t, 40*time.Second)
		if res.clientErr != nil {
			t.Errorf("the %s transfer across the link's 2.5 s down: %v", []string{"encrypted", "plain"}[i], res.clientErr)
			continue
		}
		checkTransfer(t, res, n, n)
	}
	if ex, err := gw.Exited(); ex {
		t.Fatalf("tcpincd in gwA exited: %v\n%s", err, tailLines(gw.Output(), 20))
	}
	if downWarn == "" {
		t.Errorf("while the %s port's link was down, gwA's status warned of nothing about it (warnings: %v)", port, e.warnings(t))
	} else {
		t.Logf("the status while down: %q", downWarn)
	}
	if w := e.linkWarning(t, port); w != "" {
		t.Errorf("gwA's status still warns once the %s port's link is back: %q", port, w)
	}
	logged := gw.Output()[logFrom:]
	down := regexp.MustCompile(`(?i)\b` + port + `\b.*\bdown\b|\bdown\b.*\b` + port + `\b`)
	up := regexp.MustCompile(`(?i)\b` + port + `\b.*\bup\b|\bup\b.*\b` + port + `\b`)
	if !down.MatchString(logged) || !up.MatchString(logged) {
		t.Errorf("gwA's log does not say that its %s port's link went down and came back up; since the transfers began it logged:\n%s", port, tailLines(logged, 20))
	}
}

// warnings returns gwA's status warnings.
func (e *encEnv) warnings(t *testing.T) []string {
	t.Helper()
	var st struct {
		Warnings []string `json:"warnings"`
	}
	if err := e.admin(topology.GwA, "/api/v1/status", &st); err != nil {
		t.Fatal(err)
	}
	return st.Warnings
}

// linkWarning returns gwA's status warning about port's link being down,
// or "".
func (e *encEnv) linkWarning(t *testing.T, port string) string {
	t.Helper()
	for _, w := range e.warnings(t) {
		l := strings.ToLower(w)
		if strings.Contains(l, port) && strings.Contains(l, "down") {
			return w
		}
	}
	return ""
}
