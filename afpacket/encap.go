package afpacket

import "encoding/binary"

// Tunnelled TCP super-segments. The kernel's GRO also coalesces TCP inside
// IP-in-IP (IPIP, SIT, IP6IP6) and GRE, which it does without a tunnel
// device of its own (gre_offload and ipip's offloads are built in), and
// hands such a super-segment to a packet socket as GSO_TCPV4/GSO_TCPV6 with
// the partial checksum at the inner TCP header (virtio_net_hdr_from_skb
// says nothing of the encapsulation). Sent back as it came, the kernel
// could not cut it (its segmentation needs the tunnel's GSO flags, which a
// virtio_net_hdr cannot carry), so the receiving side cuts it in software:
// SegmentEncap.

// Layer kinds of an encapsulated frame's headers.
const (
	layerIPv4 = iota
	layerIPv6
	layerGRE // with a checksum (the C bit) to recompute
)

// maxEncapLayers bounds the headers SegmentEncap walks: an outer IP header,
// GRE, the inner IP header, and one more level of IP-in-IP.
const maxEncapLayers = 4

type encapLayer struct {
	kind     int
	off, end int // the header's start and end (for IPv4, end of its options)
}

// encapLayers walks the headers of f from the Ethernet header to the TCP
// header at tcp (the checksum start of its virtio_net_hdr) and returns the
// IP headers and checksummed GRE headers on the way, outermost first, and
// the end of the outermost IP packet. It accepts up to two VLAN tags,
// IPv4 (unfragmented) and IPv6 without extension headers, IP-in-IP and
// GRE version 0 with optional checksum and key (Ethernet, IPv4 or IPv6
// inside); anything else is ErrNotTCP.
func encapLayers(f []byte, tcp int, ls *[maxEncapLayers]encapLayer) (n, end int, err error) {
	et, off, ok := EtherType(f)
	if !ok {
		return 0, 0, ErrMalformed
	}
	end = len(f)
	for n < maxEncapLayers {
		var proto uint8
		var next int
		switch et {
		case 0x0800:
			if len(f) < off+20 || f[off]>>4 != 4 {
				return 0, 0, ErrMalformed
			}
			next = off + int(f[off]&0x0f)*4
			if next < off+20 || binary.BigEndian.Uint16(f[off+6:])&0x3fff != 0 {
				return 0, 0, ErrNotTCP // options too short, or a fragment
			}
			if n == 0 {
				end = off + int(binary.BigEndian.Uint16(f[off+2:]))
			}
			proto = f[off+9]
			ls[n] = encapLayer{kind: layerIPv4, off: off, end: next}
		case 0x86dd:
			if len(f) < off+40 || f[off]>>4 != 6 {
				return 0, 0, ErrMalformed
			}
			next = off + 40
			if n == 0 {
				end = next + int(binary.BigEndian.Uint16(f[off+4:]))
			}
			proto = f[off+6]
			ls[n] = encapLayer{kind: layerIPv6, off: off, end: next}
		default:
			return 0, 0, ErrNotTCP
		}
		n++
		if end > len(f) || next > end {
			return 0, 0, ErrMalformed
		}
		switch proto {
		case protoTCP:
			if next != tcp || n < 2 {
				return 0, 0, ErrNotTCP
			}
			return n, end, nil
		case 4: // IPv4 in IP
			et, off = 0x0800, next
		case 41: // IPv6 in IP
			et, off = 0x86dd, next
		case 47: // GRE (RFC 2784, RFC 2890)
			if end < next+4 {
				return 0, 0, ErrMalformed
			}
			fl := binary.BigEndian.Uint16(f[next:])
			if fl&0x5007 != 0 || fl&0x0ff8 != 0 { // routing, sequence numbers, version other than 0, reserved bits
				return 0, 0, ErrNotTCP
			}
			gl := 4
			if fl&0x8000 != 0 {
				gl += 4
			}
			if fl&0x2000 != 0 {
				gl += 4
			}
			if end < next+gl || n == maxEncapLayers {
				return 0, 0, ErrMalformed
			}
			if fl&0x8000 != 0 {
				ls[n] = encapLayer{kind: layerGRE, off: next, end: next + gl}
				n++
			}
			et, off = binary.BigEndian.Uint16(f[next+2:]), next+gl
			if et == 0x6558 { // transparent Ethernet bridging
				if end < off+14 {
					return 0, 0, ErrMalformed
				}
				et, off = binary.BigEndian.Uint16(f[off+12:]), off+14
			}
		default:
			return 0, 0, ErrNotTCP
		}
	}
	return 0, 0, ErrNotTCP
}

