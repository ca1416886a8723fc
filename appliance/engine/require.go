package engine

import (
	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/packet"
)

// Every way a negotiation can end without encryption goes through one of
// the functions here, so that under the require policy none of them lets
// the connection go on in plain TCP (RFC 8547 §4.7, mandatory encryption):
// both hosts are reset and the record is forgotten, so that a repeat of the
// segment in hand meets no record and is dropped as a stray of a require
// prefix.

// fallbackA ends host A's negotiation at the far side's SYN-ACK p: plain TCP,
// or under require an RST to both hosts (the far side's SYN-ACK answered,
// the inside host's SYN refused).
func (e *Engine) fallbackA(f *flow, p *packet.Packet, tx [2]TxSink, reason int, why string) Verdict {
	if f.policy != Require {
		e.kill(f, reason, why)
		if eno.ScanOptions(p.OptionBytes()).NumENO > 0 {
			// A SYN+ENO segment's data, ENO having failed (RFC 8547 §4.7).
			return e.synDataCheck(nil, Passthrough, p, tx[Inside])
		}
		return Passthrough
	}
	e.refuse(f, p, tx)
	e.kill(f, reason, "required: "+why)
	e.remove(f)
	return Dropped
}

// fallbackB ends host B's negotiation at the inside host's SYN-ACK p: plain
// TCP, or under require an RST to both hosts (the inside host is in
// SYN-RECEIVED, the far side in SYN-SENT: its SYN acknowledged by the RST).
func (e *Engine) fallbackB(f *flow, p *packet.Packet, tx [2]TxSink, reason int, why string) Verdict {
	if f.policy != Require {
		e.kill(f, reason, why)
		return Passthrough
	}
	if !f.toR.set(p) {
		f.toR = mirror(&f.toL)
	}
	e.rstBoth(f, tx, f.isnR+1, 0, f.isnR+1, 0)
	e.kill(f, reason, "required: "+why)
	e.remove(f)
	return Dropped
}

// mirror returns the template of segments the other way: the headers a
// template was taken from, turned around. A reset to a host whose own
// headers did not fit (an IPv6 extension header lengthened them past
// tmplCap) is built from it: same port, same link, addresses swapped.
func mirror(t *tmpl) tmpl {
	m := *t
	if m.ok {
		m.reverse()
	}
	return m
}

// fallbackThird ends host B's negotiation at the far side's third segment
// p: plain TCP, or under require an RST to both hosts (the inside host is
// in SYN-RECEIVED: RST at its rcv.nxt; the far side established).
func (e *Engine) fallbackThird(f *flow, p *packet.Packet, tx [2]TxSink, reason int, why string) Verdict {
	if f.policy != Require {
		e.kill(f, reason, why)
		return Passthrough
	}
	e.rstBoth(f, tx, f.isnR+1, 0, p.Seq()+uint32(len(p.Payload())), p.Ack())
	e.kill(f, reason, "required: "+why)
	e.remove(f)
	return Dropped
}

// End-to-end checks under require (flow.e2e).
const (
	e2eSYNACK = iota + 1 // host A inside: the far SYN-ACK must carry TCP-ENO
	e2eThird             // host B inside: the far third segment must
)

// endToEndRequired watches, under the require policy, a connection whose
// inside host negotiates TCP-ENO itself (end to end): the appliance leaves
// it to the hosts, but their TCP-ENO falls back to plain TCP when the far
// side's SYN-ACK to host A, or its first non-SYN segment to host B, comes
// without the option (RFC 8547 §3.2, ENO-28), and an attacker on the path
// need only strip it. Such a segment resets both hosts instead. Only a
// segment the inside host would accept counts (a blind one would make the
// appliance reset the connection). It reports false with the verdict when
// the segment goes no further.
func (e *Engine) endToEndRequired(f *flow, p *packet.Packet, tx [2]TxSink) (Verdict, bool) {
	fl := p.Flags()
	var toL, toR seg
	switch f.e2e {
	case e2eSYNACK:
		if fl&(packet.FlagSYN|packet.FlagACK|packet.FlagRST) != packet.FlagSYN|packet.FlagACK || p.Ack() != f.isnL+1 {
			return 0, true
		}
		// L is in SYN-SENT, R in SYN-RECEIVED.
		toL = seg{ack: f.isnL + 1, flags: packet.FlagRST | packet.FlagACK}
		toR = seg{seq: p.Ack(), flags: packet.FlagRST}
	case e2eThird:
		if fl&(packet.FlagSYN|packet.FlagRST) != 0 || !e.thirdAcceptable(f, p) {
			return 0, true
		}
		// L is in SYN-RECEIVED (RST at its rcv.nxt), R established.
		toL = seg{seq: p.Seq(), flags: packet.FlagRST}
		toR = seg{seq: p.Ack(), ack: p.Seq() + uint32(len(p.Payload())), flags: packet.FlagRST | packet.FlagACK}
	default:
		return 0, true
	}
	if !p.SegmentsLeft() && !p.VerifyL4Checksum() {
		// Corrupted on the way: L drops it, and neither its options nor
		// their absence say anything (the SYN-ACK's was checked in
		// handlePacket, being a SYN).
		return e.drop(DropChecksum), false
	}
	if sc := eno.ScanOptions(p.OptionBytes()); sc.NumENO > 0 || sc.NumLegacy > 0 {
		f.e2e = 0 // negotiated end to end, as far as the appliance can see
		return 0, true
	}
	var t tmpl
	if t.set(p) {
		r := mirror(&t)
		e.opts.reset()
		e.send(tx[Inside], &t, &toL, nil)
		e.send(tx[Outside], &r, &toR, nil)
	}
	e.c.Aborts.Add(1)
	f.reason = "required: end-to-end TCP-ENO not negotiated"
	e.remove(f)
	return e.drop(DropPolicy), false
}

// plainVerdict is the verdict for a segment of the plain flow f that goes
// on unchanged: Passthrough, which lets the workers put the flow on the
// fast path, unless a require policy still waits for the far side's
// TCP-ENO (f.e2e) or A's first bytes are still to be checked
// (f.watchInit1): then ForwardInPlace, the same frame with the flow kept
// here. On the fast path the kernel would carry the far side's next
// segment, and endToEndRequired or firstBytes would never see it.
func (f *flow) plainVerdict() Verdict {
	if f.e2e != 0 || f.watchInit1 {
		return ForwardInPlace
	}
	return Passthrough
}
