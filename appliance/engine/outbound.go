package engine

import (
	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// fromInside handles a segment from the inside host L of a tracked flow.
func (e *Engine) fromInside(now int64, f *flow, p *packet.Packet, tx [2]TxSink) Verdict {
	f.hostAlive(now)
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
			return e.resendSYN(now, f, p, tx[Outside])
		}
		if fl&packet.FlagRST != 0 {
			if f.prev == nil && f.sim == 0 && e.rewriteOptions(p, nonSYNENO[:], tx[Outside]) {
				// Our SYN went out with ENO and no non-SYN segment has
				// come: every segment until one does carries ENO, this
				// RST too (RFC 8547 §4.6, ENO-26). With an old connection
				// displaced on the tuple the RST may be that one's.
				e.remove(f)
				return Forwarded
			}
			e.remove(f)
			return Passthrough
		}
		if e.crossingSYNACK(f, p) {
			if f.sim&simENO != 0 {
				return e.simSYNACK(now, f, p, tx)
			}
			// The host answers the SYN that crossed ours, without ENO
			// (ENO-33), unchanged; but the record still negotiates with
			// whoever answers our SYN, so the tuple stays off the fast
			// path (Passthrough would let the workers list it).
			return ForwardInPlace
		}
		if synAckElsewhere(p, f.isnL) {
			return e.asymmetric(f, p, Inside, tx)
		}
		return e.stale(now, f, p, Inside, tx)
	case stSynRcvd, stSynAckSent:
		if fl&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN|packet.FlagACK {
			if f.prev != nil || f.unknownPrev {
				if p.Ack() != f.isnR+1 {
					return e.stale(now, f, p, Inside, tx)
				}
				e.dropPrev(f) // the host accepted the new connection
			}
			return e.hostSYNACK(f, p, tx)
		}
		if fl&packet.FlagRST != 0 {
			if f.state == stSynAckSent && fl&packet.FlagSYN == 0 && e.rewriteOptions(p, nonSYNENO[:], tx[Outside]) {
				// Our SYN-ACK went out with ENO and no non-SYN segment
				// has come: every segment until one does carries ENO,
				// this RST too (RFC 8547 §4.6, ENO-26). Numbers are not
				// translated yet: no Init was sent.
				e.remove(f)
				return Forwarded
			}
			e.remove(f)
			return Passthrough
		}
		return e.stale(now, f, p, Inside, tx) // nothing but the SYN-ACK can come before the third segment
	}
	if fl&packet.FlagSYN != 0 {
		if f.role == 0 && fl&packet.FlagACK == 0 && f.state == stKex && p.Seq() == f.isnL {
			return e.resendSYN(now, f, p, tx[Outside])
		}
		if f.sim&simENO != 0 && f.role == 0 && f.state == stKex && f.isnR == f.simISN && e.crossingSYNACK(f, p) {
			return e.simSYNACK(now, f, p, tx) // R's SYN-ACK came first, or a repeat
		}
		return e.challengeL(now, f, tx) // RFC 5961 §4, on R's behalf
	}
	if fl&packet.FlagRST != 0 {
		return e.hostRST(f, p, tx[Outside])
	}
	return e.hostSegment(now, f, p, tx)
}

// nonSYNENO is the non-SYN-form option tcpcrypt sends: `45 02` (ENO-1).
var nonSYNENO = [eno.NonSYNLen]byte{eno.Kind, eno.NonSYNLen}

// hostRST forwards L's RST with translated numbers, without any payload
// (an RST may carry data: it would leave in plaintext), and forgets the flow.
func (e *Engine) hostRST(f *flow, p *packet.Packet, to TxSink) Verdict {
	s := unwrap(p.Seq(), f.isnL, f.enc.nextH)
	seq := f.wireSeqOut() // the host's SND.NXT (or beyond: queued pre-key bytes) is ours
	if s < f.enc.nextH {
		seq = wrap(f.isnL, f.enc.nextW+(s-f.enc.nextH))
	}
	e.opts.reset()
	if f.enoOut {
		e.opts.eno() // RFC 8547 §4.6: every segment until a non-SYN one arrives
	}
	r := seg{seq: seq, flags: packet.FlagRST, win: p.Window(), opts: e.opts.bytes()}
	if p.Flags()&packet.FlagACK != 0 {
		a := e.wireAckFromHost(f, unwrap(p.Ack(), f.isnR, f.rcv.ackH))
		r.ack, r.flags = wrap(f.isnR, a), packet.FlagRST|packet.FlagACK
	}
	e.send(to, &f.toR, &r, nil)
	e.remove(f)
	return Forwarded
}

