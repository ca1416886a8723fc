package packet

import (
	"encoding/binary"

	"github.com/tcpinc/tcpinc/flow"
)

// FlowKey returns the flow key of a TCP segment in the direction it travels.
// ok is false for anything that is not a decoded TCP header (including
// non-first fragments).
func (p *Packet) FlowKey() (k flow.Key, ok bool) {
	if p.flags&flagTCP == 0 {
		return k, false
	}
	return flow.MakeKey(p.Src(), p.Dst(), p.SrcPort(), p.DstPort()), true
}

// QuotedFlowKey returns the flow key of the TCP segment quoted in an ICMP
// error, in the direction that segment travelled.
func (p *Packet) QuotedFlowKey() (k flow.Key, ok bool) {
	o, ok := p.quotedTCP()
	if !ok {
		return k, false
	}
	sp, dp := binary.BigEndian.Uint16(p.b[o:]), binary.BigEndian.Uint16(p.b[o+2:])
	l3 := p.q.L3
	if p.q.Version == 4 {
		return flow.MakeKey(p.b[l3+12:l3+16], p.b[l3+16:l3+20], sp, dp), true
	}
	return flow.MakeKey(p.b[l3+8:l3+24], p.b[l3+24:l3+40], sp, dp), true
}

// ReplaceOptions writes into dst the frame with its TCP options region replaced
// by opts, and returns the new frame length. opts is padded with zero bytes
// (EOL) to a multiple of 4 and may be at most 40 bytes. The IP length field
// (IPv4 total length or IPv6 payload length), the IPv4 header checksum, the
// TCP data offset and the TCP checksum are updated; Ethernet padding after the
// datagram is dropped. p is re-decoded on dst[:n] on success.
//
// dst may be the frame's own buffer (dst[0] is Frame()[0], with cap to spare:
// an AF_XDP frame has room after the packet) or a buffer that does not overlap
// the frame at all. The payload is moved by the length difference, so growing
// the header needs len(dst) >= n. On error nothing has been written.
//
// The checksums are updated incrementally: the payload moves by a multiple of
// four bytes, so its contribution to the sum does not change and the cost does
// not depend on the payload length. A wrong checksum stays wrong.
func (p *Packet) ReplaceOptions(dst []byte, opts []byte) (int, error) {
	if p.flags&flagTCP == 0 {
		return 0, ErrNotTCP
	}
	if p.flags&flagFragment != 0 {
		return 0, ErrFragment
	}
	if len(opts) > MaxOptionsLen {
		return 0, ErrOptionsTooLong
	}
	padded := (len(opts) + 3) &^ 3
	optOff := p.l4 + tcpMinHeader
	oldOpts := p.pay - optOff
	delta := padded - oldOpts
	n := p.end + delta
	if n > len(dst) {
		return 0, ErrNoRoom
	}
	ipLen := p.end - p.l3 + delta // new datagram length
	if p.version == 6 {
		ipLen -= ipv6HeaderLen
	}
	if ipLen > 0xffff {
		return 0, ErrTooBig
	}
	b := p.b
	l3, l4 := p.l3, p.l4

	// Checksum bookkeeping before anything moves: remove the old options, the
	// old data-offset word and the old pseudo-header length.
	tcpLen := p.end - l4
	hc := binary.BigEndian.Uint16(b[l4+16:])
	acc := uint32(^hc)
	acc += uint32(^fold32(Sum(b[optOff:p.pay], 0)))
	oldWord := binary.BigEndian.Uint16(b[l4+12:])
	newWord := oldWord&0x0fff | uint16((tcpMinHeader+padded)/4)<<12
	acc += uint32(^oldWord) + uint32(newWord)
	acc += uint32(^uint16(tcpLen)) + uint32(uint16(tcpLen+delta))
	if p.version == 6 {
		// The IPv6 pseudo-header length is 32 bits; its high word is 0 here.
		acc += uint32(^uint16(tcpLen>>16)) + uint32(uint16((tcpLen+delta)>>16))
	}

	// Move the payload first (copy is memmove), then the headers (a no-op when
	// dst is the frame's own buffer), then the new options.
	copy(dst[p.pay+delta:n], b[p.pay:p.end])
	copy(dst[:optOff], b[:optOff])
	copy(dst[optOff:], opts)
	clear(dst[optOff+len(opts) : optOff+padded])
	acc += Sum(dst[optOff:optOff+padded], 0)

	binary.BigEndian.PutUint16(dst[l4+12:], newWord)
	binary.BigEndian.PutUint16(dst[l4+16:], ^fold32(acc))
	if p.version == 4 {
		if oldLen := binary.BigEndian.Uint16(dst[l3+2:]); oldLen != uint16(ipLen) {
			binary.BigEndian.PutUint16(dst[l3+2:], uint16(ipLen))
			ic := binary.BigEndian.Uint16(dst[l3+10:])
			binary.BigEndian.PutUint16(dst[l3+10:], Update16(ic, oldLen, uint16(ipLen)))
		}
	} else {
		binary.BigEndian.PutUint16(dst[l3+4:], uint16(ipLen))
	}
	return n, p.Decode(dst[:n])
}

// ResizePayload sets the TCP payload length to n bytes, within the frame's
// capacity, and updates the IP length field (and the IPv4 header checksum).
// The frame slice is re-cut to end at the new datagram end (Ethernet padding
// is dropped) and p is re-decoded. New payload bytes are whatever the buffer
// held: the caller writes the payload (for example ciphertext frames) and then
// calls FixL4Checksum, since the whole segment changes anyway.
func (p *Packet) ResizePayload(n int) error {
	if p.flags&flagTCP == 0 {
		return ErrNotTCP
	}
	if p.flags&flagFragment != 0 {
		return ErrFragment
	}
	if n < 0 || p.pay+n > cap(p.b) {
		return ErrNoRoom
	}
	ipLen := p.pay + n - p.l3
	if p.version == 6 {
		ipLen -= ipv6HeaderLen
	}
	if ipLen > 0xffff {
		return ErrTooBig
	}
	b := p.b[:p.pay+n]
	if p.version == 4 {
		if old := binary.BigEndian.Uint16(b[p.l3+2:]); old != uint16(ipLen) {
			binary.BigEndian.PutUint16(b[p.l3+2:], uint16(ipLen))
			ic := binary.BigEndian.Uint16(b[p.l3+10:])
			binary.BigEndian.PutUint16(b[p.l3+10:], Update16(ic, old, uint16(ipLen)))
		}
	} else {
		binary.BigEndian.PutUint16(b[p.l3+4:], uint16(ipLen))
	}
	return p.Decode(b)
}
