package engine

import (
	"errors"

	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// fromOutside handles a segment from the far side R of a tracked flow.
func (e *Engine) fromOutside(now int64, f *flow, p *packet.Packet, tx [2]TxSink) Verdict {
	if f.state < stKex {
		synSent := f.state == stSynSent
		if v, done := e.handshakeFromOutside(now, f, p, tx); done {
			if synSent && v == Dropped && f.state == stSynSent {
				// No answer to our SYN (a blind RST, an ACK or SYN-ACK
				// at another number): no progress, as stale. Kept, it
				// would hide the host's SYN retransmissions from
				// resendSYN's count (synRetransmitGap).
				f.last = e.lastBefore
			}
			return v
		}
	}
	fl := p.Flags()
	// Negotiated: only a segment R's TCP peer would accept goes on.
	if v, ok := e.wireAccept(now, f, p, tx); !ok {
		return v
	}
	if fl&packet.FlagRST != 0 {
		return e.wireRST(f, p, tx[Inside])
	}
	if fl&packet.FlagSYN != 0 {
		if fl&packet.FlagACK != 0 && f.role == 0 {
			return e.farSYNACK(now, f, p, tx) // our third segment was lost
		}
		return e.drop(DropStale)
	}
	f.enoOut = false // a non-SYN segment arrived (ENO-26)
	f.ecnFrom(Outside, p)
	f.toL.follow(p)
	return e.wireSegment(now, f, p, tx)
}

// wireRST forwards R's RST to L with translated numbers and no payload
// (nothing unauthenticated reaches the host), and forgets the flow.
// wireAccept has found it at exactly the next sequence number (RFC 5961 §3).
func (e *Engine) wireRST(f *flow, p *packet.Packet, to TxSink) Verdict {
	r := seg{seq: f.hostSeqOut(), flags: packet.FlagRST, win: p.Window()}
	if p.Flags()&packet.FlagACK != 0 {
		h := e.hostAckFromWire(f, unwrap(p.Ack(), f.isnL, f.enc.ackW))
		r.ack, r.flags = wrap(f.isnL, h), packet.FlagRST|packet.FlagACK
	}
	e.send(to, &f.toL, &r, nil)
	e.remove(f)
	return Forwarded
}

// wireSegment handles data, FIN and ACKs from R once negotiated.
// wireAccept has checked it (and its checksum).
func (e *Engine) wireSegment(now int64, f *flow, p *packet.Packet, tx [2]TxSink) Verdict {
	si := &e.si
	d := &f.rcv
	fl := p.Flags()
	prevAckW := f.enc.ackW
	data := p.Payload()
	fin := fl&packet.FlagFIN != 0
	w := unwrap(p.Seq(), f.isnR, d.rcvW)
	hostAck := e.wireACK(now, f, p, w, tx)
	e.closeCheck(now, f)
	end := w + int64(len(data))
	if len(data) <= 1 && !fin && w == d.lastAckW-1 && d.held.n == 0 {
		// A keep-alive probe (seq = SND.UNA-1 as R knows it from our
		// last ACK, 0 or 1 garbage byte): L must answer it, not the
		// appliance, and the byte is never framed. A byte at rcvW-1
		// above that is R's data resent (custodyHold).
		d.answer = true
		e.c.KeepAlives.Add(1)
		e.forwardAckToL(f, tx[Inside], si, hostAck, true)
		return Forwarded
	}
	if (len(data) > 0 || fin) && si.nsack > 0 && f.sackOK {
		e.sackToL(f, tx[Inside], si, hostAck)
	}
	if len(data) == 0 && !fin {
		if f.enc.ackW > prevAckW && hostAck == f.lastHostAck && si.nsack == 0 && p.Window() == f.lastWinR {
			// It acknowledges only bytes the appliance owns (Init, a rekey
			// frame): to L it would be a spurious duplicate ACK.
			e.c.AcksSuppressed.Add(1)
			return Consumed
		}
		e.forwardAckToL(f, tx[Inside], si, hostAck, false)
		return Forwarded
	}
	if end < d.rcvW || (end == d.rcvW && !(fin && d.finW < 0)) {
		e.duplicate(f, w, end, tx)
		return Forwarded
	}
	if hi := f.acceptEnd(); end > hi {
		// Past any window we advertised: a sender ignoring it would grow
		// the frame map without bound while L acknowledges nothing. TCP
		// trims such a segment to its window (RFC 9293 §3.10.7.4), and
		// its FIN with it; wireAccept dropped one that starts past it.
		// The edge can lie below what R sent already (a sender that went
		// past its window, then a lower DeliverBytes): nothing is left.
		if hi <= d.rcvW {
			return e.drop(DropOutOfWindow)
		}
		data, end, fin = data[:hi-w], hi, false
	}
	if d.finW < 0 && d.pendFIN >= 0 && end > d.pendFIN {
		d.pendFIN = -1 // data past it: no end (R resends its FIN if it was one)
	}
	if fin && d.finW < 0 && (d.pendFIN < 0 || end < d.pendFIN) {
		// Only a FIN in the window counts; of two, the lower.
		d.pendFIN = end
	}
	if w > d.rcvW {
		if !e.hold(f, w, data) {
			return e.drop(DropReasmFull)
		}
		e.dupAckSoon(f, tx[Outside])
		return Forwarded
	}
	return e.wireInOrder(now, f, data[d.rcvW-w:], hostAck, tx)
}

// wireACK takes in what every segment from R carries: its timestamps, its
// window and its ACK, which frees the store (and shows lost bytes the
// appliance owns, ownedLoss). w is the segment's sequence number as a wire
// offset. It returns the ACK's host translation.
func (e *Engine) wireACK(now int64, f *flow, p *packet.Packet, w int64, tx [2]TxSink) (hostAck int64) {
	si := &e.si
	fl := p.Flags()
	if si.hasTS {
		f.tsR, f.ecrR = newerTS(f.tsR, si.tsVal), si.tsEcr
		f.noteTSRecent(now, w, si.tsVal)
	}
	prevWin := f.winR
	f.pktsIn++
	hostAck = f.enc.ackH
	if fl&packet.FlagACK != 0 {
		prevAckW := f.enc.ackW
		aw := unwrap(p.Ack(), f.isnL, f.enc.ackW)
		// R's window counts only from a segment no older than the one it
		// last came from (RFC 9293 §3.10.7.4, SND.WL1 and SND.WL2): a
		// reordered or old-numbered segment carries a right edge R has
		// since moved on from.
		if w > f.wl1 || w == f.wl1 && aw >= f.wl2 {
			f.winR, f.wl1, f.wl2 = p.Window(), w, aw
		}
		hostAck = e.hostAckFromWire(f, aw)
		dup := aw == prevAckW && len(p.Payload()) == 0 && fl&packet.FlagFIN == 0 && p.Window() == prevWin
		e.ownedLoss(now, f, si, dup, tx[Outside])
		if f.state == stOpen && f.enc.sentW < f.enc.nextW {
			e.sendHeld(f, tx[Outside]) // L's frames that waited for R's window
		}
		if f.keys != nil && f.keys.Owed() {
			e.sendOwed(now, f, tx[Outside]) // R's window may have room for it now
		}
	}
	return hostAck
}

// wireInOrder takes R's bytes from rcvW on: to the Init reader and the
// decoder, or held while the keys are not there yet (or bytes at rcvW
// wait for them); then whatever the held bytes complete. Bytes held beyond
// a hole do not keep the bytes that fill it from being taken: holding
// those could fail for want of a range (the reassembly keeps maxSpans,
// spans.go), and the hole would then never close, however often R resent
// them (R's Init message too: the handshake then timed out).
func (e *Engine) wireInOrder(now int64, f *flow, data []byte, hostAck int64, tx [2]TxSink) Verdict {
	d := &f.rcv
	delivered, holeFilled, rcvW0 := d.sentH, d.held.n > 0, d.rcvW
	heldFrom := int64(-1)
	if holeFilled {
		heldFrom = d.held.rs()[0].s
	}
	if d.held.n == 0 || heldFrom > d.rcvW {
		used, err := e.consume(now, f, data, tx)
		if err != nil {
			e.fail(now, f, tx, err)
			return Forwarded
		}
		if used < len(data) && !e.hold(f, d.rcvW, data[used:]) {
			return e.drop(DropReasmFull)
		}
	} else {
		if !e.hold(f, d.rcvW, data) {
			return e.drop(DropReasmFull)
		}
	}
	if f.state == stDead {
		return Forwarded
	}
	if err := e.drainHeld(now, f, tx); err != nil {
		e.fail(now, f, tx, err)
		return Forwarded
	}
	if f.state == stDead {
		return Forwarded
	}
	if !d.initDone && d.rcvW > rcvW0 {
		e.ackR(f, tx[Outside], nil) // part of R's Init (ackToR)
	}
	if heldFrom >= 0 && d.rcvW > heldFrom {
		e.c.HolesFilled.Add(1)
	}
	if d.held.n == 0 || d.sentH > delivered {
		// Nothing held, or L got more bytes (a hole filled while
		// another stays open): the SACK of the next hole may need a
		// new ACK from L, and a new nudge for it.
		d.ackWait &^= ackHoleNudged
	}
	if heldFrom >= 0 && d.rcvW > heldFrom && d.sentH > delivered {
		// Bytes held behind the hole went to L: a release, however
		// short (release.go).
		e.startRelease(f, tx[Inside])
	}
	e.firstFrameWatch(now, f)
	if d.sentH == delivered && hostAck != f.lastHostAck {
		e.forwardAckToL(f, tx[Inside], &e.si, hostAck, false)
	}
	return Forwarded
}

// hostAckFromWire takes R's cumulative ACK of our wire stream and returns
// its host translation: the end of the last whole frame acknowledged, or the
// host FIN + 1 once the wire FIN is acknowledged. It releases the store.
func (e *Engine) hostAckFromWire(f *flow, ackW int64) int64 {
	en := &f.enc
	limit := en.nextW
	if en.finW >= 0 {
		limit = en.finW + 1
	}
	if ackW > limit || ackW < en.ackW-1<<30 {
		ackW = en.ackW // acknowledges what we never sent: ignore its ACK
	}
	if ackW > en.ackW {
		en.ackW = ackW
		for en.frames.n > 0 {
			fr := en.frames.at(0)
			if fr.w+int64(fr.wl) > ackW {
				break
			}
			en.ackH = fr.h + int64(fr.n)
			if fr.owned() {
				en.ownedN--
			}
			en.frames.pop()
		}
	}
	if en.finW >= 0 && en.ackW > en.finW {
		return en.finH + 1
	}
	return en.ackH
}

// ownedLoss resends at once the wire bytes the appliance owns (its Init
// message, empty rekey frames) when R's ACKs show them missing, as TCP's
// fast retransmit would: on the third duplicate ACK whose hole starts in
// one of them (RFC 5681 §3.2), or on SACK blocks above them that leave them
// uncovered (RFC 2018, RFC 6675 §5). The host never resends these bytes
// and R holds everything after them, so waiting for the timer would stall
// the connection for an RTO. Each is resent this way once; the timer
// covers a lost repeat. dup: the segment is a duplicate ACK (RFC 5681 §2).
func (e *Engine) ownedLoss(now int64, f *flow, si *segInfo, dup bool, to TxSink) {
	en := &f.enc
	if !dup || en.sentW <= en.ackW {
		en.dupAcks = 0 // a new ACK, data, a window update, or nothing outstanding
	} else {
		en.dupAcks++
	}
	initOpen := en.initSent && en.ackW < en.initLen
	if !initOpen && en.ownedN == 0 {
		return // nothing of ours outstanding: the usual case, kept cheap
	}
	// top: the highest byte R holds beyond the hole at ackW.
	top := int64(-1)
	var blocks [4]span
	nb := 0
	for i := 0; i < si.nsack; i++ {
		a := unwrap(si.sack[i][0], f.isnL, en.ackW)
		b := unwrap(si.sack[i][1], f.isnL, en.ackW)
		if a > en.ackW && b > a && b <= en.sentW {
			blocks[nb] = span{a, b}
			nb++
			top = max(top, b)
		}
	}
	if top < 0 {
		if en.dupAcks != 3 {
			return
		}
		top = en.ackW + 1 // no SACK: only the range holding ackW is known missing
	}
	covered := func(s, e int64) bool {
		for _, b := range blocks[:nb] {
			if b.s <= s && e <= b.e {
				return true
			}
		}
		return false
	}
	if initOpen && !en.initFast && !covered(en.ackW, en.initLen) {
		en.initFast = true
		e.c.InitRetransmits.Add(1)
		e.sendInit(now, f, to)
	}
	if en.ownedN == 0 {
		return
	}
	sent := false
	for i := 0; i < en.frames.n; i++ {
		fr := en.frames.at(i)
		if fr.w >= top {
			break
		}
		end := fr.w + int64(fr.wl)
		if !fr.owned() || fr.fast || end <= en.ackW || covered(fr.w, end) {
			continue
		}
		fr.fast = true
		e.sendWire(f, to, fr.w, int(fr.wl), packet.FlagACK, false)
		e.c.FrameRetransmits.Add(1)
		sent = true
	}
	if sent {
		en.ownedDue = now + en.ownedRTO // the timer restarts with a retransmission
	}
}

// duplicate answers a wire segment that lies wholly below rcvW: re-deliver
// what L has not acknowledged (the inside link may have lost it), or tell R
// again what we have.
func (e *Engine) duplicate(f *flow, w, end int64, tx [2]TxSink) {
	d := &f.rcv
	e.c.WireDuplicates.Add(1)
	sent := false
	for i := 0; i < d.frames.n; i++ {
		fr := d.frames.at(i)
		if fr.w+int64(fr.wl) <= w || fr.w >= end {
			continue
		}
		if fr.h+int64(fr.n) <= d.ackH && !(fr.fin && d.ackH <= d.finH) {
			continue
		}
		lo := max(fr.h, d.ackH)
		hi := min(fr.h+int64(fr.n), d.sentH) // what waits for L's window is not lost
		fin := fr.fin && d.finOut
		if lo < d.plainFrom || (hi <= lo && !fin) {
			continue
		}
		e.sendPlain(f, tx[Inside], lo, d.plain.span(lo, hi-lo), fin, fr.urg && lo == fr.h, fr.urgent)
		e.c.Redelivered.Add(1)
		sent = true
	}
	if !sent && (d.sentH < d.nextH || (d.finH >= 0 && !d.finOut)) {
		// Nothing lost, but plaintext waits for L's window: R's
		// retransmission stands in for a window probe (L's window
		// update may have been lost on the inside link).
		e.pushPlain(f, tx[Inside], true)
		sent = true
	}
	if sent {
		d.answer = true
		return
	}
	if f.releaseAckHeld() {
		// L's ACK of a release is held (release.go) and answers this
		// resend when it goes, at once once L has acknowledged the rest.
		// An answer now would tell R the part of the release L has
		// acknowledged so far, and the held ACK would then cover only
		// bytes R sent once and long before: a sender that resent
		// everything it had outstanding after its timeout (go-back-N)
		// took each such ACK as an RTT sample (0.87 s, behind a box
		// that makes SACK useless, where its timeout then stalled the
		// connection).
		e.c.AcksSuppressed.Add(1)
		return
	}
	e.ackR(f, tx[Outside], nil)
}

// hold keeps wire bytes [w, w+len(data)) for later (bounded).
func (e *Engine) hold(f *flow, w int64, data []byte) bool {
	d := &f.rcv
	end := w + int64(len(data))
	live := d.held.top(d.rcvW)
	if !d.reasm.reserve(d.rcvW, live, max(end, live)) {
		return false
	}
	if !d.held.add(w, end) && !(e.widenHeld(f) && d.held.add(w, end)) {
		return false // past maxSpans ranges, or the budget refused their block
	}
	d.reasm.write(w, data)
	if w > d.rcvW {
		e.listAhead(f) // the first to go under memory pressure (prune.go)
	}
	return true
}

// consume feeds in-order wire bytes at rcvW: first to the Init reader, then
// to the frame decoder once keys exist. It returns how many it took.
func (e *Engine) consume(now int64, f *flow, chunk []byte, tx [2]TxSink) (int, error) {
	d := &f.rcv
	used := 0
	if !d.initDone {
		var n int
		var done bool
		var err error
		if f.ini != nil {
			n, done, err = f.ini.Feed(chunk)
		} else {
			n, done, err = f.rsp.Feed(chunk)
		}
		used += n
		d.rcvW += int64(n)
		if err != nil {
			return used, err
		}
		if done {
			f.consuming = true
			e.initDone(now, f, tx)
			f.consuming = false
			if f.state == stDead {
				return used, nil
			}
		}
		chunk = chunk[n:]
	}
	if len(chunk) == 0 || f.dec == nil {
		return used, nil
	}
	// The plaintext of the frames this chunk completes is shorter than
	// the chunk and the partial frame before it: with room for it all in
	// the delivery ring, frames open straight into the ring (openDst) and
	// deliver need not copy them there.
	roomTo := int64(-1)
	lo := max(d.ackH, d.plainFrom)
	if hi := d.nextH + int64(len(chunk)+f.dec.Buffered()); e.reserveLent(&d.plain, lo, d.nextH, hi) {
		roomTo = hi
	} else {
		// No room for it all (the ring's cap, or the memory budget):
		// only the frames that fit are fed, and the bytes of the rest
		// wait with the reassembly, the last byte of the first of them
		// unacknowledged to R (custody), until L's ACKs free room
		// (roomWait). Sending plaintext the ring could not keep past
		// L's window, with nothing to deliver it again from, stalled
		// the connection for good once L dropped any of it. With
		// nothing in the ring for L's ACKs to free, one frame is kept
		// whatever the budget and the cap say: else a frame larger
		// than the cap, or a budget that stays full, would stop the
		// connection.
		fits := func(plain int64, frames int) bool {
			return e.reserveLent(&d.plain, lo, d.nextH, d.nextH+plain) ||
				lo == d.nextH && frames == 1 && e.grantLent(&d.plain, lo, d.nextH, d.nextH+plain, true)
		}
		n := f.dec.Feedable(chunk, fits)
		if n < len(chunk) {
			chunk, d.roomWait = chunk[:n], true
			e.c.DeliverWaits.Add(1)
		}
		if n == 0 {
			return used, nil
		}
	}
	if err := f.dec.Feed(chunk); err != nil {
		return used, err
	}
	defer e.chargeDecoder(f, f.decBytes())
	d.rcvW += int64(len(chunk))
	used += len(chunk)
	push := false
	for {
		dst := d.openDst(roomTo)
		var keep byte
		if dst != nil {
			keep = dst[0]
		}
		fr, ok, err := f.dec.NextInto(dst)
		if dst != nil {
			dst[0] = keep // the frame's flags byte went there
		}
		if err != nil {
			if push {
				e.pushPlain(f, tx[Inside], false)
			}
			return used, err
		}
		if !ok {
			break
		}
		e.opened++
		push = e.deliver(f, &fr, tx[Inside]) || push
		if f.keys.Owed() {
			// Answered as each frame opens (RFC 8548 §3.8), not once
			// for a chunk that may hold many of R's rekeys.
			e.sendOwed(now, f, tx[Outside])
		}
	}
	if push {
		// Every frame of this chunk at once: L gets full segments, PSH on
		// the last only, which a port with segmentation offload sends as
		// one super-frame (a push per frame made each frame's plaintext a
		// short segment with PSH, which nothing can merge).
		e.pushPlain(f, tx[Inside], false)
	}
	if f.ackOwed {
		f.ackOwed = false
		if a := e.wireAckFromHost(f, d.ackH); a != d.lastAckW && !f.releaseAckHeld() {
			e.ackR(f, tx[Outside], nil)
		}
	}
	return used, nil
}

// deliver takes one opened frame's data for L at its host offset: kept in
// the ring, it reports true and the caller pushes what L's window allows
// once the chunk's frames are all in (pushPlain; a frame with URGp gets URG
// on the segment that carries its first byte); data the ring cannot keep
// goes at once, in segments no larger than L's MSS, with FIN on the end of
// a FINp frame.
func (e *Engine) deliver(f *flow, fr *tcpcrypt.Frame, to TxSink) bool {
	d := &f.rcv
	h := d.nextH
	rec := d.frames.add()
	rec.h, rec.w, rec.n, rec.wl, rec.fin, rec.fast = h, int64(fr.Offset), int32(len(fr.Data)), int32(fr.WireLen), fr.FIN, false
	rec.urg, rec.urgent = fr.URG && len(fr.Data) > 0, fr.Urgent
	// Opened in place (openDst), the data lies in the room consume
	// reserved for the chunk: no reservation per frame.
	held := d.plain.holds(d.nextH, fr.Data)
	if !held && e.reserveLent(&d.plain, max(d.ackH, d.plainFrom), d.nextH, d.nextH+int64(len(fr.Data))) {
		d.plain.write(d.nextH, fr.Data)
		held = true
	}
	d.nextH += int64(len(fr.Data))
	if fr.FIN {
		d.finH = d.nextH
	}
	f.bytesIn += uint64(len(fr.Data))
	if len(fr.Data) == 0 && !fr.FIN {
		// An empty frame (a rekey answer): nothing for L; the appliance
		// acknowledges it itself once L has everything before it.
		f.ackOwed = true
		return false
	}
	if !held {
		// Over the cap: out at once, after what waits for L's window
		// (still in the ring: a failed reserve moves nothing). These
		// bytes cannot be re-delivered: never send what the ring does
		// not hold.
		e.sendPending(f, to, h)
		d.plainFrom = d.nextH
		e.c.Drops[DropDeliverFull].Add(1)
		e.sendPlain(f, to, h, ringBytes{a: fr.Data}, fr.FIN, rec.urg, fr.Urgent)
		d.sentH, d.finOut = d.nextH, fr.FIN
		return false
	}
	d.urgWait = d.urgWait || rec.urg
	return true
}

// openDst is where the next frame's plaintext may be opened: the delivery
// ring from one byte before nextH (the flags byte's place; the caller puts
// that byte back), so that the data lands at nextH, up to roomTo, the end
// of the room consume reserved (none if negative). Nil when that room is
// not one piece of the ring.
func (d *decDir) openDst(roomTo int64) []byte {
	if roomTo <= d.nextH || d.nextH < 1 {
		return nil
	}
	b := d.plain.at(d.nextH - 1)
	return b[:min(int64(len(b)), roomTo-(d.nextH-1))]
}

// drainHeld feeds held bytes that have become in order.
func (e *Engine) drainHeld(now int64, f *flow, tx [2]TxSink) error {
	d := &f.rcv
	for chunk := inOrder(&d.reasm, &d.held, d.rcvW); chunk != nil; chunk = inOrder(&d.reasm, &d.held, d.rcvW) {
		used, err := e.consume(now, f, chunk, tx)
		d.held.trim(d.rcvW)
		if err != nil {
			return err
		}
		if used == 0 {
			break // waiting for keys
		}
	}
	if d.held.big != nil && !d.holdsAhead() {
		e.narrowHeld(f) // the holes are gone: the ranges fit in the record again
	}
	if err := e.wireFIN(f, tx); err != nil {
		return err
	}
	e.ackCustody(f, tx)
	return nil
}

// drain is drainHeld for callers with nowhere to report an error: L's ACK
// or the budget made room for the bytes that waited for it (roomWait), or
// the keys came. Bytes opened so during a release are more of it (a
// release larger than the delivery ring opens in pieces): the release goes
// on to their end, and L is nudged for its ACK of all it was sent. Else
// L's ACK of the first piece ended it, and R heard the rest piece by piece.
func (e *Engine) drain(now int64, f *flow, tx [2]TxSink) {
	d := &f.rcv
	sent, opened := d.sentH, d.nextH
	if err := e.drainHeld(now, f, tx); err != nil {
		e.fail(now, f, tx, err)
		return
	}
	if d.releaseEnd == 0 || f.state != stOpen {
		return
	}
	if d.nextH > opened {
		d.releaseEnd = max(d.releaseEnd, d.nextH)
	}
	if d.sentH > sent {
		e.nudgeL(f, tx[Inside])
	}
}

// wireFIN checks R's TCP FIN once every byte before it is in: it must end
// the FINp frame (TC-51), else the connection is aborted.
func (e *Engine) wireFIN(f *flow, tx [2]TxSink) error {
	d := &f.rcv
	if d.finW < 0 && d.pendFIN >= 0 && d.rcvW > d.pendFIN {
		d.pendFIN = -1 // the stream went on past it: not its end (R resends the real FIN)
	}
	if d.pendFIN < 0 || d.finW >= 0 || d.rcvW != d.pendFIN || f.dec == nil {
		return nil
	}
	if !f.dec.FIN() || int64(f.dec.Offset()) != d.rcvW {
		return errFINWithoutFINp
	}
	d.finW = d.rcvW
	d.rcvW++
	return nil
}

var errFINWithoutFINp = errors.New("engine: TCP FIN without FINp frame")

// fail aborts after a peer error, counting authentication failures.
func (e *Engine) fail(now int64, f *flow, tx [2]TxSink, err error) {
	if errors.Is(err, tcpcrypt.ErrFrameAuth) {
		e.c.AuthFailures.Add(1)
	}
	if f.state == stKex {
		e.c.HandshakeFailures.Add(1)
		if f.role == eno.RoleA && errors.Is(err, tcpcrypt.ErrBadMagic) {
			// R's first bytes are no Init2: it runs plain TCP (enopath.go).
			e.pathLost(now, f, "far side's first bytes are no Init2")
		}
	} else if f.role == eno.RoleA && f.sess != nil && f.sess.Resumed && f.rcv.nextH == 0 &&
		(errors.Is(err, tcpcrypt.ErrFrameAuth) || errors.Is(err, tcpcrypt.ErrFrameMalformed)) {
		// A resumed session has no Init2 to check: R's first bytes are
		// no frame of it, the far side runs plain TCP (its host speaks
		// first: a server's greeting) (enopath.go).
		e.pathLost(now, f, "far side's first bytes in a resumed session are no frame")
	}
	e.abort(f, tx, err.Error())
}
