package afpacket

import (
	"encoding/binary"
	"errors"
)

// Errors of the frame functions. A caller counts them and drops (or, for
// ErrNotTCP, forwards unchanged): none is a reason to stop.
var (
	ErrNotTCP    = errors.New("afpacket: not an unfragmented TCP/IP frame")
	ErrMalformed = errors.New("afpacket: malformed frame or virtio_net_hdr")
	ErrTooBig    = errors.New("afpacket: packet longer than an IP length field can say")
	ErrNoRoom    = errors.New("afpacket: not enough output buffers, or buffers too small")
)

const (
	ethHdrLen  = 14
	ethPIPv4   = 0x0800
	ethPIPv6   = 0x86dd
	ethP8021Q  = 0x8100
	ethP8021AD = 0x88a8
	protoTCP   = 6

	tcpFIN = 0x01
	tcpPSH = 0x08
	tcpCWR = 0x80

	// IPv6 extension headers ParseTCP steps over, and at most how many.
	ipv6HopByHop  = 0
	ipv6Routing   = 43
	ipv6DestOpts  = 60
	maxExtHeaders = 4

	// tcpCsumOffset is the checksum's offset in the TCP header (RFC 9293 §3.1).
	tcpCsumOffset = 16
)

// TCPFrame holds the offsets of one TCP/IP packet inside an Ethernet frame.
type TCPFrame struct {
	L3      int  // start of the IP header
	L4      int  // start of the TCP header
	Payload int  // start of the TCP payload (= header bytes before it)
	End     int  // end of the IP packet (the frame may carry padding after it)
	V6      bool // IPv6 rather than IPv4
	// Routed: behind an IPv6 routing header with segments left, so the
	// TCP checksum covers the final destination, not the one in the IPv6
	// header (RFC 8200 §8.1). Only SegmentRouted takes such a frame.
	Routed bool
}

// PayloadLen is the number of TCP payload bytes.
func (p TCPFrame) PayloadLen() int { return p.End - p.Payload }

// ParseTCP finds the headers of an Ethernet frame (up to two VLAN tags)
// carrying one unfragmented TCP segment in IPv4 or IPv6 (extension headers:
// hop-by-hop, destination options, and routing with no segments left), and
// checks that the IP length fields fit the frame. It returns ErrNotTCP for
// any other frame and ErrMalformed for a broken one.
func ParseTCP(f []byte) (TCPFrame, error) {
	p, err := parseTCP(f, true)
	if err == nil && p.Routed {
		return p, ErrNotTCP
	}
	return p, err
}

// EtherType returns the EtherType of the Ethernet frame f after up to two
// VLAN tags (802.1Q, 802.1ad) and the offset where its payload starts; ok
// is false when f is too short for its tags.
func EtherType(f []byte) (et uint16, off int, ok bool) {
	if len(f) < ethHdrLen {
		return 0, 0, false
	}
	et, off = binary.BigEndian.Uint16(f[12:]), ethHdrLen
	for tags := 0; tags < 2 && (et == ethP8021Q || et == ethP8021AD); tags++ {
		if len(f) < off+4 {
			return 0, 0, false
		}
		et, off = binary.BigEndian.Uint16(f[off+2:]), off+4
	}
	return et, off, true
}

// parseTCP is ParseTCP, but takes a routing header with segments left
// (TCPFrame.Routed); with checkLen false it ignores the IP length fields
// and takes the packet to end where f ends (for a frame being built).
func parseTCP(f []byte, checkLen bool) (TCPFrame, error) {
	var p TCPFrame
	et, off, ok := EtherType(f)
	if !ok {
		return p, ErrMalformed
	}
	p.L3 = off
	switch et {
	case ethPIPv4:
		if len(f) < off+20 || f[off]>>4 != 4 {
			return p, ErrMalformed
		}
		ihl := int(f[off]&0x0f) * 4
		if ihl < 20 || len(f) < off+ihl {
			return p, ErrMalformed
		}
		if binary.BigEndian.Uint16(f[off+6:])&0x3fff != 0 { // MF or a fragment offset
			return p, ErrNotTCP
		}
		if f[off+9] != protoTCP {
			return p, ErrNotTCP
		}
		p.L4 = off + ihl
		p.End = len(f)
		if checkLen {
			tot := int(binary.BigEndian.Uint16(f[off+2:]))
			if tot < ihl || off+tot > len(f) {
				return p, ErrMalformed
			}
			p.End = off + tot
		}
	case ethPIPv6:
		if len(f) < off+40 || f[off]>>4 != 6 {
			return p, ErrMalformed
		}
		// Hop-by-hop, destination options and routing headers may come
		// before TCP (a host may send them; GRO coalesces behind them,
		// and GSO cuts them as the IP header's). A routing header with
		// segments left makes the frame Routed: its TCP checksum is over
		// the final destination, not the one in the IPv6 header (RFC
		// 8200 §8.1), which the checksum code here would take.
		nh, l4 := f[off+6], off+40
		for n := 0; nh != protoTCP; n++ {
			if (nh != ipv6HopByHop && nh != ipv6DestOpts && nh != ipv6Routing) || n == maxExtHeaders {
				return p, ErrNotTCP
			}
			if len(f) < l4+8 {
				return p, ErrMalformed
			}
			if nh == ipv6Routing && f[l4+3] != 0 {
				p.Routed = true
			}
			nh, l4 = f[l4], l4+(int(f[l4+1])+1)*8
		}
		p.V6 = true
		p.L4 = l4
		p.End = len(f)
		if checkLen {
			pl := int(binary.BigEndian.Uint16(f[off+4:]))
			if off+40+pl > len(f) {
				return p, ErrMalformed
			}
			p.End = off + 40 + pl
		}
	default:
		return p, ErrNotTCP
	}
	if p.End < p.L4+20 {
		return p, ErrMalformed
	}
	doff := int(f[p.L4+12]>>4) * 4
	if doff < 20 || p.L4+doff > p.End {
		return p, ErrMalformed
	}
	p.Payload = p.L4 + doff
	return p, nil
}

// CheckTCP validates the virtio_net_hdr h that came with the TCP frame f
// from a PACKET_VNET_HDR socket and returns the frame's offsets. The kernel's
// hdr_len is not trusted (on a forwarding path it may cover the whole first
// segment): CheckTCP sets h.HdrLen from the parsed headers. A GSO type must
// match the IP version and come with a gso_size; a partial checksum must
// point at the TCP checksum field.
func CheckTCP(h *VnetHdr, f []byte) (TCPFrame, error) {
	p, err := ParseTCP(f)
	if err != nil {
		if err == ErrNotTCP && h.IsGSO() {
			return p, ErrMalformed
		}
		return p, err
	}
	if h.GSOType != GSONone {
		want := uint8(GSOTCPv4)
		if p.V6 {
			want = GSOTCPv6
		}
		if h.GSOType&^GSOECN != want || h.GSOSize == 0 {
			return p, ErrMalformed
		}
	}
	if h.Flags&FlagNeedsCsum != 0 && (int(h.CsumStart) != p.L4 || h.CsumOffset != tcpCsumOffset) {
		return p, ErrMalformed
	}
	h.HdrLen = uint16(p.Payload)
	return p, nil
}
