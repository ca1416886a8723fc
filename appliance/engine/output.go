package engine

import "github.com/tcpinc/tcpinc/appliance/packet"

// sendPlain sends host bytes starting at h to L.
// data may lie in two pieces (a ring's bytes across its end): they are
// copied once, into the frames.
func (e *Engine) sendPlain(f *flow, to TxSink, h int64, data ringBytes, fin, urg bool, urgent uint16) {
	mss := f.segL()
	if f.tsOK {
		mss -= 12 // the MSS counts payload only; our segments carry timestamps
	}
	ack := f.ackToL()
	if !urg && data.len() > mss && f.ecnUniform(Inside) {
		if g := gsoSink(to, &f.toL); g != nil {
			e.sendPlainSuper(f, g, h, data, fin, mss, ack)
			return
		}
	}
	for first := true; first || data.len() > 0; first = false {
		n := min(data.len(), mss)
		last := n == data.len()
		fl := uint8(packet.FlagACK)
		if last {
			fl |= packet.FlagPSH
			if fin {
				fl |= packet.FlagFIN
			}
		}
		e.opts.reset()
		f.tsToL(&e.opts, true)
		s := seg{seq: wrap(f.isnR, h), ack: wrap(f.isnL, ack), flags: fl, win: f.scaleWin(f.winR), opts: e.opts.bytes()}
		f.ecnTo(Inside, &s, n > 0 && h >= f.rcv.sentH)
		if urg && first {
			// URGp (docs/protocol.md §13): the last urgent byte is urgent bytes
			// past the frame start; TCP's pointer counts from this segment,
			// and one past 0xffff is clamped (as Linux clamps a far one).
			s.flags |= packet.FlagURG
			s.urg = uint16(min(int(urgent)+1, 0xffff))
		}
		var seg ringBytes
		seg, data = data.cut(n)
		e.send2(to, &f.toL, &s, seg)
		f.lastHostAck, f.lastWinR = ack, f.winR
		h += int64(n)
	}
}

// sendPlainSuper is sendPlain through a port that takes super-frames: the
// same segments of mss bytes (PSH, and FIN if fin, on the last only), built
// as few super-frames with one copy of the headers each.
func (e *Engine) sendPlainSuper(f *flow, g GSOSink, h int64, data ringBytes, fin bool, mss int, ack int64) {
	for data.len() > 0 {
		e.opts.reset()
		f.tsToL(&e.opts, true)
		s := seg{seq: wrap(f.isnR, h), ack: wrap(f.isnL, ack), flags: packet.FlagACK, win: f.scaleWin(f.winR), opts: e.opts.bytes()}
		buf := g.Buffer()
		n := min(data.len(), f.toL.superRoom(len(buf), f.toL.headerLen(&s), mss))
		if n == 0 {
			n = min(data.len(), mss) // no room for a super-frame: one segment
		}
		if data.from != nil && tailSink(g) != nil {
			n = tailCut(len(data.a), n, mss)
		}
		if n == data.len() {
			s.flags |= packet.FlagPSH
			if fin {
				s.flags |= packet.FlagFIN
			}
		}
		f.ecnTo(Inside, &s, h >= f.rcv.sentH)
		var hl int
		var pl []byte
		if buf != nil {
			hl, pl = f.toL.build(buf, &s, n)
		}
		var part ringBytes
		part, data = data.cut(n)
		switch {
		case pl == nil:
			e.c.Drops[DropTxFull].Add(uint64((n + mss - 1) / mss))
		case e.sendTail(g, &f.toL, buf, hl, part, mss):
		default:
			part.copyTo(pl)
			commitGSO(g, &f.toL, buf, hl, hl+n, mss)
		}
		f.lastHostAck, f.lastWinR = ack, f.winR
		h += int64(n)
	}
}

// ackL sends L a pure ACK on R's behalf.
func (e *Engine) ackL(f *flow, to TxSink, si *segInfo) {
	e.opts.reset()
	if si != nil && si.hasTS {
		e.opts.ts(f.tsR, si.tsEcr)
	} else {
		f.tsToL(&e.opts, false)
	}
	ack := f.ackToL()
	s := seg{seq: f.hostSeqOut(), ack: wrap(f.isnL, ack), flags: packet.FlagACK, win: f.scaleWin(f.winR), opts: e.opts.bytes()}
	f.ecnTo(Inside, &s, false)
	e.send(to, &f.toL, &s, nil)
	if si == nil {
		e.c.AcksOriginated.Add(1)
	}
}

