package appliance

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Waker is a FrameHandler with work that finishes off the worker's
// goroutine (*engine.Engine: public-key jobs on the cryptopool). The worker
// gives it a function to call when such work is done; the call ends the
// worker's idle wait, and the worker runs the handler's Tick at once.
type Waker interface {
	SetWake(fn func())
}

// fdPoller is a Port that waits in poll(2): the wake source of its worker
// opens an eventfd for it.
type fdPoller interface{ waitsInPoll() }

// wakeup is a worker's wake source besides its ports. A sleeping worker
// watches it beside its ports: MemPorts wait in a select (ch), AF_XDP
// sockets in poll(2) (fd, an eventfd, open while the worker runs).
type wakeup struct {
	ch chan struct{}

	mu      sync.RWMutex // guards fd against close while signal writes
	fd      int          // eventfd, or -1
	pending atomic.Bool  // fd written and not yet drained: later signals skip the write
}

func newWakeup() *wakeup { return &wakeup{ch: make(chan struct{}, 1), fd: -1} }

// signal ends the worker's current or next wait. It never blocks; any
// goroutine may call it, also after the worker stopped.
func (k *wakeup) signal() {
	select {
	case k.ch <- struct{}{}:
	default:
	}
	if k.pending.Load() || k.pending.Swap(true) {
		return // the worker will drain the fd, then poll everything done by now
	}
	k.mu.RLock()
	if k.fd >= 0 {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		_, _ = unix.Write(k.fd, one[:]) // EAGAIN: the counter is already non-zero
	}
	k.mu.RUnlock()
}

// openFd creates the eventfd for ports that wait in poll(2).
func (k *wakeup) openFd() error {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.fd = fd
	k.mu.Unlock()
	k.pending.Store(false)
	return nil
}

// closeFd closes the eventfd; later signals only use ch.
func (k *wakeup) closeFd() {
	k.mu.Lock()
	if k.fd >= 0 {
		_ = unix.Close(k.fd)
		k.fd = -1
	}
	k.mu.Unlock()
}

// drain consumes the signals seen so far, on the worker's goroutine after
// a wait that the wake source ended. The round that follows polls the
// handler, so a signal racing with drain is never lost: its work is already
// visible (cryptopool completes a job before it notifies).
func (k *wakeup) drain() {
	select {
	case <-k.ch:
	default:
	}
	if k.fd >= 0 {
		var b [8]byte
		_, _ = unix.Read(k.fd, b[:])
	}
	k.pending.Store(false)
}
