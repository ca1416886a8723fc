package integration

import (
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestSeqShiftRawSACK: a firewall on the untrusted link randomises TCP
// sequence numbers and leaves the SACK blocks alone (a known bug of such
// boxes), and 2 % of packets are lost. Both SYNs said SACK, but neither
// sending host ever gets a usable SACK block, so losses are recovered by
// retransmission timeouts, as over plain TCP through the same box (16 MB
// each way in 22 to 30 s here, since the bump no longer reorders and each
// drop costs one segment). The appliances must keep those timeouts
// short: before a hole's release was acknowledged to the sender as one ACK
// with SACK negotiated too (appliance/engine/release.go), the host's ACKs
// of the bytes held behind each hole reached the sender one by one, each a
// stale RTT sample, its timeout grew to tens of seconds, and 6 transfers of
// 6 had no byte move for 10 s (3 of 4 for 20 s). Folded, but with the
// host's delayed ACK of a release's last segment passed on alone after a
// tick, single transfers still took about 30 s and one run in two failed:
// the appliance now nudges the host for that ACK at once. Later, short
// releases, the host's D-SACKs and its ACKs on data still let a release's
// ACK through in pieces, and a transfer had no byte move for 20 s in CI
// (release.go folds those too), and a lost ACK's repeat echoed an old
// TSval (acceptance.go). Then the answers to a go-back-N sender's resends,
// and a release's state left behind, split releases again (inbound.go,
// release.go). A stall's report ends with hA's timeline (sockwatch_test.go).
func TestSeqShiftRawSACK(t *testing.T) {
	e := newEncEnv(t, 76)
	e.watch = true // a stall's report shows hA's timeline
	b := e.topo.Addr(topology.HostB)
	e.setLoss(t, 2)
	e.startBump(t, "--seq-shift-a", "2309737967", "--seq-shift-b", "305419896", "--sack-raw")
	// No byte moving for 20 s is a stall: plain TCP through this box
	// waits for timeouts of 200 ms, doubled when a retransmission is
	// lost too.
	const n = 16 << 20
	for range 3 {
		for _, dst := range []netip.AddrPort{netip.AddrPortFrom(b.V4, 5001), netip.AddrPortFrom(b.V6, 5001)} {
			var r result
			d, ok := e.measure(t, func() { r = e.transfer(t, topology.HostA, dst, e.streamB, n, n, 4*time.Minute, "-idle", "20s") })
			checkTransfer(t, r, n, n)
			if ok {
				encryptedDelta(t, topology.GwA, d[topology.GwA], 1)
				encryptedDelta(t, topology.GwB, d[topology.GwB], 1)
			}
		}
	}
	t.Logf("loss: %s", e.lossReport(t))
	// The box did its work both ways: sequence numbers moved, SACK
	// blocks passed as they came.
	rep := e.stopBump(t)
	ms := shiftLine.FindAllStringSubmatch(rep, -1)
	if len(ms) < 2 {
		t.Fatalf("no shift counters from the bump:\n%s", rep)
	}
	for _, m := range ms[len(ms)-2:] { // the final report (earlier ones: a stuck transfer's)
		shifted, _ := strconv.Atoi(m[1])
		left, _ := strconv.Atoi(m[2])
		if shifted < 1000 || left < 10 {
			t.Errorf("the bump shifted %d segments and left %d SACK blocks alone in one direction:\n%s", shifted, left, rep)
		}
	}
}

var shiftLine = regexp.MustCompile(`shifted=(\d+) sack_left=(\d+)`)
