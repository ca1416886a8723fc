// Package bump is the vocabulary the appliance's data-plane core (package
// appliance) shares with its port backends (AF_XDP in package
// appliance/afxdp over package xsk, in memory in package appliance/memport):
// the two sides of the bump ([PortID]), a frame of a port's buffer memory
// ([Desc]), one queue of one port as a worker drives it ([Port]) and the
// kernel fast path's flow map ([FastPath]). The core programs against these
// and never imports a backend; a backend implements them and never imports
// the core. The package is portable and holds no logic.
package bump

import (
	"fmt"
	"time"

	"github.com/tcpinc/tcpinc/flow"
)

// PortID says which side of the bump a port is on. It indexes the [2]
// arrays of per-port state everywhere (ports, TX sinks, counters).
type PortID uint8

// Inside and Outside are the two ports. Inside faces the enclave's hosts,
// outside the untrusted network.
const (
	Inside  PortID = 0
	Outside PortID = 1
)

// Other is the port across the bump from p.
func (p PortID) Other() PortID { return 1 - p }

// Index is p as an index of the [2] arrays of per-port state: 0 for
// Inside, 1 for any other value.
func (p PortID) Index() int {
	if p == Inside {
		return 0
	}
	return 1
}

func (p PortID) String() string {
	switch p {
	case Inside:
		return "inside"
	case Outside:
		return "outside"
	}
	return fmt.Sprintf("PortID(%d)", int(p))
}

// Desc names one frame of a port's buffer memory (an AF_XDP UMEM, or the
// in-memory port's buffer): Addr is the offset of the first byte of packet
// data, Len the number of bytes. A Desc is a plain value; the frame it names
// is owned by exactly one party at a time (see Port).
//
// GSO is nonzero for a TCP super-segment (a port with segmentation offload,
// package appliance/afpacketport): a frame whose TCP payload stands for
// several segments of GSO payload bytes each (the last may be shorter), as
// the sender cut them. A receiving port sets it; the worker keeps it on a
// frame it forwards unchanged, so the transmitting port cuts the frame into
// the same segments again. Frames a handler builds leave with GSO 0. Ports
// without offload never set it and ignore it.
type Desc struct {
	Addr uint64
	Len  uint32
	GSO  uint16
}

// Port is one queue of one port as a worker sees it. Implementations: an
// AF_XDP socket (package appliance/afxdp) and memport.Port, which holds
// frames in process memory so the same worker code runs without a kernel
// (the packet-in/packet-out tests and the benchmark drive it).
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

// PairWaiter is a Port that can wait on itself, another port of its own
// kind and the worker's wake source (nil: none) at once (one poll(2) over
// two AF_XDP sockets and an eventfd): a worker's inside and outside queue.
// handled is false when other is of another kind; the worker then waits on
// each in turn. woke reports that the wake source ended the wait.
type PairWaiter interface {
	WaitPair(other Port, wake *Wake, timeout time.Duration) (handled, woke bool, err error)
}

// FdPoller is a Port that waits in poll(2): its worker's wake source needs
// an eventfd (Wake.OpenFd).
type FdPoller interface{ WaitsInPoll() }

// FastPath is the kernel fast path's flow map: flows listed in it are
// forwarded by the XDP program and never reach a worker. Keys are one
// direction each. Implemented by xsk.Bump (the real BPF map) and
// memport.Bump (its in-memory model). Removing an absent key is not an
// error.
type FastPath interface {
	AllowFastPath(k flow.Key) error
	RemoveFastPath(k flow.Key) error
}
