package control

import (
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
