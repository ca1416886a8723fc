package control

import (
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance"
	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// TestEnginesShared: NewEngines starts the pool and stocks, every worker
// gets its own engine sharing them, Each sees them all.
func TestEnginesShared(t *testing.T) {
	es, err := NewEngines(config.Default().Engine, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	if es.Cache == nil || len(es.keys) != 3 {
		t.Fatalf("cache %v, %d stocks; want a cache and one stock per default TEP", es.Cache, len(es.keys))
	}
	h0, err := es.NewHandler(0)
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := es.NewHandler(1)
	if h0 == h1 {
		t.Fatal("two workers share one engine")
	}
	n := 0
	es.Each(func(q int, c *engine.Counters) { n++ })
	if n != 2 {
		t.Fatalf("Each visited %d engines", n)
	}
}

// TestKeyStocksWipeExpired: the engines' key stocks zero the pairs they
// discard, as their stats say ("Expired were wiped unused"; TC-9, TC-79):
// an expired pair no longer computes a shared secret. Before, the stocks
// had no Wipe and an expired pair was only dropped.
func TestKeyStocksWipeExpired(t *testing.T) {
	pool, err := cryptopool.NewPool(cryptopool.PoolConfig{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ka, err := tcpcrypt.KeyAgreementFor(tcpcrypt.TEPX25519)
	if err != nil {
		t.Fatal(err)
	}
	cfg := keyStockConfig(ka)
	var mu sync.Mutex
	var made []*tcpcrypt.KeyPair
	gen := cfg.Generate
	cfg.Generate = func() (*tcpcrypt.KeyPair, error) {
		kp, err := gen()
		mu.Lock()
		made = append(made, kp)
		mu.Unlock()
		return kp, err
	}
	start := time.Now()
	var elapsed atomic.Int64
	cfg.Now = func() time.Time { return start.Add(time.Duration(elapsed.Load())) }
	st, err := cryptopool.NewStock(pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for st.Len() < keyStockMin && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st.Len() < keyStockMin {
		t.Fatalf("the stock holds %d pairs, want %d", st.Len(), keyStockMin)
	}
	mu.Lock()
	stocked := slices.Clone(made)
	mu.Unlock()
	elapsed.Store(int64(time.Hour))
	st.Expire()
	if st.Stats().Expired == 0 {
		t.Fatal("no pair expired")
	}
	peer, err := ka.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, kp := range stocked {
		if _, err := ka.SharedSecret(kp, peer.Public); err == nil {
			t.Fatal("an expired stock pair still computes a shared secret")
		}
	}
}

// TestEnginesSetMTU: SetMTU reaches the engine of every running worker, on
// the worker's goroutine (appliance.Inspect), and the engines built after.
func TestEnginesSetMTU(t *testing.T) {
	cfg := config.Default().Engine
	cfg.KeyWorkers = 1
	es, err := NewEngines(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	es.MTU = [2]int{1500, 1500}
	a := newAppliance(t, 2, es.NewHandler)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	if err := es.SetMTU(a, [2]int{1400, 9000}); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := a.Inspect(func(q int, h appliance.FrameHandler) {
		n++
		if en, ok := engineOf(h); !ok || en.MTU() != [2]int{1400, 9000} {
			t.Errorf("worker %d: engine MTU %v, want [1400 9000]", q, en.MTU())
		}
	}); err != nil || n != 2 {
		t.Fatalf("inspect: %v, %d workers", err, n)
	}
	h, err := es.NewHandler(2)
	if err != nil {
		t.Fatal(err)
	}
	if en, _ := engineOf(h); en.MTU() != [2]int{1400, 9000} {
		t.Fatalf("an engine built after: MTU %v", en.MTU())
	}
}
