package engine

import (
	"github.com/tcpinc/tcpinc/appliance/packet"
)

// thirdAcceptable reports whether a non-SYN segment from R in SYN-ACK-SENT
// is one the inside host, in SYN-RECEIVED, would accept (RFC 9293
// §3.10.7.4): it acknowledges exactly the host's SYN-ACK and starts in the
// window that SYN-ACK offered (never scaled, RFC 7323 §2.2). Only such a
// segment may decide the negotiation: a blind one without ENO would make B
// fall back to plain TCP while A, which never saw it, encrypts, and A's
// Init1 would then reach the host as data.
func (e *Engine) thirdAcceptable(f *flow, p *packet.Packet) bool {
	if p.Flags()&packet.FlagACK == 0 || p.Ack() != f.isnL+1 {
		return false
	}
	off := int64(int32(p.Seq() - (f.isnR + 1)))
	return off >= 0 && off < max(int64(f.winL), 1)
}
