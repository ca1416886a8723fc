package afpacketport

import (
	"github.com/tcpinc/tcpinc/afpacket"
	"github.com/tcpinc/tcpinc/bump"
)

// encapSlots are the slots a port keeps for the segments of the TCP
// super-segments it cuts itself (cutEncap), beyond its RX and TX slots: a
// GRO super-segment of 64 KiB at an MSS of 1024 or more. Their pages are
// touched only when such super-segments come.
const encapSlots = 64

// cutEncap cuts a super-segment that inspectRx refused into encap slots,
// queued for the worker in rxPending as plain frames with complete
// checksums: a TCP super-segment inside IP-in-IP or GRE as the kernel's GRO
// makes them (afpacket.SegmentEncap), or one behind an IPv6 routing header
// with segments left (afpacket.SegmentRouted), whose checksum the kernel's
// GSO could not have made from the headers of a frame sent back. It
// returns nil if it did, afpacket.ErrNoRoom (counted in RxCutNoRoom) if
// such a super-segment found too few free encap slots (the worker holds
// the earlier ones' segments), any other error for a frame that is none;
// the frame's own slot stays the caller's.
func (p *Port) cutEncap(hb, f []byte) error {
	var h afpacket.VnetHdr
	if err := h.Decode(hb); err != nil {
		return err
	}
	if !h.IsGSO() {
		return afpacket.ErrNotTCP
	}
	free := min(len(p.encFree), cap(p.rxPending)-len(p.rxPending))
	top := len(p.encFree)
	for i := range free {
		p.encBufs[i] = p.slotBuf(p.encFree[top-1-i])[frameOff:]
	}
	cut := &p.rxEncap
	k, err := afpacket.SegmentEncap(f, h, p.encBufs[:free], p.encSizes[:free])
	if err == afpacket.ErrNotTCP {
		cut = &p.rxRouted
		k, err = afpacket.SegmentRouted(f, h, p.encBufs[:free], p.encSizes[:free])
	}
	if err == afpacket.ErrNoRoom {
		p.rxCutNoRoom.Add(1)
	}
	if err != nil {
		return err
	}
	for i := range k {
		slot := p.encFree[top-1-i]
		p.rxPending = append(p.rxPending, bump.Desc{Addr: uint64(slot)*slotSize + frameOff, Len: uint32(p.encSizes[i])})
	}
	p.encFree = p.encFree[:top-k]
	cut.Add(1)
	return nil
}

// takePending moves the queued segments of cut super-segments into descs
// and returns how many.
func (p *Port) takePending(descs []bump.Desc) int {
	n := copy(descs, p.rxPending)
	p.rxPending = p.rxPending[:copy(p.rxPending, p.rxPending[n:])]
	return n
}

// isEncapSlot reports whether slot is one of the encap slots.
func (p *Port) isEncapSlot(slot int32) bool {
	return int(slot) >= p.nrx+p.ntx && int(slot) < p.nrx+p.ntx+encapSlots
}
