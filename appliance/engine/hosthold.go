package engine

import (
	"unsafe"

	"github.com/tcpinc/tcpinc/appliance/packet"
)

// The inside host's segments past a hole in its stream. Frames are sealed
// in stream order (each frame's wire offset follows from every frame
// before it), so a segment of L's that arrives before an earlier one
// cannot be sealed yet. Dropping it cost L a retransmission for every
// reordered segment, and after a real loss (a full receive ring between
// L and the engine) it dropped everything L had in flight behind the
// hole, which L then resent after a timeout. A TCP receiver keeps such
// segments (RFC 9293 §3.10.7.4); so does the engine, within the same cap
// as its reassembly of the far side's bytes (Config.ReassemblyBytes), and
// seals them as soon as L fills the hole.

// hostHeld is a flow's held host bytes. A flow gets one the first time L
// leaves a hole (most never do), charged to the flow memory budget.
type hostHeld struct {
	hold ring  // H[nextH, ...): the held bytes at their offsets
	held spans // which of them are present (inlineSpans: no block, spans.go)
	fin  int64 // host offset of a FIN past the hole, -1 if none
}

const hostHeldSize = int64(unsafe.Sizeof(hostHeld{}))

// cost is what the flow is charged for h (none for a nil h).
func (h *hostHeld) cost() int64 {
	if h == nil {
		return 0
	}
	return hostHeldSize + int64(len(h.hold.b))
}

// hostHold keeps L's data [s, s+len(data)) (and FIN) past the hole at
// f.enc.nextH and tells L so (holdAck). Over the cap, or with too many
// separate ranges, the segment is dropped (host_gap): L sends it again.
func (e *Engine) hostHold(f *flow, s int64, data []byte, fin bool, to TxSink) Verdict {
	en := &f.enc
	h := en.hh
	if h == nil {
		if !e.mem.take(hostHeldSize, false) {
			return e.drop(DropHostGap)
		}
		h = &hostHeld{hold: ring{max: e.cfg.ReassemblyBytes, mem: e.mem}, fin: -1}
		en.hh = h
	}
	end := s + int64(len(data))
	if h.fin >= 0 && (end > h.fin || fin && end != h.fin) ||
		fin && h.held.top(end) > end {
		return e.drop(DropOutOfWindow) // data past L's FIN, or a second FIN: not L's TCP
	}
	live := h.held.top(en.nextH)
	if !h.hold.reserve(en.nextH, live, max(end, live)) || !h.held.add(s, end) {
		return e.drop(DropHostGap)
	}
	h.hold.write(s, data)
	if fin {
		h.fin = end
	}
	e.c.HostHeld.Add(1)
	e.holdAck(f, h, to)
	return Consumed
}

// holdAck answers a held segment as L's peer would (RFC 5681 §4.2, RFC
// 2018): at once, with a duplicate ACK whose SACK blocks name what the
// engine holds, the newest range first. After a loss between L and the
// engine that lets L resend the hole within a round trip. Without SACK on
// the connection the duplicate ACK goes without the option: L counts
// them, and the third starts its fast retransmit (RFC 5681 §3.2).
func (e *Engine) holdAck(f *flow, h *hostHeld, to TxSink) {
	if h.held.n == 0 {
		return
	}
	var blocks [4][2]uint32
	nb := 0
	put := func(r span) {
		blocks[nb] = [2]uint32{wrap(f.isnL, r.s), wrap(f.isnL, r.e)}
		nb++
	}
	if f.sackOK { // RFC 2018 §2: not unless both SYNs allowed it
		rs := h.held.rs()
		put(rs[h.held.last])
		for i := 0; i < len(rs) && nb < len(blocks); i++ {
			if i != int(h.held.last) {
				put(rs[i])
			}
		}
	}
	e.opts.reset()
	f.tsToL(&e.opts, false)
	e.opts.sack(blocks[:nb]) // as many as the option space takes
	s := seg{seq: f.hostSeqOut(), ack: wrap(f.isnL, f.ackToL()), flags: packet.FlagACK, win: f.scaleWin(f.winR), opts: e.opts.bytes()}
	if e.send(to, &f.toL, &s, nil) {
		e.c.DupAcksOriginated.Add(1)
	}
}

// sealHeld seals what L's last segment made contiguous: held bytes from
// f.enc.nextH on, and a held FIN once they reach it. A refusal (the
// retransmit store is full) leaves the rest held: L's retransmission of
// the hole's end brings the engine back here.
func (e *Engine) sealHeld(now int64, f *flow, to TxSink) {
	en := &f.enc
	h := en.hh
	for chunk := inOrder(&h.hold, &h.held, en.nextH); chunk != nil; chunk = inOrder(&h.hold, &h.held, en.nextH) {
		fin := h.fin == en.nextH+int64(len(chunk))
		if !e.sealNew(now, f, chunk, 0, fin, true, to) {
			return
		}
	}
	if h.fin >= 0 && h.fin == en.nextH && en.finH < 0 {
		if !e.sealNew(now, f, nil, 0, true, true, to) {
			return
		}
	}
	if en.finH >= 0 {
		h.fin = -1
		h.held = spans{}
	}
}
