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
	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/flow"
)

// Options configure New.
type Options struct {
	// BatchSize is the most frames a worker takes from one port per batch
	// (default 64).
	BatchSize int
	// CPUs: the worker of queue q is pinned to CPUs[q % len(CPUs)].
	// Empty: not pinned.
	CPUs []int
	// Flows bounds each worker's flow table (default config.Default().Flows).
	Flows config.Flows
	// FastPath is the kernel fast path's flow map; nil disables the fast
	// path (every frame goes through the workers).
	FastPath FastPath
	// NewHandler builds each worker's FrameHandler (the engine); nil gives
	// every worker Passthrough.
	NewHandler NewHandlerFunc
	// Logger gets worker start/stop messages (default slog.Default()).
	Logger *slog.Logger
	// RSS is the ports' receive-side scaling when it is symmetric and the
	// same on both ports (flow.RSS.Symmetric): the worker of the queue it
	// puts a flow on owns the flow, and no frame of an ordinary TCP segment
	// changes worker. Nil: owners by a keyed hash, frames handed over.
	RSS *flow.RSS
	// Fanout says the queues are the members, in order, of one AF_PACKET
	// fanout group per port (afpacket.JoinFanout): the worker of the
	// member flow.Fanout names owns the flow, as with RSS. It excludes RSS.
	Fanout bool
	// MaxFrame is the longest frame a port may hand a worker, Ethernet
	// header and VLAN tags included, other than a TCP super-segment: the
	// largest of the ports' MTUs plus 22. It sizes the slots of the lanes
	// between workers (handoff.go), so that every such frame, and every
	// wire segment of a super-segment, can change worker. 0: 4096 (the
	// largest UMEM frame).
	MaxFrame int
}

// ErrStopped is returned by Inspect once the workers are stopping.
var ErrStopped = errors.New("appliance: stopped")

// Appliance is the set of workers over two ports. Create it with New, then
// either Start it (one goroutine per worker, the daemon) or call Poll (every
// worker's next round in the caller's goroutine: deterministic tests).
type Appliance struct {
	workers []*worker
	cnt     [][2]counters // cnt[i] belongs to workers[i], by arrival port
	busy    []busyTime    // busy[i]: time workers[i] spent in rounds that handled frames
	log     *slog.Logger
	start   time.Time

	stop     atomic.Bool
	behind   atomic.Int32  // workers behind their outside port (worker.noteBacklog)
	catching atomic.Int32  // workers still reading what queued in their ports through a stall (worker.poll)
	quit     chan struct{} // closed by Stop
	stopOnce sync.Once
	wg       sync.WaitGroup
	errc     chan error
	started  atomic.Bool
}

// New builds one worker per queue q, owning inside[q] and outside[q]. Both
// slices must have the same, non-zero length.
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
	if r := opt.RSS; r != nil && (!r.Symmetric() || r.MaxQueue() >= len(inside)) {
		return nil, fmt.Errorf("appliance: RSS must be symmetric and name only the %d queues (highest queue %d, symmetric %v)", len(inside), r.MaxQueue(), r.Symmetric())
	}
	if opt.RSS != nil && opt.Fanout {
		return nil, errors.New("appliance: RSS and Fanout both name flow owners")
	}
	if opt.MaxFrame < 0 || opt.MaxFrame > handoffMaxSlotSize {
		return nil, fmt.Errorf("appliance: MaxFrame %d is not in [0, %d]", opt.MaxFrame, handoffMaxSlotSize)
	}
	for i, c := range opt.CPUs {
		if c < 0 {
			return nil, fmt.Errorf("appliance: CPUs[%d] = %d is negative", i, c)
		}
	}
	n := len(inside)
	a := &Appliance{
		cnt:   make([][2]counters, n),
		busy:  make([]busyTime, n),
		log:   opt.Logger,
		start: time.Now(),
		quit:  make(chan struct{}),
		errc:  make(chan error, n),
	}
	pass := &passthrough{fp: opt.FastPath}
	lanes := newLanes(n, slotSize(opt.MaxFrame))
	for q := range n {
		w, err := a.newWorker(q, inside[q], outside[q], lanes, pass, opt)
		if err != nil {
			return nil, err
		}
		a.workers = append(a.workers, w)
	}
	if n > 1 {
		// A worker wakes when another hands it frames (handoff.go).
		peers := make([]*bump.Wake, n)
		for i, w := range a.workers {
			if w.wake == nil {
				w.wake = bump.NewWake()
			}
			peers[i] = w.wake
		}
		for _, w := range a.workers {
			w.peers, w.handed = peers, make([]bool, n)
		}
	}
	return a, nil
}

