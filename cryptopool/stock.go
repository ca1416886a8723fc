package cryptopool

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// StockConfig describes one Stock. Zero Size and MaxAge take the defaults.
type StockConfig[K any] struct {
	// Name labels the stock in stats, e.g. "x25519".
	Name string
	// Size is the most pairs the stock holds; default 64.
	Size int
	// MinSize, when between 1 and Size, sizes the stock to the connection
	// rate: it aims to hold Horizon's worth of the recent demand (Takes,
	// served or not), never fewer than MinSize nor more than Size, so an
	// idle stock costs MinSize/MaxAge key generations per second and a busy
	// one absorbs a burst of Horizon's length without inline generation.
	// The janitor measures the demand every SweepEvery. Zero (or Size):
	// the stock always aims for Size.
	MinSize int
	// Horizon is how much demand an adaptive stock holds; default 250ms,
	// at most MaxAge (a pair waits about Horizon before it is used).
	Horizon time.Duration
	// MaxAge is how long a pair may wait unused before it is discarded;
	// default 2s. RFC 8548 §3.3 asks for ephemeral keys refreshed often
	// (TC-9), and a short-lived private key if pairs are kept (TC-79).
	MaxAge time.Duration
	// Generate makes one fresh key pair. It runs on pool goroutines.
	Generate func() (K, error)
	// Wipe zeroes the private key of a pair the stock discards (expired, or
	// left over at Close). Nil when the type cannot be wiped, such as
	// *ecdh.PrivateKey; the stock then only drops its reference. It runs
	// under the stock's lock, so it must be quick (clear a few bytes).
	Wipe func(*K)
	// Now is the clock; default time.Now. Tests pass a fake one.
	Now func() time.Time
}

// Stock keeps a few pre-generated ephemeral key pairs of one type so a new
// connection can start its key exchange without waiting for key generation.
// Each pair is handed out at most once, pairs older than MaxAge are wiped and
// dropped, and the pool's idle workers refill the stock in the background.
//
// Keeping idle stocks full costs Size/MaxAge key generations per second
// (32/s with the defaults, about 2 ms of CPU per second for X25519); with
// MinSize set, MinSize/MaxAge when idle, and the stock grows with demand.
type Stock[K any] struct {
	pool   *Pool
	name   string
	maxAge time.Duration
	gen    func() (K, error)
	wipe   func(*K)
	now    func() time.Time

	minSize int
	horizon time.Duration

	mu     sync.Mutex // guards ring, head, n, closed, target
	ring   []stocked[K]
	head   int
	n      int
	closed bool
	target int // pairs the refills aim for: len(ring), or by demand (MinSize)

	demand    atomic.Uint64 // Takes since the last retarget
	rate      float64       // janitor only: demand per second, decaying
	lastSweep time.Time     // janitor only

	queued atomic.Bool // a refill hint is in the pool's queue

	generated, taken, empty, expired, surplus, genErrors atomic.Uint64
}

type stocked[K any] struct {
	key  K
	born time.Time // when the pair entered the stock
}

// NewStock creates a stock served by p and starts filling it. The pool wipes
// it when the pool closes.
func NewStock[K any](p *Pool, cfg StockConfig[K]) (*Stock[K], error) {
	switch {
	case p == nil:
		return nil, errors.New("cryptopool: stock needs a pool")
	case cfg.Generate == nil:
		return nil, errors.New("cryptopool: stock needs a Generate function")
	case cfg.Size < 0 || cfg.MaxAge < 0 || cfg.MinSize < 0 || cfg.Horizon < 0:
		return nil, errors.New("cryptopool: negative stock size, age or horizon")
	}
	if cfg.Size == 0 {
		cfg.Size = 64
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 2 * time.Second
	}
	if cfg.MinSize == 0 || cfg.MinSize > cfg.Size {
		cfg.MinSize = cfg.Size
	}
	if cfg.Horizon == 0 {
		cfg.Horizon = 250 * time.Millisecond
	}
	cfg.Horizon = min(cfg.Horizon, cfg.MaxAge)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Stock[K]{
		pool:   p,
		name:   cfg.Name,
		maxAge: cfg.MaxAge,
		gen:    cfg.Generate,
		wipe:   cfg.Wipe,
		now:    cfg.Now,
		ring:   make([]stocked[K], cfg.Size),

		minSize:   cfg.MinSize,
		horizon:   cfg.Horizon,
		target:    cfg.MinSize,
		lastSweep: cfg.Now(),
	}
	if err := p.addStock(s); err != nil {
		return nil, err
	}
	s.poke()
	return s, nil
}

// Take hands out the oldest pair that has not expired, removing it from the
// stock; the caller owns it from then on and must use it for one connection
// only. Take never blocks on key generation: ok is false when the stock is
// empty, and the caller then submits a generation job to the pool.
func (s *Stock[K]) Take() (k K, ok bool) {
	now := s.now()
	s.mu.Lock()
	s.expireLocked(now)
	if s.n > 0 {
		e := &s.ring[s.head]
		k, ok = e.key, true
		*e = stocked[K]{}
		s.advanceLocked()
	}
	s.mu.Unlock()
	if ok {
		s.taken.Add(1)
	} else {
		s.empty.Add(1)
	}
	s.demand.Add(1)
	s.poke()
	return k, ok
}

