package cryptopool

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// checkGoroutines fails the test if goroutines of this package outlive it
// (the pool must stop every goroutine it started on Close).
func checkGoroutines(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			stacks := ours()
			if stacks == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines leaked:\n%s", stacks)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func ours() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var leaked []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "cryptopool.(*Pool).work") || strings.Contains(g, "cryptopool.(*Pool).janitor") {
			leaked = append(leaked, g)
		}
	}
	return strings.Join(leaked, "\n\n")
}

func newTestPool(t *testing.T, cfg PoolConfig) *Pool {
	t.Helper()
	checkGoroutines(t)
	p, err := NewPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// waitPoll polls c until it has collected want completions or times out.
func waitPoll(t *testing.T, c *Client, want int) []Job {
	t.Helper()
	var got []Job
	buf := make([]Job, 8)
	timeout := time.After(10 * time.Second)
	for len(got) < want {
		n := c.Poll(buf)
		got = append(got, buf[:n]...)
		if n > 0 {
			continue
		}
		select {
		case <-c.Ready():
		case <-timeout:
			t.Fatalf("got %d of %d completions", len(got), want)
		}
	}
	return got
}

// gate is a job argument that blocks its job until released.
type gate struct {
	started chan struct{}
	release chan struct{}
}

func newGate() *gate { return &gate{started: make(chan struct{}, 16), release: make(chan struct{})} }

func runGate(j *Job) {
	g := j.Arg.(*gate)
	g.started <- struct{}{}
	<-g.release
}

func runNothing(*Job) {}

type x25519Work struct {
	peer   *ecdh.PublicKey
	pub    []byte
	shared []byte
}

// runX25519 is the work of one tcpcrypt key exchange: a fresh key pair and
// ECDH with the peer's public key.
func runX25519(j *Job) {
	w := j.Arg.(*x25519Work)
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		j.Err = err
		return
	}
	w.pub = priv.PublicKey().Bytes()
	w.shared, j.Err = priv.ECDH(w.peer)
}

