package integration

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestEncryptedMultiQueue runs both appliances with two queues per port on
// veths with two queues. A veth delivers a frame on the RX queue of the TX
// queue its sender picked, which follows no RSS, so the two directions of a
// connection often arrive on different workers: the worker that does not
// own the flow hands the frame over (appliance/handoff.go) and the owner,
// woken, handles it. Every transfer must be exact and encrypted, the
// untrusted link must carry no plaintext, both workers must own encrypted
// flows, hand-offs must have happened, and none may have been lost. It
// runs the AF_XDP backend: on veth, auto picks AF_PACKET, whose fanout
// (TestAFPacketFanout) leaves nothing to hand over.
func TestEncryptedMultiQueue(t *testing.T) {
	e := newEncEnvOpts(t, encOpts{net: 96, queues: 2, backend: "afxdp"})
	b := e.topo.Addr(topology.HostB)
	dstB := netip.AddrPortFrom(b.V4, 5001)
	dir := t.TempDir()

	t.Run("capture", func(t *testing.T) { e.captureCheck(t, dir) })
	t.Run("100MB", func(t *testing.T) { e.bigTransfer(t, dstB, 100<<20) })
	t.Run("concurrent-1000", func(t *testing.T) { e.concurrent(t, netip.AddrPortFrom(b.V4, 8080)) })

	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		out := e.stopDaemon(t, gw)
		enc := map[string]int{}
		for _, m := range regexp.MustCompile(`msg=engine queue=(\d+) .*? encrypted=(\d+)`).FindAllStringSubmatch(out, -1) {
			enc[m[1]], _ = strconv.Atoi(m[2])
		}
		if enc["0"] == 0 || enc["1"] == 0 {
			t.Errorf("%s: encrypted connections per queue %v: both workers should own some\n%s", gw, enc, tailLines(out, 30))
		}
		handoffs, drops := 0, 0
		for _, m := range regexp.MustCompile(`handoffs=(\d+) handoff_drops=(\d+)`).FindAllStringSubmatch(out, -1) {
			h, _ := strconv.Atoi(m[1])
			d, _ := strconv.Atoi(m[2])
			handoffs += h
			drops += d
		}
		if handoffs == 0 {
			t.Errorf("%s: no frame was handed between workers: the test did not exercise the hand-off\n%s", gw, tailLines(out, 30))
		}
		if drops != 0 {
			t.Errorf("%s: %d handed-off frames lost to full lanes", gw, drops)
		}
		t.Logf("%s: encrypted per queue %v, %d frames handed over", gw, enc, handoffs)
	}
}

// TestAFPacketFanout runs both appliances with two queues per port and the
// backend auto picks on veth: AF_PACKET, two sockets per port in a fanout
// group whose program (afpacket.FanoutProgram) gives both directions of a
// connection to the worker that owns it (flow.Fanout). Transfers must be
// exact and encrypted with no plaintext on the untrusted link, both
// workers must own encrypted flows, and no TCP frame may have needed a
// hand-off: every frame of this traffic is TCP the program places.
func TestAFPacketFanout(t *testing.T) {
	e := newEncEnvOpts(t, encOpts{net: 97, queues: 2})
	b := e.topo.Addr(topology.HostB)
	dir := t.TempDir()

	t.Run("capture", func(t *testing.T) { e.captureCheck(t, dir) })
	t.Run("100MB", func(t *testing.T) { e.bigTransfer(t, netip.AddrPortFrom(b.V4, 5001), 100<<20) })
	t.Run("concurrent-1000", func(t *testing.T) { e.concurrent(t, netip.AddrPortFrom(b.V4, 8080)) })

	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		out := e.stopDaemon(t, gw)
		if !strings.Contains(out, "AF_PACKET fanout program") {
			t.Errorf("%s: the daemon did not pick flow owners by the fanout program\n%s", gw, tailLines(out, 30))
		}
		enc := map[string]int{}
		for _, m := range regexp.MustCompile(`msg=engine queue=(\d+) .*? encrypted=(\d+)`).FindAllStringSubmatch(out, -1) {
			enc[m[1]], _ = strconv.Atoi(m[2])
		}
		if enc["0"] == 0 || enc["1"] == 0 {
			t.Errorf("%s: encrypted connections per queue %v: both workers should own some\n%s", gw, enc, tailLines(out, 30))
		}
		handoffs := 0
		for _, m := range regexp.MustCompile(`handoffs=(\d+)`).FindAllStringSubmatch(out, -1) {
			h, _ := strconv.Atoi(m[1])
			handoffs += h
		}
		if handoffs != 0 {
			t.Errorf("%s: %d frames handed between workers; the fanout should place every TCP frame\n%s", gw, handoffs, tailLines(out, 30))
		}
		t.Logf("%s: encrypted per queue %v", gw, enc)
	}
}

// TestAFXDPRefusedWithUnboundQueues: AF_XDP reads only the receive queues
// it binds, so tcpincd must not run it on ports with more receive queues
// than queues: (the frames RSS puts on the others, SYNs among them, would
// be dropped: appliance/backend chooseBackend). On veths of two queues,
// tcpincd configured with backend afxdp and queues: 1 exits with an error
// that says what to change; with backend auto it takes AF_PACKET (on veth
// for want of zero-copy AF_XDP in any case), says why, and carries
// encrypted traffic.
func TestAFXDPRefusedWithUnboundQueues(t *testing.T) {
	e := newEncEnvOpts(t, encOpts{net: 98, queues: 2, backend: "afxdp"})
	b := e.topo.Addr(topology.HostB)
	e.stopDaemon(t, topology.GwA)
	e.queues = 1
	e.writeConf(t)
	p, err := e.topo.Start(topology.GwA, "tcpincd-refused", e.daemon, "--config", e.conf,
		"--inside", topology.InsidePort, "--outside", topology.OutsidePort, "--admin", adminAddr)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(15 * time.Second):
		_ = p.StopWith(syscall.SIGKILL, time.Second)
		t.Fatalf("tcpincd ran AF_XDP on ports of two queues with queues: 1\n%s", tailLines(p.Output(), 20))
	}
	out := p.Output()
	if !strings.Contains(out, "backend afxdp: ") || !strings.Contains(out, "has 2 receive queues and queues: is 1") || !strings.Contains(out, "ethtool -L") {
		t.Fatalf("tcpincd's error does not say what is wrong and what to change:\n%s", tailLines(out, 20))
	}
	if strings.Contains(out, "tcpincd running") {
		t.Fatalf("tcpincd said it was running:\n%s", tailLines(out, 20))
	}

	e.backend = ""
	e.writeConf(t)
	e.startDaemon(t, topology.GwA)
	ready := regexp.MustCompile(`msg="port ready".* backend=afpacket .*backend_reason="auto: `)
	if out := e.gw[topology.GwA].Output(); len(ready.FindAllString(out, -1)) != 2 {
		t.Fatalf("backend auto did not take AF_PACKET on both ports and say why:\n%s", tailLines(out, 20))
	}
	const n = 4 << 20
	var r result
	d, ok := e.measure(t, func() {
		r = e.transfer(t, topology.HostA, netip.AddrPortFrom(b.V4, 5001), e.streamB, n, n, time.Minute)
	})
	checkTransfer(t, r, n, n)
	if ok {
		encryptedDelta(t, topology.GwA, d[topology.GwA], 1)
	}
}
