// Package appliance runs the bump: two ports (inside, outside), one worker
// per queue index q that owns inside[q] and outside[q] (RX and TX of both),
// runs to completion and hands each frame of a TCP flow it owns to its
// FrameHandler (the engine, or Passthrough when none is configured).
//
// A worker's round: frames other workers handed over, a batch from the
// inside port, a batch from the outside port, the handler's Tick when due,
// one Transmit and Kick per port. For every frame: non-TCP frames are
// forwarded unchanged out of the other port; a TCP frame (or an ICMP error
// quoting TCP) goes to the worker that owns its flow, chosen by the
// symmetric hash of the 4-tuple, so both directions meet at one worker.
// With symmetric RSS that is the receiving worker; otherwise the frame is
// copied into a hand-off slot and passed through a flowtable.Ring (bounded,
// drops counted), and the owner processes and transmits it. The handler's
// verdict decides: Passthrough and ForwardInPlace forward the frame,
// Forwarded and Consumed leave the output to the handler (through TxSinks
// over the worker's TX queues), Dropped drops it.
//
// The fast-path logic watches each TCP flow's handshake and close: once the
// handler has let a flow through unchanged after its handshake, both
// directions go into the XDP fast-path map and the kernel forwards the rest
// without waking a worker. SYN, FIN and RST always reach the workers.
package appliance

import "github.com/tcpinc/tcpinc/bump"

// The vocabulary the core shares with the port backends (package bump),
// under the names the core and its users have always used.
type (
	// Desc names one frame of a port's buffer memory.
	Desc = bump.Desc
	// PortID says which side of the bump a port is on.
	PortID = bump.PortID
	// Port is one queue of one port as a worker sees it (bump.Port).
	Port = bump.Port
	// FastPath is the kernel fast path's flow map (bump.FastPath).
	FastPath = bump.FastPath
)

// Inside and Outside are the two ports. Inside faces the enclave's hosts,
// outside the untrusted network.
const (
	Inside  = bump.Inside
	Outside = bump.Outside
)
