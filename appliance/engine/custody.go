package engine

import "github.com/tcpinc/tcpinc/appliance/tcpcrypt"

// custodyHold is how many bytes at the end of a frame the appliance never
// acknowledges to R on its own: they wait for L's ACK of the frame's
// plaintext, so that R's "everything acknowledged" still means L has it.
// One byte does that. More would stall a sender whose segment ended one
// byte short of the frame and whose next segment was lost: it resends
// from what we acknowledged, and a Linux sender trims its head segment to
// that and cannot merge a full next one into it, so it would resend the
// one byte it has, for ever (TestFrameCutOneByteBeforeItsEnd). R's resent
// last byte of an opened frame is not a keep-alive probe: those sit one
// below what R was acknowledged (wireSegment). (The segment that
// completes a frame is never acknowledged before L's ACK anyway: custody
// ends when the frame opens.)
const custodyHold = 1

// ackToR is the cumulative wire ACK R gets: the end of the last whole frame
// L acknowledged (or the FIN), or, once L acknowledged every frame opened so
// far, the in-order bytes of the frame the decoder is still assembling, up
// to custodyHold bytes before its end (partial-frame custody, see the
// package doc). It never goes back: custody keeps the highest such ACK.
func (f *flow) ackToR() int64 {
	d := &f.rcv
	if !d.initDone {
		// R's Init message is ours to consume; nothing of it goes to L.
		// Its in-order bytes are acknowledged as they come: it may span
		// segments (RFC 8548 §3.3), and R may wait for this ACK before
		// it sends the rest (Nagle holding a short tail).
		return d.rcvW
	}
	if d.finW >= 0 {
		if d.ackH > d.finH {
			return d.finW + 1
		}
		return max(d.ackW, d.custody) // every frame is opened: nothing is partial
	}
	if f.dec != nil && d.rcvW > d.ackW && d.ackW == int64(f.dec.Offset()) {
		top := d.rcvW
		if n, ok := f.dec.Partial(); ok {
			top = min(top, d.ackW+int64(n)-custodyHold)
		} // else at most 2 bytes of a frame of at least 20
		d.custody = max(d.custody, top)
	}
	return max(d.ackW, d.custody)
}

// partialEnd is the wire end of the frame being assembled when the
// appliance holds it in custody (L acknowledged every frame before it and
// its header is in), else -1.
func (f *flow) partialEnd() int64 {
	d := &f.rcv
	if f.dec == nil || d.finW >= 0 || d.ackW != int64(f.dec.Offset()) {
		return -1
	}
	n, ok := f.dec.Partial()
	if !ok {
		return -1
	}
	return d.ackW + int64(n)
}

// ackCustody sends R an ACK when in-order bytes of a partial frame moved
// ackToR past what R last got: R's congestion window then grows and its
// retransmission timer rests while the frame is still incomplete.
func (e *Engine) ackCustody(f *flow, tx [2]TxSink) {
	if f.state != stOpen || f.ackToR() <= f.rcv.lastAckW {
		return
	}
	if d := &f.rcv; d.releaseEnd != 0 && (d.ackH < max(d.releaseEnd, d.sentH) || f.releaseAckHeld()) {
		// A release is on (release.go) and L has not acknowledged all of
		// it, nor all it was sent (drain may have just opened a piece,
		// before the release's end moves on to it). Custody cannot move
		// meanwhile (ackW is below the frames opened): what moved the
		// ACK is L's ACK, held or about to reach ackRelease (L's segment
		// drains the bytes that waited for room first). Or L has
		// acknowledged the rest while an ACK of it is held, and
		// ackRelease is about to end the release. Either way R gets the
		// release's one ACK there; told now, it would cover only bytes R
		// sent once and long before, or repeat what R had (ackWinToR).
		// With SACK, while L has bytes to acknowledge, the blocks of what
		// is held past a hole go with that ACK (RFC 2018 §4 asks them of
		// every ACK sent, and none is) and L is nudged for it (endRound);
		// the ACK that ends a release carries them itself. Without SACK
		// nothing is owed: this runs after bytes in order, whose
		// immediate ACK (RFC 5681 §4.2) is the release's; a segment past
		// a hole gets its duplicate ACK at once (dupAckSoon).
		if d.holdsAhead() && f.sackOK && f.releaseAckHeld() && d.ackH < d.sentH {
			e.dupAckSoon(f, tx[Outside])
		}
		return
	}
	if f.rcv.held.n > 0 {
		// Out-of-order bytes are still held: say so in SACK blocks, as
		// every ACK must while they are (RFC 2018 §4).
		f.rcv.lastAckW = f.ackToR()
		e.dupAckR(f, tx[Outside])
		if f.sackOK && f.rcv.held.unnamed() {
			e.dupAckSoon(f, tx[Outside]) // the ranges that did not fit
		}
		return
	}
	e.ackR(f, tx[Outside], nil)
}