// forwardAckToL passes R's pure ACK (or keep-alive) on to L, translated,
// with R's SACK blocks turned into host blocks covering whole frames.
func (e *Engine) forwardAckToL(f *flow, to TxSink, si *segInfo, hostAck int64, keepAlive bool) {
	e.opts.reset()
	if si.hasTS {
		e.opts.ts(f.tsR, si.tsEcr)
	}
	var blocks [4][2]uint32
	e.opts.sack(blocks[:f.hostSACK(si, &blocks)])
	seq := f.hostSeqOut()
	if keepAlive {
		seq--
	}
	s := seg{seq: seq, ack: wrap(f.isnL, hostAck), flags: packet.FlagACK, win: f.scaleWin(f.winR), opts: e.opts.bytes()}
	f.ecnTo(Inside, &s, false)
	e.send(to, &f.toL, &s, nil)
	f.lastHostAck, f.lastWinR = hostAck, f.winR
}

// hostSACK translates R's SACK blocks (si) into host blocks of whole
// frames and returns how many it put into blocks.
func (f *flow) hostSACK(si *segInfo, blocks *[4][2]uint32) int {
	nb := 0
	for i := 0; i < si.nsack; i++ {
		a := unwrap(si.sack[i][0], f.isnL, f.enc.ackW)
		b := unwrap(si.sack[i][1], f.isnL, f.enc.ackW)
		if a <= f.enc.ackW {
			// Down to the ACK: a D-SACK, or stale (a delayed older ACK's).
			// Its first whole frame would start at L's ACK, a block that
			// names the very byte the ACK says is missing.
			continue
		}
		if ha, hb, ok := f.enc.hostBlock(a, b); ok {
			blocks[nb] = [2]uint32{wrap(f.isnL, ha), wrap(f.isnL, hb)}
			nb++
		}
	}
	return nb
}

// sackToL passes on the SACK blocks of R's segment with data (R holds
// some of L's bytes past a hole) in an ACK of their own: the plaintext
// segments to L carry only timestamps, their size fixed to L's MSS without
// room for blocks. A plain receiver puts them on its data segments too
// (RFC 2018 §4), and a sender counts no duplicate ACK in a segment with
// data: dropped, L's host would learn of the hole only from its probe or
// its retransmission timeout.
func (e *Engine) sackToL(f *flow, to TxSink, si *segInfo, hostAck int64) {
	var blocks [4][2]uint32
	if f.hostSACK(si, &blocks) > 0 {
		e.forwardAckToL(f, to, si, hostAck, false)
	}
}

// hostBlock translates a wire SACK block to the host bytes of the whole
// frames inside it.
func (en *encDir) hostBlock(a, b int64) (int64, int64, bool) {
	ha, hb := int64(-1), int64(-1)
	for i := 0; i < en.frames.n; i++ {
		fr := en.frames.at(i)
		if fr.w < a {
			continue
		}
		if fr.w+int64(fr.wl) > b {
			break
		}
		if ha < 0 {
			ha = fr.h
		}
		hb = fr.h + int64(fr.n)
	}
	return ha, hb, ha >= 0 && hb > ha
}

// ackToL is the ACK L gets from us: R's ACK of L's bytes, translated, and
// of L's FIN once R acknowledged the wire FIN.
func (f *flow) ackToL() int64 {
	if f.enc.finW >= 0 && f.enc.ackW > f.enc.finW {
		return f.enc.finH + 1
	}
	return f.enc.ackH
}

// hostSeqOut is the sequence number of the next segment the engine sends L
// on R's behalf.
func (f *flow) hostSeqOut() uint32 {
	h := f.rcv.sentH // what waits for L's window was not sent: a pure ACK must not pass it
	if f.rcv.finOut {
		h = f.rcv.finH + 1
	}
	// Not past L's right edge (a window probe's byte L did not take): L
	// would find the segment unacceptable and ignore the ACK of its own
	// data (RFC 9293 §3.10.7.4), as R would (wireSeqOut).
	if edge := f.rcv.ackH + int64(f.winL)<<f.wsLe; h > edge {
		h = edge
	}
	return wrap(f.isnR, h)
}

