package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestEncrypted is issue 4's end-to-end acceptance: real Linux TCP
// endpoints on hA, hB and hF, tcpincd in gwA and gwB, the untrusted link
// (rtr, with the impairment bump spliced in between gwA and rtr) captured
// with tshark. One topology serves every subtest; they run in order and the
// last two restart gwA's daemon, then reboot gwA.
//
// ENO-n / TC-n ids name the requirements each check covers
// (the conformance checklist, docs/requirements.md).
func TestEncrypted(t *testing.T) {
	e := newEncEnv(t, 93)
	b := e.topo.Addr(topology.HostB)
	f := e.topo.Addr(topology.HostF)
	dstB := netip.AddrPortFrom(b.V4, 5001)
	const mb = 1 << 20
	dir := t.TempDir()

	t.Run("capture", func(t *testing.T) { e.captureCheck(t, dir) })

	// 100 MB each way at 0, 1 and 5 % random loss on the untrusted link
	// (nftables numgen on rtr, both directions), with reordering and
	// duplication from the bump, and through a NAT.
	const big = 100 * mb
	for _, c := range []struct {
		name  string
		setup func(t *testing.T)
		undo  func(t *testing.T) string
	}{
		{name: "loss=0%"},
		{name: "loss=1%", setup: func(t *testing.T) { e.setLoss(t, 1) }, undo: func(t *testing.T) string { return e.lossReport(t) }},
		{name: "loss=5%", setup: func(t *testing.T) { e.setLoss(t, 5) }, undo: func(t *testing.T) string { return e.lossReport(t) }},
		{name: "reorder", setup: func(t *testing.T) {
			e.startBump(t, "--reorder", "0.03", "--hold-frames", "3", "--hold-time", "5ms", "--dup", "0.005", "--seed", "11")
		}, undo: func(t *testing.T) string {
			rep := e.startBump(t)
			e.bumpReorderedAndDuplicated(t, rep)
			return rep
		}},
		{name: "loss=1%+reorder", setup: func(t *testing.T) {
			e.setLoss(t, 1)
			e.startBump(t, "--reorder", "0.02", "--hold-frames", "4", "--hold-time", "5ms", "--dup", "0.005", "--seed", "12")
		}, undo: func(t *testing.T) string {
			rep := e.startBump(t)
			e.bumpReorderedAndDuplicated(t, rep)
			return e.lossReport(t) + "\n" + rep
		}},
		{name: "nat", setup: func(t *testing.T) {
			if err := e.topo.SetNAT(true); err != nil {
				t.Fatal(err)
			}
		}, undo: func(t *testing.T) string {
			if err := e.topo.SetNAT(false); err != nil {
				t.Error(err)
			}
			return ""
		}},
	} {
		t.Run("100MB/"+c.name, func(t *testing.T) {
			if c.setup != nil {
				c.setup(t)
			}
			if c.undo != nil {
				defer func() { t.Logf("impairment: %s", c.undo(t)) }()
			}
			e.bigTransfer(t, dstB, big)
		})
	}

	t.Run("fallback/far-host", func(t *testing.T) { e.farHost(t, dir, netip.AddrPortFrom(f.V4, 5001)) })
	t.Run("fallback/eno-stripped", func(t *testing.T) { e.stripped(t, dir, dstB) })
	t.Run("concurrent-1000", func(t *testing.T) { e.concurrent(t, netip.AddrPortFrom(b.V4, 8080)) })
	t.Run("restart-gwA", func(t *testing.T) { e.restart(t, dir, dstB, netip.AddrPortFrom(f.V4, 5001)) })
	t.Run("reboot-gwA", func(t *testing.T) { e.reboot(t, dir, dstB) })
}

func (e *encEnv) setLoss(t *testing.T, pct float64) {
	t.Helper()
	if err := e.topo.SetLoss(pct, topology.LossBoth); err != nil {
		t.Fatal(err)
	}
}

func (e *encEnv) lossReport(t *testing.T) string {
	n, err := e.topo.LossDropped()
	if err != nil {
		t.Error(err)
	}
	if n == 0 {
		t.Errorf("the loss rules dropped nothing")
	}
	e.setLoss(t, 0)
	return fmt.Sprintf("%d packets dropped on rtr", n)
}

var bumpLine = regexp.MustCompile(`(\w+)->(\w+): in=(\d+) out=(\d+) held=(\d+) overtaken=(\d+) duplicated=(\d+)`)

