package control

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcpinc/tcpinc/appliance"
	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// Engines is what the workers' engines share: the public-key pool, a stock
// of ready key pairs per TEP, and the resumption cache. Its NewHandler gives
// each worker its own engine.
type Engines struct {
	Pool  *cryptopool.Pool
	Cache *tcpcrypt.Cache[netip.Addr] // nil when resumption is off
	// Memory is the flow memory budget all the engines charge.
	Memory *engine.Memory
	// Negotiated is the set of negotiated tuples the engines share (set it
	// before the workers are built; nil gives each engine its own).
	Negotiated *engine.NegotiatedSet
	cfg        engine.Config
	keys       map[tcpcrypt.TEP]*cryptopool.Stock[*tcpcrypt.KeyPair]
	log        *slog.Logger

	// KeyLog, when set before the workers start, is every engine's
	// Deps.KeyLog (debugging decryption; off by default).
	KeyLog func(engine.KeyLogEntry) bool
	// KeyLogLost, when set, counts every line the key log lost: those
	// KeyLog refused and those its file failed to take after (keylog.Writer
	// Lost). Nil: the engines' refusals are the count.
	KeyLogLost func() uint64
	// MTU, when set before the workers start, is every engine's Deps.MTU
	// (afxdp.SegmentMTU: each port's cap on the segments the engines
	// build). SetMTU changes it while they run.
	MTU [2]int

	mu   sync.Mutex
	list []*engine.Engine
	// flowIDs numbers the flows of every engine (engine.Deps.FlowIDs): the
	// admin API finds a flow by its ID.
	flowIDs atomic.Uint64
	// trusted: the far peers with an encrypted connection, whose SYNs a
	// flood does not shed, known to every worker (engine.Deps.Trusted).
	trusted *engine.TrustedPeers
}

// NewEngines starts the shared services for c. Close it after the workers
// stopped.
func NewEngines(c config.Engine, log *slog.Logger) (*Engines, error) {
	ec, err := EngineConfig(c)
	if err != nil {
		return nil, err
	}
	pool, err := cryptopool.NewPool(cryptopool.PoolConfig{Workers: c.KeyWorkers})
	if err != nil {
		return nil, err
	}
	e := &Engines{Pool: pool, Memory: engine.NewMemory(ec.MemoryLimit), trusted: engine.NewTrustedPeers(), cfg: ec, log: log, keys: map[tcpcrypt.TEP]*cryptopool.Stock[*tcpcrypt.KeyPair]{}}
	for _, tep := range ec.TEPs {
		ka, err := tcpcrypt.KeyAgreementFor(tep)
		if err != nil {
			pool.Close()
			return nil, err
		}
		st, err := cryptopool.NewStock(pool, keyStockConfig(ka))
		if err != nil {
			pool.Close()
			return nil, err
		}
		e.keys[tep] = st
	}
	if c.Resumption {
		e.Cache = tcpcrypt.NewCache[netip.Addr](tcpcrypt.CacheConfig{MaxEntries: c.ResumptionCache, TTL: c.ResumptionTTL})
		if err := e.Cache.SetNonceLen(c.ResumptionNonceLen); err != nil {
			pool.Close()
			return nil, err
		}
	}
	return e, nil
}

// The key stocks follow the connection rate: an idle one keeps keyStockMin
// pairs (8 X25519 generations a second to keep them under the 2 s age
// limit, cryptopool.StockConfig.MaxAge, TC-9), a busy one keyStockHorizon's worth of the
// demand, at most keyStockMax (about 600 µs of X25519 generation at 1,000
// new connections a second).
const (
	keyStockMin     = 16
	keyStockMax     = 1024
	keyStockHorizon = 250 * time.Millisecond
)

// keyStockConfig is the stock of ka's pairs. Wipe zeroes the pairs the
// stock discards (expired, surplus, left at close), as its stats say.
func keyStockConfig(ka tcpcrypt.KeyAgreement) cryptopool.StockConfig[*tcpcrypt.KeyPair] {
	return cryptopool.StockConfig[*tcpcrypt.KeyPair]{
		Name:     ka.TEP().String(),
		Size:     keyStockMax,
		MinSize:  keyStockMin,
		Horizon:  keyStockHorizon,
		Generate: func() (*tcpcrypt.KeyPair, error) { return ka.GenerateKey(nil) },
		Wipe:     func(kp **tcpcrypt.KeyPair) { (*kp).Wipe() },
	}
}

// StockStats returns the key stocks' counters, one per TEP.
func (e *Engines) StockStats() []cryptopool.StockStats {
	var out []cryptopool.StockStats
	for _, tep := range e.cfg.TEPs {
		if st := e.keys[tep]; st != nil {
			out = append(out, st.Stats())
		}
	}
	return out
}

// NewHandler implements appliance.NewHandlerFunc: a fresh engine for queue
// q's worker.
func (e *Engines) NewHandler(q int) (appliance.FrameHandler, error) {
	e.mu.Lock()
	mtu := e.MTU
	e.mu.Unlock()
	en, err := engine.New(e.cfg, engine.Deps{Pool: e.Pool, Keys: e.keys, Cache: e.Cache, Memory: e.Memory, Negotiated: e.Negotiated, Log: e.log.With("queue", q), KeyLog: e.KeyLog, MTU: mtu, FlowIDs: &e.flowIDs, Trusted: e.trusted})
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.list = append(e.list, en)
	e.mu.Unlock()
	return en, nil
}

// SetMTU gives the engines of a's workers the ports' new MTUs
// (engine.Engine.SetMTU: for their live flows too), each on its worker's
// goroutine between two rounds (appliance.Appliance.Inspect), as a
// configuration change reaches them.
func (e *Engines) SetMTU(a *appliance.Appliance, mtu [2]int) error {
	e.mu.Lock()
	e.MTU = mtu
	e.mu.Unlock()
	return a.Inspect(func(_ int, h appliance.FrameHandler) {
		if en, ok := engineOf(h); ok {
			en.SetMTU(mtu)
		}
	})
}

// StartMaxFlows is the flows per worker the engines started with. The
// negotiated set, and the BPF map it is pinned in, are sized for it (two
// entries per flow of every worker: afxdp.NegotiatedCapacity), so it is the
// most caps.flows may be raised to while tcpincd runs.
func (e *Engines) StartMaxFlows() int { return e.cfg.MaxFlows }

// Config returns the engines' configuration, defaults filled in.
func (e *Engines) Config() engine.Config {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.list) > 0 {
		return e.list[0].Config()
	}
	return e.cfg
}

// Each calls fn with every engine's counters (atomics: safe while the
// workers run).
func (e *Engines) Each(fn func(queue int, c *engine.Counters)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for q, en := range e.list {
		fn(q, en.Counters())
	}
}

// Close stops the pool and wipes the stocked key pairs. Stop the workers
// first.
func (e *Engines) Close() { e.Pool.Close() }
