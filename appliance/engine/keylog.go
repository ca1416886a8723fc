package engine

import (
	"net/netip"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// KeyLogEntry is one key generation of one encrypted connection, for a
// debugging key log (Deps.KeyLog). MasterKey is mk[Generation] (RFC 8548
// §3.8); Session names the connection (session ID, suite, roles), its own
// keys already wiped. The callee must not keep Session past the call.
type KeyLogEntry struct {
	Inside, Outside netip.AddrPort
	Session         *tcpcrypt.Session
	Generation      uint64
	MasterKey       [tcpcrypt.SecretLen]byte
}

// logKeys reports the keys of every generation of f not reported yet. Called
// only where a generation starts (keys installed, a rekey started or
// answered), never per frame, and only when Deps.KeyLog is set. The master
// keys come from the KeyRing, which holds the current generation's: nothing
// is kept for the key log (the session's mk[0] is wiped, sessionDone).
func (e *Engine) logKeys(f *flow) {
	if f.sess == nil || f.keys == nil {
		return
	}
	for g := f.keyLogNext; g <= f.keys.Local(); g++ {
		k := KeyLogEntry{Inside: f.key.in, Outside: f.key.out, Session: f.sess, Generation: g}
		mk, err := f.keys.MasterKey(g)
		if err == nil {
			copy(k.MasterKey[:], mk)
			clear(mk)
		}
		if err == nil && e.deps.KeyLog(k) {
			e.c.KeyLogLines.Add(1)
		} else {
			e.c.KeyLogLost.Add(1)
		}
		clear(k.MasterKey[:])
	}
	f.keyLogNext = f.keys.Local() + 1
}