// ackR sends R a pure ACK with L's translated ACK (si: the host segment's
// options, or nil when the appliance speaks for L on its own).
func (e *Engine) ackR(f *flow, to TxSink, si *segInfo) {
	e.opts.reset()
	if si != nil && si.hasTS {
		e.opts.ts(f.tsL, si.tsEcr)
	} else {
		f.tsToR(&e.opts, false)
	}
	d := &f.rcv
	var blocks [4][2]uint32
	nb := 0
	if si != nil {
		// L's SACK blocks (it lost a segment we delivered): whole frames,
		// in wire space, so R's appliance or host sees what L holds.
		for i := 0; i < si.nsack; i++ {
			a := unwrap(si.sack[i][0], f.isnR, d.ackH)
			b := unwrap(si.sack[i][1], f.isnR, d.ackH)
			if wa, wb, ok := d.wireBlock(a, b); ok {
				blocks[nb] = [2]uint32{wrap(f.isnR, wa), wrap(f.isnR, wb)}
				nb++
			}
		}
	}
	ack, win := f.ackWinToR()          // not past a release's held ACK (release.go)
	lLost := si != nil && si.nsack > 0 // L lost some of what we sent: its ACK stays put
	if d.held.n > 0 && f.sackOK && (lLost || !f.sackWaitsForL(ack)) {
		// R's out-of-order bytes are held: every ACK says so (RFC 2018
		// §4), after L's blocks, whether or not any of those covered a
		// whole frame, or R's SACK scoreboard would go stale; once the
		// ACK has caught up with the hole (sackWaitsForL). Never on a
		// connection without SACK (§4: MUST NOT).
		// Only into the room L's blocks left: a range whose block did
		// not fit must stay unnamed (takeSACK marks what it takes).
		nb += f.heldSACK(blocks[nb:max(nb, min(e.opts.sackRoom(), len(blocks)))])
		d.ackWait &^= ackHoleNudged
		if d.held.unnamed() {
			e.dupAckSoon(f, to) // the ranges that did not fit
		}
	}
	e.opts.sack(blocks[:nb])
	if f.enoOut {
		e.opts.eno()
	}
	s := seg{seq: f.wireSeqOut(), ack: wrap(f.isnR, ack), flags: packet.FlagACK, win: win, opts: e.opts.bytes()}
	f.ecnTo(Outside, &s, false)
	if e.send(to, &f.toR, &s, nil) {
		d.lastAckW, d.lastWin = ack, s.win
		f.toldR(ack, s.win)
		f.pktsOut++
	}
	if si == nil {
		e.c.AcksOriginated.Add(1)
	}
}

// wireBlock translates a host SACK block to the wire bytes of the whole
// delivered frames inside it.
func (d *decDir) wireBlock(a, b int64) (int64, int64, bool) {
	wa, wb := int64(-1), int64(-1)
	for i := 0; i < d.frames.n; i++ {
		fr := d.frames.at(i)
		if fr.h < a || (fr.n == 0 && fr.h == a && wa < 0) {
			continue
		}
		if fr.h+int64(fr.n) > b {
			break
		}
		if wa < 0 {
			wa = fr.w
		}
		wb = fr.w + int64(fr.wl)
	}
	return wa, wb, wa >= 0 && wb > wa
}

