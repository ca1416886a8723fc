package engine

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// TupleStore keeps a NegotiatedSet's entries where a restarted daemon finds
// them (a pinned BPF map: xsk.TupleMap). deadline is on the set's clock
// (NegotiatedConfig.Mono), in nanoseconds; 0 means "held by a live
// record". Errors are counted, not fatal: the set in memory stays right
// for this process.
type TupleStore interface {
	Put(in, out netip.AddrPort, deadline int64) error
	Delete(in, out netip.AddrPort) error
}

// NegotiatedConfig configures a NegotiatedSet.
type NegotiatedConfig struct {
	// Capacity bounds the entries (default 2 x DefaultMaxFlows). Make it at
	// least the sum of the engines' MaxFlows, so that live records never
	// compete for room (they are never evicted).
	Capacity int
	// Store mirrors every change; nil keeps the set in memory only.
	Store TupleStore
	// Now is the wall clock of the deadlines given to Add (default
	// time.Now).
	Now func() time.Time
	// Mono is the clock of the deadlines, the set's own and those it
	// writes to Store, in nanoseconds, never 0 (default: Now's time since
	// the set was made, which for time.Now is monotonic, Go's
	// time.Time.Sub). A step of the wall clock (NTP making a step) must
	// not expire entries early: a connection whose RST was lost would
	// then pass its host's plaintext. A Store that outlives the process
	// needs a clock that does too: tcpincd uses CLOCK_BOOTTIME, which
	// lasts as long as its pinned map (a reboot empties both).
	Mono func() int64
}

// NegotiatedSet is the set of tuples whose connections negotiated TCP-ENO
// (encrypted, or committed to it) and may still send: the engines consult it
// for mid-stream segments they have no record of. A tuple in it is reset
// (its bytes would be ciphertext for a host or plaintext for the wire); any
// other unknown tuple is plain TCP and passes. Shared by the workers'
// engines; safe for concurrent use.
//
// Lifetime of an entry: it is held (no deadline) from negotiation while the
// engine keeps the flow's record. When the record goes it stays until a
// deadline: CloseLinger after the connection ended (both FINs acknowledged,
// reset, aborted, or a key exchange that never finished), HandshakeLinger
// after a handshake that ended before its third segment, IdleLinger after an
// idle record expired (the hosts may still hold the connection and send
// at any time). A new connection on the tuple removes it: its completed
// handshake, or, with no record kept, the inside host's SYN or SYN-ACK
// (from outside, either may be forged). A restarted daemon loads the entries of the previous one
// (Restore), giving those the previous run still held IdleLinger from the start. When
// the set is full, expired entries go first, then the released entries
// with the nearest deadlines, a few at once (makeRoom); held
// entries are never evicted (a hold that finds no room is counted in
// Overflows and the tuple is then unknown to a later daemon). Long deadlines cost little: every new connection's handshake
// passes the engine, which takes its tuple out, so an entry only ever matches
// segments of the connection it was made for; what an expired entry costs
// is that such a late segment passes (an inside host's plaintext) instead of
// being reset.
type NegotiatedSet struct {
	mu        sync.RWMutex     // read-locked for lookups: every stray segment does one
	m         map[setKey]int64 // deadline on mono; 0: held
	cap       int
	store     TupleStore
	now       func() time.Time
	mono      func() int64
	overflows atomic.Uint64
	storeErrs atomic.Uint64
	dl        deadlines // the released entries by deadline (makeRoom)
	scans     int       // makeRoom calls (tests)
}

