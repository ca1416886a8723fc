package appliance

import (
	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/flow"
	"github.com/tcpinc/tcpinc/flowtable"
)

// flowEvent is what the owning worker learns about a flow from one TCP frame
// it handled.
type flowEvent struct {
	key   flow.Key // the frame's direction as seen on the wire
	now   int64    // when it was handled (ns, the appliance clock)
	flags uint8    // TCP flags
	pass  bool     // the handler's verdict was Passthrough (and not a fragment)
}

// Flow phases; each is a flowtable class with its own timeout.
const (
	phaseSynSent flowtable.Class = iota // a SYN seen, no SYN-ACK yet: flows.handshake_timeout
	phaseOpen                           // SYN-ACK from the other side seen: flows.idle_timeout
	phaseClosing                        // a FIN or RST seen: removed after flows.close_grace
	phaseOneWay                         // mid-stream, passed from one side only so far: flows.handshake_timeout
)

// flowState is the passthrough state of one connection, stored under the
// canonical key (both directions share it).
type flowState struct {
	phase   flowtable.Class
	synSide uint8 // endpoint of the canonical key that sent the SYN (0 or 1)
	passed  uint8 // phaseOneWay: bit s set when endpoint s's segment passed
	fast    bool  // entered into the fast-path map (both directions)
}

// expireBudget bounds the flows one expiry pass removes, so a pass never
// holds up a batch for long.
const expireBudget = 4096

// newFlowTable builds a worker's flow table: the class timeouts come from
// the configuration, and flows the table drops by itself go through
// w.onRemove.
func newFlowTable(w *worker, f config.Flows) *flowtable.Table[flowState] {
	cfg := flowtable.Config[flowState]{Capacity: f.Max, OnRemove: w.onRemove}
	cfg.IdleTimeout[phaseSynSent] = int64(f.HandshakeTimeout)
	cfg.IdleTimeout[phaseOpen] = int64(f.IdleTimeout)
	// A closing flow is never touched, so its idle time is the time since
	// the FIN or RST; a zero grace period still has to expire.
	cfg.IdleTimeout[phaseClosing] = max(int64(f.CloseGrace), 1)
	// Unconfirmed, and what a flood of forged segments fills: the first
	// to expire or to be evicted.
	cfg.IdleTimeout[phaseOneWay] = int64(f.HandshakeTimeout)
	return flowtable.New(cfg)
}

// passthrough is the fast-path logic: it follows each TCP flow's handshake
// and close, and once the FrameHandler has let a flow's frames through
// unchanged after its handshake (the engine's Passthrough: the far side did
// not negotiate, policy bypass, end-to-end TCP-ENO; always, without an
// engine), it enters both directions into the fast-path map. It never changes
// what is forwarded, only which path later frames take. A flow the handler
// rewrites (encrypted, or negotiating) never enters the map: no verdict of
// its frames is Passthrough while the handler keeps it.
type passthrough struct {
	fp FastPath // nil: fast path off
}

// apply runs one flow event on the owning worker.
func (p *passthrough) apply(w *worker, ev *flowEvent) {
	ck := ev.key.Canonical()
	side := uint8(0)
	if ck != ev.key {
		side = 1
	}
	st, ok := w.flows.Lookup(ck)
	f := ev.flags
	switch {
	case f&(packet.FlagFIN|packet.FlagRST) != 0:
		p.closing(w, ev, ck, st, ok)
	case f&packet.FlagSYN != 0 && f&packet.FlagACK == 0:
		p.syn(w, ev, ck, st, ok, side)
	case f&packet.FlagSYN != 0:
		p.synAck(w, ev, ck, st, ok, side)
	default:
		p.segment(w, ev, ck, st, ok, side)
	}
}

// closing: a FIN or RST. st, ok are the flow's entry under ck, if any.
func (p *passthrough) closing(w *worker, ev *flowEvent, ck flow.Key, st *flowState, ok bool) {
	t := w.flows
	if !ok {
		// A flow we no longer track (aged out of the table while
		// the kernel forwarded it, or older than this process):
		// its fast-path entries may exist, so remove them after
		// the grace period like any other.
		t.Insert(ck, flowState{phase: phaseClosing, fast: p.fp != nil}, phaseClosing, ev.now)
		return
	}
	if st.phase == phaseOneWay {
		// Known only mid-stream, as an untracked flow is: the map may
		// still list it (a port's fast path off, or the LRU map kept
		// one direction), so it is cleared after the grace period too.
		st.fast = p.fp != nil
	}
	if st.phase != phaseClosing {
		st.phase = phaseClosing
		t.SetClass(ck, phaseClosing, ev.now)
	}
}