// SegmentEncap cuts the tunnelled TCP super-segment f, which came with
// the virtio_net_hdr h (a GSO type and gso_size, the partial checksum at the
// inner TCP header), into segments of at most h.GSOSize payload bytes, as
// the kernel's GSO would have on the sender: every header copied, the inner
// TCP sequence number advanced (FIN and PSH on the last segment only, CWR
// on the first only), each IP header's length set and each IPv4 ID advanced
// by the segment's index, and every checksum complete (IPv4 headers, GRE's
// if it has one, TCP). Segment i goes to out[i][:sizes[i]]; f is not
// changed. A frame that is not such a super-segment is ErrNotTCP; too few or
// too small buffers, ErrNoRoom (nothing written).
func SegmentEncap(f []byte, h VnetHdr, out [][]byte, sizes []int) (int, error) {
	if h.GSOType == GSONone || h.GSOSize == 0 || h.Flags&FlagNeedsCsum == 0 || h.CsumOffset != tcpCsumOffset {
		return 0, ErrNotTCP
	}
	var ls [maxEncapLayers]encapLayer
	tcp := int(h.CsumStart)
	n, end, err := encapLayers(f, tcp, &ls)
	if err != nil {
		return 0, err
	}
	inner := ls[n-1]
	if end < tcp+20 {
		return 0, ErrMalformed
	}
	payload := tcp + int(f[tcp+12]>>4)*4
	if payload < tcp+20 || payload > end {
		return 0, ErrMalformed
	}
	mss := int(h.GSOSize)
	k := Segments(end-payload, mss)
	if k > len(out) || k > len(sizes) {
		return 0, ErrNoRoom
	}
	for i := range k {
		if len(out[i]) < payload+min(mss, end-payload-i*mss) {
			return 0, ErrNoRoom
		}
	}
	seq := binary.BigEndian.Uint32(f[tcp+4:])
	flags := f[tcp+13]
	for i := range k {
		o := out[i]
		copy(o, f[:payload])
		segEnd := payload + copy(o[payload:], f[payload+i*mss:min(payload+(i+1)*mss, end)])
		sizes[i] = segEnd
		binary.BigEndian.PutUint32(o[tcp+4:], seq+uint32(i*mss))
		fl := flags
		if i < k-1 {
			fl &^= tcpFIN | tcpPSH
		}
		if i > 0 {
			fl &^= tcpCWR
		}
		o[tcp+13] = fl
		// Innermost first: a GRE checksum covers the headers inside it.
		for j := n - 1; j >= 0; j-- {
			l := ls[j]
			switch l.kind {
			case layerIPv4:
				binary.BigEndian.PutUint16(o[l.off+2:], uint16(segEnd-l.off))
				id := binary.BigEndian.Uint16(f[l.off+4:])
				binary.BigEndian.PutUint16(o[l.off+4:], id+uint16(i))
				setIPv4Csum(o, l.off, l.end)
			case layerIPv6:
				binary.BigEndian.PutUint16(o[l.off+4:], uint16(segEnd-l.off-40))
			case layerGRE:
				o[l.off+4], o[l.off+5] = 0, 0
				binary.BigEndian.PutUint16(o[l.off+4:], ^fold(sum(o[l.off:segEnd], 0)))
			}
			if j == n-1 {
				setTCPCsum(o, TCPFrame{L3: inner.off, L4: tcp, Payload: payload, End: segEnd, V6: inner.kind == layerIPv6})
			}
		}
	}
	return k, nil
}
