package control

import (
	"log/slog"
	"sync"

	"github.com/tcpinc/tcpinc/appliance"
	"github.com/tcpinc/tcpinc/appliance/engine"
)

// Guards are the handlers of an appliance whose engine is off while the
// negotiated set a previous run pinned still holds tuples: each worker runs
// an engine.NewGuard that resets those connections and passes the rest.
// Guards keeps them so that their counters (stray resets, drops) reach the
// admin API and the shutdown log like the engines' would.
type Guards struct {
	// Negotiated is the previous run's set the guards enforce.
	Negotiated *engine.NegotiatedSet
	log        *slog.Logger

	mu   sync.Mutex
	list []*engine.Engine
}

// NewGuards returns the guards over prior.
func NewGuards(prior *engine.NegotiatedSet, log *slog.Logger) *Guards {
	return &Guards{Negotiated: prior, log: log}
}

// NewHandler is appliance.Options.NewHandler: worker q's guard.
func (g *Guards) NewHandler(q int) (appliance.FrameHandler, error) {
	en, err := engine.NewGuard(g.Negotiated, g.log.With("queue", q))
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.list = append(g.list, en)
	g.mu.Unlock()
	return en, nil
}

// Each calls fn with every guard's counters (atomics: safe while the
// workers run).
func (g *Guards) Each(fn func(queue int, c *engine.Counters)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for q, en := range g.list {
		fn(q, en.Counters())
	}
}
