package packet

import (
	"encoding/binary"
	"net/netip"
)

// EtherTypes this package knows.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeVLAN = 0x8100 // IEEE 802.1Q customer tag
	EtherTypeQinQ = 0x88a8 // IEEE 802.1ad service tag
	EtherTypeIPv6 = 0x86dd
)

// IP protocol numbers (IPv4 protocol / IPv6 next header).
const (
	ProtoHopByHop = 0
	ProtoICMP     = 1
	ProtoTCP      = 6
	ProtoUDP      = 17
	ProtoRouting  = 43
	ProtoFragment = 44
	ProtoESP      = 50
	ProtoAH       = 51
	ProtoICMPv6   = 58
	ProtoNoNext   = 59
	ProtoDstOpts  = 60
	ProtoMobility = 135
	ProtoHIP      = 139
	ProtoShim6    = 140
)

// TCP header flags (the low byte of header word 6).
const (
	FlagFIN = 0x01
	FlagSYN = 0x02
	FlagRST = 0x04
	FlagPSH = 0x08
	FlagACK = 0x10
	FlagURG = 0x20
	FlagECE = 0x40
	FlagCWR = 0x80
)

// ICMP types whose body quotes the offending datagram and that the engine cares about.
const (
	ICMPDestUnreachable   = 3 // code 4: fragmentation needed (RFC 1191)
	ICMPCodeFragNeeded    = 4
	ICMPv6PacketTooBig    = 2 // RFC 4443 §3.2
	ICMPv6DestUnreachable = 1
	ICMPv6Redirect        = 137 // RFC 4861 §4.5: quotes the redirected packet
)

const (
	ethHeaderLen  = 14
	ipv4MinHeader = 20
	ipv6HeaderLen = 40
	tcpMinHeader  = 20
	udpHeaderLen  = 8
	icmpHeaderLen = 8 // type, code, checksum, 4 bytes rest-of-header
	maxTags       = 2
)

// Packet flags.
const (
	flagFragment = 1 << iota // the datagram is an IP fragment (first or not)
	flagNonFirst             // fragment with a non-zero offset: no L4 header here
	flagL4                   // an upper-layer header was located (l4 valid)
	flagTCP                  // TCP header decoded (l4, pay valid)
	flagUDP                  // UDP header decoded
	flagICMP                 // ICMP or ICMPv6 header (4 bytes at least)
	flagQuote                // ICMP error with a decodable quoted IP header
	flagTrusted              // the port vouches for the TCP checksum (TrustL4Checksum)
	flagAH                   // an Authentication Header (RFC 4302) precedes the upper layer
	flagRouted               // an IPv6 routing header with segments left, or an IPv4 source route with addresses left
)

// Quoted describes the IP datagram quoted in an ICMP or ICMPv6 error message,
// as offsets into the outer frame. The quote is usually truncated: only the
// inner IP header and the first 8 bytes of its payload are guaranteed (RFC 792);
// L4End marks how far the quote goes.
type Quoted struct {
	Version uint8 // 4 or 6
	Proto   uint8 // inner upper-layer protocol (after extension headers)
	L3      int   // offset of the inner IP header
	L4      int   // offset of the inner upper-layer header; 0 if not reached
	End     int   // end of the quoted bytes (the end of the ICMP message)
}

// Packet is a decoded view of one Ethernet frame. It holds the frame slice and
// offsets into it, nothing else, so a worker can keep one Packet and Decode
// every frame into it without allocating. Accessors read the frame directly;
// writers change it in place and keep the checksums right.
//
// After Decode returns an error, only the layers decoded before the error are
// meaningful (EtherType and VLAN tags always are once the Ethernet header fits).
type Packet struct {
	b         []byte
	end       int // end of the IP datagram (Ethernet padding excluded); len(b) if not IP
	l3        int // offset of the IP header
	l4        int // offset of the upper-layer header
	pay       int // offset of the L4 payload (TCP, UDP)
	payEnd    int // end of the L4 payload
	etherType uint16
	tags      [maxTags]uint32 // TPID<<16 | TCI
	ntags     uint8
	version   uint8 // 0 (not IP), 4 or 6
	proto     uint8 // upper-layer protocol; for an unknown IPv6 extension header, its number
	flags     uint16
	segSize   uint16 // SetSegSize
	q         Quoted
	err       error // what Decode returned
}

