package scenario

import (
	"fmt"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// Pure ACKs on the wire carry the wire's SND.NXT (RFC 9293 §3.10.7).

// checkSndNxt fails unless every pure ACK offered to the link in direction
// d carries seq = SND.NXT of that direction at the time: the end of the
// highest byte (SYN and FIN included) offered before it (RFC 9293 §3.10.7:
// an ACK is sent with SEQ=SND.NXT). A pure ACK numbered past bytes the
// receiver has not seen looks to it (and to middleboxes) like a segment
// after a gap.
func checkSndNxt(t *testing.T, w *World, d Dir, isn uint32) {
	t.Helper()
	nxt, seen := isn, false
	for _, s := range w.Link.Sent(d) {
		if s.Has(packettest.RST) {
			continue
		}
		end := s.Seq + uint32(len(s.Payload))
		if s.Has(packettest.SYN) || s.Has(packettest.FIN) {
			end++
		}
		if seen && len(s.Payload) == 0 && s.Flags&(packettest.SYN|packettest.FIN) == 0 && s.Seq != nxt {
			t.Fatalf("link %v: pure ACK at seq %d (offset %d), SND.NXT is %d (offset %d): %v",
				d, s.Seq, int32(s.Seq-isn-1), nxt, int32(nxt-isn-1), s)
		}
		if !seen || int32(end-nxt) > 0 {
			nxt, seen = end, true
		}
	}
}

// TestThirdSegmentAtISN: the third segment (the host's pure ACK, with
// 45 02) leaves G_A at a's ISN+1, before Init1 occupies ISN+1..ISN+75:
// nothing is on the wire yet, so that is the wire's SND.NXT. Init1 follows
// at the same number.
func TestThirdSegmentAtISN(t *testing.T) {
	f := full(t)
	f.stepSYN(t)
	f.stepSYNACK(t)
	out := f.stepACK(t)
	if out[0].Seq != isnA+1 {
		t.Fatalf("third segment at %d, want a's ISN+1 (%d): Init1 has not been sent", out[0].Seq, isnA+1)
	}
	f.stepInit(t)
	f.established(t)
	f.exchange(t)
	checkSndNxt(t, f.w, AtoB, isnA)
	checkSndNxt(t, f.w, BtoA, isnB)
}

// TestPureACKsAtSndNxt: over random exchanges with loss, duplication and
// reordering (handshake included or not), every pure ACK either appliance
// forwards or originates carries the wire's SND.NXT: the hosts' ACKs,
// the appliances' own ACKs of Init messages and empty frames, and the
// duplicate ACKs with SACK they send for out-of-order frames.
func TestPureACKsAtSndNxt(t *testing.T) {
	seeds := 16
	if testing.Short() {
		seeds = 4
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			hs := seed%2 == 1
			w := followRun(t, 5000+seed, hs, []float64{0, 0.03, 0.1}[seed%3], 20000)
			checkSndNxt(t, w, AtoB, isnA)
			checkSndNxt(t, w, BtoA, isnB)
		})
	}
}