// bumpReorderedAndDuplicated checks the bump's report: frames were held
// and overtaken, and duplicated, in both directions.
func (e *encEnv) bumpReorderedAndDuplicated(t *testing.T, report string) {
	t.Helper()
	ms := bumpLine.FindAllStringSubmatch(report, -1)
	if len(ms) < 2 || len(ms)%2 != 0 {
		t.Errorf("no counters from the bump:\n%s", report)
		return
	}
	ms = ms[len(ms)-2:] // the final report (earlier ones: SIGUSR1 during a stuck transfer)
	for _, m := range ms {
		over, _ := strconv.Atoi(m[6])
		dup, _ := strconv.Atoi(m[7])
		in, _ := strconv.Atoi(m[3])
		if in < 1000 || over < 10 || dup < 1 {
			t.Errorf("the bump did not impair %s->%s: %s", m[1], m[2], m[0])
		}
	}
}

// captureCheck: a held-open connection hA -> hB while rtr:toA is captured.
// ENO-4/ENO-10: every SYN gwA sends carries TCP-ENO; the SYN-ACK carries
// TCP-ENO with a general suboption whose b bit is 1 (gwB answers as B);
// TC-1: the marker the hosts send never appears on the link; both
// appliances report the same 33-byte session ID (TC-11, RFC 8548 §3.4).
func (e *encEnv) captureCheck(t *testing.T, dir string) {
	path := filepath.Join(dir, "capture.pcapng")
	c, err := e.topo.StartCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	b := e.topo.Addr(topology.HostB)
	// dumpcap may start its loop a moment after it says it captures (on a
	// loaded machine, long after): the first SYN must not go before. A
	// ping across the link that reaches the file says it is capturing.
	size := func() int64 {
		st, err := os.Stat(path)
		if err != nil {
			return 0
		}
		return st.Size()
	}
	for before, deadline := size(), time.Now().Add(10*time.Second); size() == before; {
		if time.Now().After(deadline) {
			t.Fatal("the capture on rtr:toA holds nothing of pings across it for 10 s")
		}
		e.waitPing(t, b.V4)
		time.Sleep(200 * time.Millisecond)
	}
	type held struct {
		r   result
		ids [2]string
		err error
	}
	var flows []held
	adminOK := e.adminServed()
	d, ok := e.measure(t, func() {
		for _, dst := range []netip.AddrPort{netip.AddrPortFrom(b.V4, 5001), netip.AddrPortFrom(b.V6, 5001)} {
			done := make(chan result, 1)
			go func() {
				done <- e.transfer(t, topology.HostA, dst, e.streamB, 2<<20, 2<<20, time.Minute, "-pause", pauseFor)
			}()
			// While the client pauses, ask both appliances about the flow.
			var h held
			if !adminOK {
				h.err = fmt.Errorf("tcpincd serves no admin API and logs no session IDs: the two appliances' session IDs cannot be compared")
			} else {
				h.err = e.whileOpen(dst, func(port uint16) error {
					for i, gw := range []topology.Node{topology.GwA, topology.GwB} {
						fl, err := e.flow(gw, port, dst.Port())
						if err != nil {
							return err
						}
						if !fl.Encrypted {
							return fmt.Errorf("%s reports flow %s <-> %s not encrypted (state %q, fallback %q)", gw, fl.Inside, fl.Outside, fl.State, fl.FallbackReason)
						}
						h.ids[i] = fl.SessionID
					}
					return nil
				})
			}
			h.r = <-done
			checkTransfer(t, h.r, 2<<20, 2<<20)
			flows = append(flows, h)
		}
	})
	if ok {
		for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
			encryptedDelta(t, gw, d[gw], 2)
		}
	}
	if _, err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, h := range flows {
		switch {
		case h.err != nil:
			t.Errorf("session ID: %v", h.err)
		case len(h.ids[0]) != 66:
			t.Errorf("gwA session ID %q is not 33 bytes in hex", h.ids[0])
		case h.ids[0] != h.ids[1]:
			t.Errorf("session IDs differ: gwA %s, gwB %s", h.ids[0], h.ids[1])
		default:
			t.Logf("flow from %v: both appliances report session ID %s", h.r.local, h.ids[0])
		}
	}
	segs := segments(t, path)
	var syns, synacks int
	for _, s := range segs {
		fromA := s.dst.Port() == 5001
		switch {
		case s.syn && !s.ack && fromA:
			syns++
			if !hasKind(s, 69) {
				t.Errorf("SYN %v -> %v on the untrusted link without TCP-ENO (option kinds %v)", s.src, s.dst, s.optionKinds)
			}
		case s.syn && s.ack && !fromA:
			synacks++
			d, ok := enoData(s.options)
			if !ok {
				t.Errorf("SYN-ACK %v -> %v without TCP-ENO (option kinds %v)", s.src, s.dst, s.optionKinds)
				continue
			}
			// RFC 8547 §4.1: a general suboption is a byte < 0x20 whose
			// least significant bit is b; B must send b = 1 (ENO-14).
			gen := false
			for _, x := range d {
				if x < 0x20 && x&1 == 1 {
					gen = true
				}
			}
			if !gen {
				t.Errorf("SYN-ACK %v -> %v: TCP-ENO data % x has no general suboption with b=1", s.src, s.dst, d)
			}
		}
	}
	if syns < 2 || synacks < 2 {
		t.Errorf("capture holds %d SYNs and %d SYN-ACKs, want at least 2 each", syns, synacks)
	}
	noMarker(t, path, 4<<20)
}