// newLanes makes the hand-off lanes between n workers, with slots of size
// bytes: lanes[i][j] carries frames from worker i to worker j (nil for
// i == j).
func newLanes(n, size int) [][]*lane {
	lanes := make([][]*lane, n)
	for i := range lanes {
		lanes[i] = make([]*lane, n)
		for j := range lanes[i] {
			if i != j {
				lanes[i][j] = newLane(laneSlots(n, size), size)
			}
		}
	}
	return lanes
}

// steering is what picks flow owners the ports' queues agree with (nil: a
// keyed hash, flow.Key.Owner).
func steering(opt Options, queues int) queueOf {
	switch {
	case opt.Fanout:
		return flow.NewFanout(queues)
	case opt.RSS != nil:
		return opt.RSS
	}
	return nil
}

// newWorker builds the worker of queue q over its two ports, with its
// handler, TX queues, lanes and flow table.
func (a *Appliance) newWorker(q int, inside, outside Port, lanes [][]*lane, pass *passthrough, opt Options) (*worker, error) {
	n := len(lanes)
	w := &worker{
		id:       q,
		cpu:      -1,
		ports:    [2]Port{inside, outside},
		rxd:      make([]Desc, opt.BatchSize),
		held:     [2][]Desc{make([]Desc, 0, opt.BatchSize), make([]Desc, 0, opt.BatchSize)},
		h:        Passthrough{},
		idle:     idleWait,
		pass:     pass,
		nwork:    n,
		owners:   steering(opt, n),
		out:      lanes[q],
		c:        &a.cnt[q],
		req:      make(chan func(FrameHandler)),
		catching: &a.catching,
	}
	if opt.NewHandler != nil {
		h, err := opt.NewHandler(q)
		if err != nil {
			return nil, fmt.Errorf("appliance: handler for queue %d: %w", q, err)
		}
		if h == nil {
			return nil, fmt.Errorf("appliance: handler for queue %d is nil", q)
		}
		if _, plain := h.(Passthrough); !plain {
			w.h, w.idle = h, engineIdleWait
		}
		w.blog, _ = h.(Backlogged)
		w.ender, _ = h.(RoundEnder)
		w.anyBehind = &a.behind
		w.rxFull = len(w.rxd)
		if rb, ok := outside.(interface{ RxBatch() int }); ok {
			w.rxFull = min(w.rxFull, rb.RxBatch()) // a port that returns less a call
		}
		if wk, ok := h.(Waker); ok {
			w.wake = bump.NewWake()
			wk.SetWake(w.wake.Signal)
		}
	}
	for p := range 2 {
		// Room for a batch forwarded from the other port plus what
		// the handler sends; a fuller queue is sent early.
		w.tx[p] = newTxQueue(w.ports[p], 4*opt.BatchSize)
		w.tx[p].t = &w.t[1-p]
		w.tx[p].kicks = &w.c[1-p]
		w.sinks[p] = &w.tx[p]
	}
	for j := range n {
		if j != q {
			w.in = append(w.in, lanes[j][q])
		}
	}
	w.flows = newFlowTable(w, opt.Flows)
	if len(opt.CPUs) > 0 {
		w.cpu = opt.CPUs[q%len(opt.CPUs)]
	}
	return w, nil
}

// Poll runs one round on every worker, in order, in the caller's goroutine,
// with the clock at now (time since New). It returns the frames handled.
// Use it instead of Start, never with it.
func (a *Appliance) Poll(now time.Duration) int {
	total := 0
	for i, w := range a.workers {
		t0 := time.Now()
		if n := w.poll(int64(now)); n > 0 {
			a.busy[i].ns.Add(int64(time.Since(t0)))
			total += n
		}
	}
	return total
}

