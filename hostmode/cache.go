package hostmode

import (
	"crypto/rand"
	"net"
	"net/netip"
	"sync"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// ticket is one unused session secret ss[i] of a peer (RFC 8548 §3.5), with
// what resuming from it needs: the TEP and AEAD of the original session,
// whether this host was A in it (it then keeps encrypting with k_ab), the two
// halves of resume[i] and the nonce this host sends with it.
type ticket struct {
	peer     netip.Addr
	tep      tcpcrypt.TEP
	suite    cryptopool.Suite
	sendsAB  bool
	ss       []byte
	own      [tcpcrypt.ResumeHalf]byte
	peerHalf [tcpcrypt.ResumeHalf]byte
	nonce    []byte
}

// suboption is this host's resumption suboption data: its half, its nonce.
func (t *ticket) suboption() []byte {
	return append(append([]byte(nil), t.own[:]...), t.nonce...)
}

// resumeTable is where the passive side's answers live: the BPF program
// answers a SYN whose option carries peerHalf in softirq, before user space
// sees the connection.
type resumeTable interface {
	putResume(t *ticket) error
	delResume(t *ticket)
}

// chainKey names a chain: the peer and whether this host was A in its
// original session. Keeping one chain per role lets both ends of a loopback
// connection live in one cache, and a peer that was once our client and once
// our server keep both.
type chainKey struct {
	peer    netip.Addr
	sendsAB bool
}

// cache keeps one ticket per chainKey. Each secret serves one connection:
// a ticket leaves the cache when it is offered (active side) or answered
// (passive side, by the BPF program), whatever then happens (RFC 8548 §3.5).
type cache struct {
	mu       sync.Mutex
	nonceLen int
	byPeer   map[chainKey]*ticket
	byOwn    map[[tcpcrypt.ResumeHalf]byte]*ticket
	table    resumeTable
}

func newCache(nonceLen int, table resumeTable) *cache {
	return &cache{nonceLen: nonceLen, byPeer: map[chainKey]*ticket{},
		byOwn: map[[tcpcrypt.ResumeHalf]byte]*ticket{}, table: table}
}

func peerAddr(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// store caches ss[i+1] after a connection used ss[i] (RFC 8548 §3.5: compute
// and cache the next secret, erase the used one).
func (c *cache) store(peer net.Addr, tep tcpcrypt.TEP, suite cryptopool.Suite, sendsAB bool, ss []byte) {
	next := tcpcrypt.NextSecret(ss)
	id := tcpcrypt.ResumeID(next)
	t := &ticket{peer: peerAddr(peer), tep: tep, suite: suite, sendsAB: sendsAB, ss: next,
		nonce: make([]byte, c.nonceLen)}
	// The host that was A sends bytes 0..8, the one that was B 9..17.
	if sendsAB {
		copy(t.own[:], id[:9])
		copy(t.peerHalf[:], id[9:])
	} else {
		copy(t.own[:], id[9:])
		copy(t.peerHalf[:], id[:9])
	}
	if _, err := rand.Read(t.nonce); err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := chainKey{t.peer, sendsAB}
	c.dropLocked(k)
	if c.table != nil && c.table.putResume(t) != nil {
		return
	}
	c.byPeer[k] = t
	c.byOwn[t.own] = t
}

func (c *cache) dropLocked(k chainKey) {
	if old, ok := c.byPeer[k]; ok {
		delete(c.byPeer, k)
		delete(c.byOwn, old.own)
		if c.table != nil {
			c.table.delResume(old)
		}
		clear(old.ss)
	}
}

// offer takes the peer's ticket for an active open, the chain in which
// this host was A first.
func (c *cache) offer(peer netip.Addr) *ticket {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := chainKey{peer, true}
	t, ok := c.byPeer[k]
	if !ok {
		k.sendsAB = false
		if t, ok = c.byPeer[k]; !ok {
			return nil
		}
	}
	delete(c.byPeer, k)
	delete(c.byOwn, t.own)
	if c.table != nil {
		c.table.delResume(t)
	}
	return t
}

// answered takes the ticket whose half the BPF program put in a SYN-ACK.
func (c *cache) answered(own []byte) *ticket {
	var k [tcpcrypt.ResumeHalf]byte
	if len(own) < len(k) {
		return nil
	}
	copy(k[:], own)
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.byOwn[k]
	if !ok {
		return nil
	}
	delete(c.byOwn, k)
	if k := (chainKey{t.peer, t.sendsAB}); c.byPeer[k] == t {
		delete(c.byPeer, k)
	}
	return t
}

// flush drops what is cached for peer (TCP_CRYPT_CACHE_FLUSH).
func (c *cache) flush(peer net.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(chainKey{peerAddr(peer), true})
	c.dropLocked(chainKey{peerAddr(peer), false})
}

// flushAll drops every ticket.
func (c *cache) flushAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range c.byPeer {
		c.dropLocked(p)
	}
}
