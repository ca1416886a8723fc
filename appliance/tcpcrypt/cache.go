package tcpcrypt

import (
	"crypto/subtle"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tcpinc/tcpinc/cryptopool"
)

// Cache defaults.
const (
	DefaultCacheEntries = 4096
	DefaultCacheTTL     = time.Hour
	// DefaultResumeNonceLen is the resumption nonce length: 8 bytes, as
	// RFC 8548 §3.5 requires unless secret reuse can be ruled out (TC-18).
	DefaultResumeNonceLen = MaxResumeNonce
)

// CacheConfig sets a Cache's limits. Zero values take the defaults.
type CacheConfig struct {
	MaxEntries int              // chains kept; the least recently used goes first
	TTL        time.Duration    // a chain unused this long is dropped
	Rand       io.Reader        // resumption nonces (TC-16); nil: crypto/rand; must be safe for concurrent use
	Now        func() time.Time // clock; nil: time.Now
}

// Cache is the session-resumption cache of RFC 8548 §3.5 (docs/protocol.md §11).
// For each peer, named by a key K the caller chooses (for example the
// far-side address), it keeps one chain: the TEP and AEAD of the original
// session, this host's role in it, and the lowest unused secret ss[i] with
// its identifier resume[i]. Secrets are single use: taking one (to offer
// it, or to accept a peer's offer) advances the chain to ss[i+1] and erases
// ss[i] at once, whether the connection then succeeds or not (TC-30,
// TC-33..TC-35). Secrets live only in memory (TC-32).
//
// A Cache is safe for concurrent use by many workers; every operation takes
// one mutex for a few map operations (and a CPRF when a secret is taken).
type Cache[K comparable] struct {
	cfg CacheConfig

	mu       sync.Mutex
	disabled bool
	nonceLen int
	byPeer   map[K]*chain[K]
	byHalf   map[[ResumeHalf]byte]*chain[K] // keyed by the half the PEER sends
	oldest   *chain[K]                      // LRU list, oldest first; refreshed
	newest   *chain[K]                      // on insert and on take
}

type chain[K comparable] struct {
	peer     K
	tep      TEP
	suite    cryptopool.Suite
	origRole Role
	secret   [SecretLen]byte // ss[i], the lowest unused
	resume   [ResumeLen]byte // resume[i]
	expires  time.Time

	prev, next *chain[K]
}

// peerHalf is the half of resume[i] the other host sends: a host that was
// A sends bytes 0..8, one that was B sends 9..17 (TC-D6).
func (c *chain[K]) peerHalf() (h [ResumeHalf]byte) {
	if c.origRole == RoleA {
		copy(h[:], c.resume[ResumeHalf:])
	} else {
		copy(h[:], c.resume[:ResumeHalf])
	}
	return h
}

// NewCache returns an empty, enabled cache.
func NewCache[K comparable](cfg CacheConfig) *Cache[K] {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultCacheEntries
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultCacheTTL
	}
	cfg.Rand = orDefault(cfg.Rand)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cache[K]{
		cfg:      cfg,
		nonceLen: DefaultResumeNonceLen,
		byPeer:   make(map[K]*chain[K]),
		byHalf:   make(map[[ResumeHalf]byte]*chain[K]),
	}
}

// SetNonceLen sets the length of the resumption nonces this host sends,
// 0..8 bytes (TC-15, TC-17). Only shorten it if secrets can never be
// reused with the same nonce (VM cloning, restored hibernation; TC-18).
func (c *Cache[K]) SetNonceLen(n int) error {
	if n < 0 || n > MaxResumeNonce {
		return fmt.Errorf("%w: resumption nonce length %d, want 0..%d", ErrInvalidConfig, n, MaxResumeNonce)
	}
	c.mu.Lock()
	c.nonceLen = n
	c.mu.Unlock()
	return nil
}

// NonceLen returns the length of the resumption nonces this host sends.
func (c *Cache[K]) NonceLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nonceLen
}