// Decode parses frame, an Ethernet II frame, into p. It never allocates and
// never panics; a malformed frame gives an Error. Frames that are not IP (ARP,
// LLDP, ...) decode without error with IPVersion 0. p keeps a reference to frame.
func (p *Packet) Decode(frame []byte) error {
	err := p.decode(frame)
	p.err = err
	return err
}

// Err is what the last Decode returned: a Packet handed on keeps its
// decoding's outcome, so the receiver need not decode the frame again.
func (p *Packet) Err() error { return p.err }

func (p *Packet) decode(frame []byte) error {
	*p = Packet{b: frame, end: len(frame)}
	if len(frame) < ethHeaderLen {
		return ErrTruncated
	}
	off := 12
	et := binary.BigEndian.Uint16(frame[off:])
	// The tags the XDP classifier reads through (xsk), and no others: a
	// frame it takes for non-TCP (0x9100, the pre-standard service tag)
	// the kernel forwards on the fast path, so the engine must not take it
	// for TCP and encrypt it, or its plaintext would follow on that path.
	for et == EtherTypeVLAN || et == EtherTypeQinQ {
		if p.ntags == maxTags {
			return ErrTooManyTags
		}
		if len(frame) < off+6 {
			return ErrTruncated
		}
		p.tags[p.ntags] = uint32(et)<<16 | uint32(binary.BigEndian.Uint16(frame[off+2:]))
		p.ntags++
		off += 4
		et = binary.BigEndian.Uint16(frame[off:])
	}
	p.etherType = et
	off += 2
	switch et {
	case EtherTypeIPv4:
		return p.decodeIPv4(off)
	case EtherTypeIPv6:
		return p.decodeIPv6(off)
	}
	return nil
}

func (p *Packet) decodeIPv4(off int) error {
	b := p.b
	if len(b)-off < ipv4MinHeader {
		return ErrTruncated
	}
	if b[off]>>4 != 4 {
		return ErrBadIPVersion
	}
	hl := int(b[off]&0x0f) * 4
	if hl < ipv4MinHeader {
		return ErrBadIHL
	}
	if off+hl > len(b) {
		return ErrTruncated
	}
	tl := int(binary.BigEndian.Uint16(b[off+2:]))
	if tl < hl || off+tl > len(b) {
		return ErrLengthMismatch
	}
	p.version, p.l3, p.end = 4, off, off+tl
	p.proto = b[off+9]
	frag := binary.BigEndian.Uint16(b[off+6:])
	if frag&0x3fff != 0 { // MF set or offset non-zero
		p.flags |= flagFragment
		if frag&0x1fff != 0 {
			p.flags |= flagNonFirst
			return nil
		}
	}
	l4 := off + hl
	if hl > ipv4MinHeader && sourceRouted4(b[off+ipv4MinHeader:l4]) {
		p.flags |= flagRouted
	}
	if p.proto == ProtoAH {
		// TCP under an Authentication Header (RFC 4302) is TCP all the
		// same: a host may add AH to a connection mid-way, and its
		// segments must not then pass as another protocol.
		if p.end-l4 < 8 || p.end-l4 < (int(b[l4+1])+2)*4 {
			return ErrTruncated
		}
		p.flags |= flagAH
		p.proto, l4 = b[l4], l4+(int(b[l4+1])+2)*4
	}
	return p.decodeL4(l4)
}

