package packet

import "encoding/binary"

// Checksum verification and full recomputation.

// VerifyIPv4Checksum reports whether the IPv4 header checksum is right. It is
// false for non-IPv4 frames.
func (p *Packet) VerifyIPv4Checksum() bool {
	if p.version != 4 {
		return false
	}
	return Checksum(p.ipv4Header(), 0) == 0
}

func (p *Packet) ipv4Header() []byte {
	return p.b[p.l3 : p.l3+int(p.b[p.l3]&0x0f)*4]
}

// FixIPv4Checksum recomputes the IPv4 header checksum.
func (p *Packet) FixIPv4Checksum() {
	if p.version != 4 {
		return
	}
	h := p.ipv4Header()
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:], Checksum(h, 0))
}

// l4Checksummed reports whether the L4 checksum can be checked here: a whole
// datagram (not a fragment) with a TCP, UDP or ICMP header, and returns the
// offset of the checksum field relative to the L4 header.
func (p *Packet) l4Checksummed() (int, bool) {
	if p.flags&flagFragment != 0 {
		return 0, false
	}
	switch {
	case p.flags&flagTCP != 0:
		return 16, true
	case p.flags&flagUDP != 0:
		return 6, true
	case p.flags&flagICMP != 0:
		return 2, true
	}
	return 0, false
}

// l4Sum returns the checksum over the L4 segment (to the end of the IP
// datagram, or the UDP length) including the pseudo-header where the protocol
// has one (TCP, UDP, ICMPv6; not ICMPv4).
func (p *Packet) l4Sum() uint16 {
	seg := p.b[p.l4:p.end]
	if p.flags&flagUDP != 0 {
		seg = p.b[p.l4:p.payEnd]
	}
	var acc uint32
	if !(p.version == 4 && p.flags&flagICMP != 0) {
		acc = pseudoSum(p.Src(), p.Dst(), p.proto, len(seg))
	}
	return Checksum(seg, acc)
}

// VerifyL4Checksum reports whether the TCP, UDP, ICMP or ICMPv6 checksum is
// right. It is false when it cannot be checked (fragments, other protocols).
// An IPv4 UDP checksum of zero means "no checksum" and verifies (RFC 768).
//
// The pseudo-header uses the destination in the IP header. A source-routed
// datagram (IPv4 LSRR/SSRR option, IPv6 routing header with segments left)
// is checksummed by its sender with the final destination instead, so it does
// not verify here and FixL4Checksum would break it; the incremental writers
// are right for it, since they never need the addresses.
func (p *Packet) VerifyL4Checksum() bool {
	o, ok := p.l4Checksummed()
	if !ok {
		return false
	}
	if p.flags&flagTrusted != 0 {
		return true
	}
	if p.flags&flagUDP != 0 && p.version == 4 && binary.BigEndian.Uint16(p.b[p.l4+o:]) == 0 {
		return true
	}
	return p.l4Sum() == 0
}

// TrustL4Checksum records that the frame's port vouches for its TCP
// checksum (bump.CsumVerified: the kernel checked it, or the frame never
// left this machine and the port completed it), so VerifyL4Checksum
// reports true without summing the segment again. It applies to TCP
// segments only, and the next Decode forgets it.
func (p *Packet) TrustL4Checksum() {
	if p.flags&flagTCP != 0 {
		p.flags |= flagTrusted
	}
}

// FixL4Checksum recomputes the TCP, UDP, ICMP or ICMPv6 checksum over the
// whole segment. It reports false (and changes nothing) for fragments and
// other protocols.
func (p *Packet) FixL4Checksum() bool {
	o, ok := p.l4Checksummed()
	if !ok {
		return false
	}
	c := p.b[p.l4+o:]
	c[0], c[1] = 0, 0
	s := p.l4Sum()
	if s == 0 && p.flags&flagUDP != 0 {
		s = 0xffff // zero means "no checksum" in UDP (RFC 768, RFC 8200 §8.1)
	}
	binary.BigEndian.PutUint16(c, s)
	return true
}