// SetEnabled turns the cache on or off. Off, it neither offers nor accepts
// resumption and caches nothing (TC-40); turning it off also flushes it.
// For a single connection, the same policy is simply not calling Offer,
// Accept or Store for it.
func (c *Cache[K]) SetEnabled(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.disabled = !on
	if !on {
		c.flushAllLocked()
	}
}

// Len is the number of chains held.
func (c *Cache[K]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked()
	return len(c.byPeer)
}

// Expire drops (and erases) the chains past their TTL now. Every operation
// does so first, but a quiet appliance makes none: without a caller on a
// timer, a secret would stay in memory long past its TTL, and with it the
// keys of the sessions it would resume.
func (c *Cache[K]) Expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked()
}

// Store caches what a fresh session with peer leaves for resumption:
// ss[1], its role, TEP and AEAD. It replaces any chain held for peer. A
// resumed session stores nothing: taking its secret already advanced its
// chain (storing again could hand out the same ss[i+1] twice).
func (c *Cache[K]) Store(peer K, s *Session) {
	if s == nil || s.Resumed {
		return
	}
	ch := &chain[K]{peer: peer, tep: s.TEP, suite: s.Suite, origRole: s.OrigRole, secret: s.next}
	ch.resume = ResumeID(ch.secret[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.disabled {
		clear(ch.secret[:])
		return
	}
	c.expireLocked()
	c.insertLocked(ch)
}

// Offer takes the lowest unused secret of peer's chain for an active open
// (TC-33) and returns it as a Resumption whose suboption goes in the SYN.
// The secret counts as used from now on (TC-34, TC-35). It reports false
// when nothing is cached for peer or the cache is off.
func (c *Cache[K]) Offer(peer K) (*Resumption, bool) {
	r, err := c.newResumption()
	if err != nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.disabled {
		return nil, false
	}
	c.expireLocked()
	ch := c.byPeer[peer]
	if ch == nil {
		return nil, false
	}
	c.takeLocked(ch, r)
	return r, true
}

// Accept judges a resumption offer received in a SYN (passive side): tepByte
// is the suboption's TEP byte, data the bytes after it. It agrees only if
// the v bit is set, data holds a 9-byte identifier half and a nonce of at
// most 8 bytes, the half names a cached secret and the TEP matches the
// original session's (TC-19); otherwise it reports false and the caller
// treats the suboption as a fresh offer of that TEP (TC-20..TC-22). On
// agreement the secret is taken like in Offer, and the chain is filed under
// peer from now on.
func (c *Cache[K]) Accept(peer K, tepByte byte, data []byte) (*Resumption, bool) {
	sub, ok := ParseResumeSuboption(tepByte, data)
	if !ok {
		return nil, false
	}
	r, err := c.newResumption()
	if err != nil {
		return nil, false
	}
	r.peerNonceLen = uint8(copy(r.peerNonce[:], sub.Nonce))
	r.havePeer = true
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.disabled {
		return nil, false
	}
	c.expireLocked()
	ch := c.byHalf[sub.Half]
	if ch == nil || ch.tep != sub.TEP {
		return nil, false
	}
	c.takeLocked(ch, r)
	if ch.peer != peer {
		if old := c.byPeer[peer]; old != nil {
			c.removeLocked(old)
		}
		delete(c.byPeer, ch.peer)
		ch.peer = peer
		c.byPeer[peer] = ch
	}
	return r, true
}

// Flush drops peer's chain: the cache state an established connection with
// peer used or produced (TC-41).
func (c *Cache[K]) Flush(peer K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch := c.byPeer[peer]; ch != nil {
		c.removeLocked(ch)
	}
}

// FlushAll drops every chain.
func (c *Cache[K]) FlushAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushAllLocked()
}

func (c *Cache[K]) flushAllLocked() {
	for c.oldest != nil {
		c.removeLocked(c.oldest)
	}
}

// newResumption draws this host's resumption nonce outside the lock.
func (c *Cache[K]) newResumption() (*Resumption, error) {
	c.mu.Lock()
	n := c.nonceLen
	c.mu.Unlock()
	r := &Resumption{nonceLen: uint8(n)}
	if _, err := io.ReadFull(c.cfg.Rand, r.nonce[:n]); err != nil {
		return nil, err
	}
	return r, nil
}

// takeLocked moves ch's secret ss[i] into r and advances ch to ss[i+1],
// erasing ss[i] from the cache (TC-30, TC-34).
func (c *Cache[K]) takeLocked(ch *chain[K], r *Resumption) {
	r.TEP, r.Suite, r.OrigRole = ch.tep, ch.suite, ch.origRole
	r.secret, r.resume = ch.secret, ch.resume
	delete(c.byHalf, ch.peerHalf())
	next := NextSecret(ch.secret[:])
	copy(ch.secret[:], next)
	clear(next)
	ch.resume = ResumeID(ch.secret[:])
	c.unlinkLocked(ch)
	c.indexLocked(ch)
}

// insertLocked files a new chain, replacing what it collides with and
// evicting the least recently used chain when full.
func (c *Cache[K]) insertLocked(ch *chain[K]) {
	if old := c.byPeer[ch.peer]; old != nil {
		c.removeLocked(old)
	}
	for len(c.byPeer) >= c.cfg.MaxEntries && c.oldest != nil {
		c.removeLocked(c.oldest)
	}
	c.byPeer[ch.peer] = ch
	c.indexLocked(ch)
}

// indexLocked files ch under its peer half and at the new end of the LRU
// list with a fresh expiry.
func (c *Cache[K]) indexLocked(ch *chain[K]) {
	h := ch.peerHalf()
	if old := c.byHalf[h]; old != nil && old != ch {
		// A 72-bit collision between two chains: keep neither guessable
		// lookup ambiguous, drop the older one.
		c.removeLocked(old)
	}
	c.byHalf[h] = ch
	ch.expires = c.cfg.Now().Add(c.cfg.TTL)
	ch.prev, ch.next = c.newest, nil
	if c.newest != nil {
		c.newest.next = ch
	} else {
		c.oldest = ch
	}
	c.newest = ch
}

func (c *Cache[K]) unlinkLocked(ch *chain[K]) {
	if ch.prev != nil {
		ch.prev.next = ch.next
	} else if c.oldest == ch {
		c.oldest = ch.next
	}
	if ch.next != nil {
		ch.next.prev = ch.prev
	} else if c.newest == ch {
		c.newest = ch.prev
	}
	ch.prev, ch.next = nil, nil
}

func (c *Cache[K]) removeLocked(ch *chain[K]) {
	c.unlinkLocked(ch)
	if c.byPeer[ch.peer] == ch {
		delete(c.byPeer, ch.peer)
	}
	h := ch.peerHalf()
	if c.byHalf[h] == ch {
		delete(c.byHalf, h)
	}
	clear(ch.secret[:])
	clear(ch.resume[:])
}

// expireLocked drops chains past their TTL. The list is in expiry order
// because every refresh moves a chain to the new end with the same TTL.
func (c *Cache[K]) expireLocked() {
	now := c.cfg.Now()
	for c.oldest != nil && !now.Before(c.oldest.expires) {
		c.removeLocked(c.oldest)
	}
}

// Resumption is one secret ss[i] taken from the Cache for one connection.
// The active side puts AppendSuboption's bytes in its SYN and checks the
// SYN-ACK with MatchReply; the passive side (Accept) answers with its own
// AppendSuboption. Either then calls Session once.
type Resumption struct {
	TEP      TEP              // TEP of the original session
	Suite    cryptopool.Suite // AEAD of the original session
	OrigRole Role             // this host's role in the original session

	secret    [SecretLen]byte
	resume    [ResumeLen]byte
	nonce     [MaxResumeNonce]byte
	nonceLen  uint8
	peerNonce [MaxResumeNonce]byte

	peerNonceLen uint8
	havePeer     bool
	used         bool
}

// OwnHalf is the half of resume[i] this host sends (TC-D6).
func (r *Resumption) OwnHalf() (h [ResumeHalf]byte) {
	if r.OrigRole == RoleA {
		copy(h[:], r.resume[:ResumeHalf])
	} else {
		copy(h[:], r.resume[ResumeHalf:])
	}
	return h
}

// PeerHalf is the half the other host must send.
func (r *Resumption) PeerHalf() (h [ResumeHalf]byte) {
	if r.OrigRole == RoleA {
		copy(h[:], r.resume[ResumeHalf:])
	} else {
		copy(h[:], r.resume[:ResumeHalf])
	}
	return h
}

// Nonce is this host's resumption nonce.
func (r *Resumption) Nonce() []byte { return r.nonce[:r.nonceLen] }

// AppendSuboption appends this host's resumption suboption: TEP|0x80, its
// identifier half, its nonce (RFC 8548 §3.5 Figures 2 and 3). The TCP-ENO
// encoder adds the suboption length where one is needed.
func (r *Resumption) AppendSuboption(dst []byte) []byte {
	h := r.OwnHalf()
	return AppendResumeSuboption(dst, r.TEP, h, r.Nonce())
}

// MatchReply is the active side's check of a resumption suboption in the
// SYN-ACK (tepByte and the data after it). It reports true, and keeps the
// peer's nonce, only for the same TEP with the v bit and the other half of
// resume[i]. Anything else must be ignored (TC-23; TC-24 says what follows
// if it was the only suboption).
func (r *Resumption) MatchReply(tepByte byte, data []byte) bool {
	sub, ok := ParseResumeSuboption(tepByte, data)
	if !ok || sub.TEP != r.TEP {
		return false
	}
	want := r.PeerHalf()
	if subtle.ConstantTimeCompare(sub.Half[:], want[:]) != 1 {
		return false
	}
	r.peerNonceLen = uint8(copy(r.peerNonce[:], sub.Nonce))
	r.havePeer = true
	return true
}

// Session derives the resumed session for this host in current role role;
// nonce_a is the nonce of the host that was originally A (U-4), keys follow
// the original role (TC-38). It works once: the secret is erased after use
// (TC-34), and a second call fails with ErrNotReady, as does a call before
// the peer's nonce is known.
func (r *Resumption) Session(role Role) (*Session, error) {
	if r.used || !r.havePeer {
		return nil, ErrNotReady
	}
	own, peer := r.Nonce(), r.peerNonce[:r.peerNonceLen]
	nonceA, nonceB := own, peer
	if r.OrigRole == RoleB {
		nonceA, nonceB = peer, own
	}
	s, err := ResumedSession(r.TEP, r.Suite, role, r.OrigRole, r.secret[:], nonceA, nonceB)
	r.Erase()
	return s, err
}

// Erase forgets the secret without using it (the connection will not
// resume). The secret stays consumed in the cache.
func (r *Resumption) Erase() {
	clear(r.secret[:])
	r.used = true
}

// ResumeSuboption is a parsed resumption suboption.
type ResumeSuboption struct {
	TEP   TEP              // v bit clear
	Half  [ResumeHalf]byte // identifier half
	Nonce []byte           // 0..8 bytes, aliases the input
}

// ParseResumeSuboption parses a TEP suboption (its TEP byte and the data
// after it) as a resumption offer or reply. It reports false when it is not
// one: v bit clear, or fewer than 9 data bytes (which RFC 8548 §3.5 says to
// treat as a fresh offer of the same TEP, TC-22), or a nonce longer than 8
// bytes (TC-15; the project treats that as a fresh offer too, never as a
// resumption). A false result is never an error: the TEP may still be
// negotiated with a fresh key exchange.
func ParseResumeSuboption(tepByte byte, data []byte) (ResumeSuboption, bool) {
	var s ResumeSuboption
	if tepByte&ResumeBit == 0 || len(data) < ResumeHalf || len(data) > ResumeHalf+MaxResumeNonce {
		return s, false
	}
	s.TEP = TEP(tepByte &^ ResumeBit)
	copy(s.Half[:], data)
	s.Nonce = data[ResumeHalf:]
	return s, true
}

// AppendResumeSuboption appends TEP|0x80 | half | nonce.
func AppendResumeSuboption(dst []byte, tep TEP, half [ResumeHalf]byte, nonce []byte) []byte {
	dst = append(dst, byte(tep)|ResumeBit)
	dst = append(dst, half[:]...)
	return append(dst, nonce...)
}