// setKey is a tuple as the set keeps it: a flowKey without the pointer a
// netip.Addr holds (its zone), so that the garbage collector does not scan
// the set's map and heap, which hold up to 2 x max_flows entries per queue
// (a forced collection with a full set of flowKey entries took 5.8 ms at
// 131,072 and 155 ms at 4 million; of setKey ones, 0.53 and 4.2:
// BenchmarkGCNegotiatedSet, bench/RESULTS.md, session 31). The engine's
// tuples carry no zone; the families keep an IPv4 address apart from its
// IPv4-mapped IPv6 form (and the zero Addr from both), as netip does.
type setKey struct {
	in, out         [16]byte
	inPort, outPort uint16
	inFam, outFam   uint8 // 0: the zero Addr, 4, 6
}

func setKeyOf(k flowKey) setKey {
	return setKey{
		in: k.in.Addr().As16(), out: k.out.Addr().As16(),
		inPort: k.in.Port(), outPort: k.out.Port(),
		inFam: family(k.in.Addr()), outFam: family(k.out.Addr()),
	}
}

func (k setKey) flowKey() flowKey {
	return flowKey{netip.AddrPortFrom(setAddr(k.in, k.inFam), k.inPort), netip.AddrPortFrom(setAddr(k.out, k.outFam), k.outPort)}
}

func family(a netip.Addr) uint8 {
	switch {
	case a.Is4():
		return 4
	case a.Is6():
		return 6
	}
	return 0
}

func setAddr(a [16]byte, fam uint8) netip.Addr {
	switch fam {
	case 4:
		return netip.AddrFrom16(a).Unmap()
	case 6:
		return netip.AddrFrom16(a)
	}
	return netip.Addr{}
}

// CloseLinger is how long a tuple stays in the negotiated set after its
// connection ended: late segments (a host whose RST was lost retransmits
// its data; Linux gives up after about 15 minutes with the default
// tcp_retries2 = 15, RFC 1122 §4.2.3.5) are reset rather than passed.
// IdleLinger is how long it stays after an idle record was dropped, or
// after a restart for the tuples the previous run still held.
// HandshakeLinger is how long it stays after a record that offered TCP-ENO
// in the inside host's SYN-ACK ended before any third segment (evicted or
// timed out): no host byte was framed, so the tuple only needs to outlive
// the host's half-open connection (Linux's SYN-ACK retries, about a minute,
// or a SYN cookie, valid about two), during which a late Init1 could
// reach the host as data. Short, so that a blind SYN+ENO flood, whose
// handshakes all end so, does not crowd the set: full, it gives up the
// entries with the nearest deadlines, and those must not be the lingering
// tuples of connections that carried data (a flood review found a slow
// one pushing them out, a host's late plaintext then passing).
const (
	CloseLinger     = 20 * time.Minute
	IdleLinger      = 7 * 24 * time.Hour
	HandshakeLinger = 3 * time.Minute
)

