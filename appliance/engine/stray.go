package engine

import (
	"time"

	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/packet"
)

// stray handles a mid-connection segment of a connection the engine has no
// record of: one that began before this engine started (a restart) or whose
// record expired. Unless its tuple is in the negotiated set it is plain TCP
// and passes unchanged: the appliance never resets plain TCP. A negotiated
// tuple's segment may be ciphertext for a host or plaintext for the wire,
// so it is dropped and the connection reset (strayReset). RSTs pass.
func (e *Engine) stray(k flowKey, p *packet.Packet, from PortID, tx [2]TxSink) Verdict {
	fl := p.Flags()
	if fl&packet.FlagSYN != 0 {
		// A SYN-ACK of a connection whose SYN the engine did not see
		// (or whose record an RST ended): it would go on in plain TCP.
		far := p.DstAddr()
		if from == Outside {
			far = p.SrcAddr()
		}
		if e.cfg.policyFor(far) == Require {
			return e.drop(DropPolicy)
		}
		if from == Inside && fl&(packet.FlagSYN|packet.FlagACK|packet.FlagRST) == packet.FlagSYN|packet.FlagACK && e.synAnswered(k, from, p.Ack()) {
			// The inside host accepts a new connection on the tuple,
			// answering a SYN that passed with no record: it holds no
			// old one there. A SYN-ACK from outside, forged or not,
			// proves nothing of the host; nor does the host's SYN-ACK
			// to a SYN this engine did not see pass (a retransmission
			// of one a previous run negotiated): the tuple stays.
			e.neg.forget(k)
		}
		return Passthrough
	}
	if !e.neg.has(k) {
		return Passthrough
	}
	if fl&packet.FlagRST != 0 {
		if len(p.Payload()) > 0 {
			return e.drop(DropStale) // RST data might be plaintext of a forgotten connection
		}
		if !p.VerifyL4Checksum() {
			// Corrupted on the way: the host would drop it; the
			// engine forwards only segments it can vouch for.
			return e.drop(DropChecksum)
		}
		return Passthrough
	}
	e.strayReset(p, from, tx)
	return e.drop(DropStale)
}

// earlySYNACK reports whether p, from the outside on a tuple with no
// record, is a SYN-ACK with TCP-ENO that came within startWindow of the
// engine's start (now counts from the appliance's start, the workers'
// clock, and the engines are made with it): the answer, most likely, to a SYN a previous run sent
// with our option just before it stopped (a restart). The far side has
// negotiated and waits for our Init1; passed, the SYN-ACK would reach the
// host as a plain connection's, the host's third segment would go without
// ENO and the far side fall back (RFC 8547 §4.6): the connection would go
// on in plaintext. Dropped, the host retransmits its SYN (RFC 6298 §2.1),
// which this run sends with our option, and the far side's next SYN-ACK
// meets a record. After the window such a SYN-ACK passes, as one whose SYN
// took another path (asymmetric routing: the connection stays plain).
func (e *Engine) earlySYNACK(now int64, k flowKey, p *packet.Packet) bool {
	if now >= startWindow || p.Flags()&(packet.FlagSYN|packet.FlagACK|packet.FlagRST) != packet.FlagSYN|packet.FlagACK {
		return false
	}
	if e.cfg.policyFor(k.out.Addr()) == Bypass {
		return false
	}
	sc := eno.ScanOptions(p.OptionBytes())
	return sc.HasENO()
}

// startWindow: SYNs sent before a restart are answered within it (a round
// trip, a far appliance's short pause); the hosts' SYN retransmissions,
// a second apart, pass through this run well within it.
const startWindow = int64(10 * time.Second)

// strayReset resets both ends of a negotiated connection the engine has no
// record of. Without the record the engine knows the sequence numbers of
// the sender only: it gets an RST at the number it expects next (the
// segment's ACK; RFC 9293 §3.10.7.4, RFC 5961 §3.2 exact match). The other
// end's numbers live in another sequence space (host or wire), so it gets
// an empty ACK half the sequence space away, which it cannot accept and
// answers with an ACK of its own (RFC 9293 §3.10.7.4: "an acknowledgment
// should be sent in reply"); that answer comes here as a stray and gets
// its exact RST. Only segments with data or FIN get a probe, so two ends
// never keep probing each other.
func (e *Engine) strayReset(p *packet.Packet, from PortID, tx [2]TxSink) {
	e.c.StrayResets.Add(1)
	fl := p.Flags()
	var t tmpl
	if !t.set(p) {
		return
	}
	var probe tmpl
	probe = t
	t.reverse()
	s := seg{seq: p.Ack(), flags: packet.FlagRST}
	if fl&packet.FlagACK == 0 {
		s.seq, s.flags = 0, packet.FlagRST|packet.FlagACK
		s.ack = p.Seq() + uint32(len(p.Payload()))
		if fl&packet.FlagFIN != 0 {
			s.ack++
		}
	}
	e.opts.reset()
	e.send(tx[from], &t, &s, nil)
	if len(p.Payload()) > 0 || fl&packet.FlagFIN != 0 {
		e.send(tx[from.Other()], &probe, &seg{seq: p.Seq() + 1<<31, ack: p.Ack(), flags: packet.FlagACK, win: p.Window()}, nil)
	}
}
