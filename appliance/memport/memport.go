package memport

import (
	"errors"
	"sync"
	"time"

	"github.com/tcpinc/tcpinc/bump"
)

// Port is a bump.Port whose frames live in process memory: the same ring
// discipline as an AF_XDP socket (a buffer of fixed-size frames, half of them
// for reception and half for transmission), with the kernel's part played by
// Inject (a frame arrives) and by the sink given to New (a frame leaves).
// It exists so the real worker code can run, and be tested and measured,
// without a kernel. It does not allocate after New.
//
// A mutex per side (RX, TX) keeps it safe when a test injects frames while
// workers run; the two sides never share state, like a real socket's rings.
type Port struct {
	buf       []byte
	frameSize int
	rx        memSide
	tx        memSide
	sink      func(frame []byte)
	rxDropped uint64 // Inject found no free frame (guarded by rx.mu)
	ready     chan struct{}
}

// memSide is one direction of a Port: free frames and a FIFO of frames
// handed to the other party (received frames for RX, queued frames for TX).
type memSide struct {
	mu   sync.Mutex
	free []uint64    // stack of free frame addresses
	fifo []bump.Desc // ring buffer
	head int         // index of the oldest entry in fifo
	n    int         // entries in fifo
}

func (s *memSide) push(d bump.Desc) bool {
	if s.n == len(s.fifo) {
		return false
	}
	s.fifo[(s.head+s.n)%len(s.fifo)] = d
	s.n++
	return true
}

func (s *memSide) pop() bump.Desc {
	d := s.fifo[s.head]
	s.head = (s.head + 1) % len(s.fifo)
	s.n--
	return d
}

// ErrConfig is returned by New for sizes it cannot use.
var ErrConfig = errors.New("memport: Port needs an even number of frames >= 2 and frameSize >= 64")

// New returns a port with frames buffers of frameSize bytes each (half
// for RX, half for TX). Every frame the port transmits is passed to sink on
// Kick, in order; sink must not keep the slice.
func New(frames, frameSize int, sink func(frame []byte)) (*Port, error) {
	if frames < 2 || frames%2 != 0 || frameSize < 64 {
		return nil, ErrConfig
	}
	p := &Port{
		buf:       make([]byte, frames*frameSize),
		frameSize: frameSize,
		sink:      sink,
		ready:     make(chan struct{}, 1),
	}
	half := frames / 2
	for _, s := range []*memSide{&p.rx, &p.tx} {
		s.free = make([]uint64, 0, half)
		s.fifo = make([]bump.Desc, half)
	}
	for i := range half {
		p.rx.free = append(p.rx.free, uint64(i*frameSize))
		p.tx.free = append(p.tx.free, uint64((half+i)*frameSize))
	}
	return p, nil
}

// Inject is the wire delivering frame to this port: it is copied into a free
// RX frame and queued for Receive. It reports false, and counts a drop, when
// no RX frame is free (the fill ring ran dry) or the frame does not fit.
func (p *Port) Inject(frame []byte) bool {
	p.rx.mu.Lock()
	defer p.rx.mu.Unlock()
	if len(p.rx.free) == 0 || len(frame) > p.frameSize {
		p.rxDropped++
		return false
	}
	addr := p.rx.free[len(p.rx.free)-1]
	p.rx.free = p.rx.free[:len(p.rx.free)-1]
	copy(p.buf[addr:], frame)
	p.rx.push(bump.Desc{Addr: addr, Len: uint32(len(frame))})
	select {
	case p.ready <- struct{}{}:
	default:
	}
	return true
}

// RxDropped is how many injected frames found no free RX frame.
func (p *Port) RxDropped() uint64 {
	p.rx.mu.Lock()
	defer p.rx.mu.Unlock()
	return p.rxDropped
}

// Receive implements bump.Port.
func (p *Port) Receive(descs []bump.Desc) int {
	p.rx.mu.Lock()
	defer p.rx.mu.Unlock()
	n := 0
	for n < len(descs) && p.rx.n > 0 {
		descs[n] = p.rx.pop()
		n++
	}
	return n
}

// Frame implements bump.Port.
func (p *Port) Frame(d bump.Desc) []byte {
	return p.buf[d.Addr : d.Addr+uint64(d.Len) : d.Addr+uint64(p.frameSize)]
}

// Release implements bump.Port.
func (p *Port) Release(descs []bump.Desc) {
	p.rx.mu.Lock()
	defer p.rx.mu.Unlock()
	for _, d := range descs {
		p.rx.free = append(p.rx.free, d.Addr)
	}
}

// GetTx implements bump.Port.
func (p *Port) GetTx(descs []bump.Desc) int {
	p.tx.mu.Lock()
	defer p.tx.mu.Unlock()
	n := 0
	for n < len(descs) && len(p.tx.free) > 0 {
		descs[n] = bump.Desc{Addr: p.tx.free[len(p.tx.free)-1]}
		p.tx.free = p.tx.free[:len(p.tx.free)-1]
		n++
	}
	return n
}

// Transmit implements bump.Port.
func (p *Port) Transmit(descs []bump.Desc) int {
	p.tx.mu.Lock()
	defer p.tx.mu.Unlock()
	n := 0
	for n < len(descs) && p.tx.push(descs[n]) {
		n++
	}
	return n
}

// Kick implements bump.Port: every queued frame goes to the sink, in order, and its
// buffer becomes free again (the completion ring, in AF_XDP terms).
func (p *Port) Kick() error {
	p.tx.mu.Lock()
	defer p.tx.mu.Unlock()
	for p.tx.n > 0 {
		d := p.tx.pop()
		if p.sink != nil {
			p.sink(p.buf[d.Addr : d.Addr+uint64(d.Len)])
		}
		p.tx.free = append(p.tx.free, d.Addr)
	}
	return nil
}

// Wait implements bump.Port: it returns when a frame has been injected since the
// last Wait, or after timeout.
func (p *Port) Wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.ready:
	case <-t.C:
	}
	return nil
}

// WaitPair implements bump.PairWaiter: it waits for a frame injected into p
// or into other, if other is a Port too (a worker's two ports), or for the
// wake source.
func (p *Port) WaitPair(other bump.Port, wake *bump.Wake, timeout time.Duration) (handled, woke bool, err error) {
	o, ok := other.(*Port)
	if !ok {
		return false, false, nil
	}
	var wch <-chan struct{} // nil: never ready
	if wake != nil {
		wch = wake.C()
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.ready:
	case <-o.ready:
	case <-wch:
		woke = true
	case <-t.C:
	}
	return true, woke, nil
}