// pushPlain sends L the opened plaintext that waits for its window: up to
// the right edge L advertised (its ACK plus its window, RFC 9293 §3.8.6),
// and the FIN once every byte before it went. A frame opens whole and may
// be larger than L's window (partial-frame custody): what does not fit
// goes when L's ACK opens the window, not when R, whose retransmission
// timer has backed off meanwhile, resends. probe sends at least one byte,
// into a closed window too (RFC 9293 §3.8.6.1).
func (e *Engine) pushPlain(f *flow, to TxSink, probe bool) {
	d := &f.rcv
	end := d.ackH + int64(f.winL)<<f.wsLe
	if probe {
		end = max(end, d.sentH+1)
	}
	e.sendPending(f, to, min(end, d.nextH))
}

// maxPlainChunk bounds the ring bytes one sendPlain call takes (its last
// segment carries PSH): about one frame's worth.
const maxPlainChunk = tcpcrypt.MaxFrameLen + 64

// sendPending sends L the plaintext [sentH, end) from the ring, and the FIN
// once every byte before it went.
func (e *Engine) sendPending(f *flow, to TxSink, end int64) {
	d := &f.rcv
	if d.sentH < d.plainFrom {
		// Cannot happen (deliver sends what it cannot keep at once), but
		// the ring holds nothing there: never send L what it does not hold.
		d.sentH = d.plainFrom
	}
	for d.sentH < end {
		// Straight from the ring into the frames, in chunks that a
		// frame's length field could carry.
		n := min(end-d.sentH, maxPlainChunk)
		urg, urgent := false, uint16(0)
		if d.urgWait {
			// A frame with URGp starts a chunk of its own, its first
			// segment with URG (docs/protocol.md §13).
			switch u := d.nextURG(d.sentH); {
			case u == nil:
				d.urgWait = false
			case u.h > d.sentH:
				n = min(n, u.h-d.sentH)
			default:
				urg, urgent = true, u.urgent
				if v := d.nextURG(d.sentH + 1); v != nil {
					n = min(n, v.h-d.sentH)
				}
			}
		}
		fin := d.finH >= 0 && d.sentH+n == d.finH
		e.sendPlain(f, to, d.sentH, d.plain.span(d.sentH, n), fin, urg, urgent)
		d.sentH += n
		d.finOut = d.finOut || fin
	}
	if d.finH >= 0 && d.sentH == d.finH && !d.finOut {
		e.sendPlain(f, to, d.sentH, ringBytes{}, true, false, 0)
		d.finOut = true
	}
}

// nextURG is the first frame with URGp that starts at host offset from or
// later, or nil.
func (d *decDir) nextURG(from int64) *frameRec {
	for i := 0; i < d.frames.n; i++ {
		if fr := d.frames.at(i); fr.urg && fr.h >= from {
			return fr
		}
	}
	return nil
}

// sackWaitsForL reports whether the SACK blocks of what is held past a hole
// wait for L's ACK: the cumulative ACK R would get (ack) lies below bytes
// that came in order and went to L, whose ACK of them is still to come. A
// plain receiver's first SACK of a hole carries the hole's start as its
// ACK, and no later ACK moves before the hole fills. Ours would: a Linux
// sender that marked the hole lost (RACK) and had not retransmitted yet
// (pacing) took the ACK that moved next for a sign that nothing was lost
// and undid its recovery, which unmarked the loss for good (RACK takes a
// segment off its list when it marks it), and the hole waited for the
// retransmission timeout (a review measured 10 in 10 transfers at 2 %
// loss, against 0-1 with the blocks held back). Meanwhile L is nudged for
// its ACK (endRound), which then carries them.
func (f *flow) sackWaitsForL(ack int64) bool {
	d := &f.rcv
	return ack < d.rcvW && d.ackH < d.sentH
}

// heldSACK fills blocks with the out-of-order wire ranges held, in wire
// space, at most three (with timestamps there is room for no more), in
// the order of spans.takeSACK. It returns how many.
func (f *flow) heldSACK(blocks [][2]uint32) int {
	return f.rcv.held.takeSACK(blocks[:min(len(blocks), 3)], f.isnR)
}
