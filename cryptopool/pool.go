package cryptopool

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Errors a completed Job can carry in Err besides its own.
var (
	// ErrClosed: the pool closed before the job ran.
	ErrClosed = errors.New("cryptopool: pool closed")
	// ErrNilRun: the job had no Run function.
	ErrNilRun = errors.New("cryptopool: job has no Run function")
)

// PanicError is the Err of a job whose Run panicked. The pool survives it.
type PanicError struct{ Value any }

func (e *PanicError) Error() string { return fmt.Sprintf("cryptopool: job panicked: %v", e.Value) }

// Job is one piece of public-key work (key generation, ECDH). The pool never
// looks inside Token or Arg: they carry the submitter's handle (a flow id)
// and the job's input and output (usually a pointer, which fits in an
// interface without allocating).
type Job struct {
	// Run does the work on a pool goroutine and records its outcome in the
	// job (Err, or through Arg). Use a plain function, not a closure that
	// captures per-job state, to keep submission allocation-free.
	Run   func(j *Job)
	Token uint64
	Arg   any
	Err   error

	client *Client
}

// PoolConfig sizes a Pool. Zero values take the defaults.
type PoolConfig struct {
	// Workers is the number of goroutines; default runtime.NumCPU().
	Workers int
	// QueueLen bounds the jobs waiting for a worker; default 256.
	QueueLen int
	// SweepEvery is how often stocks drop expired key pairs; default 250ms.
	SweepEvery time.Duration
}

// Pool runs public-key jobs on a fixed set of goroutines so that packet
// workers never block on them. Submission never blocks: a full queue refuses
// the job. Results go back to the submitter's Client, which it drains between
// batches. Idle workers refill the key-pair stocks registered with the pool,
// one pair at a time, and take a refill only when no submitted job waits.
type Pool struct {
	jobs       chan Job
	refills    chan refiller
	done       chan struct{}
	workers    int
	sweepEvery time.Duration
	wg         sync.WaitGroup
	closeOnce  sync.Once

	// mu guards closed against Submit: Submit holds it for reading while it
	// queues, Close takes it for writing, so no job is queued after Close
	// has drained the queue.
	mu     sync.RWMutex
	closed bool

	stocksMu sync.Mutex
	stocks   []refiller

	submitted, completed, rejFull, rejBusy, rejClosed, panics atomic.Uint64
}

// refiller is a Stock seen by the pool, without its key type.
type refiller interface {
	refillOne()
	sweep()
	wipeAll()
}

// NewPool starts a pool's goroutines.
func NewPool(cfg PoolConfig) (*Pool, error) {
	if cfg.Workers < 0 || cfg.QueueLen < 0 || cfg.SweepEvery < 0 {
		return nil, fmt.Errorf("cryptopool: negative pool size in %+v", cfg)
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.NumCPU()
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = 256
	}
	if cfg.SweepEvery == 0 {
		cfg.SweepEvery = 250 * time.Millisecond
	}
	p := &Pool{
		jobs:       make(chan Job, cfg.QueueLen),
		refills:    make(chan refiller, 64),
		done:       make(chan struct{}),
		workers:    cfg.Workers,
		sweepEvery: cfg.SweepEvery,
	}
	p.wg.Add(cfg.Workers + 1)
	for range cfg.Workers {
		go p.work()
	}
	go p.janitor()
	return p, nil
}

// Workers returns the number of pool goroutines.
func (p *Pool) Workers() int { return p.workers }

func (p *Pool) work() {
	defer p.wg.Done()
	// One Job per goroutine, reused: a Job received into a fresh variable
	// would escape to the heap once per job through j.Run(j).
	j := new(Job)
	for {
		// Stop promptly on Close: jobs still queued complete with ErrClosed.
		select {
		case <-p.done:
			return
		default:
		}
		// Submitted jobs first: a flow is waiting for them.
		select {
		case *j = <-p.jobs:
			p.run(j)
			continue
		default:
		}
		select {
		case *j = <-p.jobs:
			p.run(j)
		case r := <-p.refills:
			r.refillOne()
		case <-p.done:
			return
		}
	}
}

func (p *Pool) run(j *Job) {
	if j.Run == nil {
		j.Err = ErrNilRun
	} else {
		p.call(j)
	}
	c := j.client
	j.client = nil
	p.completed.Add(1) // before the submitter can see the completion
	c.complete(j)
	*j = Job{}
}

func (p *Pool) call(j *Job) {
	defer func() {
		if v := recover(); v != nil {
			p.panics.Add(1)
			j.Err = &PanicError{Value: v}
		}
	}()
	j.Run(j)
}

// janitor drops expired key pairs even when nobody calls Take, so a private
// key lives no longer than its stock's MaxAge plus SweepEvery (TC-9, TC-79).
func (p *Pool) janitor() {
	defer p.wg.Done()
	t := time.NewTicker(p.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.stocksMu.Lock()
			for _, s := range p.stocks {
				s.sweep()
			}
			p.stocksMu.Unlock()
		case <-p.done:
			return
		}
	}
}

func (p *Pool) addStock(s refiller) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	p.stocksMu.Lock()
	p.stocks = append(p.stocks, s)
	p.stocksMu.Unlock()
	return nil
}

// pokeRefill asks a worker to generate one key pair for s. It never blocks;
// if the hint queue is full the janitor's next sweep asks again.
func (p *Pool) pokeRefill(s refiller) bool {
	select {
	case p.refills <- s:
		return true
	default:
		return false
	}
}

// Closed reports whether Close has been called; Submit then returns false.
func (p *Pool) Closed() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.closed
}

