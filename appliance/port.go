// Package appliance runs the bump: two ports (inside, outside), one worker per
// (port, queue), each receiving a batch, deciding what to do with every frame
// and transmitting the batch on the other port.
//
// Today's decision is passthrough: every frame leaves unchanged, and a TCP
// flow whose handshake has been seen is entered into the XDP fast-path map so
// the kernel forwards the rest of it without waking a worker.
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
// queues them and Kick makes the port send. The RX side and the TX side of one
// Port are used by two different workers at once (worker (inside,q) receives
// on inside q and transmits on outside q), so an implementation must keep the
// two sides independent.
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