// pauseFor is how long the transfer client pauses after its header, with
// the connection open: whileOpen looks at the flow within it.
const pauseFor = "5s"

// whileOpen calls check with the port of hA's connection to dst until it
// returns nil, for up to 4.5 s (the client pauses 5 s after its header):
// the client, started in a namespace on a busy machine, may take a while
// to connect, and the flow a while to settle (negotiating, then encrypted
// or fallen back). The last error says why it never did.
func (e *encEnv) whileOpen(dst netip.AddrPort, check func(port uint16) error) error {
	deadline := time.Now().Add(4500 * time.Millisecond)
	for {
		port, err := e.clientPort(dst)
		if err == nil {
			err = check(port)
		}
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clientPort finds the port of the client's connection to dst from the
// socket table of hA (ss), while it runs.
func (e *encEnv) clientPort(dst netip.AddrPort) (uint16, error) {
	// Any state: the client sits in CLOSE-WAIT once the server has sent
	// everything and half-closed.
	out, err := e.topo.Run(topology.HostA, "ss", "-Htn", "dst", dst.String())
	if err != nil {
		return 0, fmt.Errorf("ss: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		for _, w := range strings.Fields(line) {
			if ap, err := netip.ParseAddrPort(w); err == nil && ap != dst {
				return ap.Port(), nil
			}
		}
	}
	return 0, fmt.Errorf("no connection to %v on hA:\n%s", dst, out)
}

// farHost: hF has no appliance in front. The connection works in clear,
// gwA reports it not encrypted (ENO-22: no TCP-ENO in the SYN-ACK), and
// the marker IS visible on hF's link, which shows the marker check works.
func (e *encEnv) farHost(t *testing.T, dir string, dst netip.AddrPort) {
	path := filepath.Join(dir, "far.pcapng")
	c, err := e.topo.StartCapture(path, topology.RouterToF)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan result, 1)
	go func() {
		done <- e.transfer(t, topology.HostA, dst, e.streamF, 1<<20, 1<<20, time.Minute, "-pause", pauseFor)
	}()
	e.checkPlain(t, dst)
	r := <-done
	checkTransfer(t, r, 1<<20, 1<<20)
	if _, err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), marker) {
		t.Errorf("the plaintext connection to hF does not show the marker on the link: the marker check would prove nothing")
	}
}

