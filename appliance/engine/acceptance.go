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

// A SYN on the tuple of a plain connection's record is a new connection
// reusing the tuple, or a blind SYN (any sequence number; from outside
// with TCP-ENO it would make the record a negotiating flow, and every
// later segment of the live connection would be dropped). The appliance is
// no endpoint of a plain connection and cannot tell the two apart: it
// follows no sequence numbers there (the fast path carries most segments).
// The hosts can: a host with the connection alive answers the SYN with a
// challenge ACK (RFC 5961 §4), one without it with a SYN-ACK. So the SYN is
// handled as any SYN (and negotiated), and the plain record is kept aside
// in the new flow (prev) until the other side answers the SYN with a
// SYN-ACK that acknowledges it. Until then every segment that is not part
// of the new handshake passes as the old connection's, and if the
// handshake ends without that answer (a timeout, an RST) the plain record
// is back (remove).
//
// The same holds for a tracked plain connection's other segments: RST, FIN
// and data pass to the hosts, whose TCPs check them (RFC 9293 §3.10.7.4,
// RFC 5961); none changes the record.

// synOnTuple handles SYN p on tuple k, whose record prev (if not nil) was
// just removed: it belonged to a plain connection that may still be live.
func (e *Engine) synOnTuple(now int64, k flowKey, prev *flow, p *packet.Packet, from PortID, tx [2]TxSink) Verdict {
	var v Verdict
	if from == Inside {
		v = e.outboundSYN(now, k, p, tx)
	} else {
		v = e.inboundSYN(now, k, p)
	}
	if prev == nil {
		return v
	}
	switch nf := e.flows[k]; {
	case nf == nil:
		e.reinstate(now, prev) // the SYN was dropped (policy, a full table)
	case nf.state == stSynSent || nf.state == stSynRcvd:
		nf.prev = prev
	}
	return v
}

// reinstate puts a plain connection's record back in the table.
func (e *Engine) reinstate(now int64, f *flow) {
	if e.flows[f.key] != nil {
		return
	}
	f.state, f.last = stPlain, max(f.last, now)
	e.flows[f.key] = f
	f.idx = len(e.list)
	e.list = append(e.list, f)
}

// stale handles a segment a negotiating flow has no use for: the displaced
// plain connection's passes, any other is dropped.
func (e *Engine) stale(f *flow) Verdict {
	if f.prev != nil {
		return Passthrough
	}
	return e.drop(DropStale)
}

// crossingSYN handles a SYN from R while host A waits for R's SYN-ACK (not
// under require, which holds it back). It may be R's half of a
// simultaneous open, or a blind SYN: taking every such SYN for a
// simultaneous open would let one forged segment leave the connection in
// plain TCP. It goes to the inside host as in plain TCP, and only R's
// SYN-ACK tells: one that repeats this SYN's sequence number shows a
// simultaneous open (farSYNACK), any other SYN-ACK to our SYN is
// negotiated as usual. A SYN with data is dropped: if the connection is
// then encrypted, the data never was.
func (e *Engine) crossingSYN(f *flow, p *packet.Packet) Verdict {
	if len(p.Payload()) > 0 {
		return e.drop(DropStale)
	}
	f.simSYN, f.simISN = true, p.Seq()
	return Passthrough
}

// crossingSYNACK reports whether p is the inside host's answer to the SYN
// that crossed ours: it goes out as the host sent it, without ENO.
func (e *Engine) crossingSYNACK(f *flow, p *packet.Packet) bool {
	return f.simSYN && p.Flags()&(packet.FlagSYN|packet.FlagACK|packet.FlagRST) == packet.FlagSYN|packet.FlagACK &&
		p.Seq() == f.isnL && p.Ack() == f.simISN+1 && len(p.Payload()) == 0
}
