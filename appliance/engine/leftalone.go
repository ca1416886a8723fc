package engine

import (
	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/packet"
)

// leftAlone is why the handshake segment p (a SYN or SYN-ACK, what says
// which; sc is its options' scan) must cross without TCP-ENO, its
// connection left plain: the fallback reason and the text for the flow,
// or -1.
//
//   - Signed end to end: TCP MD5 signs the header's length, TCP-AO the
//     options too, and IPsec AH the whole packet: a SYN with ENO added no
//     longer verifies (the host drops it), and nor would the segments the
//     appliances cut from frames.
//   - Behind an IPv6 routing header with segments left, or an IPv4 source
//     route with addresses left: its TCP checksum covers the final
//     destination, not the IP header's (RFC 8200 §8.1, RFC 9293 §3.1). The engine checks and sums every segment of an encrypted
//     connection over the IPv6 header's: it would drop the host's data as
//     corrupt, and its own segments would fail at the receiver.
func leftAlone(p *packet.Packet, sc *eno.Scan, what string) (int, string) {
	switch {
	case sc.Auth || p.HasAH():
		return FallbackTCPAuth, what + " signed with TCP MD5, TCP-AO or IPsec AH"
	case p.SegmentsLeft():
		return FallbackSourceRouted, what + " source-routed (addresses left before the final destination)"
	}
	return -1, ""
}
