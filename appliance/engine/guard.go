package engine

import (
	"log/slog"

	"github.com/tcpinc/tcpinc/appliance/eno"
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

// maxPassedSYNs bounds the SYNs on negotiated tuples an engine remembers.
const maxPassedSYNs = 4096

// passedSYN is a SYN seen on a negotiated tuple: the tuple is released when
// the other end answers it (a new connection, as Handle's forget).
type passedSYN struct {
	from PortID
	seq  uint32
}

// rememberSYN notes a SYN from port from on negotiated tuple k.
func (e *Engine) rememberSYN(k flowKey, from PortID, seq uint32) {
	if e.passedSYNs == nil {
		e.passedSYNs = make(map[flowKey]passedSYN)
	}
	if len(e.passedSYNs) >= maxPassedSYNs {
		for old := range e.passedSYNs { // forget one at random
			delete(e.passedSYNs, old)
			break
		}
	}
	e.passedSYNs[k] = passedSYN{from: from, seq: seq}
}

// answers reports whether SYN-ACK p, from port from, answers the SYN that
// made negotiating record f: from the other port, acknowledging that SYN's
// sequence number. Any other SYN-ACK, forged from outside or not, shows no
// new connection on the tuple. A plain record keeps no sequence numbers.
// In a simultaneous open the inside host's SYN-ACK to the SYN that crossed
// its own counts too (its own SYN showed it holds no old connection, and
// the far SYN-ACK may be lost: simAcked).
func (f *flow) answers(p *packet.Packet, from PortID) bool {
	switch {
	case f.state == stPlain:
		return true
	case f.role == eno.RoleB:
		return from == Inside && p.Ack() == f.isnR+1
	case f.sim&simCrossed != 0 && from == Inside:
		return p.Ack() == f.simISN+1
	}
	return from == Outside && p.Ack() == f.isnL+1
}

// synAnswered reports (and forgets) a remembered SYN on k from the other
// port that a SYN-ACK from port from acknowledging ack answers.
func (e *Engine) synAnswered(k flowKey, from PortID, ack uint32) bool {
	s, ok := e.passedSYNs[k]
	if !ok || s.from == from || ack != s.seq+1 {
		return false
	}
	delete(e.passedSYNs, k)
	return true
}

// NewGuard returns the handler of an appliance whose engine is off, over
// neg, the negotiated set a previous run pinned. Nothing is added to neg; a
// tuple leaves it when a new connection's handshake completes on it.
func NewGuard(neg *NegotiatedSet, log *slog.Logger) (*Engine, error) {
	e, err := New(Config{}, Deps{Negotiated: neg, Log: log})
	if err != nil {
		return nil, err
	}
	e.guard = true
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
		e.rememberSYN(k, from, p.Seq())
	case packet.FlagSYN | packet.FlagACK:
		if e.synAnswered(k, from, p.Ack()) {
			e.neg.forget(k)
		}
	}
	return e.stray(k, p, from, tx) // SYNs pass there
}
