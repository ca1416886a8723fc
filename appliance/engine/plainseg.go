package engine

import "github.com/tcpinc/tcpinc/appliance/packet"

// plainSegment handles a segment of a connection the engine left in plain
// TCP (f, a record kept for the admin API): it passes, unless a new SYN
// starts another connection on the tuple k.
func (e *Engine) plainSegment(now int64, k flowKey, f *flow, p *packet.Packet, from PortID, tx [2]TxSink) Verdict {
	fl := p.Flags()
	if from == Outside {
		f.pktsIn++
	} else {
		f.pktsOut++ // it goes on to the far side as it is
	}
	if f.e2e != 0 && from == Outside {
		if v, ok := e.endToEndRequired(f, p, tx); !ok {
			return v
		}
	}
	if f.watchInit1 && from == Outside {
		if v, ok := e.firstBytes(now, f, p, tx); !ok {
			return v
		}
	} else if f.watchInit1 && fl&packet.FlagRST != 0 {
		f.watchInit1, f.resOpener = false, nil // the inside host ended the connection
	}
	if f.prev != nil {
		return e.plainAfterReuse(now, f, p, from, tx)
	}
	if fl&(packet.FlagSYN|packet.FlagACK|packet.FlagRST) != packet.FlagSYN ||
		from == Inside && f.synResends > 0 && p.Seq() == f.isnL || len(p.Payload()) == 0 && f.sentSYN(p, from) {
		// Or host A's SYN once more, after its retransmissions left the
		// connection plain (resendSYN), or a retransmission of the SYN
		// that made the record: the same connection, still plain (not
		// one more fallback and flow in the counts). One with data goes
		// the SYN's way again, which may take its data out.
		f.last = now
		return f.plainVerdict()
	}
	e.remove(f)
	return e.noteSYN(k, p, from, f, e.synOnTuple(now, k, f, p, from, tx))
}

// noteSYN remembers in a plain record the SYN p made, so that its
// retransmissions are known as such (sentSYN), and returns v. old is the
// record the SYN found on the tuple: put back (the SYN was dropped or
// passed with no record), it is not the SYN's, and keeps its own numbers
// (a watch for A's Init1 needs A's ISN).
func (e *Engine) noteSYN(k flowKey, p *packet.Packet, from PortID, old *flow, v Verdict) Verdict {
	if f := e.flows[k]; f != nil && f != old && f.state == stPlain && f.synFrom == 0 {
		f.synFrom = 1 + uint8(from)
		if from == Inside {
			f.isnL = p.Seq()
		} else {
			f.isnR = p.Seq()
		}
	}
	return v
}

// sentSYN reports whether SYN p is the one that made plain record f, again.
func (f *flow) sentSYN(p *packet.Packet, from PortID) bool {
	switch f.synFrom {
	case 1 + uint8(Inside):
		return from == Inside && p.Seq() == f.isnL
	case 1 + uint8(Outside):
		return from == Outside && p.Seq() == f.isnR
	}
	return false
}
