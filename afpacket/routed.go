package afpacket

import "encoding/binary"

// Source-routed TCP super-segments. Behind an IPv6 routing header with
// segments left, the TCP checksum covers the final destination, which is
// not in the IPv6 header (RFC 8200 §8.1): PrepareGSO, Segment and the
// kernel's GSO of a frame without a partial checksum, which all take the
// pseudo-header from the IPv6 header, would give every segment a wrong
// checksum. Such a super-segment arrives with the pseudo-header sum its
// sender's TCP computed for the final destination in its checksum field
// (FlagNeedsCsum), the sum the kernel's GSO starts each segment's from.
// The receiving side cuts it in software the same way: SegmentRouted.

// SegmentRouted cuts the TCP super-segment f, which came with the
// virtio_net_hdr h (a TCPv6 GSO type and gso_size) and is behind a routing
// header with segments left (TCPFrame.Routed), into segments of at most
// h.GSOSize payload bytes, as the kernel's GSO would: headers copied,
// sequence number advanced, FIN and PSH on the last segment only, CWR on
// the first only, each IPv6 payload length set, and each TCP checksum
// complete, computed from the pseudo-header sum in f's checksum field
// (FlagNeedsCsum) for the segment's length, or, when h has no partial
// checksum, from the one implied by f's complete checksum. Segment i goes
// to out[i][:sizes[i]]; f is not changed. Any other frame is ErrNotTCP; too
// few or too small buffers, ErrNoRoom (nothing written).
func SegmentRouted(f []byte, h VnetHdr, out [][]byte, sizes []int) (int, error) {
	p, err := parseTCP(f, true)
	if err != nil {
		return 0, err
	}
	mss := int(h.GSOSize)
	if !p.Routed || h.GSOType&^GSOECN != GSOTCPv6 || mss == 0 {
		return 0, ErrNotTCP
	}
	at := p.L4 + tcpCsumOffset
	var seed uint64 // the final destination's pseudo-header sum for f's length
	if h.Flags&FlagNeedsCsum != 0 {
		if int(h.CsumStart) != p.L4 || h.CsumOffset != tcpCsumOffset {
			return 0, ErrMalformed
		}
		seed = uint64(binary.BigEndian.Uint16(f[at:]))
	} else {
		// A complete checksum makes the pseudo-header sum and the
		// segment's sum fold to 0xffff: the one is the other's complement.
		seed = uint64(^fold(sum(f[p.L4:p.End], 0)))
	}
	// Less f's TCP length: what stays is the addresses and the protocol.
	seed += uint64(^uint16(p.End - p.L4))
	return cut(f, p, mss, out, sizes, func(o []byte, q TCPFrame) {
		o[at], o[at+1] = 0, 0
		binary.BigEndian.PutUint16(o[at:], ^fold(sum(o[q.L4:q.End], seed+uint64(q.End-q.L4))))
	})
}
