package xsk

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BindMode selects how Open binds the socket.
type BindMode int

const (
	// BindAuto tries XDP_ZEROCOPY and falls back to XDP_COPY when the driver
	// refuses zero-copy (veth always does: EOPNOTSUPP).
	BindAuto BindMode = iota
	// BindZeroCopy insists on XDP_ZEROCOPY and fails otherwise.
	BindZeroCopy
	// BindCopy uses XDP_COPY only.
	BindCopy
)

// Options configure Open. The zero value gives 4096 frames of 4096 bytes,
// RX and TX rings of 2048 descriptors, queue 0 and BindAuto.
type Options struct {
	Queue     int // NIC RX/TX queue the socket binds to
	NumFrames int // UMEM frames; half serve RX, half TX
	FrameSize int // power of two, 2048..page size (aligned UMEM chunks)
	RingSize  int // RX and TX ring size, power of two
	Bind      BindMode
}

// Headroom is the offset of packet data inside every frame: the kernel puts
// RX data there (XDP_PACKET_HEADROOM) and GetTx hands out TX frames at the
// same offset, so a received frame always fits a TX frame.
const Headroom = unix.XDP_PACKET_HEADROOM

// Errors returned by Open.
var (
	ErrBadOptions = errors.New("xsk: invalid options")
)

// Frame ownership states, one byte per UMEM frame. Every transition is
// checked; a descriptor that does not name a frame in the expected state is
// refused and counted in Stats.Misuse (and Err reports the first one).
const (
	frameKernelRX uint8 = iota // on the fill ring or in the kernel's RX path
	frameUserRX                // returned by Receive, owned by the caller until Release
	frameFreeTX                // on the free list
	frameUserTX                // returned by GetTx, owned by the caller until Transmit
	frameKernelTX              // on the TX ring, back to free after completion
)

// Socket is one AF_XDP socket bound to one queue of one interface, with its
// own UMEM (no sharing). It has two independent halves with disjoint rings
// and frames: the RX half (Receive, Release, Frame of RX descriptors) and
// the TX half (GetTx, PutTx, Transmit, Kick, Frame of TX descriptors). Each
// half must be driven by one goroutine at a time; the two halves may be
// driven by different goroutines (a bump's worker receives on one port and
// transmits on the other). Wait, Stats, RingLevels, Err, BindMode and FD may
// be called from any goroutine. Close must not run concurrently with either half.
type Socket struct {
	fd        int
	ifindex   int
	queue     int
	zerocopy  bool
	frameSize uint64
	frameMask uint64 // frameSize-1
	numFrames uint32
	rxFrames  uint32 // frames [0, rxFrames) serve RX, the rest TX

	umem []byte
	fill *addrRing
	comp *addrRing
	rx   *descRing
	tx   *descRing

	state  []uint8  // per frame, see frame* constants
	txFree []uint32 // stack of free TX frame indexes

	misuseErr atomic.Pointer[error]
	closed    atomic.Bool
	// levels keeps Close from unmapping the rings while RingLevels reads
	// their indexes from another goroutine.
	levels sync.Mutex

	// Own counters, added once per batch so Stats can read them from any
	// goroutine without tearing.
	cntRx       atomic.Uint64
	cntTx       atomic.Uint64
	txFreeN     atomic.Int64
	completed   atomic.Uint64
	kicks       atomic.Uint64
	kickBusy    atomic.Uint64
	rxWakeups   atomic.Uint64
	misuse      atomic.Uint64
	txExhausted atomic.Uint64
}

