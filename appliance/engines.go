package appliance

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// EngineConfig maps the configuration file's engine section to
// engine.Config, and checks the result the way engine.New does. Errors name
// the key at fault.
func EngineConfig(c config.Engine) (engine.Config, error) {
	ec := engine.Config{
		RekeyBytes:       c.RekeyBytes,
		RekeyAfter:       c.RekeyInterval,
		NoResumption:     !c.Resumption,
		MaxFlows:         c.MaxFlows,
		MaxEmbryonic:     c.MaxEmbryonic,
		MemoryLimit:      c.MemoryLimit,
		RetransmitBytes:  c.RetransmitBytes,
		ReassemblyBytes:  c.ReassemblyBytes,
		PreKeyBytes:      c.PreKeyBytes,
		DeliverBytes:     c.DeliverBytes,
		InitRTO:          c.InitRTO,
		InitTries:        c.InitTries,
		HandshakeTimeout: c.HandshakeTimeout,
		IdleTimeout:      c.IdleTimeout,
		PlainRetention:   c.PlainRetention,
		Fragments: engine.FragConfig{Timeout: c.FragmentTimeout, MaxDatagrams: c.FragmentDatagrams,
			PerFlow: c.FragmentPerFlow, Memory: c.FragmentBytes},
	}
	// The file says 0 for "never"; the engine reads 0 as "default".
	if ec.RekeyBytes == 0 {
		ec.RekeyBytes = -1
	}
	if ec.RekeyAfter == 0 {
		ec.RekeyAfter = -1
	}
	for i, name := range c.TEPs {
		tep, ok := tepByName(name)
		if !ok {
			return ec, &config.FieldError{Field: fmt.Sprintf("engine.teps[%d]", i), Msg: fmt.Sprintf("unknown TEP %q", name)}
		}
		ec.TEPs = append(ec.TEPs, tep)
	}
	for i, name := range c.AEADs {
		s, err := cryptopool.ParseSuite(name)
		if err != nil {
			return ec, &config.FieldError{Field: fmt.Sprintf("engine.aeads[%d]", i), Msg: err.Error()}
		}
		ec.AEADs = append(ec.AEADs, s)
	}
	for i, p := range c.Policies {
		field := fmt.Sprintf("engine.policies[%d]", i)
		prefix, err := netip.ParsePrefix(p.Prefix)
		if err != nil {
			return ec, &config.FieldError{Field: field + ".prefix", Msg: err.Error()}
		}
		pol, ok := map[string]engine.Policy{"opportunistic": engine.Opportunistic, "require": engine.Require, "bypass": engine.Bypass}[p.Policy]
		if !ok {
			return ec, &config.FieldError{Field: field + ".policy", Msg: fmt.Sprintf("unknown policy %q", p.Policy)}
		}
		ec.Policies = append(ec.Policies, engine.PolicyRule{Prefix: prefix.Masked(), Policy: pol})
	}
	if _, err := engine.New(ec, engine.Deps{}); err != nil {
		return ec, &config.FieldError{Field: "engine", Msg: err.Error()}
	}
	return ec, nil
}

func tepByName(name string) (tcpcrypt.TEP, bool) {
	for _, t := range tcpcrypt.AllTEPs {
		if t.String() == name {
			return t, true
		}
	}
	return 0, false
}

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
	KeyLog func(engine.KeyLogEntry)

	mu   sync.Mutex
	list []*engine.Engine
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
	e := &Engines{Pool: pool, Memory: engine.NewMemory(ec.MemoryLimit), cfg: ec, log: log, keys: map[tcpcrypt.TEP]*cryptopool.Stock[*tcpcrypt.KeyPair]{}}
	for _, tep := range ec.TEPs {
		ka, err := tcpcrypt.KeyAgreementFor(tep)
		if err != nil {
			pool.Close()
			return nil, err
		}
		st, err := cryptopool.NewStock(pool, cryptopool.StockConfig[*tcpcrypt.KeyPair]{
			Name:     tep.String(),
			Size:     keyStockMax,
			MinSize:  keyStockMin,
			Horizon:  keyStockHorizon,
			Generate: func() (*tcpcrypt.KeyPair, error) { return ka.GenerateKey(nil) },
		})
		if err != nil {
			pool.Close()
			return nil, err
		}
		e.keys[tep] = st
	}
	if c.Resumption {
		e.Cache = tcpcrypt.NewCache[netip.Addr](tcpcrypt.CacheConfig{MaxEntries: c.ResumptionCache, TTL: c.ResumptionTTL})
	}
	return e, nil
}

// The key stocks follow the connection rate: an idle one keeps keyStockMin
// pairs (8 X25519 generations a second to keep them under the 2 s age
// limit, RFC 8548 §3.3), a busy one keyStockHorizon's worth of the
// demand, at most keyStockMax (about 600 µs of X25519 generation at 1,000
// new connections a second).
const (
	keyStockMin     = 16
	keyStockMax     = 1024
	keyStockHorizon = 250 * time.Millisecond
)

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

// NewHandler implements NewHandlerFunc: a fresh engine for queue q's worker.
func (e *Engines) NewHandler(q int) (FrameHandler, error) {
	en, err := engine.New(e.cfg, engine.Deps{Pool: e.Pool, Keys: e.keys, Cache: e.Cache, Memory: e.Memory, Negotiated: e.Negotiated, Log: e.log.With("queue", q), KeyLog: e.KeyLog})
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.list = append(e.list, en)
	e.mu.Unlock()
	return en, nil
}

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
