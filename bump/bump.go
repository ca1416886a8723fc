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
//
// Csum says what the frame's checksums are worth (CsumWhole, the zero
// value, for every port without checksum offload).
//
// Tail, on a frame to transmit through a TailSender only, is the rest of
// the frame: the port sends the Len bytes of its buffer followed by Tail
// (scatter-gather), so that a sender need not copy a super-frame's payload
// into the buffer. The sender lends it: the port reads it no later than
// the Kick that sends the frame returns, and never writes to it.
// Len+len(Tail) still fits the frame's buffer.
type Desc struct {
	Addr uint64
	Len  uint32
	GSO  uint16
	Csum Csum
	Tail []byte
}

// MaxSuperFrame is the longest super-frame (Desc.GSO) a sender builds or
// a port merges frames into: 65535 bytes from the Ethernet header on.
// Linux segments a GSO packet as long as its device's gso_max_size (65536
// by default) or longer in software (gso_features_check), and a socket
// that bypasses the queueing layer cannot have that done: the kernel drops
// the frame (PACKET_QDISC_BYPASS, __dev_direct_xmit).
const MaxSuperFrame = 65535

// Csum is the state of a frame's L4 checksum (Desc.Csum), as a port with
// checksum offload knows it (package appliance/afpacketport: the
// virtio_net_hdr's NEEDS_CSUM and DATA_VALID).
type Csum uint8

const (
	// CsumWhole: the frame's checksums are complete, as on a wire, and
	// nobody has vouched for them: a receiver checks them itself.
	CsumWhole Csum = iota
	// CsumVerified: a received frame whose checksums are complete and
	// which the kernel vouches for: it checked them (a NIC's or GRO's
	// CHECKSUM_UNNECESSARY), or the frame never left this machine and its
	// port completed the sum (CHECKSUM_PARTIAL). Checking them again
	// proves nothing new.
	CsumVerified
	// CsumPartial: a frame to transmit whose TCP checksum the port must
	// have the kernel or the NIC compute (only on a ChecksumOffloader
	// port): its field holds nothing yet, its other headers are final.
	CsumPartial
)

// ChecksumOffloader is a Port that computes the TCP checksum of frames
// queued with Desc.Csum CsumPartial (the kernel's or the NIC's checksum
// offload), so the sender need not read the frame a second time to sum it.
type ChecksumOffloader interface {
	OffloadsChecksums() bool
}

// GSOSender is a Port that sends a TCP super-frame queued with Desc.GSO as
// the segments it stands for (the kernel's GSO, or the NIC's TSO), so a
// sender builds the headers of many segments once. SendsGSO may report
// false (a port configured to send frames one by one).
type GSOSender interface {
	SendsGSO() bool
}

// TailSender is a GSOSender that sends a super-frame's Desc.Tail after its
// buffer's bytes, and has read it by the time Kick returns. SendsTails may
// report false.
type TailSender interface {
	GSOSender
	SendsTails() bool
}

// Segmenter is a Port whose received frames may be TCP super-segments
// (Desc.GSO): it cuts one back into its wire segments, each written to
// out[i][:sizes[i]] with complete checksums, and returns how many, or an
// error (writing nothing) when out is too small. A worker that must hand
// a super-segment to another worker, whose slots hold one wire frame, uses
// it.
type Segmenter interface {
	Segment(frame []byte, mss int, out [][]byte, sizes []int) (int, error)
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