func (p *Packet) decodeIPv6(off int) error {
	b := p.b
	if len(b)-off < ipv6HeaderLen {
		return ErrTruncated
	}
	if b[off]>>4 != 6 {
		return ErrBadIPVersion
	}
	pl := int(binary.BigEndian.Uint16(b[off+4:]))
	if off+ipv6HeaderLen+pl > len(b) {
		return ErrLengthMismatch
	}
	p.version, p.l3, p.end = 6, off, off+ipv6HeaderLen+pl
	proto, l4, frag, err := walkIPv6(b, off, p.end)
	p.proto = proto
	if err != nil {
		return err
	}
	p.flags |= frag
	if frag&flagNonFirst != 0 || l4 < 0 {
		return nil
	}
	return p.decodeL4(l4)
}

// walkIPv6 walks the extension header chain of the IPv6 header at off, bounded
// by end. It returns the upper-layer protocol and its offset, or the first
// header it does not know (ESP, No Next Header, anything new) with l4 = -1.
// Fragment headers set flagFragment, and flagNonFirst for a non-zero offset.
func walkIPv6(b []byte, off, end int) (proto uint8, l4 int, flags uint16, err error) {
	proto = b[off+6]
	off += ipv6HeaderLen
	// Each extension header is at least 8 bytes, so the walk ends after at
	// most (end-off)/8 steps.
	for {
		switch proto {
		case ProtoTCP, ProtoUDP, ProtoICMPv6:
			return proto, off, flags, nil
		case ProtoHopByHop, ProtoRouting, ProtoDstOpts, ProtoMobility, ProtoHIP, ProtoShim6:
			if end-off < 8 {
				return proto, -1, flags, ErrTruncated
			}
			n := (int(b[off+1]) + 1) * 8
			if end-off < n {
				return proto, -1, flags, ErrTruncated
			}
			if proto == ProtoRouting && b[off+3] != 0 {
				flags |= flagRouted
			}
			proto = b[off]
			off += n
		case ProtoAH:
			if end-off < 8 {
				return proto, -1, flags, ErrTruncated
			}
			flags |= flagAH
			n := (int(b[off+1]) + 2) * 4
			if end-off < n {
				return proto, -1, flags, ErrTruncated
			}
			proto = b[off]
			off += n
		case ProtoFragment:
			if end-off < 8 {
				return proto, -1, flags, ErrTruncated
			}
			flags |= flagFragment
			if binary.BigEndian.Uint16(b[off+2:])&0xfff8 != 0 {
				flags |= flagNonFirst
			}
			proto = b[off]
			off += 8
			if flags&flagNonFirst != 0 {
				return proto, off, flags, nil
			}
		default:
			return proto, -1, flags, nil
		}
	}
}

func (p *Packet) decodeL4(off int) error {
	b := p.b
	p.l4 = off
	p.flags |= flagL4
	avail := p.end - off
	switch p.proto {
	case ProtoTCP:
		if avail < tcpMinHeader {
			return ErrTruncated
		}
		hl := int(b[off+12]>>4) * 4
		if hl < tcpMinHeader || hl > avail {
			return ErrBadDataOffset
		}
		p.pay, p.payEnd = off+hl, p.end
		p.flags |= flagTCP
	case ProtoUDP:
		if avail < udpHeaderLen {
			return ErrTruncated
		}
		ul := int(binary.BigEndian.Uint16(b[off+4:]))
		if p.flags&flagFragment == 0 {
			// A whole datagram: the UDP length must fit in it. Bytes after
			// it (if any) are not UDP payload (RFC 768).
			if ul < udpHeaderLen || ul > avail {
				return ErrBadUDPLength
			}
		} else {
			ul = avail // first fragment: the rest follows in other fragments
		}
		p.pay, p.payEnd = off+udpHeaderLen, off+ul
		p.flags |= flagUDP
	case ProtoICMP, ProtoICMPv6:
		if (p.proto == ProtoICMP) != (p.version == 4) {
			return nil // ICMP in IPv6 or ICMPv6 in IPv4: just an unknown protocol
		}
		if avail < 4 {
			return ErrTruncated
		}
		p.flags |= flagICMP
		p.pay, p.payEnd = off+min(icmpHeaderLen, avail), p.end
		// A first fragment's quote is decoded too (a non-first one has
		// no ICMP header here): the engine must know which flow a
		// fragmented error is about (it may quote plaintext).
		if avail >= icmpHeaderLen && isICMPError(p.version, b[off]) {
			p.decodeQuote(off + icmpHeaderLen)
		} else if p.version == 6 && b[off] == ICMPv6Redirect {
			if q := redirectedHeader(b, off, p.end); q > 0 {
				p.decodeQuote(q)
			}
		}
	}
	return nil
}

