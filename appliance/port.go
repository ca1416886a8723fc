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

import (
	"time"

	"github.com/tcpinc/tcpinc/xsk"
)

// Desc names one frame of a port's buffer memory (an AF_XDP UMEM, or the
// in-memory port's buffer): its address and length.
type Desc = xsk.Desc

// PortID says which side of the bump a port is on.
type PortID = xsk.PortID

// Inside and Outside are the two ports. Inside faces the enclave's hosts,
// outside the untrusted network.
const (
	Inside  = xsk.Inside
	Outside = xsk.Outside
)

// Port is one queue of one port as a worker sees it. It has two real
// implementations: an AF_XDP socket (xskPort) and MemPort, which holds frames
// in process memory so the same worker code runs without a kernel (the
// packet-in/packet-out tests and the benchmark drive it).
//
// The method set is the AF_XDP ring discipline. RX side: Receive hands out
// frames that stay owned by the caller until Release. TX side: GetTx hands
// out free frames, the caller fills Frame(d)[:n] and sets d.Len, Transmit
// queues them and Kick makes the port send. One worker drives both sides of
// a Port (and of its partner queue on the other port); Frame is also called
// by whoever injects frames in the in-memory port.
type Port interface {
	// Receive fills descs with up to len(descs) received frames and
	// returns how many. It does not block.
	Receive(descs []Desc) int
	// Frame returns the bytes of d: len d.Len, and for a TX frame a
	// capacity of the largest frame it can hold.
	Frame(d Desc) []byte
	// Release gives received frames back to the port.
	Release(descs []Desc)
	// GetTx fills descs with up to len(descs) free TX frames.
	GetTx(descs []Desc) int
	// Transmit queues filled TX frames and returns how many were queued;
	// the caller keeps the rest.
	Transmit(descs []Desc) int
	// Kick makes the port send what Transmit queued.
	Kick() error
	// Wait blocks until frames may be ready to Receive, or timeout.
	Wait(timeout time.Duration) error
}

// FastPath is the kernel fast path's flow map: flows listed in it are
// forwarded by the XDP program and never reach a worker. Implemented by
// xsk.Bump (the real BPF map) and MemBump (its in-memory model).
type FastPath interface {
	AllowFastPath(k xsk.FlowKey) error
	RemoveFastPath(k xsk.FlowKey) error
}