// Stats are a socket's counters: the kernel's XDP_STATISTICS and the
// socket's own.
type Stats struct {
	// From getsockopt(XDP_STATISTICS).
	RxDropped            uint64 // frames dropped by the kernel for any reason (e.g. larger than a frame)
	RxInvalidDescs       uint64 // invalid fill-ring descriptors
	TxInvalidDescs       uint64 // invalid TX descriptors
	RxRingFull           uint64 // RX ring was full (the consumer is too slow)
	RxFillRingEmptyDescs uint64 // fill ring was empty (frames not Released fast enough)
	TxRingEmptyDescs     uint64 // kernel found the TX ring empty when woken

	// Own counters.
	RxFrames    uint64 // frames returned by Receive
	TxFrames    uint64 // frames queued by Transmit
	TxCompleted uint64 // TX frames the kernel finished with
	Kicks       uint64 // sendto calls made by Kick
	KickBusy    uint64 // sendto calls that returned EAGAIN/EBUSY/ENOBUFS
	RxWakeups   uint64 // recvfrom calls made because the fill ring needed a wakeup
	TxExhausted uint64 // GetTx calls that returned fewer frames than asked
	Misuse      uint64 // descriptors refused because the caller did not own them
	TxFree      int    // TX frames currently on the free list
}

func (o *Options) withDefaults() (Options, error) {
	r := *o
	if r.NumFrames == 0 {
		r.NumFrames = 4096
	}
	if r.FrameSize == 0 {
		r.FrameSize = 4096
	}
	if r.RingSize == 0 {
		r.RingSize = 2048
	}
	pg := os.Getpagesize()
	switch {
	case r.Queue < 0:
		return r, fmt.Errorf("%w: queue %d", ErrBadOptions, r.Queue)
	case r.FrameSize < 2048 || r.FrameSize > pg || bits.OnesCount(uint(r.FrameSize)) != 1:
		return r, fmt.Errorf("%w: frame size %d (power of two in 2048..%d)", ErrBadOptions, r.FrameSize, pg)
	case r.NumFrames < 2 || r.NumFrames%2 != 0 || r.NumFrames > 1<<24:
		return r, fmt.Errorf("%w: %d frames (even, 2..%d)", ErrBadOptions, r.NumFrames, 1<<24)
	case r.RingSize < 2 || bits.OnesCount(uint(r.RingSize)) != 1:
		return r, fmt.Errorf("%w: ring size %d (power of two)", ErrBadOptions, r.RingSize)
	case r.Bind < BindAuto || r.Bind > BindCopy:
		return r, fmt.Errorf("%w: bind mode %d", ErrBadOptions, r.Bind)
	}
	return r, nil
}

// Open creates an AF_XDP socket on queue opt.Queue of the interface ifindex
// (in the calling thread's network namespace), registers a fresh UMEM, maps
// the four rings and binds. With BindAuto it first asks for zero-copy and,
// if the driver refuses, builds the socket again in copy mode; BindMode
// reports the outcome. All RX frames start on the fill ring.
//
// The socket receives nothing until its file descriptor is in the XSKMAP of
// the XDP program on that interface (Bump.Register).
func Open(ifindex int, opt Options) (*Socket, error) {
	o, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	if o.Bind != BindCopy {
		s, zcErr := open(ifindex, o, true)
		if zcErr == nil || o.Bind == BindZeroCopy {
			return s, zcErr
		}
		s, err = open(ifindex, o, false)
		if err != nil {
			return nil, fmt.Errorf("%w (zero-copy: %v)", err, zcErr)
		}
		return s, nil
	}
	return open(ifindex, o, false)
}

func open(ifindex int, o Options, zerocopy bool) (_ *Socket, err error) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("xsk: socket: %w", err)
	}
	s := &Socket{
		fd:        fd,
		ifindex:   ifindex,
		queue:     o.Queue,
		zerocopy:  zerocopy,
		frameSize: uint64(o.FrameSize),
		frameMask: uint64(o.FrameSize - 1),
		numFrames: uint32(o.NumFrames),
		rxFrames:  uint32(o.NumFrames / 2),
	}
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	if err = s.registerUMEM(o); err != nil {
		return nil, err
	}
	if err = s.mapRings(o); err != nil {
		return nil, err
	}
	s.initFrames(o)
	if err = s.bind(o); err != nil {
		return nil, err
	}
	return s, nil
}

