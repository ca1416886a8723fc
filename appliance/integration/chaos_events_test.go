package integration

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// chaosSched is one scheduled event of TestChaos.
type chaosSched struct {
	n      int
	at     time.Duration // from the round's start
	kind   string        // loss, blackout, restart, pause, linkdown, mtu
	dur    time.Duration
	pct    int           // loss
	gw     topology.Node // restart, pause
	kill   bool          // restart: SIGKILL instead of SIGTERM
	hold   time.Duration // restart: the other gateway's tcpincd paused this long around it
	iface  string        // linkdown: rtr's leg
	target topology.Node // mtu: the host behind the narrow hop
	mtu    int
}

func (s chaosSched) desc() string {
	switch s.kind {
	case "loss":
		return fmt.Sprintf("#%d loss %d %% for %v", s.n, s.pct, s.dur)
	case "blackout":
		return fmt.Sprintf("#%d blackout for %v", s.n, s.dur)
	case "restart":
		sig := "SIGTERM"
		if s.kill {
			sig = "SIGKILL"
		}
		if s.hold > 0 {
			return fmt.Sprintf("#%d restart tcpincd in %s (%s) while the other's is paused for %v", s.n, s.gw, sig, s.hold)
		}
		return fmt.Sprintf("#%d restart tcpincd in %s (%s)", s.n, s.gw, sig)
	case "pause":
		return fmt.Sprintf("#%d SIGSTOP tcpincd in %s for %v", s.n, s.gw, s.dur)
	case "linkdown":
		return fmt.Sprintf("#%d rtr's %s down for %v", s.n, s.iface, s.dur)
	case "mtu":
		return fmt.Sprintf("#%d path to %s narrowed to %d for %v", s.n, s.target, s.mtu, s.dur)
	}
	return s.kind
}

// schedule draws a round's events from the seed's generator.
func (c *chaos) schedule() []chaosSched {
	r := c.rng
	ms := func(lo, hi int) time.Duration { return time.Duration(lo+r.IntN(hi-lo+1)) * time.Millisecond }
	gw := func() topology.Node { return []topology.Node{topology.GwA, topology.GwB}[r.IntN(2)] }
	kinds := []string{"loss", "loss", "loss", "blackout", "blackout", "restart", "pause", "pause", "linkdown", "linkdown", "mtu", "mtu"}
	var out []chaosSched
	restarts := 0
	for i := range 5 + r.IntN(6) {
		s := chaosSched{n: i + 1, at: ms(3000, int((chaosWork - 15*time.Second).Milliseconds())), kind: kinds[r.IntN(len(kinds))]}
		switch s.kind {
		case "loss":
			s.pct, s.dur = 1+r.IntN(30), ms(2000, 12000)
		case "blackout":
			s.dur = ms(1000, 4000)
		case "restart":
			if restarts++; restarts > 1 { // at most one a round: it resets the encrypted connections
				s.kind, s.gw, s.dur = "pause", gw(), ms(200, 3000)
			} else {
				s.gw, s.kill = gw(), r.IntN(2) == 0
				if r.IntN(2) == 0 {
					s.hold = ms(300, 900)
				}
			}
		case "pause":
			s.gw, s.dur = gw(), ms(200, 3000)
		case "linkdown":
			s.iface, s.dur = []string{topology.RouterToA, topology.RouterToB}[r.IntN(2)], ms(200, 2000)
			if c.nat {
				// The masquerade's mappings go when its interface goes
				// down (the kernel flushes them: its address may change),
				// and a far host's next segment then reaches rtr itself,
				// which resets it: plain TCP breaks too.
				s.iface = topology.RouterToA
			}
		case "mtu":
			s.target, s.mtu, s.dur = []topology.Node{topology.HostA, topology.HostB, topology.HostF}[r.IntN(3)], 1280+r.IntN(141), ms(5000, 20000)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b chaosSched) int { return int(a.at - b.at) })
	return out
}

var chaosLocks sync.Map // per link or route: events on one wait for each other