// NewNegotiatedSet returns an empty set.
func NewNegotiatedSet(c NegotiatedConfig) *NegotiatedSet {
	if c.Capacity <= 0 {
		c.Capacity = 2 * DefaultMaxFlows
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Mono == nil {
		now, t0 := c.Now, c.Now()
		c.Mono = func() int64 { return int64(now().Sub(t0)) + 1 } // > 0: 0 means held
	}
	return &NegotiatedSet{m: make(map[setKey]int64), cap: c.Capacity, store: c.Store, now: c.Now, mono: c.Mono}
}

// Add puts an entry in without writing it to the store (loading the store
// at start). A zero deadline holds the tuple until a record releases it; a
// past one adds nothing.
func (s *NegotiatedSet) Add(in, out netip.AddrPort, deadline time.Time) {
	var d int64
	if !deadline.IsZero() {
		left := deadline.Sub(s.now())
		if left <= 0 {
			return
		}
		d = s.mono() + int64(left)
	}
	k := setKeyOf(flowKey{in, out})
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; !ok && len(s.m) >= s.cap && !s.makeRoom() {
		s.overflows.Add(1)
		return
	}
	s.setDeadline(k, d)
}

// Restore puts in an entry a previous run left (in a pinned map, or its
// disk copy: package negstate) and writes it to the store. left is the time
// it had to go; 0 means the previous run held it (a live record when it
// stopped or crashed), and it gets IdleLinger, since its hosts may still
// hold the connection. No entry gets more than IdleLinger, the longest any
// is given: more is a value on another clock (the wall-clock deadlines of
// an older tcpincd), which the set cannot read. A negative left adds
// nothing. Restore reports false, adding nothing, when the set is full:
// restore the entries that matter first (held, then those with the most
// time left).
func (s *NegotiatedSet) Restore(in, out netip.AddrPort, left time.Duration) bool {
	if left < 0 {
		return true
	}
	if left == 0 || left > IdleLinger {
		left = IdleLinger
	}
	k := setKeyOf(flowKey{in, out})
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; !ok && len(s.m) >= s.cap {
		return false
	}
	d := s.mono() + int64(left)
	s.setDeadline(k, d)
	s.put(k, d)
	return true
}

// Each calls fn with every entry and its deadline on the set's clock (0:
// held), under the set's read lock: holds and releases (and lookups behind
// them) wait meanwhile, so it is for a copy now and then (negstate.Saver
// falls back to one), not for the packet path.
func (s *NegotiatedSet) Each(fn func(in, out netip.AddrPort, deadline int64)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for k, d := range s.m {
		fk := k.flowKey()
		fn(fk.in, fk.out, d)
	}
}

// Mono reads the set's clock (NegotiatedConfig.Mono).
func (s *NegotiatedSet) Mono() int64 { return s.mono() }

// Contains reports whether the tuple (inside end, outside end) is in the
// set and not expired.
func (s *NegotiatedSet) Contains(in, out netip.AddrPort) bool { return s.has(flowKey{in, out}) }

// Len is the number of entries, expired ones the engines' sweeps have not
// yet removed (expire) included.
func (s *NegotiatedSet) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}

// Overflows counts holds that found the set full of held entries;
// StoreErrors writes the store refused.
func (s *NegotiatedSet) Overflows() uint64   { return s.overflows.Load() }
func (s *NegotiatedSet) StoreErrors() uint64 { return s.storeErrs.Load() }

func (s *NegotiatedSet) put(k setKey, d int64) {
	if s.store == nil {
		return
	}
	if fk := k.flowKey(); s.store.Put(fk.in, fk.out, d) != nil {
		s.storeErrs.Add(1)
	}
}

func (s *NegotiatedSet) del(k setKey) {
	delete(s.m, k)
	if s.store == nil {
		return
	}
	if fk := k.flowKey(); s.store.Delete(fk.in, fk.out) != nil {
		s.storeErrs.Add(1)
	}
}

// hold records that a live record negotiated k. It reports false if the
// set had no room.
func (s *NegotiatedSet) hold(fk flowKey) bool {
	k := setKeyOf(fk)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; !ok && len(s.m) >= s.cap && !s.makeRoom() {
		s.overflows.Add(1)
		return false
	}
	s.m[k] = 0
	s.put(k, 0)
	return true
}

// release starts k's deadline: its record is gone.
func (s *NegotiatedSet) release(fk flowKey, keep time.Duration) {
	k := setKeyOf(fk)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; !ok {
		return
	}
	d := s.mono() + int64(keep)
	s.setDeadline(k, d)
	s.put(k, d)
}

