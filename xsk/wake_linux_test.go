package xsk

import (
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/bump"
)

// TestWakeupEventfd: the eventfd of a wake source ends a poll(2) (what an
// AF_XDP worker waits in), a drained one does not, and signals after the
// fd closed are harmless.
func TestWakeupEventfd(t *testing.T) {
	k := bump.NewWake()
	if err := k.OpenFd(); err != nil {
		t.Fatal(err)
	}
	if _, ready, err := WaitFd(nil, k.Fd(), time.Millisecond); err != nil || ready {
		t.Fatalf("fresh wake source: ready %v, err %v", ready, err)
	}
	k.Signal()
	k.Signal() // coalesced
	start := time.Now()
	if _, ready, err := WaitFd(nil, k.Fd(), time.Hour); err != nil || !ready {
		t.Fatalf("after signal: ready %v, err %v", ready, err)
	}
	if time.Since(start) > time.Minute {
		t.Fatal("the signal did not end the wait")
	}
	k.Drain()
	if _, ready, err := WaitFd(nil, k.Fd(), time.Millisecond); err != nil || ready {
		t.Fatalf("drained: ready %v, err %v", ready, err)
	}
	k.Signal() // after drain: writes again
	if _, ready, _ := WaitFd(nil, k.Fd(), time.Hour); !ready {
		t.Fatal("a signal after drain did not end the wait")
	}
	k.Drain()
	k.CloseFd()
	k.Signal()
	select {
	case <-k.C():
	default:
		t.Fatal("signal after closeFd did not reach the channel")
	}
}
