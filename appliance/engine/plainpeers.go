package engine

import "net/netip"

// Far sides that do not speak TCP-ENO, or whose path drops SYNs with it,
// remembered for a short while.
//
// A SYN with data or a Fast Open cookie (RFC 7413) cannot carry ENO
// (RFC 8547 §4.7, ENO-43). Left as it is, it keeps its connection plain,
// and a client that once got a cookie from a server, over a connection
// that stayed plain because the far appliance was down or an attacker
// stripped ENO, would keep every later connection to it plain for as long
// as it keeps the cookie (Linux: until the cookie is evicted). So
// outboundSYN leaves the data and the cookie out and offers ENO: the host
// sends its data again after the handshake, as to a server that refuses
// Fast Open. Only toward a far address whose last answer to our ENO came
// without it (within answeredWithoutFor) does such a SYN go as it is:
// there the connection would be plain anyway, and Fast Open saves its
// round trip. The memory is short so that a far side that was plain for a
// while (its appliance restarting, or an attacker stripping ENO) does not
// keep Fast Open connections plain for long after: one Fast Open
// connection a minute to a plain server pays the round trip.
//
// A path that drops SYNs with options it does not know costs each
// connection Config.SYNsWithENO unanswered SYNs (3 s with Linux's timers)
// before one without ENO gets through (resendSYN). Once that SYN is
// answered, the engine offers that far address no ENO for droppedFor: its
// next connections open at once, in plain TCP as they would end anyway. A
// connection every droppedFor pays the delay again to find out whether the
// path changed.
//
// Each worker's engine learns on its own: with n workers, up to n
// connections to a far address pay before all of them know it.

const (
	answeredWithoutFor = 60 * 1e9     // ns: how long an answer without ENO is believed
	droppedFor         = 5 * 60 * 1e9 // ns: how long a path that dropped our SYNs with ENO is believed to
	plainPeerMax       = 1 << 14      // remembered addresses (per engine)
)

// plainPeer is what the engine remembers of a far address.
type plainPeer struct {
	at      int64 // when
	dropped bool  // our SYNs with ENO went unanswered, the one without was answered
}

// notePlainPeer records that far answered a SYN with ENO without it, or
// (dropped) that our SYNs with ENO to it went unanswered and the host's
// without was answered.
func (e *Engine) notePlainPeer(now int64, far netip.Addr, dropped bool) {
	if _, ok := e.plainPeers[far]; !ok && len(e.plainPeers) >= plainPeerMax {
		for k := range e.plainPeers { // forget one at random
			delete(e.plainPeers, k)
			break
		}
	}
	e.plainPeers[far] = plainPeer{at: now, dropped: dropped}
}

// plainPeerOf reports what the engine remembers of far: whether its last
// answer to a SYN with ENO came without ENO (within answeredWithoutFor),
// and whether the path to it dropped our SYNs with ENO (within
// droppedFor).
func (e *Engine) plainPeerOf(now int64, far netip.Addr) (answeredWithout, dropped bool) {
	pp, ok := e.plainPeers[far]
	if !ok {
		return false, false
	}
	age := now - pp.at
	if pp.dropped && age < droppedFor {
		return true, true
	}
	if !pp.dropped && age < answeredWithoutFor {
		return true, false
	}
	delete(e.plainPeers, far)
	return false, false
}