// isICMPError reports whether an ICMP type quotes the datagram that caused it.
func isICMPError(version, typ uint8) bool {
	if version == 4 {
		// Destination unreachable, source quench, redirect, time exceeded,
		// parameter problem.
		return typ == 3 || typ == 4 || typ == 5 || typ == 11 || typ == 12
	}
	return typ >= 1 && typ <= 4 // RFC 4443 error messages
}

// redirectedHeader returns where the packet an ICMPv6 Redirect at b[off:end]
// quotes begins: the data of its Redirected Header option (RFC 4861 §4.5,
// §4.6.3: type 4, 8 bytes of option header), after the 8-byte ICMPv6
// header and the target and destination addresses; 0 when it has none. A
// router fills it with as much of the redirected packet as fits, so from
// the inside it may hold plaintext the appliance decrypted.
func redirectedHeader(b []byte, off, end int) int {
	for o := off + 40; o+8 <= end; {
		n := int(b[o+1]) * 8
		if n == 0 {
			return 0 // a zero length is invalid (RFC 4861 §4.6)
		}
		if b[o] == 4 {
			return o + 8
		}
		o += n
	}
	return 0
}

// decodeQuote locates the quoted datagram of an ICMP error. A quote that does
// not parse is not an error of the outer packet: it only leaves HasQuote false.
func (p *Packet) decodeQuote(off int) {
	b, end := p.b, p.end
	if end-off < 1 {
		return
	}
	q := Quoted{L3: off, End: end}
	switch b[off] >> 4 {
	case 4:
		if end-off < ipv4MinHeader {
			return
		}
		hl := int(b[off]&0x0f) * 4
		if hl < ipv4MinHeader || end-off < hl {
			return
		}
		q.Version, q.Proto = 4, b[off+9]
		if binary.BigEndian.Uint16(b[off+6:])&0x1fff == 0 {
			q.L4 = off + hl
		}
	case 6:
		if end-off < ipv6HeaderLen {
			return
		}
		q.Version = 6
		proto, l4, fl, err := walkIPv6(b, off, end)
		q.Proto = proto
		if err == nil && l4 >= 0 && fl&flagNonFirst == 0 {
			q.L4 = l4
		}
	default:
		return
	}
	p.q = q
	p.flags |= flagQuote
}

// Frame returns the frame passed to Decode (including any Ethernet padding).
func (p *Packet) Frame() []byte { return p.b }

// HasAH reports an IPsec Authentication Header (RFC 4302) before the upper
// layer: it covers the headers and payload, so the packet must not be
// changed.
func (p *Packet) HasAH() bool { return p.flags&flagAH != 0 }

// SegmentsLeft reports an IPv6 routing header with segments left before
// the upper layer, or an IPv4 source route (LSRR, SSRR) with addresses
// left: the TCP checksum then covers the final destination, which is not
// the one in the IP header (RFC 8200 §8.1, RFC 9293 §3.1), so
// VerifyL4Checksum and FixL4Checksum are wrong for the packet, and so is
// any segment built from its headers with a checksum summed anew.
func (p *Packet) SegmentsLeft() bool { return p.flags&flagRouted != 0 }