// registerUMEM maps the socket's UMEM and registers it (XDP_UMEM_REG).
func (s *Socket) registerUMEM(o Options) (err error) {
	s.umem, err = unix.Mmap(-1, 0, o.NumFrames*o.FrameSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("xsk: mmap umem: %w", err)
	}
	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(&s.umem[0]))),
		Len:  uint64(len(s.umem)),
		Size: uint32(o.FrameSize),
	}
	if err = setsockopt(s.fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return fmt.Errorf("xsk: XDP_UMEM_REG: %w", err)
	}
	return nil
}

// fillRingSize is the size of the fill and completion rings: the fill ring
// holds every RX frame and the completion ring every TX frame, so neither
// can ever be the reason a frame is stuck.
func fillRingSize(o Options) uint32 {
	return max(uint32(o.RingSize), nextPow2(uint32(o.NumFrames/2)))
}

// mapRings sizes the four rings and maps them at the offsets the kernel
// reports (XDP_MMAP_OFFSETS).
func (s *Socket) mapRings(o Options) (err error) {
	fd := s.fd
	fqSize := fillRingSize(o)
	for _, rs := range []struct {
		opt  int
		size uint32
	}{
		{unix.XDP_UMEM_FILL_RING, fqSize},
		{unix.XDP_UMEM_COMPLETION_RING, fqSize},
		{unix.XDP_RX_RING, uint32(o.RingSize)},
		{unix.XDP_TX_RING, uint32(o.RingSize)},
	} {
		if err = unix.SetsockoptInt(fd, unix.SOL_XDP, rs.opt, int(rs.size)); err != nil {
			return fmt.Errorf("xsk: ring sockopt %d: %w", rs.opt, err)
		}
	}
	var off unix.XDPMmapOffsets
	if err = getsockopt(fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), unsafe.Sizeof(off)); err != nil {
		return fmt.Errorf("xsk: XDP_MMAP_OFFSETS: %w", err)
	}
	if s.fill, err = mapAddrRing(fd, unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, fqSize); err != nil {
		return fmt.Errorf("xsk: mmap fill ring: %w", err)
	}
	if s.comp, err = mapAddrRing(fd, unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, fqSize); err != nil {
		return fmt.Errorf("xsk: mmap completion ring: %w", err)
	}
	if s.rx, err = mapDescRing(fd, unix.XDP_PGOFF_RX_RING, off.Rx, uint32(o.RingSize)); err != nil {
		return fmt.Errorf("xsk: mmap rx ring: %w", err)
	}
	if s.tx, err = mapDescRing(fd, unix.XDP_PGOFF_TX_RING, off.Tx, uint32(o.RingSize)); err != nil {
		return fmt.Errorf("xsk: mmap tx ring: %w", err)
	}
	return nil
}

// initFrames puts the first half of the frames (RX) on the fill ring and
// the second half (TX) on the free list.
func (s *Socket) initFrames(o Options) {
	half := uint32(o.NumFrames / 2)
	s.state = make([]uint8, o.NumFrames)
	s.txFree = make([]uint32, 0, o.NumFrames-int(half))
	for i := uint32(0); i < half; i++ {
		s.fill.slots[i&s.fill.mask] = uint64(i) * s.frameSize
		s.state[i] = frameKernelRX
	}
	s.fill.prodSubmit(half)
	for i := uint32(o.NumFrames) - 1; i >= half; i-- { // lowest index on top
		s.state[i] = frameFreeTX
		s.txFree = append(s.txFree, i)
	}
	s.txFreeN.Store(int64(len(s.txFree)))
}

// bind binds the socket to its queue in zero-copy or copy mode, asking for
// need-wakeup flags.
func (s *Socket) bind(o Options) error {
	flags := uint16(unix.XDP_USE_NEED_WAKEUP)
	if s.zerocopy {
		flags |= unix.XDP_ZEROCOPY
	} else {
		flags |= unix.XDP_COPY
	}
	sa := &unix.SockaddrXDP{Flags: flags, Ifindex: uint32(s.ifindex), QueueID: uint32(o.Queue)}
	if err := bindRetry(s.fd, sa); err != nil {
		mode := "copy"
		if s.zerocopy {
			mode = "zero-copy"
		}
		return fmt.Errorf("xsk: %s bind ifindex %d queue %d: %w", mode, s.ifindex, o.Queue, err)
	}
	return nil
}

