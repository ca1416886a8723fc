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
// inside a release are held, and R gets one when L has acknowledged the
// whole release. With SACK negotiated too: R's sender takes no such
// sample only if our SACK blocks reached it usable, and a middlebox that
// shifts sequence numbers but leaves SACK blocks alone (a known firewall
// bug) or strips them makes them useless while both SYNs said SACK; one
// cumulative ACK is also what a plain receiver sends.
//
// L acknowledges the end of a release at once only if it is asked to. A
// host that saw no hole acknowledges every second full segment and delays
// its ACK of the rest, 40 ms on Linux: the ACK of a release's last
// segment came after we had given up waiting, and covered only data sent
// once, a stale sample again. So the engine nudges L after a release (its
// last byte sent again, nudgeL), which every TCP answers with an
// immediate ACK of everything it has (RFC 9293 §3.10.7.4: a segment wholly
// below RCV.NXT is not acceptable and is answered). If that answer does
// not come (the nudge or the answer lost), a held ACK goes to R at the
// second Tick after it was held: one Tick could come between the release
// and the answer.

// Any release is folded, one held segment behind the filling one too: L
// may acknowledge the two apart (a host in quick-ACK mode acknowledges
// every segment), and the second ACK, of a segment R sent once and long
// before, is a stale sample like any other. One stale sample of 0.7 s
// behind a middlebox that makes SACK useless took a Linux sender's
// timeout from 200 ms to 780 ms for the next ten seconds, where every
// loss waited for it.

// decDir.ackWait, for releases: a state, and whether the flow is in Engine.ackHeld,
// which it stays in until the next Tick even when its ACK went otherwise
// (dupAckR): a flow in the list twice had its next held ACK sent at the
// first Tick.
const (
	ackNotHeld  = 0
	ackHeld     = 1 // an ACK of L's waits for the end of a release
	ackHeldTick = 2 // and a Tick has passed since: the next one sends it
	ackState    = ackHeld | ackHeldTick
	ackListed   = 4 // in Engine.ackHeld
)

// startRelease notes that the plaintext held behind a hole that filled is
// open, up to nextH, and nudges L for its ACK of what it was sent. The
// release ends when L has acknowledged all of it. What waits for L's
// window (H[sentH, nextH)) goes in pieces as L's ACKs open it, each with a
// nudge (hostSegment); R's bytes that come after the hole filled are not
// part of it, and L's ACK of the release goes to R when it comes, whatever
// L is sent after. A release larger than the delivery ring opens in
// pieces as L's ACKs make room (drain): each moves its end on, with R's
// bytes that waited for room beside it (the release's wire end is not
// kept: a flow record has no room for it).
func (e *Engine) startRelease(f *flow, to TxSink) {
	d := &f.rcv
	d.releaseEnd = max(d.releaseEnd, d.nextH)
	e.nudgeL(f, to)
}

// nudgeL sends L the last byte it was sent, again: a duplicate L answers
// at once with its cumulative ACK (and, with SACK, a D-SACK block of that
// byte, which dropNudgeDSACK takes out). One byte with data, not an empty
// segment below L's window as hostprobe.go sends: Linux answers those at
// most twice a second per connection (tcp_invalid_ratelimit), a duplicate
// with data always. The byte comes from the delivery ring, so it is the
// right one even for a host that would look.
func (e *Engine) nudgeL(f *flow, to TxSink) {
	d := &f.rcv
	h := d.sentH - 1
	if h < d.plainFrom || h < d.ackH {
		return // the ring does not hold it (sent at once past the ring's cap)
	}
	e.sendPlain(f, to, h, d.plain.span(h, 1), false, false, 0)
	e.c.HostNudges.Add(1)
}

// dropNudgeDSACK takes out of L's SACK blocks a D-SACK (RFC 2883: the first
// block, wholly below the cumulative ACK ack) of one byte: L's report of a
// nudge's byte, which R never sent twice. Passed on, it could make R's
// sender think the network duplicates, or send R a duplicate ACK.
func (si *segInfo) dropNudgeDSACK(ack uint32) {
	if si.nsack > 0 && si.sack[0][1]-si.sack[0][0] == 1 && int32(si.sack[0][1]-ack) <= 0 {
		copy(si.sack[:], si.sack[1:si.nsack])
		si.nsack--
	}
}