// checkPlain requires gwA to list the running connection to dst as not
// encrypted, with a fallback reason.
func (e *encEnv) checkPlain(t *testing.T, dst netip.AddrPort) {
	t.Helper()
	if !e.adminServed() {
		t.Log("tcpincd serves no admin API: the fallback is checked through its counters only")
		return
	}
	err := e.whileOpen(dst, func(port uint16) error {
		fl, err := e.flow(topology.GwA, port, dst.Port())
		if err != nil {
			return fmt.Errorf("cannot tell whether the connection fell back: %v", err)
		}
		if fl.Encrypted || fl.FallbackReason == "" {
			return fmt.Errorf("gwA reports the connection to %v as encrypted=%v, fallback reason %q; want plain with a reason", dst, fl.Encrypted, fl.FallbackReason)
		}
		t.Logf("gwA: %s <-> %s state %s, not encrypted: %s", fl.Inside, fl.Outside, fl.State, fl.FallbackReason)
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// stripped: rtr replaces TCP-ENO in SYN-ACKs by NOPs (nftables `reset tcp
// option`). gwA must fall back (ENO-22) and gwB too, as its peer's third
// segment has no TCP-ENO (ENO-28): plain TCP that works.
func (e *encEnv) stripped(t *testing.T, dir string, dst netip.AddrPort) {
	rtr := e.topo.NS(topology.Router)
	const table = "tei_strip"
	script := fmt.Sprintf(`table inet %s {
  chain forward {
    type filter hook forward priority filter; policy accept;
    tcp flags & (syn | ack) == syn | ack tcp sport %d counter reset tcp option 69
  }
}
`, table, dst.Port())
	if err := netns.Nft(rtr, script); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Nft(rtr, fmt.Sprintf("delete table inet %s\n", table)); err != nil {
			t.Error(err)
		}
	}()
	path := filepath.Join(dir, "stripped.pcapng")
	c, err := e.topo.StartCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan result, 1)
	go func() {
		done <- e.transfer(t, topology.HostA, dst, e.streamB, 4<<20, 4<<20, time.Minute, "-pause", pauseFor)
	}()
	e.checkPlain(t, dst)
	r := <-done
	checkTransfer(t, r, 4<<20, 4<<20)
	if _, err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range segments(t, path) {
		if s.syn && s.ack && s.src.Port() == dst.Port() {
			n++
			if hasKind(s, 69) {
				t.Errorf("SYN-ACK still carries TCP-ENO after the strip rule: the test setup is broken")
			}
		}
	}
	if n == 0 {
		t.Error("no SYN-ACK captured")
	}
}

// fallbackDelta requires gw to have counted one plain-TCP fallback for
// reason and no encrypted handshake over the span.
func fallbackDelta(t *testing.T, gw topology.Node, d statusCounters, reason string) {
	t.Helper()
	if d.Fallbacks[reason] < 1 || d.Handshakes["encrypted"] != 0 {
		t.Errorf("%s: fallbacks %v, encrypted handshakes %d; want a %s fallback and none encrypted", gw, d.Fallbacks, d.Handshakes["encrypted"], reason)
	} else {
		t.Logf("%s reports the connection not encrypted (fallbacks %v)", gw, d.Fallbacks)
	}
}

// concurrent: 1000 HTTP requests at once from hA to hB, each on its own
// connection; every body must be right and every connection encrypted.
func (e *encEnv) concurrent(t *testing.T, dst netip.AddrPort) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out string
	var err error
	d, ok := e.measure(t, func() {
		out, err = e.topo.RunContext(ctx, topology.HostA, e.toolArgs("http-client", "-addr", dst.String(), "-count", "1000", "-size", "20000")...)
	})
	if err != nil || !strings.Contains(out, "http ok=1000 failed=0") {
		t.Errorf("1000 concurrent requests: %v\n%s", err, out)
	} else {
		t.Log(strings.TrimSpace(out))
	}
	if ok {
		for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
			encryptedDelta(t, gw, d[gw], 1000)
			if drops := nonZero(d[gw].Drops); len(drops) > 0 {
				t.Logf("%s dropped %v; its counters:\n%s", gw, drops, e.portCounters(gw))
			}
		}
	}
}