// bindBusyWait bounds how long Open waits for a queue that is still busy.
const bindBusyWait = 2 * time.Second

// bindRetry binds fd, retrying while the kernel answers EBUSY: the AF_XDP
// socket of a process that just exited is released asynchronously, so a
// daemon restarted at once can find its queue still taken for a moment.
func bindRetry(fd int, sa *unix.SockaddrXDP) error {
	deadline := time.Now().Add(bindBusyWait)
	for {
		err := unix.Bind(fd, sa)
		if err != unix.EBUSY || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func nextPow2(v uint32) uint32 {
	if v <= 1 {
		return 1
	}
	return 1 << bits.Len32(v-1)
}

func setsockopt(fd, opt int, p unsafe.Pointer, n uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), n, 0)
	if e != 0 {
		return e
	}
	return nil
}

func getsockopt(fd, opt int, p unsafe.Pointer, n uintptr) error {
	l := uint32(n)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return e
	}
	return nil
}

// FD returns the socket's file descriptor (for the XSKMAP and for poll).
func (s *Socket) FD() int { return s.fd }

// Ifindex returns the interface the socket is bound to.
func (s *Socket) Ifindex() int { return s.ifindex }

// Queue returns the queue the socket is bound to.
func (s *Socket) Queue() int { return s.queue }

// BindMode reports how the socket is bound: "zerocopy" or "copy".
func (s *Socket) BindMode() string {
	if s.zerocopy {
		return "zerocopy"
	}
	return "copy"
}

// FrameCap is the largest packet a frame holds (frame size minus Headroom).
func (s *Socket) FrameCap() int { return int(s.frameSize) - Headroom }

// frameOf returns the frame index of addr, or false when addr is outside the
// UMEM or too close to the frame end for length n.
func (s *Socket) frameOf(addr uint64, n uint32) (uint32, bool) {
	idx := addr / s.frameSize
	if idx >= uint64(s.numFrames) || addr&s.frameMask+uint64(n) > s.frameSize {
		return 0, false
	}
	return uint32(idx), true
}

// Frame returns the bytes of d: a view into the UMEM of length d.Len whose
// capacity runs to the end of the frame, so a TX frame from GetTx (Len 0)
// can be filled with append or by reslicing up to FrameCap bytes. The view
// is valid only while the caller owns the frame. A Desc that does not lie
// inside the UMEM yields nil.
func (s *Socket) Frame(d Desc) []byte {
	if _, ok := s.frameOf(d.Addr, d.Len); !ok {
		return nil
	}
	end := (d.Addr &^ s.frameMask) + s.frameSize
	return s.umem[d.Addr : d.Addr+uint64(d.Len) : end]
}

// Receive fills descs with up to len(descs) received frames and returns how
// many. It never blocks (use Wait). Ownership: descs[:n] now belong to the
// caller, who must give each back exactly once with Release. The frames'
// bytes are Frame(descs[i]).
func (s *Socket) Receive(descs []Desc) int {
	want := uint32(len(descs))
	if want == 0 || s.closed.Load() {
		return 0
	}
	n := s.rx.consAvail(want)
	if n == 0 {
		// Copy mode never asks; a zero-copy driver may need a syscall to
		// refill its hardware ring from the fill ring.
		if s.fill.needWakeup() {
			s.rxWakeups.Add(1)
			unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		}
		return 0
	}
	n = min(n, want)
	cons := s.rx.cachedCons
	for i := uint32(0); i < n; i++ {
		d := s.rx.slots[(cons+i)&s.rx.mask]
		descs[i] = Desc{Addr: d.Addr, Len: d.Len}
		if idx, ok := s.frameOf(d.Addr, d.Len); ok {
			s.state[idx] = frameUserRX
		}
	}
	s.rx.consRelease(n)
	s.cntRx.Add(uint64(n))
	return int(n)
}

