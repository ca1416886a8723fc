package engine

import (
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
