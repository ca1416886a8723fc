package engine

import (
	"net/netip"
	"sync"
	"time"
)

const (
	trustFor   = int64(time.Hour) // a peer stays known this long after its last encrypted connection
	trustedMax = 1 << 16
)

// TrustedPeers is the set of far addresses that completed an encrypted
// handshake, and when they last did: under a SYN flood their SYNs are not
// shed (flood.go), since a blind spoofer cannot complete one. Shared by
// the workers' engines (their clocks share an origin, the appliance's
// start); safe for concurrent use. Bounded: when full, an entry goes at
// random.
type TrustedPeers struct {
	mu sync.RWMutex
	m  map[netip.Addr]int64
}

// NewTrustedPeers returns an empty set.
func NewTrustedPeers() *TrustedPeers { return &TrustedPeers{m: make(map[netip.Addr]int64)} }

// known reports whether far completed an encrypted handshake within
// trustFor of now.
func (t *TrustedPeers) known(far netip.Addr, now int64) bool {
	t.mu.RLock()
	at, ok := t.m[far]
	t.mu.RUnlock()
	return ok && now-at < trustFor
}

// trust records that far completed an encrypted handshake at now.
func (e *Engine) trust(now int64, far netip.Addr) {
	t := e.trusted
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[far]; !ok && len(t.m) >= trustedMax {
		for k := range t.m { // forget one at random
			delete(t.m, k)
			break
		}
	}
	t.m[far] = max(t.m[far], now) // workers' clocks race a little
}