// dupAckR tells R, after an out-of-order segment, what we have: the same
// cumulative ACK with SACK blocks in wire space (RFC 2018), so that R's
// fast retransmit works.
func (e *Engine) dupAckR(f *flow, to TxSink) {
	d := &f.rcv
	if d.ackWait&ackState != ackNotHeld {
		// L's ACK held for a release (release.go) goes with it: R must
		// not hear an older ACK than L gave, or it takes the hole's
		// retransmission for lost again.
		d.ackWait &^= ackState
		d.releaseEnd = 0
		d.lastAckW = max(d.lastAckW, f.ackToR())
	}
	e.opts.reset()
	f.tsToR(&e.opts, false)
	var blocks [4][2]uint32
	if f.sackOK { // RFC 2018 §2: not unless both SYNs allowed it
		nb := f.heldSACK(blocks[:])
		e.opts.sack(blocks[:nb])
	}
	s := seg{seq: f.wireSeqOut(), ack: wrap(f.isnR, d.lastAckW), flags: packet.FlagACK, win: f.winToR(), opts: e.opts.bytes()}
	f.ecnTo(Outside, &s, false)
	if e.send(to, &f.toR, &s, nil) {
		// What R was told, as ackR keeps it: L's ACK that made this
		// one (ackCustody) would otherwise go again after it.
		d.lastWin = s.win
		f.toldR(d.lastAckW, s.win)
		e.c.DupAcksOriginated.Add(1)
	}
}

// wireSeqOut is the wire's SND.NXT: the sequence number of a pure ACK (or
// RST) toward R. It counts what was sent, not what is stored: host A's
// Init1 is in the store before the third segment goes out, and a pure ACK
// numbered past bytes R has never seen would look out of order.
func (f *flow) wireSeqOut() uint32 {
	w := f.enc.sentW
	if f.enc.finW >= 0 && w >= f.enc.finW {
		w = f.enc.finW + 1
	}
	// Not past R's right edge (R dropped bytes it had no memory for, or
	// the frame overhead took L's data past it): R would find the segment
	// unacceptable and ignore its ACK (RFC 9293 §3.10.7.4), and a pure ACK
	// is all that can tell R its own data arrived. Linux numbers its ACKs
	// the same way (tcp_acceptable_seq).
	if edge := f.enc.ackW + int64(f.winR)<<f.wsR; w > edge {
		w = edge
	}
	return wrap(f.isnL, w)
}

// sendWire sends stored wire bytes [w, w+n) toward R in segments that fit
// the path, FIN and PSH on the last one only. A frame sealed before the path
// MTU fell thus goes out as several segments of its same bytes.
func (e *Engine) sendWire(f *flow, to TxSink, w int64, n int, flags uint8, hostEcho bool) {
	e.sendCut(f, to, w, n, f.segR(), flags, hostEcho)
}

// sendCut is sendWire in segments of segment size seg (MSS sense).
func (e *Engine) sendCut(f *flow, to TxSink, w int64, n, seg int, flags uint8, hostEcho bool) {
	room := max(seg-f.optLenR(), 1)
	for n > room {
		e.sendStored(f, to, w, room, flags&^(packet.FlagFIN|packet.FlagPSH), hostEcho)
		w += int64(room)
		n -= room
	}
	e.sendStored(f, to, w, n, flags, hostEcho)
}

// tailCut is how many of the n bytes to send in one super-frame whose
// payload, of gso-byte segments, is to be lent where it lies (sendTail)
// when only the first k of them are one piece (a ring's end follows): the
// whole segments before the end, or, where the first segment spans it,
// that segment alone (copied). The segments on the wire stay the same.
func tailCut(k, n, gso int) int {
	switch {
	case k >= n:
		return n
	case k >= gso:
		return k - k%gso
	}
	return min(n, gso)
}

// cutFlags is flags for a segment cut to n of the wanted bytes: FIN and
// PSH go with the last byte only.
func cutFlags(flags uint8, n, wanted int) uint8 {
	if n < wanted {
		return flags &^ (packet.FlagFIN | packet.FlagPSH)
	}
	return flags
}

// sendStored sends wire bytes [w, w+n) of our stream from the store toward R.
// hostEcho: the segment carries the host's data, so TSecr is the host's own
// latest echo; else the appliance speaks for it and echoes R's latest TSval.
func (e *Engine) sendStored(f *flow, to TxSink, w int64, n int, flags uint8, hostEcho bool) {
	e.fromStore(f, to, nil, w, n, 0, flags, hostEcho)
}

// sendSuper sends stored wire bytes [w, w+n), frames of gso bytes each but
// the last, toward R through g as super-frames whose segments are those
// frames, FIN and PSH (of flags) on the last segment only. The frames carry
// the host's data (sealNew): TSecr is the host's.
func (e *Engine) sendSuper(f *flow, g GSOSink, w int64, n, gso int, flags uint8) {
	for n > 0 {
		k := e.fromStore(f, g, g, w, n, gso, flags, true)
		w += int64(k)
		n -= k
	}
}

