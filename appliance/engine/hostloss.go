package engine

// Plaintext lost on the inside link. L's SACK blocks show a hole above its
// ACK in what the engine delivered: the inside link lost it. R would fill
// the hole only by resending it (duplicate, inbound.go), and R's sender
// does not resend what it holds SACKed (RFC 6675 §5); bytes held past a
// wire hole were SACKed to R before L had them (custody.go), so after a
// release R may never resend them. Only R's check for a receiver that
// reneged, or its retransmission timeout, would then repair the loss,
// where a plain receiver's SACK had named the hole and R resent it. The
// engine still has the bytes in its delivery ring: it delivers them again
// itself: one frame's piece, at L's ACK, each time the ACK moves. L answers
// each at once (a receiver with a hole acknowledges every segment, RFC
// 5681 §4.2), and its ACK, moved by one segment, draws the next. Sending
// the whole hole at each ACK would send its tail again with every
// segment of it that arrived: k(k+1)/2 segments for a hole of k.

// ackLRedelivered (decDir.ackWait): the segment at L's current ACK was
// delivered again; cleared when L's ACK moves.
const ackLRedelivered = 64

// hostLost delivers again, once per ACK, the first frame's piece of the
// plaintext between L's ACK and the lowest of its SACK blocks above it
// (e.si).
func (e *Engine) hostLost(f *flow, to TxSink) {
	d := &f.rcv
	if d.ackWait&ackLRedelivered != 0 || d.ackH >= d.sentH {
		return
	}
	hi := d.sentH
	found := false
	for i := 0; i < e.si.nsack; i++ {
		a := unwrap(e.si.sack[i][0], f.isnR, d.ackH)
		if a > d.ackH && a < hi {
			hi, found = a, true // below ackH: a D-SACK; from sentH on: not sent, bogus
		}
	}
	if !found {
		return
	}
	e.redeliverAtAck(f, to, hi)
}

// hostDupAck answers L's duplicate ACK on a connection without SACK (a
// pure ACK that did not move, its window unchanged, while plaintext L was
// sent is unacknowledged): the way a receiver without SACK says a segment
// is missing (RFC 5681 §4.2). The piece at its ACK goes again, once per
// ACK; R, its ACK held at the same point, would resend it only at its
// retransmission timeout, since the engine passes on no duplicate ACK of
// L's (AcksSuppressed).
func (e *Engine) hostDupAck(f *flow, to TxSink) {
	d := &f.rcv
	if d.ackWait&ackLRedelivered != 0 || d.ackH >= d.sentH {
		return
	}
	e.redeliverAtAck(f, to, d.sentH)
}

// redeliverAtAck delivers again the first frame's piece at L's ACK, up to
// hi, and marks the ACK as answered.
func (e *Engine) redeliverAtAck(f *flow, to TxSink, hi int64) {
	d := &f.rcv
	d.ackWait |= ackLRedelivered
	for i := 0; i < d.frames.n; i++ {
		fr := d.frames.at(i)
		if fr.h >= hi {
			return
		}
		lo, top := max(fr.h, d.ackH), min(fr.h+int64(fr.n), hi)
		if top <= lo || lo < d.plainFrom {
			continue
		}
		// One frame's piece: at most a segment (a frame holds what a
		// wire segment held), and L's ACK after it lands at its end.
		e.sendPlain(f, to, lo, d.plain.span(lo, top-lo), false, fr.urg && lo == fr.h, fr.urgent)
		e.c.Redelivered.Add(1)
		return
	}
}