// Release gives received frames back to the kernel (the fill ring), with one
// producer update for the whole batch. Ownership: the caller must not touch
// the frames afterwards. A Desc that is not a frame the caller holds from
// Receive (a TX frame, a double release, a made-up address) is refused and
// counted in Stats.Misuse; the rest are released.
func (s *Socket) Release(descs []Desc) {
	if len(descs) == 0 || s.closed.Load() {
		return
	}
	// The fill ring has room for every RX frame, so this never comes up short.
	s.fill.prodFree(uint32(len(descs)))
	prod := s.fill.cachedProd
	n := uint32(0)
	for _, d := range descs {
		idx, ok := s.frameOf(d.Addr, 0)
		if !ok || idx >= s.rxFrames || s.state[idx] != frameUserRX {
			s.refuse("Release", d)
			continue
		}
		s.state[idx] = frameKernelRX
		s.fill.slots[(prod+n)&s.fill.mask] = d.Addr &^ s.frameMask
		n++
	}
	if n > 0 {
		s.fill.prodSubmit(n)
	}
}

// reap moves completed TX frames from the completion ring to the free list.
func (s *Socket) reap() {
	n := s.comp.consAvail(s.comp.size)
	if n == 0 {
		return
	}
	cons := s.comp.cachedCons
	for i := uint32(0); i < n; i++ {
		addr := s.comp.slots[(cons+i)&s.comp.mask]
		idx, ok := s.frameOf(addr, 0)
		if !ok || idx < s.rxFrames || s.state[idx] != frameKernelTX {
			continue // cannot happen with a sane kernel; never double-free
		}
		s.state[idx] = frameFreeTX
		s.txFree = append(s.txFree, idx)
	}
	s.comp.consRelease(n)
	s.completed.Add(uint64(n))
	s.txFreeN.Store(int64(len(s.txFree)))
}

// GetTx first reaps the completion ring, then fills descs with up to
// len(descs) free TX frames (Len 0, Addr at Headroom) and returns how many.
// Ownership: descs[:n] belong to the caller until they are passed to
// Transmit; a TX frame is never handed out twice. Write the packet into
// Frame(d)[:len] and set d.Len before Transmit.
func (s *Socket) GetTx(descs []Desc) int {
	if s.closed.Load() {
		return 0
	}
	s.reap()
	n := min(len(descs), len(s.txFree))
	if n < len(descs) {
		s.txExhausted.Add(1)
	}
	top := len(s.txFree)
	for i := 0; i < n; i++ {
		idx := s.txFree[top-1-i]
		s.state[idx] = frameUserTX
		descs[i] = Desc{Addr: uint64(idx)*s.frameSize + Headroom}
	}
	s.txFree = s.txFree[:top-n]
	s.txFreeN.Store(int64(len(s.txFree)))
	return n
}

// PutTx gives TX frames from GetTx back to the free list without sending
// them (a packet the caller decided to drop, or what Transmit did not take).
// Descriptors that are not TX frames the caller holds are refused and
// counted in Stats.Misuse.
func (s *Socket) PutTx(descs []Desc) {
	if s.closed.Load() {
		return
	}
	for _, d := range descs {
		idx, ok := s.frameOf(d.Addr, 0)
		if !ok || idx < s.rxFrames || s.state[idx] != frameUserTX {
			s.refuse("PutTx", d)
			continue
		}
		s.state[idx] = frameFreeTX
		s.txFree = append(s.txFree, idx)
	}
	s.txFreeN.Store(int64(len(s.txFree)))
}