// Close stops the pool. It refuses new jobs, waits for running jobs (a job
// cannot be interrupted), completes every queued job with ErrClosed (so each
// submitter gets exactly one completion per accepted job and nobody waits
// forever), stops the goroutines and wipes the stocks. It is idempotent;
// every call returns once the pool has stopped.
func (p *Pool) Close() {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		close(p.done)
		p.mu.Unlock()
		p.wg.Wait()
		for drained := false; !drained; {
			select {
			case j := <-p.jobs:
				j.Err = ErrClosed
				c := j.client
				j.client = nil
				p.completed.Add(1)
				c.complete(&j)
			default:
				drained = true
			}
		}
		p.stocksMu.Lock()
		for _, s := range p.stocks {
			s.wipeAll()
		}
		p.stocksMu.Unlock()
	})
}

// PoolStats are the pool's counters, for the admin API and metrics.
type PoolStats struct {
	Workers  int `json:"workers"`
	QueueLen int `json:"queue_len"`
	Queued   int `json:"queued"`
	// Submitted counts accepted jobs, Completed their completions.
	// Completed moves just before a result reaches its client, so that
	// a client that has polled all its jobs sees them counted; a caller
	// that needs the results pollable waits for the client's notify
	// (SetNotify) instead.
	Submitted uint64 `json:"submitted"`
	Completed uint64 `json:"completed"`
	// Rejections by cause: queue full, the client's completion queue full,
	// pool closed.
	RejectedFull   uint64 `json:"rejected_full"`
	RejectedBusy   uint64 `json:"rejected_busy"`
	RejectedClosed uint64 `json:"rejected_closed"`
	Panics         uint64 `json:"panics"`
}

// Stats returns a snapshot of the counters.
func (p *Pool) Stats() PoolStats {
	return PoolStats{
		Workers:        p.workers,
		QueueLen:       cap(p.jobs),
		Queued:         len(p.jobs),
		Submitted:      p.submitted.Load(),
		Completed:      p.completed.Load(),
		RejectedFull:   p.rejFull.Load(),
		RejectedBusy:   p.rejBusy.Load(),
		RejectedClosed: p.rejClosed.Load(),
		Panics:         p.panics.Load(),
	}
}

// Client is one submitter's connection to the pool: typically one per packet
// worker. It bounds that submitter's jobs in flight to its capacity and
// holds their completions until the owner polls them, so a pool goroutine
// never waits on a packet worker.
//
// Submit, Poll and InFlight belong to one owner goroutine; only the
// completion side is shared with the pool.
type Client struct {
	pool     *Pool
	inflight int // owner only: accepted jobs not yet polled

	mu   sync.Mutex // guards ring, head, n
	ring []Job
	head int
	n    int

	pending atomic.Int64 // == n, readable without mu
	ready   chan struct{}
	notify  func() // SetNotify; called on a pool goroutine after each completion
}

// NewClient returns a Client that allows up to capacity jobs in flight
// (submitted and not yet polled).
func (p *Pool) NewClient(capacity int) (*Client, error) {
	if capacity <= 0 {
		return nil, fmt.Errorf("cryptopool: client capacity %d, want > 0", capacity)
	}
	return &Client{pool: p, ring: make([]Job, capacity), ready: make(chan struct{}, 1)}, nil
}

// Submit queues j without blocking. It returns false, and counts why, when
// the client already has capacity jobs in flight, the pool's queue is full,
// or the pool is closed: the caller keeps the work and retries later (after
// the next Poll). Every accepted job completes exactly once, through Poll.
func (c *Client) Submit(j Job) bool {
	p := c.pool
	if c.inflight >= len(c.ring) {
		p.rejBusy.Add(1)
		return false
	}
	j.client = c
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		p.rejClosed.Add(1)
		return false
	}
	select {
	case p.jobs <- j:
	default:
		p.mu.RUnlock()
		p.rejFull.Add(1)
		return false
	}
	p.mu.RUnlock()
	c.inflight++
	p.submitted.Add(1)
	return true
}

// Poll moves up to len(out) completed jobs into out, oldest first, and
// returns how many. It never blocks and costs one atomic load when nothing
// has completed.
func (c *Client) Poll(out []Job) int {
	if len(out) == 0 || c.pending.Load() == 0 {
		return 0
	}
	c.mu.Lock()
	n := min(len(out), c.n)
	for i := range n {
		out[i] = c.ring[c.head]
		c.ring[c.head] = Job{} // drop references for the GC
		c.head++
		if c.head == len(c.ring) {
			c.head = 0
		}
	}
	c.n -= n
	c.pending.Add(int64(-n))
	c.mu.Unlock()
	c.inflight -= n
	return n
}

// Ready receives a value after a completion arrives (coalesced: one value
// may stand for many). An owner that has nothing else to do can wait on it
// before Poll.
func (c *Client) Ready() <-chan struct{} { return c.ready }

// SetNotify makes every completion call fn, on the pool goroutine that
// completed the job, after the job can be polled. It is how a packet worker
// that sleeps in poll(2) learns that a job it submitted is done (an eventfd
// write), instead of finding out at its next timeout. fn must be quick and
// must not block or call back into the client. Set it before the first
// Submit; nil turns it off.
func (c *Client) SetNotify(fn func()) { c.notify = fn }

// InFlight returns the owner's accepted jobs that have not been polled.
func (c *Client) InFlight() int { return c.inflight }

// complete stores a finished job. There is always room: Submit admits at
// most len(ring) jobs that have not been polled.
func (c *Client) complete(j *Job) {
	c.mu.Lock()
	i := c.head + c.n
	if i >= len(c.ring) {
		i -= len(c.ring)
	}
	c.ring[i] = *j
	c.n++
	c.pending.Add(1)
	c.mu.Unlock()
	select {
	case c.ready <- struct{}{}:
	default:
	}
	if c.notify != nil {
		c.notify()
	}
}
