package engine

import (
	"errors"

	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// fromInside handles a segment from the inside host L of a tracked flow.
func (e *Engine) fromInside(now int64, f *flow, p *packet.Packet, tx [2]TxSink) Verdict {
	fl := p.Flags()
	switch f.state {
	case stSynSent:
		if fl&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN {
			if p.Seq() != f.isnL {
				// A new connection on the tuple: start over.
				prev := f.prev
				f.prev = nil
				e.remove(f)
				return e.synOnTuple(now, f.key, prev, p, Inside, tx)
			}
			return e.resendSYN(f, p, tx[Outside])
		}
		if fl&packet.FlagRST != 0 {
			e.remove(f)
			return Passthrough
		}
		if e.crossingSYNACK(f, p) {
			return Passthrough // the host answers the SYN that crossed ours, without ENO (ENO-33)
		}
		return e.stale(now, f, p, Inside, tx)
	case stSynRcvd, stSynAckSent:
		if fl&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN|packet.FlagACK {
			if f.prev != nil {
				if p.Ack() != f.isnR+1 {
					return e.stale(now, f, p, Inside, tx)
				}
				e.dropPrev(f) // the host accepted the new connection
			}
			return e.hostSYNACK(f, p, tx)
		}
		if fl&packet.FlagRST != 0 {
			e.remove(f)
			return Passthrough
		}
		return e.stale(now, f, p, Inside, tx) // nothing but the SYN-ACK can come before the third segment
	}
	if fl&packet.FlagSYN != 0 {
		if f.role == 0 && fl&packet.FlagACK == 0 && f.state == stKex && p.Seq() == f.isnL && len(p.Payload()) == 0 {
			return e.resendSYN(f, p, tx[Outside])
		}
		return e.challengeL(now, f, tx) // RFC 5961 §4, on R's behalf
	}
	if fl&packet.FlagRST != 0 {
		return e.hostRST(f, p, tx[Outside])
	}
	return e.hostSegment(now, f, p, tx)
}

// fromOutside handles a segment from the far side R of a tracked flow.
func (e *Engine) fromOutside(now int64, f *flow, p *packet.Packet, tx [2]TxSink) Verdict {
	fl := p.Flags()
	if fl&packet.FlagRST != 0 && f.state < stKex {
		// A blind RST must not end the record: the SYN-ACK would then
		// pass untracked and the connection run in plain TCP. In
		// SYN-SENT an RST must acknowledge the SYN (RFC 9293
		// §3.10.7.3); else it must sit at R's next sequence number.
		if f.state == stSynSent && (fl&packet.FlagACK == 0 || p.Ack() != f.isnL+1) ||
			f.state != stSynSent && p.Seq() != f.isnR+1 {
			if f.prev != nil {
				return e.stale(now, f, p, Outside, tx) // the displaced connection's
			}
			return e.drop(DropOutOfWindow)
		}
		e.remove(f)
		return Passthrough
	}
	switch f.state {
	case stSynSent:
		if fl&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN|packet.FlagACK {
			return e.farSYNACK(now, f, p, tx)
		}
		if fl&packet.FlagSYN != 0 {
			// Simultaneous open: not negotiated on the inside host's
			// behalf (its SYN-ACK would have to repeat our SYN option,
			// ENO-31, and both SYNs carry b = 0, a role clash, ENO-30).
			// The connection goes on in plain TCP: the host's SYN-ACK
			// leaves without ENO (ENO-33) and no ACK from it carries ENO,
			// so the far side falls back too (ENO-34).
			if f.policy == Require {
				// No plain TCP with this prefix: hold the far SYN back.
				// The connection can then only go on through the far
				// side's SYN-ACK to our SYN, where negotiation decides
				// (or the policy resets both hosts).
				return e.drop(DropPolicy)
			}
			return e.crossingSYN(f, p)
		}
		if f.prev == nil && fl&packet.FlagACK != 0 {
			return e.synSentReset(now, f, p, tx)
		}
		return e.stale(now, f, p, Outside, tx)
	case stSynRcvd:
		if fl&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN && p.Seq() == f.isnR {
			e.clamp(f, p)
			return ForwardInPlace
		}
		if fl&(packet.FlagSYN|packet.FlagACK|packet.FlagRST) == packet.FlagSYN && f.prev != nil {
			// Another SYN while the one that displaced a connection
			// is unanswered (it may have been blind): it takes its place.
			prev := f.prev
			f.prev = nil
			e.remove(f)
			return e.synOnTuple(now, f.key, prev, p, Outside, tx)
		}
		if fl&packet.FlagSYN == 0 {
			return e.stale(now, f, p, Outside, tx)
		}
		return e.drop(DropStale)
	case stSynAckSent:
		if fl&packet.FlagSYN != 0 {
			if fl&packet.FlagACK == 0 && p.Seq() == f.isnR {
				e.clamp(f, p)
				return ForwardInPlace
			}
			return e.drop(DropStale)
		}
		// The first non-SYN segment: it must carry ENO (ENO-28). Only one
		// the inside host would accept decides (thirdAcceptable).
		if !e.thirdAcceptable(f, p) {
			return e.drop(DropOutOfWindow)
		}
		if !e.si.eno {
			return e.fallbackThird(f, p, tx, FallbackNoENOInACK, "third segment without TCP-ENO")
		}
		if f.res != nil {
			f.role = eno.RoleB
			e.resume(now, f, tx)
			if f.state == stDead {
				return Forwarded
			}
		} else if !e.startKex(now, f) {
			return e.fallbackThird(f, p, tx, -1, f.reason) // counted by startKex
		}
	}
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
	return e.wireSegment(now, f, p, tx)
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

// wireAckFromHost takes L's cumulative ACK of R's host stream and returns
// its wire translation.
func (e *Engine) wireAckFromHost(f *flow, ackH int64) int64 {
	d := &f.rcv
	limit := d.sentH // L cannot acknowledge what it was not sent (and the ring may no longer hold it)
	if d.finOut {
		limit = d.finH + 1
	}
	if ackH > limit || ackH < d.ackH-1<<30 {
		ackH = d.ackH
	}
	if ackH > d.ackH {
		d.ackH = ackH
	}
	for d.frames.n > 0 {
		fr := d.frames.at(0)
		if fr.h+int64(fr.n) > d.ackH || (fr.fin && d.ackH <= d.finH) {
			break
		}
		d.ackW = fr.w + int64(fr.wl)
		d.frames.pop()
	}
	return f.ackToR()
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

// hostSegment handles data, FIN and ACKs from L once negotiated.
func (e *Engine) hostSegment(now int64, f *flow, p *packet.Packet, tx [2]TxSink) Verdict {
	if !p.VerifyL4Checksum() {
		return e.drop(DropChecksum) // the receiver would have dropped it: never seal it
	}
	si := &e.si
	en, d := &f.enc, &f.rcv
	fl := p.Flags()
	if si.hasTS {
		f.tsL, f.ecrL = newerTS(f.tsL, si.tsVal), si.tsEcr
	}
	win := p.Window()
	f.winL = win
	f.pktsIn++
	if fl&packet.FlagURG != 0 {
		e.c.URGStripped.Add(1) // docs/protocol.md §13: not generated; the data goes on as normal data
	}
	ackW := f.ackToR()
	if fl&packet.FlagACK != 0 {
		ackW = e.wireAckFromHost(f, unwrap(p.Ack(), f.isnR, d.ackH))
	}
	e.closeCheck(now, f)
	if d.sentH < d.nextH || (d.finH >= 0 && !d.finOut) {
		e.pushPlain(f, tx[Inside], false) // L's ACK or window update makes room
	}
	data := p.Payload()
	fin := fl&packet.FlagFIN != 0
	top := en.nextH
	if f.state == stKex {
		top = en.preEnd
	}
	s := unwrap(p.Seq(), f.isnL, top)
	if f.state == stKex && !en.initSent && f.role == 0 {
		defer e.sendInit(now, f, tx[Outside]) // right after the third segment (or whatever L sends first)
	}
	if len(data) == 0 && !fin {
		if s == top-1 && en.ackH == top {
			return e.keepAliveToR(f, p, ackW, tx[Outside])
		}
		if ackW == d.lastAckW && f.winToR() == d.lastWin && !d.answer && !f.enoOut && si.nsack == 0 {
			e.c.AcksSuppressed.Add(1) // would be a spurious duplicate ACK on the wire
			return Consumed
		}
		d.answer = false
		e.ackR(f, tx[Outside], si)
		return Forwarded
	}
	if len(data) <= 1 && !fin && s == top-1 && en.ackH == top {
		return e.keepAliveToR(f, p, ackW, tx[Outside])
	}
	end := s + int64(len(data))
	if f.state == stKex {
		return e.queuePreKey(f, s, data, fin, tx)
	}
	finEnd := end
	if fin {
		finEnd++
	}
	known := en.nextH
	if en.finH >= 0 {
		known = en.finH + 1
	}
	if finEnd <= known {
		e.retransmit(f, s, finEnd, tx)
		return Forwarded
	}
	if s > en.nextH || en.finH >= 0 {
		return e.drop(DropOutOfWindow)
	}
	if s < en.nextH {
		e.retransmit(f, s, en.nextH, tx) // the old part, whole frames from the store
		data = data[en.nextH-s:]
	}
	if !e.sealNew(now, f, data, fin, fl&packet.FlagPSH != 0, tx[Outside]) {
		return e.drop(DropStoreFull)
	}
	return Forwarded
}

// keepAliveToR translates a keep-alive probe (seq = next-1, 0 or 1 byte):
// it goes to R at the wire offset next-1 and never enters the frame stream.
func (e *Engine) keepAliveToR(f *flow, p *packet.Packet, ackW int64, to TxSink) Verdict {
	e.c.KeepAlives.Add(1)
	e.opts.reset()
	if e.si.hasTS {
		e.opts.ts(f.tsL, e.si.tsEcr) // never back in time (PAWS)
	}
	s := seg{seq: f.wireSeqOut() - 1, ack: wrap(f.isnR, ackW), flags: p.Flags(), win: p.Window(), opts: e.opts.bytes()}
	// Without the garbage byte: it is (or may be) plaintext, and the probe
	// works as well empty (the seq is below R's next anyway).
	e.send(to, &f.toR, &s, nil)
	return Forwarded
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
	if si != nil && si.nsack > 0 {
		// L's SACK blocks (it lost a segment we delivered): whole frames,
		// in wire space, so R's appliance or host sees what L holds.
		var blocks [4][2]uint32
		nb := 0
		for i := 0; i < si.nsack; i++ {
			a := unwrap(si.sack[i][0], f.isnR, d.ackH)
			b := unwrap(si.sack[i][1], f.isnR, d.ackH)
			if wa, wb, ok := d.wireBlock(a, b); ok {
				blocks[nb] = [2]uint32{wrap(f.isnR, wa), wrap(f.isnR, wb)}
				nb++
			}
		}
		e.opts.sack(blocks[:nb])
	} else if d.held.n > 0 {
		// R's out-of-order bytes are held: every ACK says so (RFC 2018
		// §4), or R's SACK scoreboard would go stale.
		var blocks [4][2]uint32
		nb := f.heldSACK(&blocks)
		e.opts.sack(blocks[:nb])
	}
	if f.enoOut {
		e.opts.eno()
	}
	ack := f.ackToR()
	s := seg{seq: f.wireSeqOut(), ack: wrap(f.isnR, ack), flags: packet.FlagACK, win: f.winToR(), opts: e.opts.bytes()}
	if e.send(to, &f.toR, &s, nil) {
		d.lastAckW, d.lastWin = ack, s.win
		f.pktsOut++
	}
	if si == nil {
		e.c.AcksOriginated.Add(1)
	}
}

// queuePreKey keeps host data that arrives before the keys (bounded).
func (e *Engine) queuePreKey(f *flow, s int64, data []byte, fin bool, tx [2]TxSink) Verdict {
	en := &f.enc
	if s != en.preEnd || en.preFIN {
		return Consumed // a retransmission of queued bytes, or a gap: the host will resend
	}
	if !en.pre.reserve(en.nextH, en.preEnd, en.preEnd+int64(len(data))) {
		return e.drop(DropPreKeyFull)
	}
	en.pre.write(en.preEnd, data)
	en.preEnd += int64(len(data))
	en.preFIN = fin
	e.c.PreKeyQueued.Add(1)
	return Consumed
}

// flushPreKey seals the queued host data once keys exist.
func (e *Engine) flushPreKey(now int64, f *flow, tx [2]TxSink) {
	en := &f.enc
	if en.preEnd == en.nextH && !en.preFIN {
		return
	}
	n := int(en.preEnd - en.nextH)
	buf := make([]byte, n) // once per flow at most
	en.pre.read(buf, en.nextH)
	en.pre = ring{}
	e.sealNew(now, f, buf, en.preFIN, true, tx[Outside])
	en.preFIN = false
}

// sealNew frames new host data (and FIN) into frames no larger than R's MSS
// (or the path's, once lowered), keeps them in the store and sends them.
func (e *Engine) sealNew(now int64, f *flow, data []byte, fin, psh bool, to TxSink) bool {
	en := &f.enc
	// The MSS counts payload only: leave room for the options we send
	// (timestamps, `45 02` while it lasts), as a TCP sender does.
	max := f.segR() - tcpcrypt.Overhead - f.optLenR()
	if max > tcpcrypt.MaxData {
		max = tcpcrypt.MaxData
	}
	if max < 1 {
		max = 1
	}
	nfr := (len(data) + max - 1) / max
	if nfr == 0 {
		nfr = 1
	}
	need := int64(len(data) + nfr*tcpcrypt.Overhead)
	lo := min(en.ackW, en.nextW)
	if en.frames.n > 0 {
		// A frame R acknowledged in part is resent whole: keep all of it.
		lo = min(lo, en.frames.at(0).w)
	}
	if !en.store.reserve(lo, en.nextW, en.nextW+need) {
		return false
	}
	e.maybeRekey(now, f)
	for i := 0; i < nfr; i++ {
		n := min(len(data), max)
		last := i == nfr-1
		sk, err := f.keys.Send(n, fin && last)
		if err != nil {
			return false
		}
		hdr := tcpcrypt.FrameHeader{Rekey: sk.Rekey, FIN: fin && last}
		wl := n + tcpcrypt.Overhead
		buf := e.scratch[:wl]
		copy(buf[tcpcrypt.DataOffset:], data[:n])
		fr, err := sk.Sealer.Seal(buf, hdr, n, uint64(en.nextW))
		if err != nil {
			return false
		}
		en.store.write(en.nextW, fr)
		if sk.Generation > en.forgotBelow {
			// Frames are resent from the store, never sealed again: the
			// older generations' sending keys can go at once (RFC 8548
			// §3.8, TC-60), however fast the far side rekeys.
			f.keys.Forget(sk.Generation)
			en.forgotBelow = sk.Generation
		}
		rec := frameRec{h: en.nextH, w: en.nextW, n: int32(n), wl: int32(wl), fin: fin && last}
		en.frames.push(rec)
		en.nextH += int64(n)
		en.nextW += int64(wl)
		en.genBytes += int64(wl)
		if rec.fin {
			en.finH, en.finW = en.nextH, en.nextW
		}
		f.bytesOut += uint64(n)
		e.c.FramesSealed.Add(1)
		flags := uint8(packet.FlagACK)
		if last && (psh || fin) {
			flags |= packet.FlagPSH
		}
		if rec.fin {
			flags |= packet.FlagFIN
		}
		e.sendWire(f, to, rec.w, wl, flags, true)
		if rec.owned() {
			en.ownedN++
			en.ownedDue, en.ownedRTO = now+int64(e.cfg.InitRTO), int64(e.cfg.InitRTO)
		}
		data = data[n:]
	}
	if f.keys.Owed() {
		e.sendOwed(now, f, to)
	}
	return true
}

// retransmit serves a host retransmission of [s, end) (end includes the FIN)
// whole from the store: same frames, same bytes, original key (TC-45, TC-59).
func (e *Engine) retransmit(f *flow, s, end int64, tx [2]TxSink) {
	en := &f.enc
	sent := false
	for i := 0; i < en.frames.n; i++ {
		fr := *en.frames.at(i)
		fe := fr.h + int64(fr.n)
		if fr.fin {
			fe++
		}
		if fe <= s || fr.h >= end {
			if !(fr.n == 0 && fr.h >= s && fr.h < end) {
				continue
			}
		}
		flags := uint8(packet.FlagACK)
		if fr.fin {
			flags |= packet.FlagFIN
		}
		e.sendWire(f, tx[Outside], fr.w, int(fr.wl), flags, true)
		e.c.FrameRetransmits.Add(1)
		sent = true
	}
	if !sent {
		// R has it all: L missed our translated ACK.
		e.ackL(f, tx[Inside], nil)
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
	ack := f.enc.ackH
	if f.enc.finW >= 0 && f.enc.ackW > f.enc.finW {
		ack = f.enc.finH + 1
	}
	s := seg{seq: f.hostSeqOut(), ack: wrap(f.isnL, ack), flags: packet.FlagACK, win: f.scaleWin(f.winR), opts: e.opts.bytes()}
	e.send(to, &f.toL, &s, nil)
	if si == nil {
		e.c.AcksOriginated.Add(1)
	}
}

// hostRST forwards L's RST with translated numbers, without any payload
// (an RST may carry data: it would leave in plaintext), and forgets the flow.
func (e *Engine) hostRST(f *flow, p *packet.Packet, to TxSink) Verdict {
	s := unwrap(p.Seq(), f.isnL, f.enc.nextH)
	seq := f.wireSeqOut() // the host's SND.NXT (or beyond: queued pre-key bytes) is ours
	if s < f.enc.nextH {
		seq = wrap(f.isnL, f.enc.nextW+(s-f.enc.nextH))
	}
	r := seg{seq: seq, flags: packet.FlagRST, win: p.Window()}
	if p.Flags()&packet.FlagACK != 0 {
		a := e.wireAckFromHost(f, unwrap(p.Ack(), f.isnR, f.rcv.ackH))
		r.ack, r.flags = wrap(f.isnR, a), packet.FlagRST|packet.FlagACK
	}
	e.send(to, &f.toR, &r, nil)
	e.remove(f)
	return Forwarded
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
	if si.hasTS {
		f.tsR, f.ecrR = newerTS(f.tsR, si.tsVal), si.tsEcr
	}
	prevWin := f.winR
	f.winR = p.Window()
	f.pktsIn++
	hostAck := f.enc.ackH
	prevAckW := f.enc.ackW
	data := p.Payload()
	fin := fl&packet.FlagFIN != 0
	if fl&packet.FlagACK != 0 {
		aw := unwrap(p.Ack(), f.isnL, f.enc.ackW)
		hostAck = e.hostAckFromWire(f, aw)
		dup := aw == prevAckW && len(data) == 0 && !fin && p.Window() == prevWin
		e.ownedLoss(now, f, si, dup, tx[Outside])
		if f.keys != nil && f.keys.Owed() {
			e.sendOwed(now, f, tx[Outside]) // R's window may have room for it now
		}
	}
	e.closeCheck(now, f)
	w := unwrap(p.Seq(), f.isnR, d.rcvW)
	end := w + int64(len(data))
	if len(data) <= 1 && !fin && w == d.rcvW-1 && d.held.n == 0 {
		// A keep-alive probe (seq = next-1, 0 or 1 garbage byte): L must
		// answer it, not the appliance, and the byte is never framed.
		d.answer = true
		e.c.KeepAlives.Add(1)
		e.forwardAckToL(f, tx[Inside], si, hostAck, true)
		return Forwarded
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
	if end > d.ackW+int64(d.plain.max)+tcpcrypt.MaxFrameLen {
		// Past any window we advertised (never more than the re-delivery
		// cap beyond what L acknowledged, winToR): a sender ignoring it
		// would grow the frame map without bound while L acknowledges
		// nothing. TCP drops such data too (RFC 9293 §3.10.7.4).
		return e.drop(DropOutOfWindow)
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
		e.dupAckR(f, tx[Outside])
		return Forwarded
	}
	data = data[d.rcvW-w:]
	delivered := d.sentH
	if d.held.n == 0 && f.dec != nil {
		used, err := e.consume(now, f, data, tx)
		if err != nil {
			e.fail(f, tx, err)
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
		e.fail(f, tx, err)
		return Forwarded
	}
	if f.state == stDead {
		return Forwarded
	}
	if d.sentH == delivered && hostAck != f.lastHostAck {
		e.forwardAckToL(f, tx[Inside], si, hostAck, false)
	}
	return Forwarded
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

// forwardAckToL passes R's pure ACK (or keep-alive) on to L, translated,
// with R's SACK blocks turned into host blocks covering whole frames.
func (e *Engine) forwardAckToL(f *flow, to TxSink, si *segInfo, hostAck int64, keepAlive bool) {
	e.opts.reset()
	if si.hasTS {
		e.opts.ts(f.tsR, si.tsEcr)
	}
	var blocks [4][2]uint32
	nb := 0
	for i := 0; i < si.nsack; i++ {
		a := unwrap(si.sack[i][0], f.isnL, f.enc.ackW)
		b := unwrap(si.sack[i][1], f.isnL, f.enc.ackW)
		if ha, hb, ok := f.enc.hostBlock(a, b); ok {
			blocks[nb] = [2]uint32{wrap(f.isnL, ha), wrap(f.isnL, hb)}
			nb++
		}
	}
	e.opts.sack(blocks[:nb])
	seq := f.hostSeqOut()
	if keepAlive {
		seq--
	}
	s := seg{seq: seq, ack: wrap(f.isnL, hostAck), flags: packet.FlagACK, win: f.scaleWin(f.winR), opts: e.opts.bytes()}
	e.send(to, &f.toL, &s, nil)
	f.lastHostAck, f.lastWinR = hostAck, f.winR
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

// hold keeps wire bytes [w, w+len(data)) for later (bounded).
func (e *Engine) hold(f *flow, w int64, data []byte) bool {
	d := &f.rcv
	end := w + int64(len(data))
	live := d.rcvW
	if d.held.n > 0 {
		live = max(live, d.held.r[d.held.n-1].e)
	}
	if !d.reasm.reserve(d.rcvW, live, max(end, live)) {
		return false
	}
	if !d.held.add(w, end) {
		return false
	}
	d.reasm.write(w, data)
	return true
}

// drainHeld feeds held bytes that have become in order.
func (e *Engine) drainHeld(now int64, f *flow, tx [2]TxSink) error {
	d := &f.rcv
	for d.held.n > 0 && d.held.r[0].s <= d.rcvW {
		avail := d.held.r[0].e - d.rcvW
		if avail <= 0 {
			d.held.trim(d.rcvW)
			continue
		}
		chunk := d.reasm.at(d.rcvW)
		if int64(len(chunk)) > avail {
			chunk = chunk[:avail]
		}
		used, err := e.consume(now, f, chunk, tx)
		d.held.trim(d.rcvW)
		if err != nil {
			return err
		}
		if used == 0 {
			break // waiting for keys
		}
	}
	if err := e.wireFIN(f, tx); err != nil {
		return err
	}
	e.ackCustody(f, tx)
	return nil
}

// drain is drainHeld for callers with nowhere to report an error.
func (e *Engine) drain(now int64, f *flow, tx [2]TxSink) {
	if err := e.drainHeld(now, f, tx); err != nil {
		e.fail(f, tx, err)
	}
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
	if err := f.dec.Feed(chunk); err != nil {
		return used, err
	}
	d.rcvW += int64(len(chunk))
	used += len(chunk)
	for {
		fr, ok, err := f.dec.Next()
		if err != nil {
			return used, err
		}
		if !ok {
			break
		}
		e.c.FramesOpened.Add(1)
		e.deliver(f, &fr, tx[Inside])
	}
	if f.keys.Owed() {
		e.sendOwed(now, f, tx[Outside])
	}
	if f.ackOwed {
		f.ackOwed = false
		if a := e.wireAckFromHost(f, d.ackH); a != d.lastAckW {
			e.ackR(f, tx[Outside], nil)
		}
	}
	return used, nil
}

// deliver sends one opened frame's data to L at its host offset, in
// segments no larger than L's MSS, with FIN on the end of a FINp frame.
func (e *Engine) deliver(f *flow, fr *tcpcrypt.Frame, to TxSink) {
	d := &f.rcv
	rec := frameRec{h: d.nextH, w: int64(fr.Offset), n: int32(len(fr.Data)), wl: int32(fr.WireLen), fin: fr.FIN}
	d.frames.push(rec)
	held := d.plain.reserve(max(d.ackH, d.plainFrom), d.nextH, d.nextH+int64(len(fr.Data)))
	if held {
		d.plain.write(d.nextH, fr.Data)
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
		return
	}
	if !held || fr.URG {
		// Over the cap, or urgent: out at once, after what waits for
		// L's window (still in the ring: a failed reserve moves nothing).
		e.sendPending(f, to, rec.h)
		if !held {
			// These bytes cannot be re-delivered. Never send what the
			// ring does not hold.
			d.plainFrom = d.nextH
			e.c.Drops[DropDeliverFull].Add(1)
		}
		e.sendPlain(f, to, rec.h, fr.Data, fr.FIN, fr.URG, fr.Urgent)
		d.sentH, d.finOut = d.nextH, fr.FIN
		return
	}
	e.pushPlain(f, to, false)
}

// sendPlain sends host bytes starting at h to L.
func (e *Engine) sendPlain(f *flow, to TxSink, h int64, data []byte, fin, urg bool, urgent uint16) {
	mss := f.segL()
	if f.tsOK {
		mss -= 12 // the MSS counts payload only; our segments carry timestamps
	}
	ack := f.enc.ackH
	if f.enc.finW >= 0 && f.enc.ackW > f.enc.finW {
		ack = f.enc.finH + 1
	}
	for first := true; first || len(data) > 0; first = false {
		n := min(len(data), mss)
		last := n == len(data)
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
		if urg && first {
			// URGp (docs/protocol.md §13): the last urgent byte is urgent bytes
			// past the frame start; TCP's pointer counts from this segment.
			s.flags |= packet.FlagURG
			s.urg = urgent + 1
		}
		e.send(to, &f.toL, &s, data[:n])
		f.lastHostAck, f.lastWinR = ack, f.winR
		h += int64(n)
		data = data[n:]
	}
}

// duplicate answers a wire segment that lies wholly below rcvW: re-deliver
// what L has not acknowledged (the inside link may have lost it), or tell R
// again what we have.
func (e *Engine) duplicate(f *flow, w, end int64, tx [2]TxSink) {
	d := &f.rcv
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
		buf := e.scratch[:max(hi-lo, 0)]
		d.plain.read(buf, lo)
		e.sendPlain(f, tx[Inside], lo, buf, fin, false, 0)
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
	e.ackR(f, tx[Outside], nil)
}

// dupAckR tells R, after an out-of-order segment, what we have: the same
// cumulative ACK with SACK blocks in wire space (RFC 2018), so that R's
// fast retransmit works.
func (e *Engine) dupAckR(f *flow, to TxSink) {
	d := &f.rcv
	e.opts.reset()
	f.tsToR(&e.opts, false)
	var blocks [4][2]uint32
	nb := f.heldSACK(&blocks)
	e.opts.sack(blocks[:nb])
	s := seg{seq: f.wireSeqOut(), ack: wrap(f.isnR, d.lastAckW), flags: packet.FlagACK, win: f.winToR(), opts: e.opts.bytes()}
	if e.send(to, &f.toR, &s, nil) {
		e.c.DupAcksOriginated.Add(1)
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

// fail aborts after a peer error, counting authentication failures.
func (e *Engine) fail(f *flow, tx [2]TxSink, err error) {
	if errors.Is(err, tcpcrypt.ErrFrameAuth) {
		e.c.AuthFailures.Add(1)
	}
	if f.state == stKex {
		e.c.HandshakeFailures.Add(1)
	}
	e.abort(f, tx, err.Error())
}

// closeCheck schedules removal once both FINs are acknowledged.
func (e *Engine) closeCheck(now int64, f *flow) {
	if f.closeAt == 0 && f.enc.finW >= 0 && f.enc.ackW > f.enc.finW && f.rcv.finW >= 0 && f.rcv.ackH > f.rcv.finH {
		f.closeAt = now + int64(e.cfg.HandshakeTimeout)
		e.releaseBufs(f)
	}
}

// newerTS keeps the later of two TSvals (serial arithmetic): segments the
// appliance builds must never go back in time, or the host's PAWS check
// (RFC 7323 §5) would drop them after a reordered segment.
func newerTS(cur, v uint32) uint32 {
	if int32(v-cur) > 0 {
		return v
	}
	return cur
}
