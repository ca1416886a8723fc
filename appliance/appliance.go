package appliance

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/flowtable"
)

// Options configure New.
type Options struct {
	// BatchSize is the most frames a worker handles per batch (default 64).
	BatchSize int
	// CPUs: worker i is pinned to CPUs[i % len(CPUs)]; workers are
	// numbered inside queues first, then outside. Empty: not pinned.
	CPUs []int
	// Flows bounds each worker's flow table (default config.Default().Flows).
	Flows config.Flows
	// FastPath is the kernel fast path's flow map; nil disables the fast
	// path (every frame goes through the workers).
	FastPath FastPath
	// Logger gets worker start/stop messages (default slog.Default()).
	Logger *slog.Logger
}

// handoffSize is the capacity of each worker-to-worker event ring.
const handoffSize = 4096

// idleWait bounds how long an idle worker sleeps in Wait, so that events
// handed to it, flow expiry and Stop are noticed promptly.
const idleWait = 20 * time.Millisecond

// Appliance is the set of workers over two ports. Create it with New, then
// either Start it (one goroutine per worker, the daemon) or call Poll (every
// worker's next batch in the caller's goroutine: deterministic tests).
type Appliance struct {
	workers []*worker
	cnt     []counters // cnt[i] belongs to workers[i]
	log     *slog.Logger
	start   time.Time

	stop    atomic.Bool
	wg      sync.WaitGroup
	errc    chan error
	started atomic.Bool
}

// New builds the workers: for every queue q, one worker receives on inside[q]
// and transmits on outside[q], and one the reverse. Both slices must have the
// same, non-zero length.
func New(inside, outside []Port, opt Options) (*Appliance, error) {
	if len(inside) == 0 || len(inside) != len(outside) {
		return nil, fmt.Errorf("appliance: need the same number of queues on both ports (inside %d, outside %d)", len(inside), len(outside))
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = 64
	}
	if opt.Flows == (config.Flows{}) {
		opt.Flows = config.Default().Flows
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Flows.Max < 1 || opt.Flows.HandshakeTimeout <= 0 || opt.Flows.IdleTimeout <= 0 || opt.Flows.CloseGrace < 0 {
		return nil, fmt.Errorf("appliance: bad flow limits %+v", opt.Flows)
	}
	for i, c := range opt.CPUs {
		if c < 0 {
			return nil, fmt.Errorf("appliance: CPUs[%d] = %d is negative", i, c)
		}
	}
	nq := len(inside)
	n := 2 * nq
	a := &Appliance{
		cnt:   make([]counters, n),
		log:   opt.Logger,
		start: time.Now(),
		errc:  make(chan error, n),
	}
	pass := &passthrough{fp: opt.FastPath}
	rings := make([][]*flowtable.Ring[flowEvent], n) // rings[i][j]: from worker i to worker j
	for i := range rings {
		rings[i] = make([]*flowtable.Ring[flowEvent], n)
		for j := range rings[i] {
			if i != j {
				rings[i][j] = flowtable.NewRing[flowEvent](handoffSize)
			}
		}
	}
	ports := [2][]Port{inside, outside}
	for i := range n {
		from, q := Inside, i
		if i >= nq {
			from, q = Outside, i-nq
		}
		to := Outside
		if from == Outside {
			to = Inside
		}
		w := &worker{
			id:    i,
			from:  from,
			queue: q,
			cpu:   -1,
			rx:    ports[portIndex(from)][q],
			tx:    ports[portIndex(to)][q],
			rxd:   make([]Desc, opt.BatchSize),
			txd:   make([]Desc, opt.BatchSize),
			pass:  pass,
			nwork: n,
			out:   rings[i],
			c:     &a.cnt[i],
		}
		for j := range n {
			if j != i {
				w.in = append(w.in, rings[j][i])
			}
		}
		w.flows = newFlowTable(w, opt.Flows)
		if len(opt.CPUs) > 0 {
			w.cpu = opt.CPUs[i%len(opt.CPUs)]
		}
		a.workers = append(a.workers, w)
	}
	return a, nil
}

func portIndex(p PortID) int {
	if p == Inside {
		return 0
	}
	return 1
}

// Poll runs one batch on every worker, in order, in the caller's goroutine,
// with the clock at now (time since New). It returns the frames received.
// Use it instead of Start, never with it.
func (a *Appliance) Poll(now time.Duration) int {
	total := 0
	for _, w := range a.workers {
		total += w.poll(int64(now))
	}
	return total
}

// Start runs every worker on its own goroutine, locked to an OS thread and
// pinned to its CPU. It returns once all are pinned, or the first pinning
// error (after stopping the others).
func (a *Appliance) Start() error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("appliance: already started")
	}
	ready := make(chan error, len(a.workers))
	for _, w := range a.workers {
		a.wg.Add(1)
		go a.run(w, ready)
	}
	var first error
	for range a.workers {
		if err := <-ready; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		a.Stop()
	}
	return first
}

func (a *Appliance) run(w *worker, ready chan<- error) {
	defer a.wg.Done()
	// The thread stays locked until the goroutine ends and then dies with
	// it, so its CPU affinity never leaks to other goroutines.
	runtime.LockOSThread()
	if w.cpu >= 0 {
		if err := pinThread(w.cpu); err != nil {
			ready <- fmt.Errorf("appliance: pin worker %s queue %d to CPU %d: %w", w.from, w.queue, w.cpu, err)
			return
		}
	}
	ready <- nil
	a.log.Debug("worker started", "port", w.from.String(), "queue", w.queue, "cpu", w.cpu)
	for !a.stop.Load() {
		if w.poll(int64(time.Since(a.start))) > 0 {
			continue
		}
		if err := w.rx.Wait(idleWait); err != nil {
			a.errc <- fmt.Errorf("appliance: worker %s queue %d: %w", w.from, w.queue, err)
			return
		}
	}
}

// Err delivers fatal worker errors (a port that can no longer be waited on).
func (a *Appliance) Err() <-chan error { return a.errc }

// Stop makes every worker return after its current batch and waits for them.
// It is safe to call more than once.
func (a *Appliance) Stop() {
	a.stop.Store(true)
	a.wg.Wait()
}

// Stats returns the counters of both directions: [0] for frames that arrived
// on the inside port, [1] for the outside port. Safe from any goroutine.
func (a *Appliance) Stats() [2]DirStats {
	var s [2]DirStats
	s[0].From, s[1].From = Inside, Outside
	for i, w := range a.workers {
		s[portIndex(w.from)].addFrom(&a.cnt[i])
	}
	return s
}