// hostSegment handles data, FIN and ACKs from L once negotiated.
func (e *Engine) hostSegment(now int64, f *flow, p *packet.Packet, tx [2]TxSink) Verdict {
	if !p.VerifyL4Checksum() {
		return e.drop(DropChecksum) // the receiver would have dropped it: never seal it
	}
	if e.strayAtL(f, p) {
		e.bypassed(f, p, tx)
		return Consumed
	}
	f.ecnFrom(Inside, p)
	f.toR.follow(p)
	si := &e.si
	en, d := &f.enc, &f.rcv
	fl := p.Flags()
	if fl&packet.FlagACK != 0 {
		si.dropNudgeDSACK(p.Ack())
	}
	prevAckH, prevWinL, sent := d.ackH, f.winL, d.sentH
	ackW := e.hostACK(now, f, p, tx)
	switch {
	case f.state != stOpen:
	case si.nsack > 0 && f.sackOK:
		e.hostLost(f, tx[Inside])
	case !f.sackOK && fl&(packet.FlagACK|packet.FlagFIN) == packet.FlagACK && len(p.Payload()) == 0 &&
		d.ackH == prevAckH && f.winL == prevWinL && unwrap(p.Ack(), f.isnR, d.ackH) == d.ackH:
		e.hostDupAck(f, tx[Inside])
	}
	pushed := d.sentH
	if d.roomWait {
		// L's ACK may have freed room for R's frames that wait for it.
		d.roomWait = false
		if e.drain(now, f, tx); f.state == stDead {
			return Consumed
		}
	}
	if d.releaseEnd != 0 && pushed > sent && sent < d.releaseEnd && d.sentH == pushed && f.state == stOpen {
		// L's ACK opened its window (RFC 9293 §3.8.6) for more of a
		// release that did not fit it (pushPlain): L is nudged for its
		// ACK of what it got, as for a piece the ring let go (drain,
		// which nudged already if it sent). The release ends when L has
		// acknowledged all of it (startRelease).
		e.nudgeL(f, tx[Inside])
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
	// A keep-alive probe sits one below the host's SND.UNA: the end of its
	// data, or its FIN once R acknowledged that (FIN-WAIT-2, where Linux
	// probes at the FIN with no data).
	una := top
	if en.finW >= 0 && en.ackW > en.finW {
		una = en.finH + 1
	}
	probe := s == una-1 && en.ackH == top
	if len(data) == 0 && !fin {
		if probe {
			return e.keepAliveToR(f, p, tx[Outside])
		}
		if ackW == d.lastAckW && f.winToR() == d.lastWin && !d.answer && !f.enoOut && si.nsack == 0 {
			e.c.AcksSuppressed.Add(1) // would be a spurious duplicate ACK on the wire
			return Consumed
		}
		if e.ackRelease(f, ackW) {
			return Consumed
		}
		d.answer = false
		e.ackR(f, tx[Outside], si)
		return Forwarded
	}
	if len(data) <= 1 && !fin && probe {
		return e.keepAliveToR(f, p, tx[Outside])
	}
	if ackW != d.lastAckW {
		e.ackRelease(f, ackW) // L's data acknowledges part of a release: R gets the ACK it last got
		defer e.ackOwedR(f, tx[Outside])
	}
	if d.held.n > 0 && f.sackOK && f.state == stOpen {
		// R's bytes past a hole are held: a plain receiver's data
		// segments, new or resent, would carry their SACK blocks (RFC
		// 2018 §4); ours have no room for them (cut to R's MSS with
		// timestamps), so a duplicate ACK with them follows at the
		// round's end. Else a lost duplicate ACK leaves R's sender blind
		// to the hole while L sends.
		e.dupAckSoon(f, tx[Outside])
	}
	end := s + int64(len(data))
	first := len(data) // L's (first) segment, of a super-segment too
	if g := p.SegSize(); g > 0 {
		first = min(first, g)
	}
	if en.frames.n > 0 && !fin && end <= en.nextH {
		e.hostResized(f, p, s, first) // before hostSized takes this segment
	}
	if size := first + p.TCPHeaderLen() - 20; first > 0 && (size > int(f.segMaxL) || f.resegR != 0) {
		f.hostSized(size)
	}
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
	if en.finH >= 0 {
		return e.drop(DropOutOfWindow) // data past the host's own FIN
	}
	if s > en.nextH {
		return e.hostHold(f, s, data, fin, tx[Inside])
	}
	// The data with the frame's bytes in front of it: room to seal it
	// where it lies (sealFrame).
	off := p.PayloadOffset()
	src := p.Frame()[:off+len(data)]
	if s < en.nextH {
		e.retransmit(f, s, en.nextH, tx) // the old part, whole frames from the store
		off += int(en.nextH - s)
	}
	if !e.sealSegs(now, f, src, off, p.SegSize(), fin, fl&packet.FlagPSH != 0, tx[Outside]) {
		return e.drop(DropStoreFull)
	}
	if en.hh != nil {
		e.sealHeld(now, f, tx[Outside])
	}
	return Forwarded
}

// hostACK takes in what every segment from L carries: its timestamps, its
// window (which may let plaintext waiting for it go) and its ACK, which
// frees R's frames. It returns the ACK's wire translation.
func (e *Engine) hostACK(now int64, f *flow, p *packet.Packet, tx [2]TxSink) (ackW int64) {
	si := &e.si
	d := &f.rcv
	fl := p.Flags()
	if si.hasTS {
		f.tsL, f.ecrL = newerTS(f.tsL, si.tsVal), si.tsEcr
	}
	win := p.Window()
	f.winL = win
	if fl&packet.FlagURG != 0 {
		e.c.URGStripped.Add(1) // docs/protocol.md §13: not generated; the data goes on as normal data
	}
	ackW = f.ackToR()
	if fl&packet.FlagACK != 0 {
		ackW = e.wireAckFromHost(f, unwrap(p.Ack(), f.isnR, d.ackH))
	}
	e.closeCheck(now, f)
	if d.sentH < d.nextH || (d.finH >= 0 && !d.finOut) {
		e.pushPlain(f, tx[Inside], false) // L's ACK or window update makes room
	}
	return ackW
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
		d.ackWait &^= ackLRedelivered
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

// keepAliveToR translates a keep-alive probe (seq = next-1, 0 or 1 byte):
// it goes to R at the wire offset next-1 and never enters the frame stream.
func (e *Engine) keepAliveToR(f *flow, p *packet.Packet, to TxSink) Verdict {
	e.c.KeepAlives.Add(1)
	e.opts.reset()
	if e.si.hasTS {
		e.opts.ts(f.tsL, e.si.tsEcr) // never back in time (PAWS)
	}
	if f.enoOut {
		e.opts.eno() // RFC 8547 §4.6: every segment until a non-SYN one arrives
	}
	// L's window is in host space: R gets the one that fits ours (winToR).
	ack, win := f.ackWinToR() // not past a release's held ACK (release.go)
	s := seg{seq: f.wireSeqOut() - 1, ack: wrap(f.isnR, ack), flags: p.Flags(), win: win, opts: e.opts.bytes()}
	// Without the garbage byte: it is (or may be) plaintext, and the probe
	// works as well empty (the seq is below R's next anyway).
	if e.send(to, &f.toR, &s, nil) {
		f.toldR(ack, s.win)
	}
	return Forwarded
}

// queuePreKey keeps host data that arrives before the keys (bounded).
func (e *Engine) queuePreKey(f *flow, s int64, data []byte, fin bool, tx [2]TxSink) Verdict {
	en := &f.enc
	if s > en.preEnd && !en.preFIN {
		return e.drop(DropHostGap) // the host will resend the hole
	}
	if s != en.preEnd || en.preFIN {
		return Consumed // a retransmission of queued bytes
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
	// The queue is done with: its bytes go back to the budget (the
	// flow's charge counts only the buffers it still has, bufBytes).
	e.mem.give(int64(len(en.pre.b)))
	en.pre.b = nil
	e.sealNew(now, f, buf, 0, en.preFIN, true, tx[Outside])
	en.preFIN = false
}

// sealNew frames new host data src[off:] (and FIN) into frames no larger
// than R's MSS (or the path's, once lowered), keeps them in the store and
// sends them, as far as R's window takes them: the rest waits in the store
// for R's next ACK (sendHeld). src[:off] is the caller's room in front of
// the data (a received segment's headers), which sealing may use and puts
// back.
func (e *Engine) sealNew(now int64, f *flow, src []byte, off int, fin, psh bool, to TxSink) bool {
	return e.sealSegs(now, f, src, off, 0, fin, psh, to)
}

// sealSegs is sealNew for data that L sent in segments of seg bytes (a
// super-segment its port coalesced), 0 if unknown: no frame is larger than
// L's segments, which L sized for the path (its own black-hole detection,
// hostResized) and which its probes of a larger size must meet as they are.
func (e *Engine) sealSegs(now int64, f *flow, src []byte, off, seg int, fin, psh bool, to TxSink) bool {
	en := &f.enc
	data := src[off:]
	// The MSS counts payload only: leave room for the options we send
	// (timestamps, `45 02` while it lasts), as a TCP sender does.
	max := f.segR() - tcpcrypt.Overhead - f.optLenR()
	if max > tcpcrypt.MaxData {
		max = tcpcrypt.MaxData
	}
	if seg > 0 && seg < max {
		max = seg
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
	if !e.reserveLent(&en.store, lo, en.nextW, en.nextW+need) {
		// Refused by the budget with nothing in flight, the store takes
		// one frame of L's data whatever the budget says, as the
		// delivery ring keeps one (consume): else a budget others keep
		// full refused every retransmission of L's and stalled the flow
		// for good. L sends the rest of its segment again.
		one := min(len(data), max)
		if en.frames.n > 0 || need > int64(en.store.max) ||
			!e.grantLent(&en.store, lo, en.nextW, en.nextW+int64(one+tcpcrypt.Overhead), true) {
			return false
		}
		if one < len(data) {
			src, data, fin, psh = src[:off+one], data[:one], false, false
		}
		nfr, need = 1, int64(one+tcpcrypt.Overhead)
	}
	e.maybeRekey(now, f, len(data) == 0)
	// L's window (scaleWin) allows for the overhead of full frames: L's
	// short segments cost more wire bytes than that, and what does not fit
	// R's window waits (R drops what lies past its right edge).
	w0 := en.nextW
	wait := en.sentW < w0 || w0+need > f.edgeR()
	// Several frames through a port that takes super-frames leave as one:
	// the frames lie back to back in the store, every one but the last
	// of gso bytes, and their headers differ only where segmentation
	// makes them differ (the sequence number; FIN and PSH on the last).
	var g GSOSink
	gso := max + tcpcrypt.Overhead
	if nfr > 1 && gso <= f.segR()-f.optLenR() && f.ecnUniform(Outside) && !wait {
		g = gsoSink(to, &f.toR)
	}
	ok := true
	for i := 0; i < nfr && ok; i++ {
		n := min(len(src)-off, max)
		last := i == nfr-1
		ok = e.sealFrame(now, f, src[:off+n], off, fin && last, last && (psh || fin), to, g == nil && !wait)
		off += n
	}
	if wait {
		e.sendHeld(f, to)
	}
	if g != nil && en.nextW > w0 {
		flags := uint8(packet.FlagACK)
		if ok && (psh || fin) {
			flags |= packet.FlagPSH
		}
		if ok && fin {
			flags |= packet.FlagFIN
		}
		e.sendSuper(f, g, w0, int(en.nextW-w0), gso, flags)
	}
	if !ok {
		return false
	}
	if len(data) > 0 && f.keys.Owed() {
		// The data carried one owed rekey; the rest go as empty frames.
		// (An empty frame is sendOwed's own, which goes on in its loop.)
		e.sendOwed(now, f, to)
	}
	return true
}

// sendHeld sends R the sealed wire bytes that waited for its window
// (sealNew): from sentW up to R's right edge, with the FIN once every byte
// before it went.
func (e *Engine) sendHeld(f *flow, to TxSink) {
	en := &f.enc
	end := min(en.nextW, f.edgeR())
	if end <= en.sentW {
		return
	}
	flags := uint8(packet.FlagACK | packet.FlagPSH)
	if en.finW == end {
		flags |= packet.FlagFIN
	}
	// Segments as sendWire cuts them, no larger than L's own (resendSeg):
	// they are cut without regard to the frames, which follow L's
	// segments; a port that takes super-frames gets them as such (sealNew).
	seg := f.resendSeg()
	n, room := int(end-en.sentW), seg-f.optLenR()
	if g := gsoSink(to, &f.toR); g != nil && n > room && room > 0 && f.ecnUniform(Outside) {
		e.sendSuper(f, g, en.sentW, n, room, flags)
		return
	}
	e.sendCut(f, to, en.sentW, n, seg, flags, true)
}

// sealFrame seals one frame of data src[off:] (FIN: the frame ends the
// stream), keeps it in the store and, if send, sends it, PSH set if psh.
// src[:off] is room in front of the data (sealNew).
func (e *Engine) sealFrame(now int64, f *flow, src []byte, off int, fin, psh bool, to TxSink, send bool) bool {
	en := &f.enc
	n := len(src) - off
	sk, err := f.keys.Send(n, fin)
	if err != nil {
		return false
	}
	hdr := tcpcrypt.FrameHeader{Rekey: sk.Rekey, FIN: fin}
	wl := n + tcpcrypt.Overhead
	if dst := en.store.at(en.nextW); off >= 1 && len(dst) >= wl {
		// Sealed from where the data lies straight into the store (which
		// sealNew reserved): the AEAD does the copy. The byte in front
		// of the data lends its place to the frame's flags byte.
		keep := src[off-1]
		_, err = sk.Sealer.SealTo(dst, hdr, src[off-1:], uint64(en.nextW))
		src[off-1] = keep
	} else {
		buf := e.scratch[:wl]
		copy(buf[tcpcrypt.DataOffset:], src[off:])
		var fr []byte
		if fr, err = sk.Sealer.Seal(buf, hdr, n, uint64(en.nextW)); err == nil {
			en.store.write(en.nextW, fr)
		}
	}
	if err != nil {
		return false
	}
	if sk.Generation > en.forgotBelow {
		// Frames are resent from the store, never sealed again: the
		// older generations' sending keys can go at once (RFC 8548
		// §3.8, TC-60), however fast the far side rekeys.
		f.keys.Forget(sk.Generation)
		en.forgotBelow = sk.Generation
	}
	w := en.nextW
	rec := en.frames.add()
	rec.h, rec.w, rec.n, rec.wl, rec.fin, rec.fast = en.nextH, w, int32(n), int32(wl), fin, false
	owned := rec.owned()
	en.nextH += int64(n)
	en.nextW += int64(wl)
	en.genBytes += int64(wl)
	if fin {
		en.finH, en.finW = en.nextH, en.nextW
	}
	f.bytesOut += uint64(n)
	e.sealed++
	flags := uint8(packet.FlagACK)
	if psh {
		flags |= packet.FlagPSH
	}
	if fin {
		flags |= packet.FlagFIN
	}
	if send {
		e.sendWire(f, to, w, wl, flags, true)
	}
	if owned {
		en.ownedN++
		en.ownedDue, en.ownedRTO = now+int64(e.cfg.InitRTO), int64(e.cfg.InitRTO)
	}
	return true
}

// retransmit serves a host retransmission of [s, end) (end includes the FIN)
// whole from the store: same frames, same bytes, original key (TC-45, TC-59).
// Frames not sent yet wait for R's window (sendHeld): L's resending one
// stands in for a probe of that window.
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
		if fr.w >= en.sentW {
			if !sent {
				e.probeR(f, tx[Outside])
				sent = true
			}
			break
		}
		n := min(int64(fr.wl), en.sentW-fr.w) // what was sent of it: R's window took no more
		flags := uint8(packet.FlagACK)
		if fr.fin && n == int64(fr.wl) {
			flags |= packet.FlagFIN
		}
		e.sendCut(f, tx[Outside], fr.w, int(n), f.resendSeg(), flags, true)
		e.c.FrameRetransmits.Add(1)
		sent = true
	}
	switch {
	case !sent && f.sackOK && end <= f.ackToL():
		// R has it all, and acknowledged it: L resent what had
		// arrived. A receiver says so with a D-SACK (RFC 2883), which
		// is how a Linux sender learns that the path reorders and
		// widens its reordering window; without it, it takes the next
		// reordering for a loss again.
		e.dsackL(f, tx[Inside], s, end)
	case !sent || en.sentW < en.nextW:
		// R has it all: L missed our translated ACK. Or some of L's
		// bytes wait for R's window: L gets an ACK as a receiver
		// answers a window probe, with the window as it stands (0
		// while R's is shut), so a Linux sender keeps probing rather
		// than give up.
		e.ackL(f, tx[Inside], nil)
	}
}

// ackOwedR sends R a pure ACK of what L acknowledged on a data segment,
// when that segment did not take the ACK to R: it waits for R's window, is
// held past a hole in L's own stream, resends bytes R has, or was dropped.
// Else R heard of it only with L's next segment or at its retransmission
// timeout (the Tick sent such an ACK while the release it ended was still
// marked held). Not while L's ACK of a release is held (release.go).
func (e *Engine) ackOwedR(f *flow, to TxSink) {
	if f.state == stOpen && !f.releaseAckHeld() && f.ackToR() > f.rcv.lastAckW {
		e.ackR(f, to, nil)
	}
}

// dsackL sends L an ACK with a D-SACK block of its bytes [a, b), which it
// sent again after R had them.
func (e *Engine) dsackL(f *flow, to TxSink, a, b int64) {
	e.opts.reset()
	f.tsToL(&e.opts, false)
	blocks := [1][2]uint32{{wrap(f.isnL, a), wrap(f.isnL, b)}}
	e.opts.sack(blocks[:])
	s := seg{seq: f.hostSeqOut(), ack: wrap(f.isnL, f.ackToL()), flags: packet.FlagACK, win: f.scaleWin(f.winR), opts: e.opts.bytes()}
	f.ecnTo(Inside, &s, false)
	e.send(to, &f.toL, &s, nil)
	e.c.AcksOriginated.Add(1)
}

// probeR sends R a window probe (RFC 9293 §3.8.6.1): a pure ACK one below
// what R acknowledged, which R finds unacceptable and answers with an ACK
// that carries its window (as Linux probes, tcp_xmit_probe_skb). L's frames
// that wait for R's window go when that ACK opens it (wireACK).
func (e *Engine) probeR(f *flow, to TxSink) {
	e.opts.reset()
	f.tsToR(&e.opts, false)
	if f.enoOut {
		e.opts.eno()
	}
	ack, win := f.ackWinToR() // not past a release's held ACK (release.go)
	s := seg{seq: wrap(f.isnL, f.enc.ackW-1), ack: wrap(f.isnR, ack), flags: packet.FlagACK, win: win, opts: e.opts.bytes()}
	f.ecnTo(Outside, &s, false)
	if e.send(to, &f.toR, &s, nil) {
		f.rcv.lastAckW, f.rcv.lastWin = ack, s.win
		f.toldR(ack, s.win)
	}
	e.c.AcksOriginated.Add(1)
}
