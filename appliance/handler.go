package appliance

import (
	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet"
)

// Verdict is what a FrameHandler decided about one frame (engine.Verdict):
//
//   - engine.Passthrough: the worker forwards the frame unchanged out of the
//     other port, and the flow may go on the kernel fast path;
//   - engine.ForwardInPlace: the worker forwards the frame, which the handler
//     may have rewritten in place (same length), out of the other port; the
//     flow stays in user space;
//   - engine.Forwarded, engine.Consumed: the handler sent what had to go on
//     through the TxSinks (or nothing); the worker drops the input;
//   - engine.Dropped: the worker drops the input; the handler counts why.
type Verdict = engine.Verdict

// TxSink is one port's transmit side lent to a FrameHandler for one call:
// Buffer returns a free TX frame of that port (nil when none is free),
// Commit(n) queues its first n bytes for transmission with the worker's
// batch. Implemented over a Port by txQueue.
type TxSink = engine.TxSink

// FrameHandler decides what happens to the frames a worker owns: every TCP
// frame of a flow whose owner it is, and every ICMP error that quotes a TCP
// segment of such a flow. *engine.Engine implements it; Passthrough is the
// handler when no engine is configured. A handler belongs to one worker and
// is only ever called from that worker's goroutine, so it needs no locks.
//
// now is the worker's monotonic clock in nanoseconds; from is the port the
// frame arrived on (engine.Inside or engine.Outside); p is the worker's
// decoding of the frame (p.Frame() the frame, p.Err() what decoding
// returned: only IP fragments reach a handler undecoded), so the frame is
// parsed once; tx holds both ports' sinks, indexed by port. Tick runs
// timers: the worker calls it between batches, and at least every
// tickPeriod while idle.
type FrameHandler interface {
	HandlePacket(now int64, from engine.PortID, p *packet.Packet, tx [2]TxSink) Verdict
	Tick(now int64, tx [2]TxSink)
}

// Waker is a FrameHandler with work that finishes off the worker's
// goroutine (*engine.Engine: public-key jobs on the cryptopool). The worker
// gives it a function to call when such work is done; the call ends the
// worker's idle wait (bump.Wake), and the worker runs the handler's Tick at
// once.
type Waker interface {
	SetWake(fn func())
}

// Backlogged is a FrameHandler that wants to know when the worker falls
// behind its outside port (*engine.Engine: under a SYN flood it then drops
// what it would otherwise pass). The worker says so after every batch it
// takes from that port: behind when any worker's last batch was full (as
// many frames as its port returns a call, so more were waiting) or it held
// frames for a full lane.
type Backlogged interface {
	SetBacklog(behind bool)
}

// RoundEnder is a FrameHandler with work to do once a round's frames are
// all handled, before Tick (*engine.Engine: a duplicate ACK for a hole
// that a later frame of the round may have filled).
type RoundEnder interface {
	EndRound(now int64, tx [2]TxSink)
}

// The engine takes part in all of these.
var (
	_ Waker      = (*engine.Engine)(nil)
	_ Backlogged = (*engine.Engine)(nil)
	_ RoundEnder = (*engine.Engine)(nil)
)

// Passthrough is the FrameHandler of a bump without an engine: every frame
// leaves unchanged, and the workers put a TCP flow on the fast path once its
// handshake has been seen.
type Passthrough struct{}

// HandlePacket implements FrameHandler.
func (Passthrough) HandlePacket(int64, engine.PortID, *packet.Packet, [2]TxSink) Verdict {
	return engine.Passthrough
}

// Tick implements FrameHandler.
func (Passthrough) Tick(int64, [2]TxSink) {}

// NewHandlerFunc builds the FrameHandler of the worker for queue q. It is
// called once per worker, from New.
type NewHandlerFunc func(queue int) (FrameHandler, error)

// numVerdicts bounds engine.Verdict values (Forwarded=1 .. Dropped=5); slot
// 0 counts values a handler must not return.
const numVerdicts = int(engine.Dropped) + 1

var verdictNames = [numVerdicts]string{"invalid", "forwarded", "forward_in_place", "passthrough", "consumed", "dropped"}

// VerdictName is the snake_case name of v used in logs and metrics.
func VerdictName(v Verdict) string {
	if int(v) >= numVerdicts {
		return verdictNames[0]
	}
	return verdictNames[v]
}