// sourceRouted4 reports a loose or strict source route option (RFC 791)
// in IPv4 options opts whose pointer has not passed its last address.
// Malformed options end the scan: they say nothing of a route.
func sourceRouted4(opts []byte) bool {
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0: // end of options
			return false
		case 1: // no operation
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			return false
		}
		n := int(opts[i+1])
		if (opts[i] == 0x83 || opts[i] == 0x89) && n >= 3 {
			ptr := int(opts[i+2]) // 1-based, at the next address
			if ptr+3 <= n {
				return true
			}
		}
		i += n
	}
	return false
}

// VLANCount returns the number of VLAN tags (0, 1 or 2), outermost first.
func (p *Packet) VLANCount() int { return int(p.ntags) }

// VLAN returns tag i (0 is the outermost): its TPID (0x8100, 0x88a8, 0x9100)
// and TCI (PCP, DEI, VLAN ID). The tags stay in the frame and are forwarded.
func (p *Packet) VLAN(i int) (tpid, tci uint16) {
	if i < 0 || i >= int(p.ntags) {
		return 0, 0
	}
	return uint16(p.tags[i] >> 16), uint16(p.tags[i])
}

// EtherType returns the EtherType after the VLAN tags.
func (p *Packet) EtherType() uint16 { return p.etherType }

// IPVersion returns 4, 6, or 0 if the frame is not IP.
func (p *Packet) IPVersion() uint8 { return p.version }

// L3Offset returns the offset of the IP header (0 if not IP).
func (p *Packet) L3Offset() int { return p.l3 }

// ECN codepoints, the two low bits of the IPv4 TOS byte and of the IPv6
// traffic class (RFC 3168 §5).
const (
	NotECT uint8 = 0
	ECT1   uint8 = 1
	ECT0   uint8 = 2
	CE     uint8 = 3
)

// ECN returns the frame's ECN codepoint (NotECT if the frame is not IP).
func (p *Packet) ECN() uint8 {
	switch p.version {
	case 4:
		return p.b[p.l3+1] & 3
	case 6:
		return p.b[p.l3+1] >> 4 & 3
	}
	return NotECT
}

// DSCP returns the differentiated services codepoint (RFC 2474): the six
// high bits of the IPv4 TOS byte or the IPv6 traffic class.
func (p *Packet) DSCP() uint8 {
	switch p.version {
	case 4:
		return p.b[p.l3+1] >> 2
	case 6:
		return (p.b[p.l3]&0x0f)<<2 | p.b[p.l3+1]>>6
	}
	return 0
}

// L4Offset returns the offset of the upper-layer header, or 0 if there is none
// (not IP, a non-first fragment, or an IPv6 extension header this package does
// not walk).
func (p *Packet) L4Offset() int {
	if p.flags&flagL4 == 0 {
		return 0
	}
	return p.l4
}

// End returns the end of the IP datagram in the frame: bytes after it are
// Ethernet padding and belong to no layer. For non-IP frames it is len(Frame()).
func (p *Packet) End() int { return p.end }

// Datagram returns the IP datagram without link header or padding (nil if not IP).
func (p *Packet) Datagram() []byte {
	if p.version == 0 {
		return nil
	}
	return p.b[p.l3:p.end]
}

// Src and Dst return the source and destination address bytes (4 or 16 bytes,
// aliasing the frame), or nil if the frame is not IP.
func (p *Packet) Src() []byte {
	switch p.version {
	case 4:
		return p.b[p.l3+12 : p.l3+16]
	case 6:
		return p.b[p.l3+8 : p.l3+24]
	}
	return nil
}

// Dst: see Src.
func (p *Packet) Dst() []byte {
	switch p.version {
	case 4:
		return p.b[p.l3+16 : p.l3+20]
	case 6:
		return p.b[p.l3+24 : p.l3+40]
	}
	return nil
}

// SrcAddr and DstAddr return the addresses as netip.Addr (zero if not IP).
func (p *Packet) SrcAddr() netip.Addr { return addrOf(p.Src()) }

// DstAddr: see SrcAddr.
func (p *Packet) DstAddr() netip.Addr { return addrOf(p.Dst()) }

