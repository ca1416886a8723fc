package engine

import (
	"net/netip"

	"github.com/tcpinc/tcpinc/appliance/packet"
)

// icmp handles an ICMP message: an error from the outside may be about our
// wire segments (pmtu.go); an error from the inside about a negotiated
// connection never leaves.
func (e *Engine) icmp(now int64, from PortID, p *packet.Packet, tx [2]TxSink) Verdict {
	if from == Outside {
		return e.outsideError(now, p)
	}
	if from == Inside {
		// An ICMP error about a segment the appliance delivered quotes
		// decrypted plaintext (Linux quotes up to 548 bytes); one about
		// a host segment quotes what was never sent as such. Neither may
		// leave; the far side's path is the far appliance's business. A
		// packet-too-big still lowers what the appliance sends L. One
		// about a segment without payload before the key exchange (an
		// inside firewall rejecting the far side's SYN) holds no
		// plaintext, and both spaces are still one: it goes on, so the
		// far side fails at once as over plain TCP.
		if f := e.quotedFlow(p); f != nil && f.state < stKex && quotesNoPayload(p) {
			return Passthrough
		} else if f != nil && f.state != stPlain {
			if p.IsPathMTU() {
				if !p.VerifyL4Checksum() {
					return e.drop(DropChecksum) // corrupted: its MTU may be anything
				}
				return e.insidePTB(now, f, p, tx)
			}
			return e.drop(DropICMPQuote)
		} else if f == nil && e.quotedNegotiated(p) {
			return e.drop(DropICMPQuote) // about a segment a previous run delivered
		}
	}
	return Passthrough
}

// quotedTuple returns the source and destination of the TCP segment an ICMP
// error quotes, as the quoted header names them.
func quotedTuple(p *packet.Packet) (src, dst netip.AddrPort, ok bool) {
	q, ok := p.Quote()
	if !ok || q.Proto != packet.ProtoTCP {
		return src, dst, false
	}
	sp, dp, ok := p.QuotedPorts()
	if !ok {
		return src, dst, false
	}
	fr := p.Frame()
	var qs, qd netip.Addr
	switch {
	case q.Version == 4 && q.L3+20 <= len(fr):
		qs, _ = netip.AddrFromSlice(fr[q.L3+12 : q.L3+16])
		qd, _ = netip.AddrFromSlice(fr[q.L3+16 : q.L3+20])
	case q.Version == 6 && q.L3+40 <= len(fr):
		qs, _ = netip.AddrFromSlice(fr[q.L3+8 : q.L3+24])
		qd, _ = netip.AddrFromSlice(fr[q.L3+24 : q.L3+40])
	default:
		return src, dst, false
	}
	return netip.AddrPortFrom(qs, sp), netip.AddrPortFrom(qd, dp), true
}

// quotedNegotiated reports whether the TCP segment an ICMP error quotes
// belongs to a tuple in the negotiated set, in either direction.
func (e *Engine) quotedNegotiated(p *packet.Packet) bool {
	a, b, ok := quotedTuple(p)
	return ok && (e.neg.has(flowKey{in: a, out: b}) || e.neg.has(flowKey{in: b, out: a}))
}

// quotedFlow returns the flow of the TCP segment an ICMP error quotes, in
// either direction, or nil.
func (e *Engine) quotedFlow(p *packet.Packet) *flow {
	a, b, ok := quotedTuple(p)
	if !ok {
		return nil
	}
	if f := e.flows[flowKey{in: a, out: b}]; f != nil {
		return f
	}
	return e.flows[flowKey{in: b, out: a}]
}