func chaosLock(key string) func() {
	m, _ := chaosLocks.LoadOrStore(key, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// run carries out one event and notes it.
func (c *chaos) run(s chaosSched) {
	ev := chaosEvent{kind: s.kind, what: s.desc(), gw: s.gw}
	rtr := c.e.topo.NS(topology.Router)
	var err error
	switch s.kind {
	case "loss", "blackout":
		tbl := fmt.Sprintf("tei_chaos_%d", s.n)
		legs := `{ "toA", "toB", "toF" }`
		rule := fmt.Sprintf("iifname %s oifname %s counter drop", legs, legs)
		if s.kind == "loss" {
			rule = fmt.Sprintf("iifname %s oifname %s tcp flags & rst == 0 numgen random mod 100 < %d counter drop\n"+
				"    iifname %s oifname %s meta l4proto != tcp numgen random mod 100 < %d counter drop", legs, legs, s.pct, legs, legs, s.pct)
		}
		ev.from = time.Now()
		err = netns.Nft(rtr, fmt.Sprintf("table inet %s {\n  chain forward {\n    type filter hook forward priority -5; policy accept;\n    %s\n  }\n}\n", tbl, rule))
		c.logf("event %s: on (%v)", s.desc(), err)
		time.Sleep(s.dur)
		n, _ := c.e.topo.RouterCounted(tbl)
		if err2 := netns.Nft(rtr, fmt.Sprintf("delete table inet %s\n", tbl)); err2 != nil {
			err = err2
		}
		ev.to = time.Now()
		c.logf("event %s: off, %d packets dropped (%v)", s.desc(), n, err)
	case "restart":
		ev.from = time.Now()
		if s.hold > 0 {
			// SYNs that pass the old daemon wait in the other's port,
			// and their SYN-ACKs come back to the new one.
			other := map[topology.Node]topology.Node{topology.GwA: topology.GwB, topology.GwB: topology.GwA}[s.gw]
			held := make(chan struct{})
			go func() {
				defer close(held)
				c.run(chaosSched{n: s.n*100 + 1, kind: "pause", gw: other, dur: s.hold})
			}()
			time.Sleep(150 * time.Millisecond)
			err = c.restart(s.gw, s.kill)
			<-held
		} else {
			err = c.restart(s.gw, s.kill)
		}
		ev.to = time.Now()
		c.logf("event %s: tcpincd running again after %v (%v)", s.desc(), ev.to.Sub(ev.from).Round(time.Millisecond), err)
	case "pause":
		defer chaosLock(string(s.gw))()
		c.mapMu.Lock()
		p := c.e.gw[s.gw]
		c.mapMu.Unlock()
		if p == nil {
			c.logf("event %s: no daemon", s.desc())
			return
		}
		ev.from = time.Now()
		err = syscall.Kill(p.Pid(), syscall.SIGSTOP)
		c.logf("event %s: stopped (%v)", s.desc(), err)
		time.Sleep(s.dur)
		if err2 := syscall.Kill(p.Pid(), syscall.SIGCONT); err2 != nil {
			err = err2
		}
		ev.to = time.Now()
		c.logf("event %s: continued (%v)", s.desc(), err)
	case "linkdown":
		defer chaosLock(s.iface)()
		ev.from = time.Now()
		_, err = c.e.topo.Run(topology.Router, "ip", "link", "set", s.iface, "down")
		c.logf("event %s: down (%v)", s.desc(), err)
		time.Sleep(s.dur)
		if _, err2 := c.e.topo.Run(topology.Router, "ip", "link", "set", s.iface, "up"); err2 != nil {
			err = err2
		}
		ev.to = time.Now()
		c.logf("event %s: up (%v)", s.desc(), err)
	case "mtu":
		defer chaosLock("mtu" + string(s.target))()
		ev.from = time.Now()
		err = c.narrow(s.target, s.mtu)
		c.logf("event %s: narrowed (%v)", s.desc(), err)
		time.Sleep(s.dur)
		c.widen(s.target)
		ev.to = time.Now()
		c.logf("event %s: back to the link's MTU", s.desc())
	}
	if err != nil {
		c.t.Errorf("event %s: %v", s.desc(), err)
	}
	c.mu.Lock()
	c.events = append(c.events, ev)
	c.mu.Unlock()
}

// legOf is rtr's interface toward a host.
func legOf(n topology.Node) string {
	return map[topology.Node]string{topology.HostA: topology.RouterToA, topology.HostB: topology.RouterToB, topology.HostF: topology.RouterToF}[n]
}

// narrow routes the host's addresses on rtr with a smaller MTU: rtr
// answers larger packets with frag-needed or packet-too-big.
func (c *chaos) narrow(n topology.Node, mtu int) error {
	a := c.e.topo.Addr(n)
	for _, args := range [][]string{
		{"ip", "-4", "route", "replace", a.V4.String() + "/32", "dev", legOf(n), "mtu", "lock", fmt.Sprint(mtu)},
		{"ip", "-6", "route", "replace", a.V6.String() + "/128", "dev", legOf(n), "mtu", "lock", fmt.Sprint(mtu)},
	} {
		if out, err := c.e.topo.Run(topology.Router, args...); err != nil {
			return fmt.Errorf("%v: %v %s", args, err, out)
		}
	}
	return nil
}

func (c *chaos) widen(n topology.Node) {
	a := c.e.topo.Addr(n)
	// Gone already when the leg went down meanwhile.
	_, _ = c.e.topo.Run(topology.Router, "ip", "-4", "route", "del", a.V4.String()+"/32")
	_, _ = c.e.topo.Run(topology.Router, "ip", "-6", "route", "del", a.V6.String()+"/128")
}

// clearNet undoes whatever an event left (none should).
func (c *chaos) clearNet() {
	out, _ := c.e.topo.Run(topology.Router, "nft", "list", "tables")
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 3 && strings.HasPrefix(f[2], "tei_chaos_") {
			c.t.Errorf("an event left nft table %s on rtr", f[2])
			_ = netns.Nft(c.e.topo.NS(topology.Router), "delete table inet "+f[2]+"\n")
		}
	}
	for _, i := range []string{topology.RouterToA, topology.RouterToB} {
		_, _ = c.e.topo.Run(topology.Router, "ip", "link", "set", i, "up")
	}
}

// restart stops tcpincd in gw (SIGTERM, or SIGKILL as a crash) and starts
// it again.
func (c *chaos) restart(gw topology.Node, kill bool) error {
	defer chaosLock(string(gw))()
	c.addCounters(gw, c.countersNow(gw))
	c.mapMu.Lock()
	p := c.e.gw[gw]
	delete(c.e.gw, gw)
	c.mapMu.Unlock()
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(p.Pid(), sig)
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		c.t.Errorf("tcpincd in %s did not stop within 10 s of %v", gw, sig)
		_ = p.StopWith(syscall.SIGKILL, time.Second)
	}
	c.scanLog(gw, p.Output())
	c.logf("tcpincd in %s stopped (%v); its last lines:\n%s", gw, sig, tailLines(p.Output(), 4))
	err := c.startDaemon(gw)
	c.mu.Lock()
	c.base[gw] = statusCounters{}
	c.mu.Unlock()
	return err
}