// Transmit queues descs on the TX ring with one producer update and returns
// how many it took: descs[:n] are no longer the caller's (the valid ones are
// queued and return to the free list once the kernel completes them; ones
// the caller did not own from GetTx, or whose Len runs past the frame, are
// refused and counted in Stats.Misuse), descs[n:] stay the caller's because
// the TX ring is full. Call Kick to make the kernel send.
func (s *Socket) Transmit(descs []Desc) int {
	if len(descs) == 0 || s.closed.Load() {
		return 0
	}
	free := s.tx.prodFree(uint32(len(descs)))
	prod := s.tx.cachedProd
	queued := uint32(0)
	i := 0
	for ; i < len(descs) && queued < free; i++ {
		d := descs[i]
		idx, ok := s.frameOf(d.Addr, d.Len)
		if !ok || idx < s.rxFrames || s.state[idx] != frameUserTX {
			s.refuse("Transmit", d)
			continue
		}
		s.state[idx] = frameKernelTX
		s.tx.slots[(prod+queued)&s.tx.mask] = unix.XDPDesc{Addr: d.Addr, Len: d.Len}
		queued++
	}
	if queued > 0 {
		s.tx.prodSubmit(queued)
		s.cntTx.Add(uint64(queued))
	}
	return i
}

// kickTries bounds how many sendto calls without progress Kick makes before
// it leaves the rest queued for the next call.
const kickTries = 4

// Kick makes the kernel transmit what Transmit queued. It calls
// sendto(MSG_DONTWAIT) only when the TX ring asks for a wakeup
// (XDP_USE_NEED_WAKEUP), and keeps calling while descriptors remain, because
// in copy mode one call sends at most 32 frames and answers EAGAIN while more
// remain. Completions are reaped between calls so a full completion ring
// cannot stall it. Frames still queued after kickTries calls without progress
// stay queued for the next Kick. It returns an error only for a failure that
// more calls cannot fix (e.g. ENETDOWN, ENXIO).
func (s *Socket) Kick() error {
	if s.closed.Load() {
		return os.ErrClosed
	}
	stuck := 0
	for {
		pending := s.tx.pending()
		if pending == 0 || !s.tx.needWakeup() {
			return nil
		}
		s.kicks.Add(1)
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
		case unix.EAGAIN, unix.EBUSY, unix.ENOBUFS, unix.EINTR:
			s.kickBusy.Add(1)
		default:
			return fmt.Errorf("xsk: sendto: %w", e)
		}
		s.reap()
		if s.tx.pending() >= pending {
			if stuck++; stuck >= kickTries {
				return nil
			}
		} else {
			stuck = 0
		}
	}
}

func (s *Socket) refuse(op string, d Desc) {
	s.misuse.Add(1)
	if s.misuseErr.Load() == nil {
		err := fmt.Errorf("xsk: %s: descriptor {Addr %#x Len %d} is not a frame the caller owns", op, d.Addr, d.Len)
		s.misuseErr.CompareAndSwap(nil, &err)
	}
}

