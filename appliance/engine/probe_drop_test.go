package engine

import (
	"testing"
)

// A window probe from R numbered below R's window is dropped as
// out of window, and answered. G_A's probe (probeR: a resends a segment
// whose frame waits at G_A for R's window) sits one below the ACK G_A last
// got. G_A had filled G_B's window, so when G_B's ACK of all of it is lost
// (or still on its way), the probe lies one window and more below what G_B
// holds, past the pure-ACK allowance (wireAccept: lo-(hi-d.ackW)). A TCP
// drops it too (RFC 9293 §3.10.7.4; Linux: seq below rcv_wup) and answers
// with an ACK, which is what the probe asks for: G_B's challenge ACK gives
// G_A the ACK and window it lost. The drop the integration test
// TestEncrypted/100MB/loss=5% once saw at gwA (gwB's probe) is this one.
func TestStaleWindowProbeDroppedAndAnswered(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	// Past the SYN's edge (64 KiB from offset 0) first: bulk data,
	// acknowledged with b's usual window.
	for range 6 {
		pr.toB(pr.aSendsMany(&h, 20))
		for _, s := range pr.bAcks(&h, h.aNext) {
			pr.ga.push(Outside, s.frame())
		}
	}
	fa, fb := pr.ga.onlyFlow(), pr.gb.onlyFlow()
	staleAck := fa.enc.ackW
	// a fills the window b keeps offering: the frames past its edge wait at G_A.
	var wire []segv
	for fa.enc.sentW >= fa.enc.nextW {
		wire = append(wire, pr.aSends(&h, make([]byte, 1000), 0)...)
	}
	wire = append(wire, pr.aSends(&h, []byte("0123456789"), pshF)...)
	atB, _ := pr.toB(wire) // G_B's ACKs, if any, are lost
	var hostEnd uint32
	for _, s := range atB {
		hostEnd = max(hostEnd, s.seq+uint32(len(s.payload)))
	}
	// b acknowledges all it got, its window unchanged: that ACK is lost.
	pr.tsB++
	_, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, hostEnd, ackF, 509, tsOpt(pr.tsB, pr.tsA), nil))
	lost := one(t, "b's ACK on the wire (lost)", toOut)
	// a's timer: it resends its last segment, whose frame waits at G_A.
	wire2, _ := pr.aSendsAt(&h, h.aNext-10, []byte("0123456789"), pshF)
	probe := one(t, "G_A's window probe", toFrames(wire2))
	if w := int64(probe.seq - (isnA + 1)); len(probe.payload) != 0 || w != staleAck-1 {
		t.Fatalf("G_A's probe at %d (%d bytes), want %d, empty", w, len(probe.payload), staleAck-1)
	}
	c := &pr.gb.e.Counters().Drops
	oow := c[DropOutOfWindow].Load()
	toIn, toOut := pr.gb.push(Outside, probe.frame())
	none(t, "the probe at b", toIn)
	t.Logf("G_B holds up to %d, told up to %d, L acked %d; probe at %d", fb.rcv.rcvW, fb.rcv.toldEdge, fb.rcv.ackW, staleAck-1)
	if n := c[DropOutOfWindow].Load() - oow; n != 1 {
		t.Fatalf("out_of_window +%d, want +1 (the case is not exercised)", n)
	}
	ans := one(t, "G_B's answer to the probe", toOut)
	if ans.ack != lost.ack || ans.win != lost.win {
		t.Fatalf("G_B answered ack %d win %d, want the lost ACK's %d, %d", ans.ack, ans.win, lost.ack, lost.win)
	}
	// The answer opens G_A's window: the waiting frames go.
	_, toOut = pr.ga.push(Outside, ans.frame())
	if len(toOut) == 0 || fa.enc.sentW != fa.enc.nextW {
		t.Fatalf("G_A sent %d segments after the answer, %d of %d wire bytes sent", len(toOut), fa.enc.sentW, fa.enc.nextW)
	}
}
