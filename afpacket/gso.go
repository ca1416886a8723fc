package afpacket

import "encoding/binary"

// PrepareGSO readies the frame f (Ethernet, IP, TCP and any amount of
// payload; f ends where the packet ends) to be sent by a PACKET_VNET_HDR
// socket, and returns the virtio_net_hdr to send with it. It sets the IP
// length field (and the IPv4 header checksum) from len(f) and leaves the
// pseudo-header sum in the TCP checksum field, as the kernel's own TCP does
// for a TSO packet: the kernel (or the NIC) completes the checksum of every
// segment. A payload longer than mss is marked as a super-segment, which the
// kernel cuts into segments of mss payload bytes, copying the headers and
// advancing the sequence number (FIN and PSH on the last segment only, CWR on
// the first only), exactly as Segment does in software.
func PrepareGSO(f []byte, mss int) (VnetHdr, error) {
	var h VnetHdr
	if mss <= 0 || mss > 0xffff {
		return h, ErrMalformed
	}
	p, err := parseTCP(f, false)
	if err == nil && p.Routed {
		err = ErrNotTCP // its pseudo-header is not the IPv6 header's
	}
	if err != nil {
		return h, err
	}
	if err := setIPLen(f, p); err != nil {
		return h, err
	}
	at := p.L4 + tcpCsumOffset
	binary.BigEndian.PutUint16(f[at:], fold(pseudoSum(f, p, p.End-p.L4)))
	h = VnetHdr{
		Flags:      FlagNeedsCsum,
		HdrLen:     uint16(p.Payload),
		CsumStart:  uint16(p.L4),
		CsumOffset: tcpCsumOffset,
	}
	if p.PayloadLen() > mss {
		h.GSOType, h.GSOSize = GSOTCPv4, uint16(mss)
		if p.V6 {
			h.GSOType = GSOTCPv6
		}
		if f[p.L4+13]&tcpCWR != 0 {
			h.GSOType |= GSOECN
		}
	}
	return h, nil
}

// setIPLen writes the IP length field for a packet ending at p.End, and the
// IPv4 header checksum.
func setIPLen(f []byte, p TCPFrame) error {
	if p.V6 {
		n := p.End - p.L3 - 40
		if n > 0xffff {
			return ErrTooBig
		}
		binary.BigEndian.PutUint16(f[p.L3+4:], uint16(n))
		return nil
	}
	n := p.End - p.L3
	if n > 0xffff {
		return ErrTooBig
	}
	binary.BigEndian.PutUint16(f[p.L3+2:], uint16(n))
	setIPv4Csum(f, p.L3, p.L4)
	return nil
}

// Segments returns how many segments Segment makes of a packet with payload
// bytes of TCP payload at the given mss (at least one).
func Segments(payload, mss int) int {
	if payload <= mss {
		return 1
	}
	return (payload + mss - 1) / mss
}

// Segment cuts the TCP super-segment f (a frame as ParseTCP accepts it;
// its checksums need not be valid) into segments of at most mss payload
// bytes, for a port that cannot hand GSO to the kernel or whose far side must
// not see super-segments. Segment i goes to out[i][:sizes[i]], with complete
// IP and TCP checksums; f is not changed. Each copy of the headers gets the
// sequence number advanced by i*mss, its own IP length, for IPv4 the IP ID
// advanced by i (as the kernel's GSO does), FIN and PSH only on the last
// segment and CWR only on the first. It returns the number of segments, or
// ErrNoRoom (writing nothing) when out has too few buffers or one is too
// small for its segment.
func Segment(f []byte, mss int, out [][]byte, sizes []int) (int, error) {
	if mss <= 0 {
		return 0, ErrMalformed
	}
	p, err := ParseTCP(f)
	if err != nil {
		return 0, err
	}
	return cut(f, p, mss, out, sizes, setTCPCsum)
}

// cut is Segment's loop, which SegmentRouted shares: it cuts the parsed
// TCP frame f into segments of at most mss payload bytes in out, sizes
// set, headers copied, sequence number advanced, FIN and PSH on the last
// segment only, CWR on the first only, the IPv4 ID advanced and IP lengths
// set; csum then completes each segment's TCP checksum. ErrNoRoom writes
// nothing.
func cut(f []byte, p TCPFrame, mss int, out [][]byte, sizes []int, csum func(o []byte, q TCPFrame)) (int, error) {
	payload := p.PayloadLen()
	n := Segments(payload, mss)
	if n > len(out) || n > len(sizes) {
		return 0, ErrNoRoom
	}
	for i := range n {
		seg := min(mss, payload-i*mss)
		if payload == 0 {
			seg = 0
		}
		if len(out[i]) < p.Payload+seg {
			return 0, ErrNoRoom
		}
	}
	seq := binary.BigEndian.Uint32(f[p.L4+4:])
	flags := f[p.L4+13]
	var id uint16
	if !p.V6 {
		id = binary.BigEndian.Uint16(f[p.L3+4:])
	}
	for i := range n {
		start := p.Payload + i*mss
		end := min(start+mss, p.End)
		o := out[i]
		copy(o, f[:p.Payload])
		m := copy(o[p.Payload:], f[start:end])
		q := p
		q.End = p.Payload + m
		sizes[i] = q.End
		binary.BigEndian.PutUint32(o[p.L4+4:], seq+uint32(i*mss))
		fl := flags
		if i < n-1 {
			fl &^= tcpFIN | tcpPSH
		}
		if i > 0 {
			fl &^= tcpCWR
			if !p.V6 {
				binary.BigEndian.PutUint16(o[p.L3+4:], id+uint16(i))
			}
		}
		o[p.L4+13] = fl
		_ = setIPLen(o, q) // cannot fail: a segment is no longer than f
		csum(o, q)
	}
	return n, nil
}