// startDaemon is encEnv.startDaemon for a goroutine: it returns its error.
func (c *chaos) startDaemon(gw topology.Node) error {
	e := c.e
	args := []string{e.daemon, "--config", e.conf, "--inside", topology.InsidePort, "--outside", topology.OutsidePort, "--admin", adminAddr,
		"--state-dir", filepath.Join(e.state, string(gw))}
	for try := 0; ; try++ {
		p, err := e.topo.Start(gw, "tcpincd-"+string(gw), args...)
		if err != nil {
			return err
		}
		err = p.WaitOutput("tcpincd running", 15*time.Second)
		if err == nil {
			_ = p.WaitOutput("admin API listening", 3*time.Second)
			c.mapMu.Lock()
			e.gw[gw] = p
			c.mapMu.Unlock()
			return nil
		}
		if try < 10 && strings.Contains(p.Output(), "device or resource busy") {
			<-p.Done()
			time.Sleep(200 * time.Millisecond)
			continue
		}
		return fmt.Errorf("tcpincd in %s did not start: %v\n%s", gw, err, p.Output())
	}
}

// chaosRestarts are the restart events, for the connections they may
// reset.
func (c *chaos) restartsDuring(k *chaosConn) []chaosEvent {
	var out []chaosEvent
	for _, ev := range c.events {
		// Opened before the new daemon ran (its SYN may have passed the
		// old one), still open when the old one stopped.
		if ev.kind == "restart" && k.start.Before(ev.to.Add(2*time.Second)) && k.end.After(ev.from) {
			out = append(out, ev)
		}
	}
	return out
}

func (c *chaos) eventsDuring(k *chaosConn) string {
	var s []string
	for _, ev := range c.events {
		if k.start.Before(ev.to) && k.end.After(ev.from) {
			s = append(s, fmt.Sprintf("%s [%.1f-%.1f s]", ev.what, ev.from.Sub(c.t0).Seconds(), ev.to.Sub(c.t0).Seconds()))
		}
	}
	return strings.Join(s, "; ")
}

func (c *chaos) at(t time.Time) string { return fmt.Sprintf("%.1fs", t.Sub(c.t0).Seconds()) }

func addrIs(s string, a ...netip.Addr) bool {
	for _, x := range a {
		if s == x.String() {
			return true
		}
	}
	return false
}

// linkDownDuring names a link-down event while k was open.
func (c *chaos) linkDownDuring(k *chaosConn) string {
	for _, ev := range c.events {
		if ev.kind == "linkdown" && k.start.Before(ev.to.Add(time.Second)) && k.end.After(ev.from) {
			return ev.what
		}
	}
	return ""
}
