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
// warns), log it with its stack at most once a second, and drop the suspect
// flows' records: the one being worked on (Engine.cur: the packet's, a
// timer's, a finished public-key job's) and the packet's. A record half
// changed by the panic cannot be trusted to carry on, so one that
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
	defer func() {
		if r := recover(); r != nil {
			e.recovered(r, now, nil, 0)
		}
	}()
	e.tick(now, tx)
}

// recovered handles a panic r that interrupted work on e.cur or on packet p
// (nil for Tick).
func (e *Engine) recovered(r any, now int64, p *packet.Packet, from PortID) Verdict {
	e.c.Panics.Add(1)
	suspect := e.cur
	e.cur = nil
	var other *flow
	if p != nil && p.Err() == nil && p.IsTCP() && !p.IsFragment() {
		other = e.flows[flowKeyOf(p, from)]
	}
	ids := [2]uint64{}
	for i, f := range [2]*flow{suspect, other} {
		if f != nil && f.state != stDead && (i == 0 || f != suspect) {
			ids[i] = f.id
			e.quarantine(f)
		}
	}
	if e.panicLogged == 0 || now-e.panicLogged >= panicLogEvery {
		e.panicLogged = now
		e.deps.Log.Error("engine bug: panic recovered, the flows it hit are dropped",
			"panic", r, "flow", ids[0], "packet_flow", ids[1], "panics", e.c.Panics.Load(), "stack", string(debug.Stack()))
	}
	return Dropped
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
			f.state = stDead
			func() {
				defer func() { _ = recover() }() // then it stays, dead, in the table
				e.detach(f)
			}()
		}
	}()
	f.idled = true
	f.reason = "engine panic"
	e.remove(f)
}