// fromStore sends wire bytes [w, w+n) from the store toward R as one
// segment, or, with g (to itself) and gso, as a super-frame of gso-byte
// segments holding as many of them as one frame takes. It returns how many
// bytes it sent (or counted as sent: TCP counts a segment the TX ring
// drops as sent too); FIN and PSH go only with the byte at w+n.
func (e *Engine) fromStore(f *flow, to TxSink, g GSOSink, w int64, n, gso int, flags uint8, hostEcho bool) int {
	e.opts.reset()
	f.tsToR(&e.opts, hostEcho)
	if f.enoOut {
		e.opts.eno()
	}
	ack, win := f.ackWinToR()
	s := seg{seq: wrap(f.isnL, w), ack: wrap(f.isnR, ack), win: win, opts: e.opts.bytes()}
	var buf []byte
	segs := 1
	nWanted := n
	if g != nil {
		buf = to.Buffer()
		if room := f.toR.superRoom(len(buf), f.toR.headerLen(&s), gso); buf != nil && n > room {
			n = max(room, min(n, gso))
		}
		if tailSink(g) != nil {
			n = tailCut(len(f.enc.store.at(w)), n, gso)
		}
		flags = cutFlags(flags, n, nWanted)
		segs = (n + gso - 1) / gso
	}
	s.flags = flags
	fresh := n > 0 && w >= f.enc.sentW
	f.enc.sentW = max(f.enc.sentW, w+int64(n)) // sent even if the TX ring drops it, as TCP counts
	f.ecnTo(Outside, &s, fresh)
	if g == nil {
		buf = to.Buffer()
	}
	if buf == nil {
		e.c.Drops[DropTxFull].Add(uint64(segs))
		return n
	}
	hl, pl := f.toR.build(buf, &s, n)
	if pl == nil {
		e.c.Drops[DropTxFull].Add(uint64(segs))
		return n
	}
	switch {
	case g != nil && e.sendTail(g, &f.toR, buf, hl, f.enc.store.span(w, int64(n)), gso):
	case g != nil:
		f.enc.store.read(pl, w)
		commitGSO(g, &f.toR, buf, hl, hl+n, gso)
	default:
		f.enc.store.read(pl, w)
		e.commit(to, &f.toR, buf, hl+n)
	}
	f.rcv.lastAckW = ack
	f.rcv.lastWin = s.win
	f.toldR(ack, s.win)
	f.pktsOut += uint64(segs)
	return n
}

// rstBoth resets both hosts of a flow that policy will not let go on in
// plain TCP. An ack of 0 sends a bare RST; otherwise RST|ACK.
func (e *Engine) rstBoth(f *flow, tx [2]TxSink, seqToL, ackToL, ackToR, seqToR uint32) {
	e.opts.reset()
	l := seg{seq: seqToL, flags: packet.FlagRST}
	if ackToL != 0 {
		l.ack, l.flags = ackToL, packet.FlagRST|packet.FlagACK
	}
	r := seg{seq: seqToR, ack: ackToR, flags: packet.FlagRST | packet.FlagACK}
	if f.toL.ok {
		e.send(tx[Inside], &f.toL, &l, nil)
	}
	if f.toR.ok {
		e.send(tx[Outside], &f.toR, &r, nil)
	}
	e.c.Aborts.Add(1)
}

// send builds and transmits one segment with the given payload.
func (e *Engine) send(to TxSink, t *tmpl, s *seg, payload []byte) bool {
	return e.send2(to, t, s, ringBytes{a: payload})
}

// send2 is send with the payload in up to two pieces.
func (e *Engine) send2(to TxSink, t *tmpl, s *seg, payload ringBytes) bool {
	buf := to.Buffer()
	if buf == nil {
		e.c.Drops[DropTxFull].Add(1)
		return false
	}
	n := payload.len()
	hl, pl := t.build(buf, s, n)
	if pl == nil {
		e.c.Drops[DropTxFull].Add(1)
		return false
	}
	payload.copyTo(pl)
	e.commit(to, t, buf, hl+n)
	return true
}
