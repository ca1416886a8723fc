package bump

import (
	"sync"
	"sync/atomic"
)

// Wake is a worker's wake source besides its ports: a FrameHandler whose
// work finishes off the worker's goroutine (the engine's public-key jobs on
// the cryptopool) signals it, and a sleeping worker wakes at once instead of
// at its idle timeout. Ports that wait in a select watch C; ports that wait
// in poll(2) (AF_XDP) add Fd, an eventfd open while the worker runs.
type Wake struct {
	ch chan struct{}

	mu      sync.RWMutex // guards fd against close while Signal writes
	fd      int          // eventfd, or -1
	pending atomic.Bool  // fd written and not drained yet: later signals skip the write
}

// NewWake returns a wake source without an fd.
func NewWake() *Wake { return &Wake{ch: make(chan struct{}, 1), fd: -1} }

// C is ready after a Signal, until Drain.
func (k *Wake) C() <-chan struct{} { return k.ch }

// Fd is the eventfd for poll(2), or -1 when none is open.
func (k *Wake) Fd() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.fd
}

// Signal ends the worker's current or next wait. It never blocks; any
// goroutine may call it, also after the worker stopped.
func (k *Wake) Signal() {
	select {
	case k.ch <- struct{}{}:
	default:
	}
	if k.pending.Load() || k.pending.Swap(true) {
		return // the worker will drain the fd, then see everything done by now
	}
	k.mu.RLock()
	if k.fd >= 0 {
		writeEventfd(k.fd)
	}
	k.mu.RUnlock()
}

// Signaled reports whether a Signal came since the last Drain: one atomic
// load, for a busy worker that checks each round.
func (k *Wake) Signaled() bool { return k.pending.Load() }

// Drain consumes the signals seen so far, on the worker's goroutine after a
// wait the wake source ended. The round that follows polls the handler, so
// a signal racing with Drain is never lost: its work is already visible
// (cryptopool completes a job before it notifies).
func (k *Wake) Drain() {
	select {
	case <-k.ch:
	default:
	}
	if fd := k.Fd(); fd >= 0 {
		readEventfd(fd)
	}
	k.pending.Store(false)
}

// OpenFd creates the eventfd, for ports that wait in poll(2).
func (k *Wake) OpenFd() error {
	fd, err := openEventfd()
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.fd = fd
	k.mu.Unlock()
	k.pending.Store(false)
	return nil
}

// CloseFd closes the eventfd; later signals only use C.
func (k *Wake) CloseFd() {
	k.mu.Lock()
	if k.fd >= 0 {
		closeEventfd(k.fd)
		k.fd = -1
	}
	k.mu.Unlock()
}
