package appliance

import "github.com/tcpinc/tcpinc/flowtable"

// Hand-off of frames between workers. Without symmetric RSS a flow's frames
// can arrive on a queue whose worker does not own the flow; that worker
// copies the frame into a slot of the lane to the owner and pushes the slot
// through a flowtable.Ring. The owner handles the frame as if it had
// received it (the handler, forwarding, the fast-path logic) and transmits
// on its own queues: only the owner may, since each TX ring has one
// producer. Finished slots go back to the producer through a second ring.
// Both rings hold as many entries as the lane has slots, so neither push can
// fail. A lane out of free slots makes the worker keep the frame and try
// again in its next round (dispatch); only fragments and frames too big for
// a slot are dropped and counted. The owner's
// wake source is signalled at the end of the producer's round, so a
// sleeping owner takes the frames at once.
//
// A slot holds one wire frame: the largest frame a port carries
// (Options.MaxFrame, its MTU plus Ethernet header and tags), at least
// handoffSlotSize. A super-segment is handed over cut into its wire
// segments (handOffSegments), so a slot never needs more.
//
// Memory grows linearly with the number of workers: the lanes into one
// worker hold handoffInbox bytes of slots between them however many
// producers there are (laneSlots), and a lane's slots are allocated when
// it first carries a frame. Bigger slots mean fewer of them, never fewer
// than handoffMinSlots. With symmetric RSS (Options.RSS) only frames RSS
// cannot place (fragments, ICMP errors) are handed over.

const (
	// handoffInbox is the slot memory of all lanes into one worker.
	handoffInbox = 1 << 20
	// handoffSlotSize is the smallest slot: the largest UMEM frame
	// (config frame_size 4096).
	handoffSlotSize = 4096
	// handoffMaxSlotSize bounds Options.MaxFrame: the longest IP packet
	// an IPv6 length field can say (40 + 65535) behind an Ethernet
	// header and two VLAN tags.
	handoffMaxSlotSize = 14 + 8 + 40 + 65535
	// handoffMinSlots is the fewest slots a lane has, however many
	// workers share an inbox.
	handoffMinSlots = 4
)

// slotSize is the slot size for ports whose largest frame is maxFrame
// bytes (0: handoffSlotSize), rounded up to a cache line.
func slotSize(maxFrame int) int {
	return (max(maxFrame, handoffSlotSize) + 63) &^ 63
}

// laneSlots is the number of frames one lane of size-byte slots holds in
// flight when n workers run: with 4 KiB slots 256 for 2 workers, 4 from
// 65 workers on; with the slots of MTU 9000 (9,024 bytes) 116 for 2
// workers.
func laneSlots(n, size int) int {
	return max(handoffMinSlots, handoffInbox/size/max(n-1, 1))
}

// handoff names one frame in a lane's slot.
// The owner handles it on its own clock, which the handler needs monotonic.
type handoff struct {
	slot    uint32
	len     uint32
	from    PortID
	steered bool   // a fragment routed by its steering worker (fragsteer.go)
	gso     uint16 // Desc.GSO of a super-segment that fit a slot whole
}

// lane carries frames from one worker (the producer) to another (the owner).
type lane struct {
	frames *flowtable.Ring[handoff] // producer -> owner
	done   *flowtable.Ring[uint32]  // owner -> producer: slots handled
	buf    []byte                   // slots x size, allocated by the first push
	free   []uint32                 // producer's free slots
	slots  int
	size   int // bytes of a slot: the longest frame the lane carries
}

func newLane(slots, size int) *lane {
	return &lane{
		frames: flowtable.NewRing[handoff](slots),
		done:   flowtable.NewRing[uint32](slots),
		slots:  slots,
		size:   size,
	}
}

// push copies frame, a super-segment of gso-byte segments if gso is not
// 0, into a free slot and queues it for the owner (producer only). It
// reports false when the lane is full or the frame larger than a slot (a
// super-segment is then handed over in segments: handOffSegments).
func (l *lane) push(from PortID, frame []byte, steered bool, gso uint16) bool {
	if len(frame) > l.size {
		return false
	}
	if l.buf == nil {
		l.buf = make([]byte, l.slots*l.size)
		for i := range l.slots {
			l.free = append(l.free, uint32(i))
		}
	}
	if len(l.free) == 0 {
		for {
			s, ok := l.done.Pop()
			if !ok {
				break
			}
			l.free = append(l.free, s)
		}
		if len(l.free) == 0 {
			return false
		}
	}
	s := l.free[len(l.free)-1]
	l.free = l.free[:len(l.free)-1]
	copy(l.buf[int(s)*l.size:], frame)
	// Cannot fail: every slot is in at most one ring entry.
	l.frames.Push(handoff{slot: s, len: uint32(len(frame)), from: from, steered: steered, gso: gso})
	return true
}

// full reports whether push would find no free slot (producer only).
func (l *lane) full() bool {
	if len(l.free) > 0 || l.buf == nil {
		return false
	}
	for {
		s, ok := l.done.Pop()
		if !ok {
			break
		}
		l.free = append(l.free, s)
	}
	return len(l.free) == 0
}

// frame returns the bytes of h (owner only, until release).
func (l *lane) frame(h handoff) []byte {
	off := int(h.slot) * l.size
	return l.buf[off : off+int(h.len) : off+l.size]
}

// release gives h's slot back to the producer (owner only).
func (l *lane) release(h handoff) { l.done.Push(h.slot) }
