package cryptopool

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testPair is an X25519 key pair held by value, so it can be wiped, with a
// serial number to tell pairs apart.
type testPair struct {
	serial uint64
	priv   [32]byte
	pub    [32]byte
}

// pairMaker generates real X25519 pairs and records every wipe.
type pairMaker struct {
	serial atomic.Uint64
	mu     sync.Mutex
	wiped  map[uint64]bool
}

func (m *pairMaker) generate() (testPair, error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return testPair{}, err
	}
	p := testPair{serial: m.serial.Add(1)}
	copy(p.priv[:], k.Bytes())
	copy(p.pub[:], k.PublicKey().Bytes())
	return p, nil
}

func (m *pairMaker) wipe(p *testPair) {
	m.mu.Lock()
	if m.wiped == nil {
		m.wiped = map[uint64]bool{}
	}
	if m.wiped[p.serial] {
		panic("pair wiped twice")
	}
	m.wiped[p.serial] = true
	m.mu.Unlock()
	clear(p.priv[:])
}

func (m *pairMaker) wipedSet() map[uint64]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[uint64]bool{}
	for k := range m.wiped {
		out[k] = true
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStockSingleUse: concurrent Takes while the pool refills never hand
// out the same pair twice (each ephemeral pair serves one connection), and
// every handed-out pair is a working X25519 pair that was not wiped.
func TestStockSingleUse(t *testing.T) {
	p := newTestPool(t, PoolConfig{Workers: 2})
	m := &pairMaker{}
	s, err := NewStock(p, StockConfig[testPair]{Name: "x25519", Size: 16, Generate: m.generate, Wipe: m.wipe})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stock to fill", func() bool { return s.Len() == 16 })

	const takers, want = 4, 40
	var mu sync.Mutex
	got := map[uint64]testPair{}
	var wg sync.WaitGroup
	for range takers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < want; {
				pair, ok := s.Take()
				if !ok {
					time.Sleep(100 * time.Microsecond)
					continue
				}
				n++
				mu.Lock()
				if _, dup := got[pair.serial]; dup {
					t.Errorf("pair %d handed out twice", pair.serial)
				}
				got[pair.serial] = pair
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wiped := m.wipedSet()
	for serial, pair := range got {
		if wiped[serial] {
			t.Errorf("pair %d was handed out and wiped", serial)
		}
		priv, err := ecdh.X25519().NewPrivateKey(pair.priv[:])
		if err != nil || !bytes.Equal(priv.PublicKey().Bytes(), pair.pub[:]) {
			t.Fatalf("pair %d is not a key pair", serial)
		}
	}
	st := s.Stats()
	if st.Taken != takers*want || len(got) != takers*want || st.Name != "x25519" || st.Size != 16 {
		t.Errorf("stats %+v, distinct pairs %d", st, len(got))
	}
}

// TestStockExpiry (TC-9, TC-79): pairs older than MaxAge are wiped and never
// handed out, both by Take and by the janitor when nobody takes.
func TestStockExpiry(t *testing.T) {
	p := newTestPool(t, PoolConfig{Workers: 1, SweepEvery: time.Millisecond})
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	m := &pairMaker{}
	s, err := NewStock(p, StockConfig[testPair]{Size: 8, MaxAge: 2 * time.Second, Generate: m.generate, Wipe: m.wipe, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stock to fill", func() bool { return s.Len() == 8 })

	clock.Advance(1999 * time.Millisecond)
	if n := s.Expire(); n != 0 {
		t.Fatalf("Expire dropped %d pairs younger than MaxAge", n)
	}
	// The stock is full and idle: every pair so far was born at the start.
	oldest := m.serial.Load()
	first, ok := s.Take()
	if !ok {
		t.Fatal("Take found nothing in a full stock")
	}
	waitFor(t, "the refill", func() bool { return s.Len() == 8 })

	// Now the first 7 are past MaxAge; the janitor must wipe them on its own.
	clock.Advance(time.Millisecond)
	waitFor(t, "the janitor to expire old pairs", func() bool { return s.Stats().Expired >= 7 })
	wiped := m.wipedSet()
	for serial := uint64(1); serial <= oldest; serial++ {
		if serial != first.serial && !wiped[serial] {
			t.Errorf("pair %d outlived MaxAge without being wiped", serial)
		}
	}
	if wiped[first.serial] {
		t.Error("the pair handed out was wiped by the stock")
	}
	// Whatever Take returns from now on is younger than MaxAge.
	waitFor(t, "the refill", func() bool { return s.Len() == 8 })
	for range 8 {
		pair, ok := s.Take()
		if !ok {
			t.Fatal("Take found nothing after the refill")
		}
		if pair.serial <= oldest {
			t.Errorf("Take returned expired pair %d", pair.serial)
		}
	}
}

// TestStockTakeExpiresFirst: Take itself drops stale pairs before handing
// one out, even if the janitor has not run (its period here is an hour).
func TestStockTakeExpiresFirst(t *testing.T) {
	p := newTestPool(t, PoolConfig{Workers: 1, SweepEvery: time.Hour})
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	m := &pairMaker{}
	s, _ := NewStock(p, StockConfig[testPair]{Size: 4, MaxAge: time.Second, Generate: m.generate, Wipe: m.wipe, Now: clock.Now})
	waitFor(t, "the stock to fill", func() bool { return s.Len() == 4 })
	clock.Advance(time.Second)
	if pair, ok := s.Take(); ok {
		t.Fatalf("Take returned pair %d of age MaxAge", pair.serial)
	}
	if st := s.Stats(); st.Expired != 4 || st.Empty != 1 || len(m.wipedSet()) != 4 {
		t.Errorf("stats %+v, wiped %d", st, len(m.wipedSet()))
	}
}

// TestStockTakeNeverBlocks: with generation stuck, Take answers at once.
func TestStockTakeNeverBlocks(t *testing.T) {
	p := newTestPool(t, PoolConfig{Workers: 1})
	release := make(chan struct{})
	var started atomic.Bool
	s, _ := NewStock(p, StockConfig[int]{Size: 4, Generate: func() (int, error) {
		started.Store(true)
		<-release
		return 1, nil
	}})
	waitFor(t, "generation to start", started.Load)
	start := time.Now()
	for range 100 {
		if _, ok := s.Take(); ok {
			t.Fatal("Take returned a pair that was never generated")
		}
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("100 empty Takes took %v", d)
	}
	if s.Stats().Empty != 100 {
		t.Errorf("stats %+v", s.Stats())
	}
	close(release)
	waitFor(t, "the stock to fill", func() bool { return s.Len() == 4 })
}

// TestStockFlowJobsFirst: submitted jobs run before stock refills, so a
// refilling stock does not delay a connection that is waiting.
func TestStockFlowJobsFirst(t *testing.T) {
	p := newTestPool(t, PoolConfig{Workers: 1})
	c, _ := p.NewClient(4)
	g := newGate()
	c.Submit(Job{Run: runGate, Arg: g})
	<-g.started
	var gens atomic.Int64
	s, _ := NewStock(p, StockConfig[int]{Size: 100, Generate: func() (int, error) { return int(gens.Add(1)), nil }})
	var seen int64
	c.Submit(Job{Run: func(*Job) { seen = gens.Load() }, Token: 5})
	close(g.release)
	waitPoll(t, c, 2)
	// The refill hint was queued before job 5, yet job 5 ran first.
	if seen != 0 {
		t.Errorf("%d pairs generated before the queued job ran", seen)
	}
	waitFor(t, "the stock to fill", func() bool { return s.Len() == 100 })
}

func TestStockGenerateError(t *testing.T) {
	p := newTestPool(t, PoolConfig{Workers: 1, SweepEvery: 5 * time.Millisecond})
	s, _ := NewStock(p, StockConfig[int]{Size: 4, Generate: func() (int, error) { return 0, errors.New("no entropy") }})
	waitFor(t, "a generation error", func() bool { return s.Stats().GenErrors >= 2 })
	if _, ok := s.Take(); ok || s.Len() != 0 {
		t.Error("a failed generation produced a pair")
	}
}

// TestStockWipedOnClose: closing the pool wipes what is left in its stocks.
func TestStockWipedOnClose(t *testing.T) {
	checkGoroutines(t)
	p, _ := NewPool(PoolConfig{Workers: 1})
	m := &pairMaker{}
	s, _ := NewStock(p, StockConfig[testPair]{Size: 5, Generate: m.generate, Wipe: m.wipe})
	waitFor(t, "the stock to fill", func() bool { return s.Len() == 5 })
	p.Close()
	if s.Len() != 0 || len(m.wipedSet()) < 5 {
		t.Errorf("after Close: %d pairs left, %d wiped", s.Len(), len(m.wipedSet()))
	}
	if _, ok := s.Take(); ok {
		t.Error("Take after Close returned a pair")
	}
	if _, err := NewStock(p, StockConfig[testPair]{Generate: m.generate}); !errors.Is(err, ErrClosed) {
		t.Errorf("NewStock on a closed pool: %v", err)
	}
}

// TestStockGenericKeyTypes: crypto/ecdh keys of several curves stock the same
// way (they cannot be wiped, so Wipe is nil), and X25519 is the default size.
func TestStockGenericKeyTypes(t *testing.T) {
	p := newTestPool(t, PoolConfig{Workers: 2})
	for _, curve := range []ecdh.Curve{ecdh.X25519(), ecdh.P256(), ecdh.P521()} {
		s, err := NewStock(p, StockConfig[*ecdh.PrivateKey]{Size: 2, Generate: func() (*ecdh.PrivateKey, error) {
			return curve.GenerateKey(rand.Reader)
		}})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the stock to fill", func() bool { return s.Len() == 2 })
		a, ok1 := s.Take()
		b, ok2 := s.Take()
		if !ok1 || !ok2 || a == b {
			t.Fatalf("%v: Take = %v %v, distinct %v", curve, ok1, ok2, a != b)
		}
		ab, err1 := a.ECDH(b.PublicKey())
		ba, err2 := b.ECDH(a.PublicKey())
		if err1 != nil || err2 != nil || !bytes.Equal(ab, ba) {
			t.Errorf("%v: ECDH between stocked keys failed", curve)
		}
	}
	s, _ := NewStock(p, StockConfig[int]{Generate: func() (int, error) { return 0, nil }})
	if st := s.Stats(); st.Size != 64 || st.MaxAge != 2*time.Second {
		t.Errorf("defaults: %+v", st)
	}
}

func TestNewStockRejects(t *testing.T) {
	p := newTestPool(t, PoolConfig{Workers: 1})
	gen := func() (int, error) { return 0, nil }
	for _, tc := range []struct {
		p   *Pool
		cfg StockConfig[int]
	}{
		{nil, StockConfig[int]{Generate: gen}},
		{p, StockConfig[int]{}},
		{p, StockConfig[int]{Generate: gen, Size: -1}},
		{p, StockConfig[int]{Generate: gen, MaxAge: -time.Second}},
	} {
		if _, err := NewStock(tc.p, tc.cfg); err == nil {
			t.Errorf("NewStock accepted %+v", tc.cfg)
		}
	}
}

// TestStockZeroAllocs: Take, and the background refill it triggers, do not
// allocate for a value key type (generation itself aside).
func TestStockZeroAllocs(t *testing.T) {
	p := newTestPool(t, PoolConfig{Workers: 1})
	var serial uint64
	s, _ := NewStock(p, StockConfig[testPair]{Size: 4, Generate: func() (testPair, error) {
		serial++
		return testPair{serial: serial}, nil
	}, Wipe: func(k *testPair) { clear(k.priv[:]) }})
	waitFor(t, "the stock to fill", func() bool { return s.Len() == 4 })
	if a := testing.AllocsPerRun(200, func() {
		for {
			if _, ok := s.Take(); ok {
				break
			}
			time.Sleep(10 * time.Microsecond)
		}
	}); a != 0 {
		t.Errorf("%v allocs per Take+refill", a)
	}
}

// TestStockSizedToDemand: an adaptive stock (MinSize < Size) holds MinSize
// pairs while nobody takes, grows to Horizon's worth of the measured demand
// and refills to it, never holds more than Size however high the demand,
// and shrinks back when the demand stops; every pair it hands out is
// distinct (each serves one connection, RFC 8548 §3.3) and none is older
// than MaxAge.
func TestStockSizedToDemand(t *testing.T) {
	p := newTestPool(t, PoolConfig{Workers: 2, SweepEvery: time.Hour}) // the test sweeps
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	m := &pairMaker{}
	s, err := NewStock(p, StockConfig[testPair]{Size: 64, MinSize: 4, Horizon: time.Second, MaxAge: 2 * time.Second,
		Generate: m.generate, Wipe: m.wipe, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle stock to fill to MinSize", func() bool { return s.Len() == 4 })
	seen := map[uint64]bool{}
	take := func(n int) {
		for range n {
			k, ok := s.Take()
			if !ok {
				continue
			}
			if seen[k.serial] {
				t.Fatalf("pair %d handed out twice", k.serial)
			}
			seen[k.serial] = true
		}
	}
	sweep := func(d time.Duration) {
		clock.Advance(d)
		s.sweep()
	}
	// 20 takes in one second: 20 pairs of demand per Horizon.
	take(20)
	sweep(time.Second)
	if got := s.Target(); got != 20 {
		t.Fatalf("target %d after 20 takes in 1 s, want 20", got)
	}
	waitFor(t, "the stock to refill to its target", func() bool { return s.Len() == s.Target() })
	// Far more demand than Size: bounded.
	take(5000)
	sweep(100 * time.Millisecond)
	if s.Target() != 64 {
		t.Fatalf("target %d with 50,000 takes/s, want Size 64", s.Target())
	}
	waitFor(t, "the stock to refill to Size", func() bool { return s.Len() == 64 })
	if st := s.Stats(); st.Len > st.Size || st.Target > st.Size {
		t.Fatalf("stats %+v: over Size", st)
	}
	// No demand: the target falls back to MinSize, and the pairs that
	// expire are not replaced beyond it.
	for range 40 {
		sweep(100 * time.Millisecond)
	}
	if s.Target() != 4 {
		t.Fatalf("target %d after 4 s without demand, want MinSize 4", s.Target())
	}
	// Refills that ran during those sweeps made pairs born late in them:
	// one more MaxAge expires every pair, and the refill stops at MinSize
	// (a refill finishing late never puts the stock over its target).
	sweep(2 * time.Second)
	waitFor(t, "expired pairs dropped and the stock back at MinSize", func() bool { return s.Len() == 4 })
	time.Sleep(20 * time.Millisecond)
	if n := s.Len(); n != 4 {
		t.Fatalf("stock holds %d pairs after refilling, want MinSize 4", n)
	}
	take(4)
	if st := s.Stats(); st.Taken != uint64(len(seen)) {
		t.Fatalf("taken %d, distinct %d", st.Taken, len(seen))
	}
}
