package scenario

import (
	"encoding/binary"
	"net/netip"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// Narrow is a router whose next hop has a smaller MTU, on one direction of
// the link (Link.Narrow) or on a host's inside link (World.Inside): a TCP
// datagram larger than MTU is dropped and its sender gets a packet-too-big
// from Addr quoting it (an ICMPv4 "fragmentation needed" with the next-hop
// MTU, RFC 1191, or an ICMPv6 "packet too big", RFC 8201), as a router
// answers a datagram with DF set. The quote is as long as Linux makes it.
type Narrow struct {
	Addr netip.Addr
	MTU  int
	// Sent records when each packet-too-big was sent.
	Sent []int64
}

// tooBig returns the packet-too-big for frame if it does not fit.
func (r *Narrow) tooBig(now int64, frame []byte) ([]byte, bool) {
	s, err := ParseFrame(frame)
	if err != nil {
		return nil, false
	}
	ip := frame[14:]
	if s.Src.Addr().Is4() {
		if int(binary.BigEndian.Uint16(ip[2:])) <= r.MTU {
			return nil, false
		}
		r.Sent = append(r.Sent, now)
		return packettest.Frame{Src: r.Addr, Dst: s.Src.Addr(), Proto: 1,
			L4: packettest.ICMP(3, 4, uint32(r.MTU), packettest.Quote(frame, 576-28))}.Bytes(), true
	}
	if 40+int(binary.BigEndian.Uint16(ip[4:])) <= r.MTU {
		return nil, false
	}
	r.Sent = append(r.Sent, now)
	return packettest.Frame{Src: r.Addr, Dst: s.Src.Addr(), Proto: 58,
		L4: packettest.ICMP(2, 0, uint32(r.MTU), packettest.Quote(frame, 1280-48))}.Bytes(), true
}

// IPLen returns the IP datagram length of a frame (Ethernet, no tags).
func IPLen(frame []byte) int {
	if len(frame) < 14+6 {
		return len(frame) - 14
	}
	ip := frame[14:]
	if ip[0]>>4 == 4 {
		return int(binary.BigEndian.Uint16(ip[2:]))
	}
	return 40 + int(binary.BigEndian.Uint16(ip[4:]))
}
