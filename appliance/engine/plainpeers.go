package engine

import "net/netip"

// Far sides without TCP-ENO, remembered for Fast Open clients.
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
// without it (within plainPeerFor) does such a SYN go as it is: there the
// connection would be plain anyway, and Fast Open saves its round trip.
// The memory is short so that a far side that was plain for a while (its
// appliance restarting, or an attacker stripping ENO) does not keep Fast
// Open connections plain for long after: one Fast Open connection a minute
// to a plain server pays the round trip.

const (
	plainPeerFor = 60 * 1e9 // ns: how long an answer without ENO is believed
	plainPeerMax = 1 << 14  // remembered addresses (per engine)
)

// notePlainPeer records that far answered a SYN with ENO without it.
func (e *Engine) notePlainPeer(now int64, far netip.Addr) {
	if _, ok := e.plainPeers[far]; !ok && len(e.plainPeers) >= plainPeerMax {
		for k := range e.plainPeers { // forget one at random
			delete(e.plainPeers, k)
			break
		}
	}
	e.plainPeers[far] = now
}

// plainPeer reports whether far answered a SYN with ENO without it within
// plainPeerFor.
func (e *Engine) plainPeer(now int64, far netip.Addr) bool {
	t, ok := e.plainPeers[far]
	if ok && now-t >= plainPeerFor {
		delete(e.plainPeers, far)
		return false
	}
	return ok
}