// Inspect calls fn with each worker's queue and FrameHandler, on the
// worker's goroutine between two rounds (in the caller's goroutine before
// Start or in Poll mode), one worker after the other. It is how the admin
// API reads a handler's flows without a lock. It returns ErrStopped if the
// workers stop first.
func (a *Appliance) Inspect(fn func(queue int, h FrameHandler)) error {
	if !a.started.Load() {
		for _, w := range a.workers {
			fn(w.id, w.h)
		}
		return nil
	}
	for _, w := range a.workers {
		done := make(chan struct{})
		q := w.id
		select {
		case w.req <- func(h FrameHandler) { fn(q, h); close(done) }:
		case <-a.quit:
			return ErrStopped
		}
		<-done // the worker runs fn at once once it took it
	}
	return nil
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
			ready <- fmt.Errorf("appliance: pin worker of queue %d to CPU %d: %w", w.id, w.cpu, err)
			return
		}
	}
	if _, ok := w.ports[0].(bump.FdPoller); ok && w.wake != nil {
		if err := w.wake.OpenFd(); err != nil {
			ready <- fmt.Errorf("appliance: wake source of queue %d: %w", w.id, err)
			return
		}
		defer w.wake.CloseFd()
	}
	ready <- nil
	a.log.Debug("worker started", "queue", w.id, "cpu", w.cpu)
	busy := &a.busy[w.id].ns
	last := time.Now()
	for !a.stop.Load() {
		t0 := time.Now()
		if gap := t0.Sub(last); gap > stallLog {
			// Between two rounds the worker sleeps at most idleWait: the
			// process or its CPU stood still, and frames queued or were
			// lost meanwhile.
			a.log.Warn("worker stood still between two rounds: tcpincd was stopped or starved of CPU (a paused VM, SIGSTOP, swapping)",
				"queue", w.id, "for", gap.Round(time.Millisecond))
		}
		n := w.poll(int64(t0.Sub(a.start)))
		last = time.Now() // a long round (Inspect) is no stall
		if n > 0 {
			busy.Add(int64(last.Sub(t0)))
			continue
		}
		if a.stop.Load() {
			break // Stop's signal may have been drained in the round
		}
		if err := w.wait(); err != nil {
			a.errc <- fmt.Errorf("appliance: worker of queue %d: %w", w.id, err)
			return
		}
	}
}

// Err delivers fatal worker errors (a port that can no longer be waited on).
func (a *Appliance) Err() <-chan error { return a.errc }

// Stop makes every worker return after its current round and waits for
// them. It is safe to call more than once.
func (a *Appliance) Stop() {
	a.stop.Store(true)
	for _, w := range a.workers {
		if w.wake != nil {
			w.wake.Signal() // end an idle wait now
		}
	}
	a.stopOnce.Do(func() { close(a.quit) })
	a.wg.Wait()
}

// Stats returns the counters of both directions: [0] for frames that arrived
// on the inside port, [1] for the outside port. Safe from any goroutine.
func (a *Appliance) Stats() [2]DirStats {
	var s [2]DirStats
	s[0].From, s[1].From = Inside, Outside
	for i := range a.workers {
		s[0].addFrom(&a.cnt[i][0])
		s[1].addFrom(&a.cnt[i][1])
	}
	return s
}

// busyTime is one worker's busy time in nanoseconds, on its own cache line.
type busyTime struct {
	ns atomic.Int64
	_  [56]byte
}

// BusyTime returns how long each worker (by queue) has spent in rounds that
// handled frames since it started. Safe from any goroutine.
func (a *Appliance) BusyTime() []time.Duration {
	d := make([]time.Duration, len(a.busy))
	for i := range a.busy {
		d[i] = time.Duration(a.busy[i].ns.Load())
	}
	return d
}

// HandoffLevel is the occupancy of the lane that carries frames from worker
// From to worker To (handoff.go).
type HandoffLevel struct {
	From, To   int
	Used, Size int
}

// HandoffLevels returns the occupancy of every lane between workers, by
// sending worker, then owner. Safe from any goroutine (the ring indexes are
// atomics).
func (a *Appliance) HandoffLevels() []HandoffLevel {
	var out []HandoffLevel
	for _, w := range a.workers {
		for j, l := range w.out {
			if l != nil {
				out = append(out, HandoffLevel{From: w.id, To: j, Used: l.frames.Len(), Size: l.frames.Cap()})
			}
		}
	}
	return out
}

// HandoffFrame is the longest frame that can change worker (Options.MaxFrame,
// at least 4096): a longer one that must is dropped (DropTooBig), unless
// it is a super-segment, which goes in its wire segments.
func (a *Appliance) HandoffFrame() int {
	for _, w := range a.workers {
		for _, l := range w.out {
			if l != nil {
				return l.size
			}
		}
	}
	return slotSize(0)
}

// Workers is the number of workers (one per queue).
func (a *Appliance) Workers() int { return len(a.workers) }

// Started is when New built the appliance.
func (a *Appliance) Started() time.Time { return a.start }