func TestPoolRunsJobs(t *testing.T) {
	p := newTestPool(t, PoolConfig{Workers: 2})
	c, err := p.NewClient(64)
	if err != nil {
		t.Fatal(err)
	}
	peer, _ := ecdh.X25519().GenerateKey(rand.Reader)
	work := make([]x25519Work, 40)
	for i := range work {
		work[i].peer = peer.PublicKey()
		if !c.Submit(Job{Run: runX25519, Token: uint64(i), Arg: &work[i]}) {
			t.Fatalf("Submit %d refused with an empty queue", i)
		}
	}
	if c.InFlight() != len(work) {
		t.Errorf("InFlight = %d", c.InFlight())
	}
	seen := map[uint64]bool{}
	for _, j := range waitPoll(t, c, len(work)) {
		if j.Err != nil || seen[j.Token] || j.Arg != &work[j.Token] {
			t.Fatalf("completion %+v (dup %v)", j, seen[j.Token])
		}
		seen[j.Token] = true
		w := &work[j.Token]
		pub, _ := ecdh.X25519().NewPublicKey(w.pub)
		back, _ := peer.ECDH(pub)
		if !bytes.Equal(back, w.shared) {
			t.Fatalf("job %d: shared secrets differ", j.Token)
		}
	}
	if c.InFlight() != 0 || c.Poll(make([]Job, 1)) != 0 {
		t.Error("completions left after all were polled")
	}
	st := p.Stats()
	if st.Submitted != 40 || st.Completed != 40 || st.Workers != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestPoolQueueFull: with the only worker busy, Submit accepts exactly
// QueueLen jobs, then refuses without blocking; the refused work can be
// resubmitted once the queue drains.
func TestPoolQueueFull(t *testing.T) {
	p := newTestPool(t, PoolConfig{Workers: 1, QueueLen: 3})
	c, _ := p.NewClient(100)
	g := newGate()
	if !c.Submit(Job{Run: runGate, Arg: g, Token: 100}) {
		t.Fatal("first Submit refused")
	}
	<-g.started // the worker is now busy
	for i := range 3 {
		if !c.Submit(Job{Run: runNothing, Token: uint64(i)}) {
			t.Fatalf("Submit %d refused before the queue was full", i)
		}
	}
	start := time.Now()
	for range 5 {
		if c.Submit(Job{Run: runNothing}) {
			t.Fatal("Submit accepted a job into a full queue")
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusing took %v", d)
	}
	if st := p.Stats(); st.RejectedFull != 5 || st.Queued != 3 || st.Submitted != 4 {
		t.Errorf("stats %+v", st)
	}
	close(g.release)
	got := waitPoll(t, c, 4)
	if got[0].Token != 100 {
		t.Errorf("first completion %d, want the gate job", got[0].Token)
	}
	if !c.Submit(Job{Run: runNothing, Token: 7}) {
		t.Error("Submit refused after the queue drained")
	}
	waitPoll(t, c, 1)
}

// TestClientCapacity: a client cannot have more jobs in flight than its
// completion queue holds, so a pool goroutine never finds it full.
func TestClientCapacity(t *testing.T) {
	p := newTestPool(t, PoolConfig{Workers: 1, QueueLen: 10})
	c, _ := p.NewClient(2)
	if _, err := p.NewClient(0); err == nil {
		t.Error("NewClient(0) accepted")
	}
	if !c.Submit(Job{Run: runNothing}) || !c.Submit(Job{Run: runNothing}) {
		t.Fatal("Submit refused below capacity")
	}
	if c.Submit(Job{Run: runNothing}) {
		t.Fatal("Submit accepted beyond the client's capacity")
	}
	if p.Stats().RejectedBusy != 1 {
		t.Errorf("stats %+v", p.Stats())
	}
	waitPoll(t, c, 2)
	if !c.Submit(Job{Run: runNothing}) {
		t.Error("Submit refused after Poll freed capacity")
	}
	waitPoll(t, c, 1)
}

// TestPoolUnderLoad: several packet workers hammer a small queue; every
// accepted job completes exactly once at its own submitter, and refused
// jobs are retried until all are done.
func TestPoolUnderLoad(t *testing.T) {
	p := newTestPool(t, PoolConfig{Workers: 2, QueueLen: 4})
	const submitters, perSubmitter = 4, 300
	var refused atomic.Uint64
	var wg sync.WaitGroup
	errs := make(chan error, submitters)
	for s := range submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _ := p.NewClient(8)
			done := make([]bool, perSubmitter)
			buf := make([]Job, 8)
			next, completed := 0, 0
			for completed < perSubmitter {
				for next < perSubmitter {
					if !c.Submit(Job{Run: spin, Token: uint64(s<<32 | next)}) {
						refused.Add(1)
						break
					}
					next++
				}
				n := c.Poll(buf)
				for _, j := range buf[:n] {
					i := int(j.Token & 0xffffffff)
					if int(j.Token>>32) != s || done[i] || j.Err != nil {
						errs <- errors.New("completion went to the wrong client, twice, or failed")
						return
					}
					done[i] = true
				}
				completed += n
				switch {
				case n > 0:
				case c.InFlight() > 0:
					<-c.Ready()
				default:
					// Refused with nothing in flight: the queue is
					// full of other clients' jobs. Retry shortly.
					time.Sleep(50 * time.Microsecond)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Completed != submitters*perSubmitter || refused.Load() == 0 ||
		st.RejectedFull+st.RejectedBusy != refused.Load() {
		t.Errorf("stats %+v, refused %d", st, refused.Load())
	}
	t.Logf("refused %d submissions (queue full %d, client busy %d)", refused.Load(), st.RejectedFull, st.RejectedBusy)
}

// spin stands in for ~10 µs of public-key work.
func spin(j *Job) {
	x := j.Token
	for range 10000 {
		x = x*6364136223846793005 + 1
	}
	if x == 42 {
		j.Err = errors.New("unlikely")
	}
}

// TestPoolCloseWithQueuedJobs: Close lets the running job finish, completes
// the queued ones with ErrClosed, refuses new ones, stops its goroutines and
// is idempotent.
func TestPoolCloseWithQueuedJobs(t *testing.T) {
	checkGoroutines(t)
	p, _ := NewPool(PoolConfig{Workers: 1, QueueLen: 8})
	c, _ := p.NewClient(16)
	g := newGate()
	c.Submit(Job{Run: runGate, Arg: g, Token: 99})
	<-g.started
	for i := range 5 {
		if !c.Submit(Job{Run: runNothing, Token: uint64(i)}) {
			t.Fatal("Submit refused")
		}
	}
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	for !p.Closed() {
		time.Sleep(time.Millisecond)
	}
	if c.Submit(Job{Run: runNothing}) {
		t.Error("Submit accepted while closing")
	}
	close(g.release)
	<-closed
	p.Close() // again: returns at once
	got := waitPoll(t, c, 6)
	for _, j := range got {
		if j.Token == 99 && j.Err != nil {
			t.Errorf("running job got %v", j.Err)
		}
		if j.Token != 99 && j.Err != ErrClosed {
			t.Errorf("queued job %d got %v, want ErrClosed", j.Token, j.Err)
		}
	}
	if c.InFlight() != 0 {
		t.Errorf("InFlight %d after Close", c.InFlight())
	}
	if st := p.Stats(); st.Completed != 6 || st.RejectedClosed != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestPoolJobPanicsAndNilRun(t *testing.T) {
	p := newTestPool(t, PoolConfig{Workers: 1})
	c, _ := p.NewClient(4)
	c.Submit(Job{Run: func(*Job) { panic("boom") }, Token: 1})
	c.Submit(Job{Token: 2})
	c.Submit(Job{Run: runNothing, Token: 3})
	got := waitPoll(t, c, 3)
	var pe *PanicError
	if !errors.As(got[0].Err, &pe) || pe.Value != "boom" {
		t.Errorf("panicking job: %v", got[0].Err)
	}
	if got[1].Err != ErrNilRun || got[2].Err != nil {
		t.Errorf("nil Run: %v; next job: %v", got[1].Err, got[2].Err)
	}
	if p.Stats().Panics != 1 {
		t.Errorf("stats %+v", p.Stats())
	}
}

func TestNewPoolRejects(t *testing.T) {
	if _, err := NewPool(PoolConfig{Workers: -1}); err == nil {
		t.Error("negative workers accepted")
	}
	p := newTestPool(t, PoolConfig{})
	if p.Workers() != runtime.NumCPU() {
		t.Errorf("default workers %d, want NumCPU %d", p.Workers(), runtime.NumCPU())
	}
}

// TestPoolSubmitZeroAllocs: submitting, running and polling a job costs no
// allocation anywhere (the pool's goroutines included) when Run is a plain
// function and Arg a pointer.
func TestPoolSubmitZeroAllocs(t *testing.T) {
	p := newTestPool(t, PoolConfig{Workers: 1})
	c, _ := p.NewClient(4)
	arg := new(int)
	out := make([]Job, 4)
	if a := testing.AllocsPerRun(200, func() {
		if !c.Submit(Job{Run: runNothing, Token: 1, Arg: arg}) {
			t.Fatal("refused")
		}
		for c.Poll(out) == 0 {
			<-c.Ready()
		}
	}); a != 0 {
		t.Errorf("%v allocs per submit+complete+poll", a)
	}
}

// TestClientNotify: SetNotify's function runs once per completion (also for
// jobs completed by Close), and when it runs the job is already there for
// Poll, so a worker woken by it never finds nothing and sleeps again.
func TestClientNotify(t *testing.T) {
	p, err := NewPool(PoolConfig{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.NewClient(8)
	if err != nil {
		t.Fatal(err)
	}
	calls := make(chan int64, 16)
	c.SetNotify(func() { calls <- c.pending.Load() })
	release := make(chan struct{})
	block := func(*Job) { <-release }
	if !c.Submit(Job{Run: block}) || !c.Submit(Job{Run: func(*Job) {}}) {
		t.Fatal("Submit refused")
	}
	select {
	case n := <-calls:
		t.Fatalf("notified with %d pending before any job finished", n)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	for want := int64(1); want <= 2; want++ {
		select {
		case n := <-calls:
			if n < want {
				t.Fatalf("notification %d saw %d jobs pollable", want, n)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no notification %d", want)
		}
	}
	waitPoll(t, c, 2)
	// A job still queued when the pool closes completes with ErrClosed,
	// and that completion notifies too.
	release2 := make(chan struct{})
	if !c.Submit(Job{Run: func(*Job) { <-release2 }}) {
		t.Fatal("Submit refused")
	}
	for p.Stats().Queued != 0 {
		time.Sleep(time.Millisecond) // the worker took it
	}
	if !c.Submit(Job{Run: func(*Job) {}}) {
		t.Fatal("Submit refused")
	}
	go func() { time.Sleep(10 * time.Millisecond); close(release2) }()
	p.Close()
	for range 2 {
		select {
		case <-calls:
		case <-time.After(10 * time.Second):
			t.Fatal("a completion at Close did not notify")
		}
	}
}