// restart: gwA's tcpincd restarts while three connections from hA are
// open: an encrypted transfer to hB, a plain one to hF (no appliance in
// front of it), and a plain one to hF that stays idle for longer than the
// plain retention and across the restart before it sends anything. The
// appliance never resets plain TCP: both plain connections complete intact
// and close cleanly. The encrypted connection's tuple is in the negotiated
// set the restarted daemon finds pinned: it is reset (at least one host
// sees the reset; every byte received is checked) and never continues in
// clear: no frame to or from hB on the untrusted link carries the marker.
// New connections work and are encrypted afterwards.
func (e *encEnv) restart(t *testing.T, dir string, dstB, dstF netip.AddrPort) {
	path := filepath.Join(dir, "restart.pcapng")
	c, err := e.topo.StartCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	// 1 GiB each way at 4 MB/s: running long after the restart, with a
	// capture of bounded size.
	const huge = 1 << 30
	enc := make(chan result, 1)
	go func() {
		enc <- e.transfer(t, topology.HostA, dstB, e.streamB, huge, huge, 2*time.Minute, "-idle", "40s", "-rate", "4000000")
	}()
	// 24 MB each way at 2 MB/s: 12 s, the restart in the middle.
	const plainN = 24 << 20
	plain := make(chan result, 1)
	go func() {
		plain <- e.transfer(t, topology.HostA, dstF, e.streamF, plainN, plainN, 2*time.Minute, "-rate", "2000000")
	}()
	// Connected now, silent for 12 s: its plain record expires (plain
	// retention 3 s), the daemon restarts, then it sends.
	idle := make(chan result, 1)
	go func() {
		idle <- e.transfer(t, topology.HostA, dstF, e.streamF, 1<<20, 1<<20, 2*time.Minute, "-pause", "12s")
	}()
	time.Sleep(4 * time.Second)
	t.Logf("%s: stopping gwA's tcpincd", stamp())
	out := e.stopDaemon(t, topology.GwA)
	t.Logf("%s: gwA stopped; its log ends:\n%s", stamp(), tailLines(out, 4))
	time.Sleep(time.Second)
	e.startDaemon(t, topology.GwA)
	t.Logf("%s: gwA's tcpincd runs again:\n%s", stamp(), tailLines(e.gw[topology.GwA].Output(), 12))

	r := <-enc
	if r.clientErr == nil {
		t.Errorf("the encrypted transfer through the restarted appliance completed without error:\n%s\nserver: %s", r.clientOut, r.serverLine)
	}
	// A reset is reported by only one of a socket's concurrent calls (the
	// kernel hands sk_err to the first), so the reader may see EOF while
	// the writer sees ECONNRESET: the reset must show on at least one side.
	both := r.clientOut + "\n" + r.serverLine
	if strings.Contains(both, "CORRUPT") {
		t.Errorf("corrupt bytes delivered:\n%s", both)
	}
	if !strings.Contains(both, "reset by peer") {
		t.Errorf("neither host saw a reset (a FIN or a stall instead?):\n%s", both)
	}
	if r.recvBytes == huge || r.srvRecvBytes == huge {
		t.Errorf("a direction completed although its appliance restarted mid-transfer:\n%s", both)
	}
	t.Logf("encrypted: after %v the client saw: %s", r.elapsed.Round(time.Millisecond), strings.TrimSpace(tailLines(r.clientOut, 2)))
	if strings.Contains(r.clientOut, "i/o timeout") {
		t.Errorf("the encrypted connection stalled until the client's idle timeout instead of being reset")
	}
	// The restarted gwA found the tuple in its pinned negotiated set.
	if sc, err := e.counters(topology.GwA); err != nil {
		t.Error(err)
	} else if sc.StrayResets == 0 {
		t.Errorf("the restarted gwA reset no segment of the encrypted connection (stray_resets 0)")
	} else {
		t.Logf("the restarted gwA reset %d segments of connections it knew only from its pinned set", sc.StrayResets)
	}
	rp := <-plain
	checkTransfer(t, rp, plainN, plainN)
	t.Logf("plain: %v for what takes 12 s at its rate (the restart's stall is the difference)", rp.elapsed.Round(time.Millisecond))
	ri := <-idle
	checkTransfer(t, ri, 1<<20, 1<<20)

	// New connections work, encrypted.
	var r2 result
	d, ok := e.measure(t, func() { r2 = e.transfer(t, topology.HostA, dstB, e.streamB, 8<<20, 8<<20, time.Minute) })
	checkTransfer(t, r2, 8<<20, 8<<20)
	if ok {
		for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
			encryptedDelta(t, gw, d[gw], 1)
		}
	}
	if _, err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	// Once this subtest took 4 minutes past its last transfer: say where.
	if st, err := os.Stat(path); err == nil {
		t.Logf("%s: capture stopped, %d bytes", stamp(), st.Size())
	}
	defer func() { t.Logf("%s: marker checks done", stamp()) }()
	// The plain connections carry the marker in clear (which shows the
	// search works); the frames to and from hB must not.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), marker) {
		t.Errorf("the plain connections to hF do not show the marker on the link: the marker check would prove nothing")
	}
	toB := filepath.Join(dir, "restart-hB.pcapng")
	b := dstB.Addr().String()
	if out, err := exec.Command("tshark", "-r", path, "-Y", "ip.addr == "+b, "-w", toB).CombinedOutput(); err != nil {
		t.Fatalf("tshark filter: %v\n%s", err, out)
	}
	noMarker(t, toB, 1<<20)
}

func stamp() string { return time.Now().UTC().Format("15:04:05.000") }

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