// Err returns the first frame-ownership violation seen on this socket (a
// descriptor refused by Release or Transmit), or nil. Stats.Misuse counts all
// of them. A correct program never sees one; tests assert Err() == nil.
func (s *Socket) Err() error {
	if p := s.misuseErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Stats returns the kernel's XDP_STATISTICS for the socket and the socket's
// own counters.
func (s *Socket) Stats() Stats {
	var ks unix.XDPStatistics
	if !s.closed.Load() {
		_ = getsockopt(s.fd, unix.XDP_STATISTICS, unsafe.Pointer(&ks), unsafe.Sizeof(ks))
	}
	return Stats{
		RxDropped:            ks.Rx_dropped,
		RxInvalidDescs:       ks.Rx_invalid_descs,
		TxInvalidDescs:       ks.Tx_invalid_descs,
		RxRingFull:           ks.Rx_ring_full,
		RxFillRingEmptyDescs: ks.Rx_fill_ring_empty_descs,
		TxRingEmptyDescs:     ks.Tx_ring_empty_descs,
		RxFrames:             s.cntRx.Load(),
		TxFrames:             s.cntTx.Load(),
		TxCompleted:          s.completed.Load(),
		Kicks:                s.kicks.Load(),
		KickBusy:             s.kickBusy.Load(),
		RxWakeups:            s.rxWakeups.Load(),
		TxExhausted:          s.txExhausted.Load(),
		Misuse:               s.misuse.Load(),
		TxFree:               int(s.txFreeN.Load()),
	}
}

// TxRetry caps how long Wait sleeps while a socket still has frames on its
// TX ring that Kick could not push out (the device queue was busy): poll(2)
// retries the transmission, but only when it is called.
const TxRetry = 200 * time.Microsecond

// Wait blocks in poll(2) until at least one of socks has received frames, or
// timeout passes (a negative timeout waits forever), and returns how many
// sockets are readable. poll also gives the kernel the wakeups that
// need_wakeup asks for, including another transmission attempt; while any
// socket has untransmitted frames the wait is capped at TxRetry. Wait only
// reads shared ring indexes, so it may run beside the sockets' TX halves.
// EINTR returns 0, nil.
func Wait(socks []*Socket, timeout time.Duration) (int, error) {
	n, _, err := WaitFd(socks, -1, timeout)
	return n, err
}

// WaitFd is Wait with one more file descriptor in the poll set, such as an
// eventfd another goroutine writes to end the wait early; fd < 0 is none.
// n counts the readable sockets only; fdReady reports fd readable.
func WaitFd(socks []*Socket, fd int, timeout time.Duration) (n int, fdReady bool, err error) {
	const maxPoll = 64
	if len(socks) > maxPoll {
		return 0, false, fmt.Errorf("%w: Wait on %d sockets (max %d)", ErrBadOptions, len(socks), maxPoll)
	}
	var fds [maxPoll + 1]unix.PollFd
	for i, s := range socks {
		if s.closed.Load() {
			fds[i] = unix.PollFd{Fd: -1} // poll ignores it
			continue
		}
		fds[i] = unix.PollFd{Fd: int32(s.fd), Events: unix.POLLIN}
		// Shared indexes only: the TX half may belong to another goroutine.
		if atomic.LoadUint32(s.tx.producer) != atomic.LoadUint32(s.tx.consumer) && (timeout < 0 || timeout > TxRetry) {
			timeout = TxRetry
		}
	}
	var tsp uintptr
	var ts unix.Timespec
	if timeout >= 0 {
		ts = unix.NsecToTimespec(int64(timeout))
		tsp = uintptr(unsafe.Pointer(&ts))
	}
	nfds := len(socks)
	if fd >= 0 {
		fds[nfds] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
		nfds++
	}
	r, _, e := unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(nfds), tsp, 0, 0, 0)
	switch e {
	case 0:
		n = int(r)
		if fd >= 0 && fds[len(socks)].Revents != 0 {
			fdReady = true
			n--
		}
		return n, fdReady, nil
	case unix.EINTR:
		return 0, false, nil
	default:
		return 0, false, fmt.Errorf("xsk: poll: %w", e)
	}
}

// Close unbinds the socket and frees its UMEM and rings; the kernel removes
// it from any XSKMAP. Every frame and view (Frame) of the socket becomes
// invalid. Close is idempotent and must not run concurrently with the
// socket's worker; afterwards Receive, GetTx and Transmit return 0, Release
// and PutTx do nothing, Kick returns os.ErrClosed and Wait ignores the
// socket.
func (s *Socket) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.levels.Lock()
	defer s.levels.Unlock()
	return s.release()
}

// release frees everything; it runs once (Close or a failed open).
func (s *Socket) release() error {
	err := unix.Close(s.fd)
	for _, r := range []*ring{ringOf(s.fill), ringOf(s.comp), descRingOf(s.rx), descRingOf(s.tx)} {
		r.unmap()
	}
	if s.umem != nil {
		_ = unix.Munmap(s.umem)
		s.umem = nil
	}
	return err
}

func ringOf(r *addrRing) *ring {
	if r == nil {
		return nil
	}
	return &r.ring
}

func descRingOf(r *descRing) *ring {
	if r == nil {
		return nil
	}
	return &r.ring
}
