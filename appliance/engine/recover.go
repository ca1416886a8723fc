package engine

import (
	"runtime/debug"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet"
)

// A bug in the engine that panics costs the connection it hit, not every
// connection through the appliance: without recovery the panic ends
// tcpincd, every encrypted connection is reset (their records are gone)
// and every plain one waits for the restart. HandlePacket and Tick recover,
// count the panic (Counters.Panics, the engine event "panics"; the status
// warns), log it with its stack at most once a second, reset what the
// engine keeps only within a call, and drop the suspect flow's record: the
// one being worked on (Engine.cur: the packet's, a timer's, or a finished
// public-key job's, which recovers on its own), else the packet's. A
// record half changed by the panic cannot be trusted to carry on, so one that
// negotiated TCP-ENO leaves its tuple in the negotiated set, as a daemon
// restart does: the hosts' next segments are reset as strays and nothing
// passes in plaintext. A plain connection goes on untracked. What Go cannot
// recover (a fatal error such as running out of memory) still ends the
// daemon.

// panicLogEvery bounds how often a recovered panic is logged with its stack.
const panicLogEvery = int64(time.Second)

// HandlePacket is Handle for a frame the caller has decoded already, so
// that a worker parses each frame once: p holds the decoding (Decode's
// outcome in p.Err). The engine may rewrite p's frame in place
// (ForwardInPlace) and keeps no reference to p after the call. A panic
// inside drops the frame (recovered).
func (e *Engine) HandlePacket(now int64, from PortID, p *packet.Packet, tx [2]TxSink) (v Verdict) {
	e.clock = now
	defer func() {
		if r := recover(); r != nil {
			v = e.recovered(r, now, p, from)
		}
	}()
	return e.handlePacket(now, from, p, tx)
}

// Tick runs timers: Init retransmission, rekeying by time, expiry, and the
// completions of public-key work. Call it between batches.
func (e *Engine) Tick(now int64, tx [2]TxSink) {
	e.clock = now
	defer func() {
		if r := recover(); r != nil {
			e.recovered(r, now, nil, 0)
		}
	}()
	e.tick(now, tx)
}

// EndRound ends a worker's round of frames: the duplicate ACKs owed for
// holes still open go (dupack.go). The worker calls it after each batch,
// before Tick; Handle calls it after its one frame.
func (e *Engine) EndRound(now int64, tx [2]TxSink) {
	e.clock = now
	defer func() {
		if r := recover(); r != nil {
			e.recovered(r, now, nil, 0)
		}
	}()
	e.endRound(tx)
}

// recovered handles a panic r that interrupted work on e.cur or on packet p
// (nil for Tick). The flow being worked on is the suspect; with none (the
// packet made a record, or the panic came before the lookup) the packet's
// flow is.
func (e *Engine) recovered(r any, now int64, p *packet.Packet, from PortID) Verdict {
	e.c.Panics.Add(1)
	suspect := e.cur
	e.cur = nil
	if suspect == nil && p != nil && p.Err() == nil && p.IsTCP() && !p.IsFragment() {
		suspect = e.flows[flowKeyOf(p, from)]
	}
	var id uint64
	if suspect != nil && suspect.state != stDead {
		id = suspect.id
		e.quarantine(suspect)
	}
	e.resetTransient()
	if _, ok := e.panicLog.allow(now, panicLogEvery, 1); ok {
		e.deps.Log.Error("engine bug: panic recovered, the flow it hit is dropped",
			"panic", r, "flow", id, "panics", e.c.Panics.Load(), "stack", string(debug.Stack()))
	}
	return Dropped
}

// resetTransient puts back what the engine keeps only for the length of a
// call, which a panic may have left half done: otherwise the next call
// would meet it (a held ACKs list with an entry taken out panicked at every
// Tick after, and the worker's timers never ran again).
//
// The held ACKs list keeps its live flows, each once, in their state: a
// flow's held ACK is the answer to R's resends it left unanswered
// (duplicate), and forgotten, R heard nothing until L's next ACK or its
// own retransmission timeout. Only the entries a panic in flushHeldAcks
// took out (nil) and the flow it dropped (dead) go.
func (e *Engine) resetTransient() {
	for _, f := range e.ackHeld {
		if f != nil {
			f.rcv.ackWait &^= ackListed
		}
	}
	keep := e.ackHeld[:0]
	for i, f := range e.ackHeld {
		e.ackHeld[i] = nil
		switch {
		case f == nil || f.rcv.ackWait&ackListed != 0: // taken out, or listed twice
		case f.state == stDead:
			f.rcv.ackWait &^= ackState // R hears L's next ACK
			f.rcv.releaseEnd = 0
		default:
			f.rcv.ackWait |= ackListed
			keep = append(keep, f)
		}
	}
	e.ackHeld = keep
	for _, f := range e.dupOwed {
		if f != nil {
			f.rcv.ackWait &^= ackDupOwed | ackDupListed // R hears of the hole at its next segment
		}
	}
	clear(e.dupOwed)
	e.dupOwed = e.dupOwed[:0]
	e.bareSYN = false
	e.hot = nil
}

// sessionDoneSafe is sessionDone for a job poll collected: a panic in it
// costs that flow only, and the jobs collected with it are still handled.
func (e *Engine) sessionDoneSafe(now int64, f *flow, tx [2]TxSink) {
	defer func() {
		if r := recover(); r != nil {
			e.cur = f
			e.recovered(r, now, nil, 0)
		}
	}()
	e.cur = f
	e.sessionDone(now, f, f.sessOut, f.sessErr, tx)
	e.cur = nil
}

// quarantine drops f's record after a panic. The tuple of a flow that
// negotiated TCP-ENO (every such record holds its tuple in the set, else it
// stayed plain: negotiated.go) stays in the negotiated set as long as after
// an idle expiry (IdleLinger): its hosts may hold the connection for days.
// One still in its SYN exchange negotiated nothing: it falls back to plain
// TCP as a record lost to a restart does. Should the record be too broken
// even to remove, it is taken out of the table as it is.
func (e *Engine) quarantine(f *flow) {
	defer func() {
		if recover() != nil {
			e.setState(f, stDead)
			func() {
				defer func() { _ = recover() }() // then it stays, dead, in the table
				e.detach(f)
			}()
		}
	}()
	f.idled = true
	f.reason = "engine panic"
	f.kexBusy = false // a job that came back in the same batch is done with its pair
	e.remove(f)
}
