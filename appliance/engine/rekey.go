package engine

import "github.com/tcpinc/tcpinc/appliance/tcpcrypt"

// maybeRekey starts a rekey by local policy (bytes or time under one
// generation, docs/protocol.md §14); the next frame carries the rekey bit.
// If that frame is empty (a refresh, or a FIN without data), the rekey
// waits while an empty rekey frame sent before is unanswered (TC-58: R
// has sent its FINp and answers nothing): started, it would make the
// frame, and every empty frame after it, fail (tcpcrypt.ErrEmptyRekey),
// so the flow could send neither refreshes nor its FIN. A data frame
// carries it later.
func (e *Engine) maybeRekey(now int64, f *flow, empty bool) {
	en := &f.enc
	due := (e.cfg.RekeyBytes > 0 && en.genBytes >= e.cfg.RekeyBytes) ||
		(e.cfg.RekeyAfter > 0 && now-en.genStart >= int64(e.cfg.RekeyAfter))
	if !due || f.keys.RekeyPending() || f.keys.FINSent() || empty && !f.keys.EmptyRekeyAllowed() {
		return
	}
	if f.keys.StartRekey() == nil {
		en.genBytes, en.genStart = 0, now
		e.c.Rekeys.Add(1)
		if e.deps.KeyLog != nil {
			e.logKeys(f)
		}
	}
}

// sendOwed answers the peer's rekeys at once, each with an empty frame
// carrying the rekey bit (TC-57), when no data frame went out to carry
// them: one frame per generation owed, in a loop, as far as R's window
// lets them go (the rest go at R's next ACK, wireACK).
func (e *Engine) sendOwed(now int64, f *flow, to TxSink) {
	if e.deps.KeyLog != nil {
		e.logKeys(f) // the peer's rekey raised the local generation
	}
	for f.keys.Owed() && f.enc.finH < 0 {
		if !f.emptyFrameFits() || !e.sealNew(now, f, nil, 0, false, true, to) {
			return // the rest at R's next ACK
		}
		e.c.RekeysAnswered.Add(1)
	}
}

// resendOwned retransmits the empty frames the appliance itself put in the
// stream (rekey frames: the host never retransmits those), with backoff.
func (e *Engine) resendOwned(now int64, f *flow, to TxSink) {
	en := &f.enc
	pending := false
	for i := 0; i < en.frames.n; i++ {
		fr := en.frames.at(i)
		if fr.owned() {
			e.sendWire(f, to, fr.w, int(fr.wl), 0x10, false)
			e.c.FrameRetransmits.Add(1)
			pending = true
		}
	}
	if !pending {
		en.ownedDue = 0
		return
	}
	en.ownedRTO *= 2
	en.ownedDue = now + en.ownedRTO
}

// emptyFrameFits reports whether an empty frame (Overhead bytes) fits R's
// window: past its right edge R drops it, and every segment after it, with
// the ACKs they carry (RFC 9293 §3.10.7.4).
func (f *flow) emptyFrameFits() bool {
	en := &f.enc
	return en.nextW+tcpcrypt.Overhead <= f.edgeR()
}

// edgeR is R's right edge: its ACK plus its window (RFC 9293 §3.8.6).
func (f *flow) edgeR() int64 { return f.enc.ackW + int64(f.winR)<<f.wsR }
