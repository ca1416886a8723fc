package engine

// Duplicate ACKs at the end of a round. A segment from R past a hole gets
// a duplicate ACK with SACK blocks of what is held (dupAckR), so that R's
// sender learns of a loss at once. But the path often reorders within a
// burst (a GRO aggregate overtaken by its own last segment), and the
// bytes that fill the hole then come a few microseconds later, in the same
// batch. A plain receiver answers both within microseconds, so its sender
// sees the hole close before its reordering window (RACK: a quarter of its
// minimum RTT) runs out. Here the ACK that closes it must wait for L's ACK
// of the delivered bytes (custody; release.go), a round trip through L and
// the worker later, while the duplicate ACK went at once: R's sender took
// the hole for a loss, retransmitted what had arrived, then saw the
// retransmission was spurious and undid its recovery, which also unmarked
// a real loss not yet resent, and that one waited for the retransmission
// timeout (a review measured 13 timeouts in 10 transfers at 2 % loss,
// against none over plain TCP). So with SACK the duplicate ACK waits for
// the end of the worker's round (EndRound) and goes only if a hole is
// still there. Without SACK, R's sender counts duplicate ACKs (three
// trigger its fast retransmit, RFC 5681 §3.2): each goes at once, as
// before.

//
// And the duplicate ACK goes only once the ACK it carries has caught up
// with the hole (sackWaitsForL): while bytes before the hole went to L and
// wait for its ACK, L is nudged for it instead (nudgeL, once per hole), and
// L's ACK, at the hole, carries the SACK blocks.

const (
	ackDupOwed    = 8  // decDir.ackWait: a duplicate ACK waits for the round's end
	ackDupListed  = 16 // decDir.ackWait: in Engine.dupOwed
	ackHoleNudged = 32 // decDir.ackWait: L was nudged for the ACK that will carry a hole's SACK blocks
)

// dupAckSoon answers R's segment past a hole: at once without SACK, else
// at the end of the round if a hole is still there then.
func (e *Engine) dupAckSoon(f *flow, to TxSink) {
	if !f.sackOK {
		e.dupAckR(f, to)
		return
	}
	d := &f.rcv
	d.ackWait |= ackDupOwed
	if d.ackWait&ackDupListed == 0 {
		d.ackWait |= ackDupListed
		e.dupOwed = append(e.dupOwed, f)
	}
}

// endRound sends the duplicate ACKs still owed for holes that are still
// open.
func (e *Engine) endRound(tx [2]TxSink) {
	for i, f := range e.dupOwed {
		e.dupOwed[i] = nil
		e.cur = f // for recovered
		d := &f.rcv
		owed := d.ackWait&ackDupOwed != 0
		d.ackWait &^= ackDupOwed | ackDupListed
		switch {
		case !owed || f.state == stDead || d.held.n == 0:
		case !f.sackWaitsForL(max(d.lastAckW, f.ackToR())):
			e.dupAckR(f, tx[Outside])
			for n := 0; d.held.unnamed() && n < maxSpans; n++ {
				e.dupAckR(f, tx[Outside]) // until every range has been named
			}
			d.ackWait &^= ackHoleNudged
		case d.ackWait&ackHoleNudged == 0:
			d.ackWait |= ackHoleNudged
			e.nudgeL(f, tx[Inside])
		}
	}
	e.dupOwed = e.dupOwed[:0]
	e.cur = nil
}