// Expire wipes and drops the pairs older than MaxAge now and returns how
// many. The pool's janitor calls it every SweepEvery; Take calls it too.
func (s *Stock[K]) Expire() int {
	now := s.now()
	s.mu.Lock()
	n := s.expireLocked(now)
	s.mu.Unlock()
	if n > 0 {
		s.poke()
	}
	return n
}

// Len returns how many pairs are in stock (expired ones included until the
// next Take or sweep).
func (s *Stock[K]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// StockStats are one stock's counters, for the admin API and metrics.
type StockStats struct {
	Name string `json:"name"`
	Size int    `json:"size"`
	// Target is how many pairs the stock now aims to hold (MinSize..Size).
	Target int           `json:"target"`
	Len    int           `json:"len"`
	MaxAge time.Duration `json:"max_age_ns"`
	// Generated pairs entered the stock; Taken were handed out; Empty counts
	// Takes that found nothing; Expired were wiped unused; Surplus were
	// generated for a stock already at its target (or closed) and wiped;
	// GenErrors are failed Generate calls.
	Generated uint64 `json:"generated"`
	Taken     uint64 `json:"taken"`
	Empty     uint64 `json:"empty"`
	Expired   uint64 `json:"expired"`
	Surplus   uint64 `json:"surplus"`
	GenErrors uint64 `json:"gen_errors"`
}

// Stats returns a snapshot of the counters.
func (s *Stock[K]) Stats() StockStats {
	return StockStats{
		Name:      s.name,
		Size:      len(s.ring),
		Target:    s.Target(),
		Len:       s.Len(),
		MaxAge:    s.maxAge,
		Generated: s.generated.Load(),
		Taken:     s.taken.Load(),
		Empty:     s.empty.Load(),
		Expired:   s.expired.Load(),
		Surplus:   s.surplus.Load(),
		GenErrors: s.genErrors.Load(),
	}
}

// Target returns how many pairs the stock now aims to hold.
func (s *Stock[K]) Target() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.target
}

// retarget sizes the stock to the demand since the last call: it follows a
// rise at once and a fall gradually (a quarter of the excess per sweep), so
// bursts that recur find pairs ready. Only the janitor calls it.
func (s *Stock[K]) retarget(now time.Time) {
	if s.minSize == len(s.ring) {
		return
	}
	dt := now.Sub(s.lastSweep)
	if dt <= 0 {
		return
	}
	s.lastSweep = now
	inst := float64(s.demand.Swap(0)) / dt.Seconds()
	s.rate = max(inst, s.rate-(s.rate-inst)/4)
	want := int(s.rate*s.horizon.Seconds() + 0.999)
	want = min(max(want, s.minSize), len(s.ring))
	s.mu.Lock()
	s.target = want
	s.mu.Unlock()
}

func (s *Stock[K]) expireLocked(now time.Time) int {
	n := 0
	// Pairs enter in born order (born is read under mu), so the oldest is
	// at head and the scan stops at the first fresh one.
	for s.n > 0 {
		e := &s.ring[s.head]
		if now.Sub(e.born) < s.maxAge {
			break
		}
		s.wipeKey(&e.key)
		*e = stocked[K]{}
		s.advanceLocked()
		n++
	}
	if n > 0 {
		s.expired.Add(uint64(n))
	}
	return n
}

func (s *Stock[K]) advanceLocked() {
	s.head++
	if s.head == len(s.ring) {
		s.head = 0
	}
	s.n--
}

func (s *Stock[K]) wipeKey(k *K) {
	if s.wipe != nil {
		s.wipe(k)
	}
}

// poke asks the pool for one more pair unless a request is already queued.
func (s *Stock[K]) poke() {
	if s.queued.CompareAndSwap(false, true) && !s.pool.pokeRefill(s) {
		s.queued.Store(false)
	}
}

// refillOne runs on a pool goroutine: it generates one pair if the stock is
// short and asks for another if it is still short.
func (s *Stock[K]) refillOne() {
	s.queued.Store(false)
	s.mu.Lock()
	short := !s.closed && s.n < s.target
	s.mu.Unlock()
	if !short {
		return
	}
	k, err := s.gen()
	if err != nil {
		// No retry here: a failing generator would spin. The next Take or
		// sweep asks again.
		s.genErrors.Add(1)
		return
	}
	s.mu.Lock()
	// Checked again: another refill may have filled the stock, or a sweep
	// lowered the target, while this pair was generated.
	if s.closed || s.n >= s.target {
		s.mu.Unlock()
		// A copy, so that only this rare path moves a key to the heap.
		extra := k
		s.wipeKey(&extra)
		s.surplus.Add(1)
		return
	}
	i := s.head + s.n
	if i >= len(s.ring) {
		i -= len(s.ring)
	}
	s.ring[i] = stocked[K]{key: k, born: s.now()}
	s.n++
	short = s.n < s.target
	s.mu.Unlock()
	s.generated.Add(1)
	if short {
		s.poke()
	}
}

// sweep is the janitor's call.
func (s *Stock[K]) sweep() {
	s.Expire()
	s.retarget(s.now())
	s.mu.Lock()
	short := !s.closed && s.n < s.target
	s.mu.Unlock()
	if short {
		s.poke()
	}
}

// wipeAll empties the stock for good when the pool closes.
func (s *Stock[K]) wipeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for s.n > 0 {
		e := &s.ring[s.head]
		s.wipeKey(&e.key)
		*e = stocked[K]{}
		s.advanceLocked()
	}
}
