package packet

import (
	"encoding/binary"
	"math/bits"
)

// In-place writers. Each keeps the checksums that cover the changed bytes
// correct with an incremental update (RFC 1624), so a frame that was valid
// stays valid and a frame with a bad checksum stays bad (the update never
// "repairs" a corrupted segment into a valid one).

// PatchTCP overwrites the bytes at frame offset off, which must lie inside the
// TCP header (fixed part or options), with b, and updates the TCP checksum.
// Use it for option values (SACK blocks, timestamps) located with Options.
// It does not change the checksum field itself (offsets 16-17 are refused).
func (p *Packet) PatchTCP(off int, b []byte) error {
	if p.flags&flagTCP == 0 {
		return ErrNotTCP
	}
	if off < p.l4 || len(b) > p.pay-off || (off < p.l4+18 && off+len(b) > p.l4+16) {
		return ErrOutOfRange
	}
	dst := p.b[off : off+len(b)]
	if string(dst) == string(b) {
		return nil // a true no-op: leave a 0xffff checksum as it is
	}
	hc := binary.BigEndian.Uint16(p.b[p.l4+16:])
	hc = UpdateBytes(hc, (off-p.l4)&1 == 1, dst, b)
	copy(dst, b)
	binary.BigEndian.PutUint16(p.b[p.l4+16:], hc)
	return nil
}

func (p *Packet) set32(o int, v uint32) error {
	if p.flags&flagTCP == 0 {
		return ErrNotTCP
	}
	f := p.b[p.l4+o:]
	old := binary.BigEndian.Uint32(f)
	if old == v {
		return nil
	}
	binary.BigEndian.PutUint32(f, v)
	c := p.b[p.l4+16:]
	binary.BigEndian.PutUint16(c, Update32(binary.BigEndian.Uint16(c), old, v))
	return nil
}

func (p *Packet) set16(o int, v uint16) error {
	if p.flags&flagTCP == 0 {
		return ErrNotTCP
	}
	f := p.b[p.l4+o:]
	old := binary.BigEndian.Uint16(f)
	if old == v {
		return nil
	}
	binary.BigEndian.PutUint16(f, v)
	c := p.b[p.l4+16:]
	binary.BigEndian.PutUint16(c, Update16(binary.BigEndian.Uint16(c), old, v))
	return nil
}

// SetSeq sets the TCP sequence number and updates the checksum.
func (p *Packet) SetSeq(v uint32) error { return p.set32(4, v) }

// SetAck sets the TCP acknowledgement number and updates the checksum.
func (p *Packet) SetAck(v uint32) error { return p.set32(8, v) }

// SetWindow sets the TCP window field and updates the checksum.
func (p *Packet) SetWindow(v uint16) error { return p.set16(14, v) }

// SetFlags sets the TCP flags byte and updates the checksum.
func (p *Packet) SetFlags(f uint8) error {
	if p.flags&flagTCP == 0 {
		return ErrNotTCP
	}
	w := binary.BigEndian.Uint16(p.b[p.l4+12:])
	return p.set16(12, w&0xff00|uint16(f))
}

// SetQuotedSeq rewrites the sequence number of the TCP header quoted in an ICMP
// error and updates the ICMP checksum (for ICMPv6 the pseudo-header does not
// change). If the quote reaches the inner TCP checksum it is updated as well, so
// the quoted header stays consistent.
func (p *Packet) SetQuotedSeq(v uint32) bool {
	o, ok := p.quotedTCP()
	if !ok {
		return false
	}
	old := binary.BigEndian.Uint32(p.b[o+4:])
	if old == v {
		return true
	}
	binary.BigEndian.PutUint32(p.b[o+4:], v)
	p.icmpUpdate32(o+4, old, v)
	if p.q.End-o >= 18 {
		c := p.b[o+16:]
		oc := binary.BigEndian.Uint16(c)
		nc := Update32(oc, old, v)
		binary.BigEndian.PutUint16(c, nc)
		p.icmpUpdate16(o+16, oc, nc)
	}
	return true
}

// SetMTU rewrites the MTU of a path-MTU message (see MTU) and updates the ICMP
// checksum. For IPv4 the value is truncated to 16 bits.
func (p *Packet) SetMTU(mtu uint32) bool {
	if !p.IsPathMTU() {
		return false
	}
	if p.version == 4 {
		o := p.l4 + 6
		old := binary.BigEndian.Uint16(p.b[o:])
		if old == uint16(mtu) {
			return true
		}
		binary.BigEndian.PutUint16(p.b[o:], uint16(mtu))
		p.icmpUpdate16(o, old, uint16(mtu))
		return true
	}
	o := p.l4 + 4
	old := binary.BigEndian.Uint32(p.b[o:])
	if old == mtu {
		return true
	}
	binary.BigEndian.PutUint32(p.b[o:], mtu)
	p.icmpUpdate32(o, old, mtu)
	return true
}

// icmpUpdate16/32 fix the ICMP checksum for a field at frame offset o changing.
// The parity of o relative to the ICMP header decides the byte lanes.
func (p *Packet) icmpUpdate16(o int, old, new uint16) {
	c := p.b[p.l4+2:]
	hc := binary.BigEndian.Uint16(c)
	if (o-p.l4)&1 == 1 {
		old, new = bits.ReverseBytes16(old), bits.ReverseBytes16(new)
	}
	binary.BigEndian.PutUint16(c, Update16(hc, old, new))
}

func (p *Packet) icmpUpdate32(o int, old, new uint32) {
	c := p.b[p.l4+2:]
	hc := binary.BigEndian.Uint16(c)
	if (o-p.l4)&1 == 1 {
		var a, b [4]byte
		binary.BigEndian.PutUint32(a[:], old)
		binary.BigEndian.PutUint32(b[:], new)
		hc = UpdateBytes(hc, true, a[:], b[:])
	} else {
		hc = Update32(hc, old, new)
	}
	binary.BigEndian.PutUint16(c, hc)
}