// syn: a SYN without ACK from endpoint side of ck: a new connection.
func (p *passthrough) syn(w *worker, ev *flowEvent, ck flow.Key, st *flowState, ok bool, side uint8) {
	switch {
	case ok && st.fast:
		// A new connection on a tuple still in the fast path
		// (port reuse): take it out so the handshake is seen.
		p.removeFast(w, ck)
	case !ok && p.fp != nil:
		// The map may still list the tuple for an old connection
		// the table forgot (expired or evicted while the kernel
		// forwarded it, or a FIN lost on the way). Clear it, so no segment of
		// the new connection bypasses the workers before its
		// handshake is seen.
		p.purgeFast(w, ck)
	}
	w.flows.Insert(ck, flowState{phase: phaseSynSent, synSide: side}, phaseSynSent, ev.now)
}

// synAck: a SYN-ACK from endpoint side of ck opens the flow, and puts it on
// the fast path if the handler let it through.
func (p *passthrough) synAck(w *worker, ev *flowEvent, ck flow.Key, st *flowState, ok bool, side uint8) {
	if ok && st.phase == phaseSynSent && side != st.synSide {
		st.phase = phaseOpen
		w.flows.SetClass(ck, phaseOpen, ev.now)
		if p.fp != nil && ev.pass {
			st.fast = p.allowFast(w, ck)
		}
	}
}

// segment: any other segment, from endpoint side of ck.
func (p *passthrough) segment(w *worker, ev *flowEvent, ck flow.Key, st *flowState, ok bool, side uint8) {
	t := w.flows
	if !ok && ev.pass && p.fp != nil {
		// A connection the table does not know (older than this
		// process: a restart; or forgotten) that the handler let
		// through unchanged mid-stream: plain TCP (the engine passes
		// such a segment only when its tuple never negotiated
		// TCP-ENO). It goes back on the fast path once a segment from
		// the other side passed too: anyone can forge one side, and
		// listing every forged tuple would cost two map updates per
		// frame and push live flows out of the LRU map.
		t.Insert(ck, flowState{phase: phaseOneWay, passed: 1 << side}, phaseOneWay, ev.now)
		return
	}
	if !ok || st.phase == phaseClosing {
		return
	}
	t.Touch(ck, ev.now)
	if !ev.pass || p.fp == nil {
		return
	}
	switch st.phase {
	case phaseOneWay, phaseSynSent:
		// Or a SYN seen and never answered (a blind one on a live
		// plain connection's tuple, or the host's challenge ACK was
		// the answer): the handler passing segments means it took
		// the connection for plain again, and this entry would
		// otherwise keep it off the fast path for as long as it
		// sends (each segment refreshes the entry).
		st.passed |= 1 << side
		if st.passed == 3 {
			// Both ends speak: a live connection.
			st.phase = phaseOpen
			t.SetClass(ck, phaseOpen, ev.now)
			st.fast = p.allowFast(w, ck)
		}
	case phaseOpen:
		// The handler let go of a flow after its handshake (a
		// third segment without TCP-ENO, ENO-28): fast path now.
		if !st.fast {
			st.fast = p.allowFast(w, ck)
		}
	}
}

func (p *passthrough) allowFast(w *worker, ck flow.Key) bool {
	e1 := p.fp.AllowFastPath(ck)
	e2 := p.fp.AllowFastPath(ck.Reverse())
	if e1 != nil || e2 != nil {
		w.c[0].fastErrors.Add(1)
		// Half an entry would send one direction past the engine.
		p.removeFast(w, ck)
		return false
	}
	w.c[0].fastInserts.Add(1)
	return true
}

func (p *passthrough) removeFast(w *worker, ck flow.Key) {
	// Removing an absent entry is not an error (xsk.Bump.RemoveFastPath);
	// both directions are attempted regardless.
	e1 := p.fp.RemoveFastPath(ck)
	e2 := p.fp.RemoveFastPath(ck.Reverse())
	if e1 != nil || e2 != nil {
		w.c[0].fastErrors.Add(1)
		return
	}
	w.c[0].fastRemoves.Add(1)
}

// purgeFast removes both directions without counting a removal: usually
// there is nothing to remove.
func (p *passthrough) purgeFast(w *worker, ck flow.Key) {
	e1 := p.fp.RemoveFastPath(ck)
	e2 := p.fp.RemoveFastPath(ck.Reverse())
	if e1 != nil || e2 != nil {
		w.c[0].fastErrors.Add(1)
	}
}

// onRemove is called by the flow table for flows it drops by itself. A
// closing flow also leaves the fast-path map. An open flow that went idle in
// the table, or was evicted, stays in the map: the kernel forwards its frames
// without the worker seeing them, so idleness here says nothing, and the LRU
// map ages it out by itself.
func (w *worker) onRemove(k flow.Key, st *flowState, why flowtable.Reason) {
	if why == flowtable.Evicted {
		w.c[0].flowEvictions.Add(1)
	}
	if st.phase == phaseClosing && st.fast && w.pass.fp != nil {
		w.pass.removeFast(w, k)
	}
}

// expire drops flows whose time is up (see onRemove).
func (p *passthrough) expire(w *worker, now int64) {
	w.flows.Expire(now, expireBudget)
}
