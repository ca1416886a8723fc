package engine

import "github.com/tcpinc/tcpinc/appliance/packet"

// mssCap is the largest MSS that fits Deps.MTU for p's IP version: the MTU
// less a base IP header and a TCP header without options, as a host derives
// its own MSS from its interface (RFC 9293 §3.7.1, RFC 6691). A far side
// announcing a jumbo MSS behind a smaller link would otherwise get segments
// no port can carry, and a frame larger than the TX buffer is never sent at
// all: the flow would stall retransmitting it.
func (e *Engine) mssCap(p *packet.Packet) uint16 {
	if e.deps.MTU <= 0 {
		return 0xffff
	}
	ip := 20
	if p.IPVersion() != 4 {
		ip = 40
	}
	return uint16(min(max(e.deps.MTU-ip-20, minMSS), 0xffff))
}