// ackRelease reports whether L's ACK, which moved the wire ACK to ackW,
// falls inside a release and waits (held) instead of going to R: a pure
// ACK is then consumed, L's data goes with the ACK R last got
// (ackWinToR).
func (e *Engine) ackRelease(f *flow, ackW int64) bool {
	d := &f.rcv
	if d.releaseEnd == 0 {
		return false
	}
	dsack := e.si.onlyDSACK(f, d.ackH)
	if ackW == d.lastAckW && dsack {
		// L reports a duplicate (R resent what L had: RFC 2883) at the
		// ACK R last heard: it goes to R, and the release goes on. L
		// answers every duplicate so, and hosts answering R's resent
		// bytes from before a hole filled ended each release at once.
		return false
	}
	if d.ackH >= d.releaseEnd || ackW == d.lastAckW || e.si.nsack > 0 && !dsack {
		// The release is acknowledged whole (this ACK says so), or L
		// repeats what R last heard (a duplicate ACK; a repeat of a
		// held ACK is folded too) or reports a loss: R must hear it now.
		// Nothing stays held: the next release's first ACK waits its
		// two Ticks afresh (a state left at ackHeldTick had the next
		// Tick send it at once, and the rest of that release went to
		// R piece by piece).
		d.releaseEnd = 0
		d.ackWait &^= ackState
		return false
	}
	e.c.AcksCoalesced.Add(1)
	if d.ackWait&ackState == ackNotHeld {
		// Aged from the first ACK held: later ones do not put off the
		// Tick that sends what L acknowledged (a release L takes in
		// over a long while, as its window opens, must not keep R
		// without an ACK for as long).
		d.ackWait |= ackHeld
	}
	if d.ackWait&ackListed == 0 {
		d.ackWait |= ackListed
		e.ackHeld = append(e.ackHeld, f)
	}
	return true
}

// ackWinToR is the ACK and window for a segment to R: L's data, the
// appliance's own ACKs. While an ACK of L's inside a release is held, it
// is the ACK R last got: L's data segments acknowledge the release piece
// by piece as its pure ACKs do, and R takes the ACK on a data segment as
// alone (a host sending both ways acknowledged the hole's filling segment
// on data, then the rest in one pure ACK: a stale sample all the same);
// so would it an ACK the appliance sends, a challenge ACK for one. The
// window keeps its right edge.
func (f *flow) ackWinToR() (int64, uint16) {
	d := &f.rcv
	ack, win := f.ackToR(), f.winToR()
	if !f.releaseAckHeld() || d.lastAckW < 0 || d.lastAckW >= ack {
		return ack, win
	}
	w := (int64(win)<<f.wsLe + ack - d.lastAckW) >> f.wsLe
	// Rounded down twice (winToR, then here): never below an edge R got.
	w = max(w, (d.toldEdge-d.lastAckW)>>f.wsLe)
	return d.lastAckW, uint16(min(w, 0xffff))
}

// releaseAckHeld reports whether an ACK of L's inside a release waits for
// the rest of it: nothing may tell R more of the release before it goes.
func (f *flow) releaseAckHeld() bool {
	return f.rcv.releaseEnd != 0 && f.rcv.ackWait&ackState != ackNotHeld
}

// onlyDSACK reports whether L's SACK blocks are only D-SACK blocks (RFC
// 2883 §4: wholly below its cumulative ACK ackH): a duplicate reported,
// no hole.
func (si *segInfo) onlyDSACK(f *flow, ackH int64) bool {
	if si.nsack == 0 {
		return false
	}
	for i := 0; i < si.nsack; i++ {
		if unwrap(si.sack[i][1], f.isnR, ackH) > ackH {
			return false
		}
	}
	return true
}

// flushHeldAcks, at each Tick, sends R the ACKs held since before the last
// Tick, ending their releases, and keeps the ones held since.
func (e *Engine) flushHeldAcks(tx [2]TxSink) {
	keep := e.ackHeld[:0]
	for i, f := range e.ackHeld {
		e.ackHeld[i] = nil
		e.cur = f // for recovered
		d := &f.rcv
		switch d.ackWait & ackState {
		case ackNotHeld:
			d.ackWait &^= ackListed
			continue
		case ackHeld:
			if d.releaseEnd != 0 && f.state == stOpen {
				d.ackWait ^= ackHeld | ackHeldTick
				keep = append(keep, f)
				continue
			}
		}
		d.ackWait &^= ackState | ackListed
		d.releaseEnd = 0
		if f.state == stOpen && (f.ackToR() != d.lastAckW || f.winToR() != d.lastWin) {
			e.ackR(f, tx[Outside], nil)
		}
	}
	e.ackHeld = keep
	e.cur = nil
}
