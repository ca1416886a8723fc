package integration

import (
	"net/netip"
	"regexp"
	"strconv"
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
// flows, hand-offs must have happened, and none may have been lost.
func TestEncryptedMultiQueue(t *testing.T) {
	e := newEncEnvOpts(t, encOpts{net: 96, queues: 2})
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
