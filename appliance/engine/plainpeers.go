package engine

import "net/netip"

// Far sides that answered without TCP-ENO, remembered for Fast Open
// clients.
//
// A SYN with data or a Fast Open cookie (RFC 7413) cannot carry ENO
// (RFC 8547 §4.7, ENO-43). Left as it is, it keeps its connection plain,
// and a client that once got a cookie from a server, over a connection
// that stayed plain because the far appliance was down or an attacker
// stripped ENO, would keep every later connection to it plain for as long
// as it keeps the cookie (Linux: until the cookie is evicted). So
// outboundSYN leaves the data and the cookie out and offers ENO: the host
// sends its data again after the handshake, as to a server that refuses
// Fast Open. Only toward a far address that answered a SYN with ENO
// without it within answeredWithoutFor does such a SYN go as it is: there
// the connection would be plain anyway, and Fast Open saves its round
// trip. An answer is what counts, not silence: only the far side (or
// someone on the path, who could strip ENO anyway) can give one. The
// memory is short so that a far side that was plain for a while (its
// appliance restarting, or an attacker stripping ENO) does not keep Fast
// Open connections plain for long after: one Fast Open connection a minute
// to a plain server pays the round trip.
//
// Each worker's engine learns on its own: with n workers, up to n
// connections to a far address pay before all of them know it.

const (
	answeredWithoutFor = 60 * 1e9 // ns: how long an answer without ENO is believed
	plainPeerMax       = 1 << 14  // remembered addresses (per engine)
)

// noteAnsweredWithoutENO records that far answered a SYN with ENO without
// it.
func (e *Engine) noteAnsweredWithoutENO(now int64, far netip.Addr) {
	noteAddr(e.plainPeers, now, far, answeredWithoutFor, plainPeerMax)
}

// answeredWithoutENO reports whether far answered a SYN with ENO without it
// within answeredWithoutFor.
func (e *Engine) answeredWithoutENO(now int64, far netip.Addr) bool {
	return recentAddr(e.plainPeers, now, far, answeredWithoutFor)
}

// noteAddr records far in m, a memory of at most limit addresses, each with
// when it was noted and believed for d ns (recentAddr). A full memory
// first forgets expired entries among a few it looks at, else one of them.
func noteAddr(m map[netip.Addr]int64, now int64, far netip.Addr, d int64, limit int) {
	if _, ok := m[far]; !ok && len(m) >= limit {
		looked, evicted := 0, false
		for k, at := range m {
			if now-at >= d {
				delete(m, k)
				evicted = true
			}
			if looked++; looked == 8 {
				if !evicted {
					delete(m, k)
				}
				break
			}
		}
	}
	m[far] = now
}

// recentAddr reports whether far was noted in m within the last d ns.
func recentAddr(m map[netip.Addr]int64, now int64, far netip.Addr, d int64) bool {
	at, ok := m[far]
	if ok && now-at >= d {
		delete(m, far)
		return false
	}
	return ok
}