// forget removes k: a new connection uses the tuple.
func (s *NegotiatedSet) forget(fk flowKey) {
	k := setKeyOf(fk)
	s.mu.RLock()
	_, ok := s.m[k]
	s.mu.RUnlock()
	if !ok {
		return // the common case: every new SYN asks
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; ok {
		s.del(k)
	}
}

func (s *NegotiatedSet) has(fk flowKey) bool {
	k := setKeyOf(fk)
	s.mu.RLock()
	d, ok := s.m[k]
	s.mu.RUnlock()
	if !ok || d == 0 || d > s.mono() {
		return ok
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.m[k]; ok && d != 0 && d <= s.mono() {
		s.del(k)
		return false
	}
	return ok
}

// expire removes at most n entries whose deadline has passed, nearest
// first. Without it an expired entry stayed until its tuple was seen again
// or the set filled up: the negotiated_set_entries gauge and the pinned
// map counted connections long gone (a soak review), and a set that sat
// full sent every hold through makeRoom. The engines call it as they
// sweep their tables; it takes the write lock only when the nearest
// deadline has passed.
func (s *NegotiatedSet) expire(n int) {
	s.mu.RLock()
	due := s.dl.len() > 0 && s.dl.items[0].d <= s.mono()
	s.mu.RUnlock()
	if !due {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.mono()
	for pops := 0; n > 0 && s.dl.len() > 0 && s.dl.items[0].d <= now && pops < maxPops; pops++ {
		if k, d := s.dl.pop(); s.liveItem(k, d) {
			s.del(k)
			n--
		}
	}
}

// roomBatch bounds the entries one makeRoom gives up: each takes the set's
// lock and a store write, and every worker that meets a new connection or
// a stray meanwhile waits.
const roomBatch = 64

// makeRoom frees entries of a full set, the released ones with the nearest
// deadlines first (expired ones are the nearest), at most roomBatch at
// once. s.dl orders them: no scan of the set, which at 500,000 entries
// stalled every worker for about 100 ms each time (a flood review). It
// reports false if every entry is held.
func (s *NegotiatedSet) makeRoom() bool {
	s.scans++
	freed := 0
	for pops := 0; freed < roomBatch && s.dl.len() > 0 && pops < maxPops; pops++ {
		k, d := s.dl.pop()
		if !s.liveItem(k, d) {
			continue // forgotten, held again or given another deadline since
		}
		s.del(k)
		freed++
	}
	return freed > 0
}

// setDeadline gives k the deadline d (on mono; 0: held) in the map, and a
// released entry its place in s.dl.
func (s *NegotiatedSet) setDeadline(k setKey, d int64) {
	s.m[k] = d
	if d == 0 {
		return
	}
	s.dl.push(k, d)
	s.dl.popStale(sweepBatch, s.liveItem)
	if s.dl.len() > s.cap+s.cap/2 {
		// At least a third of the items are stale (no more than cap are
		// live): a sweep of sweepBatch takes out far more than the one
		// pushed, in about as long as a makeRoom. (A scan of the whole
		// heap here stalled every worker for about 250 ms at 500,000
		// entries, a review found: clients reusing ports within
		// CloseLinger leave a stale item each.)
		s.dl.sweep(sweepBatch, s.liveItem)
	}
}

// liveItem reports whether the heap item (k, d) is k's entry's.
func (s *NegotiatedSet) liveItem(k setKey, d int64) bool {
	cur, ok := s.m[k]
	return ok && cur == d
}

// sweepBatch is how many heap items a push looks at when many are stale;
// maxPops bounds the items one makeRoom pops (the stale ones popStale has
// not reached yet: should it find no live one among them, the hold finds
// no room and its connection stays plain, never a long stall).
const (
	sweepBatch = 4 * roomBatch
	maxPops    = 16 * roomBatch
)

// The engine's side.

// negotiated puts f's tuple in the set: from here on its bytes on one side
// are not its bytes on the other. It reports false when the set has no
// room: the caller leaves the connection in plain TCP, since a restarted
// daemon would not know the tuple and would pass its segments unchanged
// (ciphertext to a host, plaintext to the wire).
func (e *Engine) negotiated(f *flow) bool {
	if !f.held {
		f.held = e.neg.hold(f.key)
	}
	return f.held
}

// released takes f's tuple out of the set if the connection stays plain.
func (e *Engine) unnegotiated(f *flow) {
	if f.held {
		f.held = false
		e.neg.forget(f.key)
	}
}
