package integration

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"

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