func addrOf(b []byte) netip.Addr {
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Proto returns the upper-layer protocol number: for IPv6, the next header
// after the extension headers, or the first one this package could not walk
// (for example ESP). 0 if not IP.
func (p *Packet) Proto() uint8 { return p.proto }

// IsFragment reports whether the datagram is an IP fragment (first or later).
func (p *Packet) IsFragment() bool { return p.flags&flagFragment != 0 }

// IsNonFirstFragment reports a fragment with a non-zero offset: it carries no
// upper-layer header, so ports, TCP fields and L4 checksums are unavailable.
func (p *Packet) IsNonFirstFragment() bool { return p.flags&flagNonFirst != 0 }

// IsTCP reports whether a TCP header was decoded (also true for a first
// fragment, whose payload is incomplete).
func (p *Packet) IsTCP() bool { return p.flags&flagTCP != 0 }

// IsUDP reports whether a UDP header was decoded.
func (p *Packet) IsUDP() bool { return p.flags&flagUDP != 0 }

// IsICMP reports an ICMP (IPv4) or ICMPv6 (IPv6) message.
func (p *Packet) IsICMP() bool { return p.flags&flagICMP != 0 }

// SrcPort returns the TCP or UDP source port (0 for other packets).
func (p *Packet) SrcPort() uint16 {
	if p.flags&(flagTCP|flagUDP) == 0 {
		return 0
	}
	return binary.BigEndian.Uint16(p.b[p.l4:])
}

// DstPort returns the TCP or UDP destination port (0 for other packets).
func (p *Packet) DstPort() uint16 {
	if p.flags&(flagTCP|flagUDP) == 0 {
		return 0
	}
	return binary.BigEndian.Uint16(p.b[p.l4+2:])
}

// PayloadOffset returns the offset of the TCP/UDP payload (or the ICMP body
// after the 8-byte header); 0 if none.
func (p *Packet) PayloadOffset() int { return p.pay }

// Payload returns the TCP or UDP payload (or ICMP body), without Ethernet
// padding; nil if there is no decoded L4 header.
func (p *Packet) Payload() []byte {
	if p.flags&(flagTCP|flagUDP|flagICMP) == 0 {
		return nil
	}
	return p.b[p.pay:p.payEnd]
}

// L4 returns the upper-layer header and payload (to the end of the datagram),
// or nil if none was located.
func (p *Packet) L4() []byte {
	if p.flags&flagL4 == 0 {
		return nil
	}
	return p.b[p.l4:p.end]
}

// TCP header fields. They return 0 when !IsTCP().

func (p *Packet) tcp32(o int) uint32 {
	if p.flags&flagTCP == 0 {
		return 0
	}
	return binary.BigEndian.Uint32(p.b[p.l4+o:])
}

func (p *Packet) tcp16(o int) uint16 {
	if p.flags&flagTCP == 0 {
		return 0
	}
	return binary.BigEndian.Uint16(p.b[p.l4+o:])
}

// Seq returns the TCP sequence number.
func (p *Packet) Seq() uint32 { return p.tcp32(4) }

// Ack returns the TCP acknowledgement number.
func (p *Packet) Ack() uint32 { return p.tcp32(8) }

// Flags returns the TCP flags byte (FlagFIN ... FlagCWR).
func (p *Packet) Flags() uint8 { return uint8(p.tcp16(12)) }

// Window returns the TCP window field (unscaled).
func (p *Packet) Window() uint16 { return p.tcp16(14) }

// TCPChecksum returns the TCP checksum field.
func (p *Packet) TCPChecksum() uint16 { return p.tcp16(16) }

// Urgent returns the TCP urgent pointer.
func (p *Packet) Urgent() uint16 { return p.tcp16(18) }

// TCPHeaderLen returns the TCP header length in bytes (data offset * 4).
func (p *Packet) TCPHeaderLen() int {
	if p.flags&flagTCP == 0 {
		return 0
	}
	return p.pay - p.l4
}

// TCPHeader returns the TCP header including options.
func (p *Packet) TCPHeader() []byte {
	if p.flags&flagTCP == 0 {
		return nil
	}
	return p.b[p.l4:p.pay]
}

// OptionBytes returns the TCP options region (header bytes 20 up to the data
// offset), aliasing the frame; nil if not TCP.
func (p *Packet) OptionBytes() []byte {
	if p.flags&flagTCP == 0 {
		return nil
	}
	return p.b[p.l4+tcpMinHeader : p.pay]
}

// OptionsOffset returns the frame offset of the TCP options region.
func (p *Packet) OptionsOffset() int {
	if p.flags&flagTCP == 0 {
		return 0
	}
	return p.l4 + tcpMinHeader
}

// Options returns an iterator over the TCP options.
func (p *Packet) Options() OptionIter {
	return OptionIter{b: p.OptionBytes(), base: p.OptionsOffset()}
}

// ICMP fields.

// ICMPType returns the ICMP or ICMPv6 type (0 if not ICMP).
func (p *Packet) ICMPType() uint8 {
	if p.flags&flagICMP == 0 {
		return 0
	}
	return p.b[p.l4]
}

// ICMPCode returns the ICMP or ICMPv6 code (0 if not ICMP).
func (p *Packet) ICMPCode() uint8 {
	if p.flags&flagICMP == 0 {
		return 0
	}
	return p.b[p.l4+1]
}

// Quote returns the quoted datagram of an ICMP/ICMPv6 error message, or of
// an ICMPv6 redirect (its Redirected Header option).
func (p *Packet) Quote() (Quoted, bool) {
	return p.q, p.flags&flagQuote != 0
}

// IsPathMTU reports an IPv4 "fragmentation needed" (type 3 code 4) or an
// ICMPv6 "packet too big" message.
func (p *Packet) IsPathMTU() bool {
	if p.flags&flagICMP == 0 || p.end-p.l4 < icmpHeaderLen {
		return false
	}
	t, c := p.b[p.l4], p.b[p.l4+1]
	if p.version == 4 {
		return t == ICMPDestUnreachable && c == ICMPCodeFragNeeded
	}
	return t == ICMPv6PacketTooBig
}

// MTU returns the MTU of a path-MTU message: the 16-bit next-hop MTU of an
// IPv4 "fragmentation needed" (RFC 1191) or the 32-bit MTU of an ICMPv6
// "packet too big".
func (p *Packet) MTU() (uint32, bool) {
	if !p.IsPathMTU() {
		return 0, false
	}
	if p.version == 4 {
		return uint32(binary.BigEndian.Uint16(p.b[p.l4+6:])), true
	}
	return binary.BigEndian.Uint32(p.b[p.l4+4:]), true
}

// quotedTCP returns the offset of the quoted TCP header if the quote reaches
// at least its first 8 bytes (ports and sequence number).
func (p *Packet) quotedTCP() (int, bool) {
	if p.flags&flagQuote == 0 || p.q.Proto != ProtoTCP || p.q.L4 == 0 || p.q.End-p.q.L4 < 8 {
		return 0, false
	}
	return p.q.L4, true
}

// QuotedSeq returns the sequence number in the TCP header quoted by an ICMP
// error (the first 8 bytes of the inner TCP header are always quoted).
func (p *Packet) QuotedSeq() (uint32, bool) {
	o, ok := p.quotedTCP()
	if !ok {
		return 0, false
	}
	return binary.BigEndian.Uint32(p.b[o+4:]), true
}

// QuotedPorts returns the ports of the quoted TCP header (as the inner
// datagram was sent, so source is the host that sent it).
func (p *Packet) QuotedPorts() (src, dst uint16, ok bool) {
	o, ok := p.quotedTCP()
	if !ok {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(p.b[o:]), binary.BigEndian.Uint16(p.b[o+2:]), true
}
