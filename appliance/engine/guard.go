package engine

import (
	"log/slog"

	"github.com/tcpinc/tcpinc/appliance/packet"
)

// A daemon restarted with its engine off (tcpincd's engine.enabled: false)
// must still not let the connections a previous run encrypted cross: the
// inside host's next segments of one would leave in plaintext, and the far
// appliance's frames would reach the host as data. NewGuard is the handler
// for that case: an engine that negotiates nothing and keeps no records.
// Every frame passes, except those of the tuples in the negotiated set the
// previous run left, which it handles as the engine handles segments it has
// no record of: stray resets both ends, drops RSTs with payload, and
// fragment and icmp drop their fragments and the inside ICMP errors
// quoting them.

// maxGuardSYNs bounds the SYNs on negotiated tuples a guard remembers.
const maxGuardSYNs = 4096

// guardSYN is a SYN seen on a negotiated tuple: the tuple is released when
// the other end answers it (a new connection, as Handle's forget).
type guardSYN struct {
	from PortID
	seq  uint32
}

// NewGuard returns the handler of an appliance whose engine is off, over
// neg, the negotiated set a previous run pinned. Nothing is added to neg; a
// tuple leaves it when a new connection's handshake completes on it.
func NewGuard(neg *NegotiatedSet, log *slog.Logger) (*Engine, error) {
	e, err := New(Config{}, Deps{Negotiated: neg, Log: log})
	if err != nil {
		return nil, err
	}
	e.guardSYNs = make(map[flowKey]guardSYN)
	return e, nil
}

// guardPacket is HandlePacket of a guard (NewGuard).
func (e *Engine) guardPacket(now int64, from PortID, p *packet.Packet, tx [2]TxSink) Verdict {
	switch {
	case p.Err() != nil:
		return Passthrough // as without an engine: no tuple to tell
	case p.IsFragment():
		return e.fragment(now, from, p, tx) // no records: a negotiated tuple's are dropped
	case p.IsICMP():
		if from == Inside && e.quotedNegotiated(p) {
			return e.drop(DropICMPQuote)
		}
		return Passthrough
	case !p.IsTCP():
		return Passthrough
	}
	k := flowKeyOf(p, from)
	if !e.neg.has(k) {
		return Passthrough
	}
	switch p.Flags() & (packet.FlagSYN | packet.FlagACK | packet.FlagRST) {
	case packet.FlagSYN:
		if len(e.guardSYNs) >= maxGuardSYNs {
			for old := range e.guardSYNs { // forget one at random
				delete(e.guardSYNs, old)
				break
			}
		}
		e.guardSYNs[k] = guardSYN{from: from, seq: p.Seq()}
	case packet.FlagSYN | packet.FlagACK:
		if s, ok := e.guardSYNs[k]; ok && s.from != from && p.Ack() == s.seq+1 {
			delete(e.guardSYNs, k)
			e.neg.forget(k)
		}
	}
	return e.stray(k, p, from, tx) // SYNs pass there
}
