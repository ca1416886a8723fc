package engine

import (
	"net/netip"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// KeyLogEntry is one key generation of one encrypted connection, for a
// debugging key log (Deps.KeyLog). Session holds mk[0]; generation j's
// master key is mk[j] = tcpcrypt.NextMasterKey applied j times (RFC 8548
// §3.8). The callee must not keep Session past the call.
type KeyLogEntry struct {
	Inside, Outside netip.AddrPort
	Session         *tcpcrypt.Session
	Generation      uint64
}

// logKeys reports the keys of every generation of f not reported yet. Called
// only where a generation starts (keys installed, a rekey started or
// answered), never per frame, and only when Deps.KeyLog is set.
func (e *Engine) logKeys(f *flow) {
	if f.sess == nil || f.keys == nil {
		return
	}
	for g := f.keyLogNext; g <= f.keys.Local(); g++ {
		if e.deps.KeyLog(KeyLogEntry{Inside: f.key.in, Outside: f.key.out, Session: f.sess, Generation: g}) {
			e.c.KeyLogLines.Add(1)
		} else {
			e.c.KeyLogLost.Add(1)
		}
	}
	f.keyLogNext = f.keys.Local() + 1
}
