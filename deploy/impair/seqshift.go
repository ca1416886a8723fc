package impair

import (
	"encoding/binary"
	"sync/atomic"
)

// SeqShift is a firewall that randomises TCP sequence numbers, as Cisco
// ASA's sequence number randomisation and pf's "modulate state" do: it adds
// Offset[d] to the sequence number of every TCP segment going in direction
// d (0: a to b) and takes Offset[1-d] off its acknowledgment number, so
// each side sees the other's ISN moved. Boxes that do this must move the
// SACK blocks' edges as they move the ACK; with RawSACK they are left
// alone, which is a known bug of such boxes: the SACK blocks a sender gets
// then name bytes far from any it sent, and it ignores them, while both
// SYNs said SACK.
//
// Apply rewrites one frame in place, IPv4 or IPv6 (no VLAN tag, no IPv6
// extension header, no fragment), keeping its TCP checksum right. It is
// not safe for concurrent use per direction: one goroutine per direction
// drives it, as Forwarder does.
type SeqShift struct {
	Offset  [2]uint32
	RawSACK bool
	// Shifted counts the segments rewritten per direction, SACKLeft the
	// SACK blocks passed unchanged with RawSACK.
	Shifted, SACKLeft [2]atomic.Uint64
}

// vnetNeedsCsum is VIRTIO_NET_HDR_F_NEEDS_CSUM: the frame's TCP checksum
// field holds only the pseudo-header's sum, and the kernel completes it on
// transmit, so the header may change without touching it.
const vnetNeedsCsum = 1

// Apply rewrites frame, which starts with its virtio_net_hdr, for direction
// d, and reports whether it was a TCP segment it rewrote.
func (s *SeqShift) Apply(d int, frame []byte) bool {
	if len(frame) < vnetHdrLen+14 {
		return false
	}
	partial := frame[0]&vnetNeedsCsum != 0
	eth := frame[vnetHdrLen:]
	var tcp []byte
	switch binary.BigEndian.Uint16(eth[12:]) {
	case 0x0800:
		ip := eth[14:]
		if len(ip) < 20 || ip[9] != 6 || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 || int(ip[0]&0x0f)*4 > len(ip) {
			return false // not TCP, a fragment, or cut short
		}
		tcp = ip[int(ip[0]&0x0f)*4:]
	case 0x86dd:
		ip := eth[14:]
		if len(ip) < 40 || ip[6] != 6 {
			return false
		}
		tcp = ip[40:]
	default:
		return false
	}
	if len(tcp) < 20 || int(tcp[12]>>4)*4 < 20 || int(tcp[12]>>4)*4 > len(tcp) {
		return false
	}
	sum := binary.BigEndian.Uint16(tcp[16:])
	move := func(field []byte, by uint32) {
		old := binary.BigEndian.Uint32(field)
		binary.BigEndian.PutUint32(field, old+by)
		if !partial {
			sum = csumReplace(sum, old, old+by)
		}
	}
	move(tcp[4:8], s.Offset[d])
	const flagACK = 0x10
	if tcp[13]&flagACK != 0 {
		move(tcp[8:12], -s.Offset[1-d])
	}
	opts := tcp[20 : int(tcp[12]>>4)*4]
	for i := 0; i < len(opts); {
		kind := opts[i]
		if kind == 0 {
			break
		}
		if kind == 1 {
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			break
		}
		n := int(opts[i+1])
		if kind == 5 { // SACK: blocks of edges in the ACK's sequence space
			for e := i + 2; e+8 <= i+n; e += 8 {
				if s.RawSACK {
					s.SACKLeft[d].Add(1)
					continue
				}
				move(opts[e:e+4], -s.Offset[1-d])
				move(opts[e+4:e+8], -s.Offset[1-d])
			}
		}
		i += n
	}
	binary.BigEndian.PutUint16(tcp[16:], sum)
	s.Shifted[d].Add(1)
	return true
}

// csumReplace updates an Internet checksum for a 32-bit field changed from
// old to new (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
func csumReplace(sum uint16, old, new uint32) uint16 {
	acc := uint32(^sum)
	acc += uint32(^uint16(old>>16)) + uint32(^uint16(old))
	acc += new>>16 + new&0xffff
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return ^uint16(acc)
}
