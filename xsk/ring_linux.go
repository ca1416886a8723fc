package xsk

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring is the index half of one AF_XDP ring (fill, completion, RX or TX),
// shared with the kernel through mmap. It follows cilium/ebpf's
// ringbuf/ring.go discipline: the other side's index is read from shared
// memory once per batch (and only when the cached copy says the batch cannot
// be served), our own index is published with one atomic store per batch,
// and nothing else of the shared header is trusted between those points.
//
// Ring sizes are powers of two; indexes are free-running uint32 counters and
// the slot is index&mask, exactly as in the kernel's xsk_queue.h.
type ring struct {
	producer *uint32 // shared, atomic
	consumer *uint32 // shared, atomic
	flags    *uint32 // shared, atomic (XDP_RING_NEED_WAKEUP)
	mask     uint32
	size     uint32

	// cachedProd and cachedCons are this side's view. On a ring we produce
	// to, cachedProd is authoritative and cachedCons is a possibly stale copy
	// of the kernel's consumer; on a ring we consume from it is the reverse.
	cachedProd uint32
	cachedCons uint32

	mem []byte // the whole mapping, for munmap
}

func (r *ring) init(mem []byte, off unix.XDPRingOffset, size uint32) {
	r.mem = mem
	r.producer = (*uint32)(unsafe.Pointer(&mem[off.Producer]))
	r.consumer = (*uint32)(unsafe.Pointer(&mem[off.Consumer]))
	r.flags = (*uint32)(unsafe.Pointer(&mem[off.Flags]))
	r.size = size
	r.mask = size - 1
	r.cachedProd = atomic.LoadUint32(r.producer)
	r.cachedCons = atomic.LoadUint32(r.consumer)
}

// needWakeup reports whether the kernel asked for a syscall to make progress
// on this ring (XDP_USE_NEED_WAKEUP).
func (r *ring) needWakeup() bool {
	return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0
}

// prodFree returns how many slots we may produce into, reading the kernel's
// consumer index only when the cached value cannot satisfy want.
func (r *ring) prodFree(want uint32) uint32 {
	free := r.size - (r.cachedProd - r.cachedCons)
	if free >= want {
		return free
	}
	r.cachedCons = atomic.LoadUint32(r.consumer)
	return r.size - (r.cachedProd - r.cachedCons)
}

// prodSubmit publishes n slots written since the last submit.
func (r *ring) prodSubmit(n uint32) {
	r.cachedProd += n
	atomic.StoreUint32(r.producer, r.cachedProd) // release: descriptors before index
}

// consAvail returns how many slots are ready to consume, reading the kernel's
// producer index only when the cached value cannot satisfy want.
func (r *ring) consAvail(want uint32) uint32 {
	avail := r.cachedProd - r.cachedCons
	if avail >= want {
		return avail
	}
	r.cachedProd = atomic.LoadUint32(r.producer) // acquire: index before descriptors
	return r.cachedProd - r.cachedCons
}

// consRelease hands n consumed slots back to the kernel.
func (r *ring) consRelease(n uint32) {
	r.cachedCons += n
	atomic.StoreUint32(r.consumer, r.cachedCons)
}

// pending is the number of slots we produced that the kernel has not yet
// consumed (used by Kick on the TX ring). It always reads shared memory.
func (r *ring) pending() uint32 {
	r.cachedCons = atomic.LoadUint32(r.consumer)
	return r.cachedProd - r.cachedCons
}

// RingLevel is how full one of a socket's rings is, in slots: Used is the
// producer's index less the consumer's, as both sides last published them.
type RingLevel struct {
	// Ring is "rx" (frames received, waiting for Receive), "tx" (frames
	// given to Transmit, waiting for the kernel), "fill" (free frames lent
	// to the kernel to receive into: when it runs empty the kernel drops,
	// Stats.RxFillRingEmptyDescs) or "completion" (frames the kernel sent,
	// not yet taken back).
	Ring       string
	Used, Size uint32
}

// RingLevels reads the levels of the socket's four rings from their shared
// indexes, from any goroutine, without disturbing the halves' cached views;
// a closed socket's are zero.
func (s *Socket) RingLevels() [4]RingLevel {
	s.levels.Lock()
	defer s.levels.Unlock()
	out := [4]RingLevel{{Ring: "rx"}, {Ring: "tx"}, {Ring: "fill"}, {Ring: "completion"}}
	if s.closed.Load() {
		return out
	}
	for i, r := range [4]*ring{&s.rx.ring, &s.tx.ring, &s.fill.ring, &s.comp.ring} {
		// The consumer first: the producer read after it is no lower, so
		// the difference cannot wrap below 0 (it may pass the size).
		cons := atomic.LoadUint32(r.consumer)
		out[i].Used, out[i].Size = min(atomic.LoadUint32(r.producer)-cons, r.size), r.size
	}
	return out
}

// addrRing is the fill or completion ring: slots are UMEM addresses.
type addrRing struct {
	ring
	slots []uint64
}

// descRing is the RX or TX ring: slots are XDP descriptors.
type descRing struct {
	ring
	slots []unix.XDPDesc
}

func mapAddrRing(fd int, pgoff int64, off unix.XDPRingOffset, size uint32) (*addrRing, error) {
	mem, err := unix.Mmap(fd, pgoff, int(off.Desc)+int(size)*8,
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, err
	}
	r := &addrRing{slots: unsafe.Slice((*uint64)(unsafe.Pointer(&mem[off.Desc])), size)}
	r.init(mem, off, size)
	return r, nil
}

func mapDescRing(fd int, pgoff int64, off unix.XDPRingOffset, size uint32) (*descRing, error) {
	mem, err := unix.Mmap(fd, pgoff, int(off.Desc)+int(size)*int(unsafe.Sizeof(unix.XDPDesc{})),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, err
	}
	r := &descRing{slots: unsafe.Slice((*unix.XDPDesc)(unsafe.Pointer(&mem[off.Desc])), size)}
	r.init(mem, off, size)
	return r, nil
}

func (r *ring) unmap() {
	if r != nil && r.mem != nil {
		_ = unix.Munmap(r.mem)
		r.mem = nil
	}
}
