package engine

import "github.com/tcpinc/tcpinc/appliance/packet"

// Connections whose segments take a path around the appliance: two
// appliances side by side (ECMP, active/active), or a route around this
// one one way. A connection can only be encrypted if both its directions
// pass one appliance, which holds its keys; plain TCP carries the others,
// and so must the appliance.
//
// In the handshake, a host's first non-SYN segment at the first sequence
// number after its SYN shows that it holds a SYN-ACK (RFC 9293
// §3.10.7.3): if that SYN-ACK never passed here, the negotiation ends in
// plain TCP (fallback asymmetric). From the far side that sign is one a
// blind sender can forge (it chose the ISN of its SYN), so it counts only
// on a tuple that holds no encrypted connection; elsewhere such a
// connection hangs as before. Once encrypted, the far side's
// segments that reach the inside host by another path carry wire sequence
// numbers a little ahead of the host's (the Init message and the frame
// headers), so its TCP may keep their ciphertext as data; the appliance
// sees it in the host's ACK or SACK blocks, which then cover bytes it
// never delivered, and resets both hosts before what it delivers next
// fills the hole below them (bypassed).

// synAckElsewhere reports whether segment p, from the host whose SYN with
// ISN isn waits for an answer here, acknowledges a SYN-ACK that never
// passed this appliance.
func synAckElsewhere(p *packet.Packet, isn uint32) bool {
	return p.Flags()&(packet.FlagSYN|packet.FlagACK|packet.FlagRST) == packet.FlagACK && p.Seq() == isn+1
}

// asymmetric ends a negotiation at the first segment after a SYN-ACK that
// went by another path (synAckElsewhere), from the inside host as host A
// or from the far side as A when the appliance is host B: with no SYN-ACK
// seen there is nothing to negotiate, so the connection goes on in plain
// TCP. The segment goes on as it came. From the inside host it carries no
// ENO, so a far side that answered with ENO disables it (RFC 8547 §4.6,
// ENO-28); the inside host's SYN-ACK that went around carried none. Under
// require both hosts are reset instead, each at the sequence number it
// waits for: the sender's is in p, the other's is p's ACK.
func (e *Engine) asymmetric(f *flow, p *packet.Packet, from PortID, tx [2]TxSink) Verdict {
	const why = "a SYN-ACK went by a path around the appliance (asymmetric routing)"
	if from == Inside {
		// L's ACK shows R answered its SYN, as a SYN-ACK through here
		// would (Handle, answers): what the negotiated set remembers of
		// an older connection on the tuple no longer applies.
		e.neg.forget(f.key)
	}
	if f.policy != Require {
		e.kill(f, FallbackAsymmetric, why)
		return Passthrough
	}
	if !f.toL.ok {
		f.toL = mirror(&f.toR)
	}
	if !f.toR.ok {
		f.toR = mirror(&f.toL)
	}
	if from == Inside {
		e.rstBoth(f, tx, p.Ack(), 0, p.Ack(), p.Seq())
	} else {
		e.rstBoth(f, tx, p.Seq(), 0, p.Seq(), p.Ack())
	}
	e.kill(f, FallbackAsymmetric, "required: "+why)
	e.remove(f)
	return Dropped
}

// strayAtL reports whether L's segment p acknowledges, cumulatively or in a
// SACK block (RFC 2018), bytes of R's stream the appliance never delivered
// to it: then its TCP holds bytes that came by another path (bypassed).
// Edges more than 2^30 ahead are taken for garbage, not evidence.
func (e *Engine) strayAtL(f *flow, p *packet.Packet) bool {
	d := &f.rcv
	limit := d.sentH
	if d.finOut {
		limit = d.finH + 1
	}
	beyond := func(seq uint32) bool {
		x := unwrap(seq, f.isnR, d.ackH)
		return x > limit && x-limit < 1<<30
	}
	if p.Flags()&packet.FlagACK != 0 && beyond(p.Ack()) {
		return true
	}
	for i := 0; i < e.si.nsack; i++ {
		if beyond(e.si.sack[i][1]) {
			return true
		}
	}
	return false
}

// bypassed resets both hosts of an encrypted connection whose inside host
// took the far side's segments by a path around the appliance (strayAtL):
// what it holds beyond its ACK is ciphertext, which the next bytes
// delivered would let its TCP hand to the application. The RST to L goes
// at L's own RCV.NXT, its ACK, which may be past what the appliance sent
// it; the far side's at the wire offset it waits for (abort).
func (e *Engine) bypassed(f *flow, p *packet.Packet, tx [2]TxSink) {
	e.c.Bypassed.Add(1)
	if f.toL.ok && p.Flags()&packet.FlagACK != 0 {
		e.opts.reset()
		e.send(tx[Inside], &f.toL, &seg{seq: p.Ack(), flags: packet.FlagRST}, nil)
		f.toL.ok = false // abort's RST would sit at the appliance's offset, below L's window
	}
	e.abort(f, tx, "the inside host acknowledged bytes the appliance never delivered: the far side's segments reached it by another path")
}
