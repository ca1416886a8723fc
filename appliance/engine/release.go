package engine

// Releases. When a hole in R's stream fills, the engine opens and delivers
// everything held behind it at once, and L acknowledges that plaintext in
// several ACKs (one per super-segment it gets). A plain receiver would
// have sent one cumulative ACK. Passed on one by one, the ACKs after the
// first acknowledge, at R's sender, only data it sent once and long ago:
// without SACK, Linux takes each as an RTT sample (Karn's rule skips only
// ACKs of retransmitted data), its smoothed RTT grows a hundredfold and
// its retransmission timeout to seconds, and the next loss stalls the
// connection that long (docs/architecture.md §2). So L's ACKs that fall
// inside a release are held, and R gets one: when L has acknowledged the
// whole release, or at the next Tick (a millisecond at most on a busy
// worker), whichever comes first. With SACK negotiated too: R's sender
// takes no such sample only if our SACK blocks reached it usable, and a
// middlebox that shifts sequence numbers but leaves SACK blocks alone (a
// known firewall bug) or strips them makes them useless while both SYNs
// said SACK; one cumulative ACK is also what a plain receiver sends.

// releaseMin is the least plaintext a hole's filling must deliver at once
// for L's ACKs of it to be folded: more than two full segments.
const releaseMin = 2 * 1460

// ackRelease reports whether L's pure ACK, which moved the wire ACK to
// ackW, falls inside a release and waits (held) instead of going to R.
func (e *Engine) ackRelease(f *flow, ackW int64) bool {
	d := &f.rcv
	if d.releaseEnd == 0 {
		return false
	}
	if d.ackH >= d.releaseEnd || ackW == d.lastAckW || e.si.nsack > 0 {
		// The release is acknowledged whole (this ACK says so), or L
		// repeats what R last heard (a duplicate ACK; a repeat of a
		// held ACK is folded too) or reports a loss: R must hear it now.
		d.releaseEnd = 0
		return false
	}
	e.c.AcksCoalesced.Add(1)
	if !d.ackHeld {
		d.ackHeld = true
		e.ackHeld = append(e.ackHeld, f)
	}
	return true
}

// flushHeldAcks sends R the ACKs still held, ending their releases.
func (e *Engine) flushHeldAcks(tx [2]TxSink) {
	for i, f := range e.ackHeld {
		e.ackHeld[i] = nil
		e.cur = f // for recovered
		d := &f.rcv
		if !d.ackHeld {
			continue
		}
		d.ackHeld, d.releaseEnd = false, 0
		if f.state == stOpen && (f.ackToR() != d.lastAckW || f.winToR() != d.lastWin) {
			e.ackR(f, tx[Outside], nil)
		}
	}
	e.ackHeld = e.ackHeld[:0]
	e.cur = nil
}
