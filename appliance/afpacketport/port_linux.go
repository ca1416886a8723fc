package afpacketport

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tcpinc/tcpinc/afpacket"
	"github.com/tcpinc/tcpinc/bump"
)

// Options configure Open.
type Options struct {
	// Slots is the number of RX slots and of TX slots, each holding one
	// frame of up to afpacket.MaxFrame bytes. 0 picks DefaultRxSlots and
	// DefaultTxSlots.
	Slots int
	// Batch is the most frames one recvmmsg or sendmmsg moves
	// (afpacket.DefaultBatch if 0).
	Batch int
	// QdiscBypass sends frames straight to the driver (PACKET_QDISC_BYPASS)
	// until the device drops one (afpacket.Options.QdiscBypass).
	QdiscBypass bool
}

const (
	// DefaultRxSlots: a worker takes at most one batch (its BatchSize, 64
	// by default) from a port per round and releases it before the next
	// Receive, so RX slots beyond one batch would never be used.
	DefaultRxSlots = 64
	// DefaultTxSlots: a worker's TX queue holds up to 4 batches (a batch
	// forwarded from the other port plus what the handler sends,
	// appliance/txqueue.go) before it sends; with fewer free TX slots it
	// sends early, in more sendmmsg calls. Slots come back as soon as
	// sendmmsg returns, so more would never be used. Memory is reserved,
	// not touched: a slot's pages are used only as far as its largest frame.
	DefaultTxSlots = 256
)

// frameOff is where a slot's frame starts: the virtio_net_hdr sits in the
// afpacket.VnetHdrLen bytes before it.
const frameOff = 16

const ethHdrLen = 14

// slotSize is the bytes of one slot, a multiple of the cache line.
const slotSize = (frameOff + afpacket.MaxFrame + 63) &^ 63

// Stats are a port's counters since Open.
type Stats struct {
	RxFrames             uint64 // frames handed to the worker
	RxSuperSegments      uint64 // of them, TCP super-segments (Desc.GSO set)
	RxSegments           uint64 // the wire segments those stand for
	RxChecksumsCompleted uint64 // partial checksums completed (FlagNeedsCsum)
	RxKernelDrops        uint64 // frames the kernel dropped for a full socket buffer
	RxTruncated          uint64 // frames larger than a slot, dropped
	RxBad                uint64 // frames with a virtio_net_hdr or headers CheckTCP rejects (and no super-segment the port cuts), dropped
	RxEncapCut           uint64 // TCP super-segments inside IP-in-IP or GRE, cut into segments (afpacket.SegmentEncap)
	RxRoutedCut          uint64 // TCP super-segments behind an IPv6 routing header with segments left, cut into segments (afpacket.SegmentRouted)
	RxCutNoRoom          uint64 // such super-segments (tunnelled or routed) dropped for want of free encap slots, not malformed
	RxErrors             uint64 // recvmmsg failures
	TxFrames             uint64 // frames sendmmsg sent (a merged frame counts once)
	TxSuperSegments      uint64 // frames given a GSO header: forwarded super-segments and merged frames
	TxSegments           uint64 // the wire segments those stand for
	TxCoalesced          uint64 // frames merged into the frame before them (merge.go)
	TxTails              uint64 // super-frames whose payload the sender lent (bump.Desc.Tail)
	TxDropped            uint64 // frames the device dropped (ENOBUFS)
	TxErrors             uint64 // frames the kernel refused, frames committed empty, super-segments that are not TCP
	BypassOff            uint64 // sockets whose queue bypass a drop turned off (afpacket.Options.QdiscBypass)
}

// Add adds o's counters to s (the sockets of one interface).
func (s *Stats) Add(o Stats) {
	s.RxFrames += o.RxFrames
	s.RxSuperSegments += o.RxSuperSegments
	s.RxSegments += o.RxSegments
	s.RxChecksumsCompleted += o.RxChecksumsCompleted
	s.RxKernelDrops += o.RxKernelDrops
	s.RxTruncated += o.RxTruncated
	s.RxBad += o.RxBad
	s.RxEncapCut += o.RxEncapCut
	s.RxRoutedCut += o.RxRoutedCut
	s.RxCutNoRoom += o.RxCutNoRoom
	s.RxErrors += o.RxErrors
	s.TxFrames += o.TxFrames
	s.TxSuperSegments += o.TxSuperSegments
	s.TxSegments += o.TxSegments
	s.TxCoalesced += o.TxCoalesced
	s.TxTails += o.TxTails
	s.TxDropped += o.TxDropped
	s.TxErrors += o.TxErrors
	s.BypassOff += o.BypassOff
}

// Port is one AF_PACKET socket with PACKET_VNET_HDR on one interface, with
// its RX and TX slots, as a bump.Port. One worker drives it (and its
// partner port); Stats may be called from any goroutine.
//
// Slots live in one buffer: RX slots first, then TX slots. A Desc's Addr is
// the offset of its frame in the buffer.
type Port struct {
	sock  *afpacket.Socket
	mem   []byte
	nrx   int
	ntx   int
	batch int

	rxFree  []int32 // stack of free RX slots
	rxBufs  [][]byte
	rxSizes []int
	rxIdle  bool // WaitPair's poll(2) found nothing to read: the next Receive skips recvmmsg

	encFree   []int32     // stack of free encap slots (cutEncap)
	encBufs   [][]byte    // cutEncap's segment buffers
	encSizes  []int       // and their sizes
	rxPending []bump.Desc // segments of cut super-segments, for the next Receive

	txFree []int32     // stack of free TX slots
	queued []bump.Desc // given to Transmit, not yet prepared (Kick)
	ready  []sendMsg   // prepared, waiting for sendmmsg, in order
	joined []bump.Desc // the frames merged into ready messages, in order
	wFrame [][][]byte  // one sendmmsg batch: each message's pieces
	wPiece [][]byte    // backing store of wFrame's pieces

	noMerge bool // tests: send the engine's frames one by one, to measure merging

	rxSuper, rxSegs, rxDone, rxBad, rxErr  atomic.Uint64
	rxEncap, rxRouted, rxCutNoRoom         atomic.Uint64
	rxFrames                               atomic.Uint64
	txSuper, txSegs, txCoal, txBad, txTail atomic.Uint64

	statsMu sync.Mutex
	self    [1]unix.PollFd
}

// sendMsg is one prepared frame: its slot and length (the virtio_net_hdr
// is in the slot) and, for a merged frame, how many frames of Port.joined
// follow it and where their payload starts.
type sendMsg struct {
	slot    int32
	len     int32
	joined  int32
	payload int32
	tail    []byte // sent after the slot's len bytes (bump.Desc.Tail)
}

// Open opens one AF_PACKET socket with PACKET_VNET_HDR on the interface
// ifindex of the calling thread's network namespace (one queue: without
// PACKET_FANOUT it sees every frame of the interface) and its slots.
func Open(ifindex int, o Options) (*Port, error) {
	if o.Slots < 0 || o.Batch < 0 {
		return nil, fmt.Errorf("afpacketport: negative Slots (%d) or Batch (%d)", o.Slots, o.Batch)
	}
	if o.Batch == 0 {
		o.Batch = afpacket.DefaultBatch
	}
	nrx, ntx := DefaultRxSlots, DefaultTxSlots
	if o.Slots > 0 {
		nrx, ntx = o.Slots, o.Slots
	}
	s, err := afpacket.Open(ifindex, afpacket.Options{VnetHdr: true, QdiscBypass: o.QdiscBypass, Batch: o.Batch})
	if err != nil {
		return nil, err
	}
	p := &Port{
		sock: s, mem: make([]byte, (nrx+ntx+encapSlots)*slotSize), nrx: nrx, ntx: ntx, batch: o.Batch,
		rxFree: make([]int32, 0, nrx), rxBufs: make([][]byte, o.Batch), rxSizes: make([]int, o.Batch),
		txFree: make([]int32, 0, ntx), queued: make([]bump.Desc, 0, ntx), ready: make([]sendMsg, 0, ntx),
		joined: make([]bump.Desc, 0, ntx),
		wFrame: make([][][]byte, o.Batch), wPiece: make([][]byte, 0, ntx+o.Batch),
		encFree: make([]int32, 0, encapSlots), encBufs: make([][]byte, encapSlots), encSizes: make([]int, encapSlots),
		rxPending: make([]bump.Desc, 0, encapSlots),
	}
	for i := nrx - 1; i >= 0; i-- {
		p.rxFree = append(p.rxFree, int32(i))
	}
	for i := nrx + ntx - 1; i >= nrx; i-- {
		p.txFree = append(p.txFree, int32(i))
	}
	for i := nrx + ntx + encapSlots - 1; i >= nrx+ntx; i-- {
		p.encFree = append(p.encFree, int32(i))
	}
	p.self[0] = unix.PollFd{Fd: int32(s.Fd()), Events: unix.POLLIN}
	return p, nil
}

// OpenFanout opens n ports on interface ifindex as one fanout group
// (afpacket.JoinFanout): port i receives the frames of the flows
// flow.NewFanout(n).Queue puts on i, both directions of each. One port
// needs no group.
func OpenFanout(ifindex, n int, o Options) ([]*Port, error) {
	ports := make([]*Port, 0, n)
	closeAll := func() {
		for _, p := range ports {
			p.Close()
		}
	}
	socks := make([]*afpacket.Socket, 0, n)
	for range n {
		p, err := Open(ifindex, o)
		if err != nil {
			closeAll()
			return nil, err
		}
		ports = append(ports, p)
		socks = append(socks, p.sock)
	}
	if err := afpacket.JoinFanout(socks); err != nil {
		closeAll()
		return nil, err
	}
	return ports, nil
}

func (p *Port) slotBuf(slot int32) []byte {
	return p.mem[int(slot)*slotSize : (int(slot)+1)*slotSize]
}

func (p *Port) slotOf(addr uint64) int32 { return int32((addr - frameOff) / slotSize) }

// slotOfBuf is the slot whose buffer b is (Read may reorder its buffers).
func (p *Port) slotOfBuf(b []byte) int32 {
	return int32((uintptr(unsafe.Pointer(&b[0])) - uintptr(unsafe.Pointer(&p.mem[0]))) / slotSize)
}

// RxBatch is the most frames one Receive returns: a worker that gets this
// many is behind its port (appliance.Backlogged).
func (p *Port) RxBatch() int { return min(p.batch, p.nrx) }

// Receive implements bump.Port: one recvmmsg into free RX slots. Each
// frame's virtio_net_hdr is checked and its partial checksum completed
// (inspectRx); a TCP super-segment gets Desc.GSO. Rejected frames go back
// to the free slots, counted in RxBad. It first retries frames an earlier
// Kick could not send.
func (p *Port) Receive(descs []bump.Desc) int {
	if len(p.ready) > 0 {
		p.send()
	}
	if len(p.rxPending) > 0 {
		return p.takePending(descs)
	}
	if p.rxIdle {
		p.rxIdle = false
		return 0
	}
	n := min(len(descs), len(p.rxFree), p.batch)
	if n == 0 {
		return 0
	}
	top := len(p.rxFree)
	for i := range n {
		p.rxBufs[i] = p.slotBuf(p.rxFree[top-1-i])
	}
	p.rxFree = p.rxFree[:top-n]
	k, err := p.sock.Read(p.rxBufs[:n], p.rxSizes[:n], frameOff)
	if err != nil {
		p.rxErr.Add(1)
		k = 0
	}
	for _, b := range p.rxBufs[k:n] {
		p.rxFree = append(p.rxFree, p.slotOfBuf(b))
	}
	out := 0
	var super, segs, done, bad uint64
	for i := range k {
		b := p.rxBufs[i]
		slot := p.slotOfBuf(b)
		size := p.rxSizes[i]
		hb := b[frameOff-afpacket.VnetHdrLen : frameOff]
		r, err := inspectRx(hb, b[frameOff:frameOff+size])
		if err != nil {
			// No room to cut it is no fault of the frame's: counted
			// apart (RxCutNoRoom), not as malformed.
			if err := p.cutEncap(hb, b[frameOff:frameOff+size]); err != nil && err != afpacket.ErrNoRoom {
				bad++
			}
			p.rxFree = append(p.rxFree, slot)
			continue
		}
		if r.completed {
			done++
		}
		if r.gso != 0 {
			super++
			segs += uint64(r.segments)
		}
		descs[out] = bump.Desc{Addr: uint64(slot)*slotSize + frameOff, Len: uint32(size), GSO: r.gso}
		if r.verified {
			descs[out].Csum = bump.CsumVerified
		}
		out++
	}
	out += p.takePending(descs[out:])
	p.rxFrames.Add(uint64(out))
	if super > 0 {
		p.rxSuper.Add(super)
		p.rxSegs.Add(segs)
	}
	if done > 0 {
		p.rxDone.Add(done)
	}
	if bad > 0 {
		p.rxBad.Add(bad)
	}
	return out
}

// Frame implements bump.Port: the frame's bytes, with the capacity of its
// slot (afpacket.MaxFrame).
func (p *Port) Frame(d bump.Desc) []byte {
	end := uint64(p.slotOf(d.Addr)+1) * slotSize
	return p.mem[d.Addr : d.Addr+uint64(d.Len) : end]
}

// Release implements bump.Port.
func (p *Port) Release(descs []bump.Desc) {
	for _, d := range descs {
		s := p.slotOf(d.Addr)
		switch {
		case s >= 0 && int(s) < p.nrx && len(p.rxFree) < p.nrx:
			p.rxFree = append(p.rxFree, s)
		case p.isEncapSlot(s) && len(p.encFree) < encapSlots:
			p.encFree = append(p.encFree, s)
		}
	}
}

// GetTx implements bump.Port.
func (p *Port) GetTx(descs []bump.Desc) int {
	n := min(len(descs), len(p.txFree))
	top := len(p.txFree)
	for i := range n {
		descs[i] = bump.Desc{Addr: uint64(p.txFree[top-1-i])*slotSize + frameOff}
	}
	p.txFree = p.txFree[:top-n]
	return n
}

// Transmit implements bump.Port: the frames are queued for Kick, which
// merges and sends them.
func (p *Port) Transmit(descs []bump.Desc) int {
	n := min(len(descs), cap(p.queued)-len(p.queued))
	p.queued = append(p.queued, descs[:n]...)
	return n
}

// Kick implements bump.Port: it prepares the queued frames (prepare) and
// sends them with sendmmsg. A slot is free again as soon as its frame is
// sent, or merged into another's. What the socket could not take yet (its
// send buffer full) stays in order for the next Kick, Receive or Wait.
func (p *Port) Kick() error {
	p.prepare()
	return p.send()
}

// prepare turns the queued frames into ready messages: a super-segment
// (Desc.GSO) gets its GSO header from afpacket.PrepareGSO at its segment
// size; a run of one-segment frames that the kernel's segmentation
// reproduces becomes one GSO frame (merge.go), its first frame's headers
// followed by the others' payloads, each in its own slot; any other frame
// goes with a zero header.
func (p *Port) prepare() {
	q := p.queued
	var r run
	var super, segs, coal, bad, tails uint64
	for i := 0; i < len(q); {
		d := q[i]
		slot := p.slotOf(d.Addr)
		buf := p.slotBuf(slot)
		hb := buf[frameOff-afpacket.VnetHdrLen : frameOff]
		f := buf[frameOff : frameOff+int(d.Len)]
		if d.Len < ethHdrLen { // a Commit of nothing: sendmmsg would refuse it
			i++
			bad++
			p.txFree = append(p.txFree, slot)
			continue
		}
		if d.GSO != 0 {
			i++
			// With a tail, the headers in the slot are those of the
			// whole frame: parse them over the slot's room for it,
			// whose bytes are never read (only its length counts).
			whole := f
			if n := int(d.Len) + len(d.Tail); len(d.Tail) > 0 && frameOff+n <= len(buf) {
				whole = buf[frameOff : frameOff+n]
			}
			t, err := afpacket.ParseTCP(whole)
			var h afpacket.VnetHdr
			if err == nil && len(d.Tail) > 0 && (len(whole) == len(f) || t.End != len(whole) || t.Payload > int(d.Len)) {
				err = afpacket.ErrMalformed // the tail would not be all payload
			}
			if err == nil {
				h, err = afpacket.PrepareGSO(whole[:t.End], int(d.GSO))
			}
			if err != nil {
				bad++
				p.txFree = append(p.txFree, slot)
				continue
			}
			_ = h.Encode(hb)
			if h.IsGSO() {
				super++
				segs += uint64(afpacket.Segments(t.PayloadLen(), int(d.GSO)))
			}
			if len(d.Tail) > 0 {
				tails++
			}
			p.ready = append(p.ready, sendMsg{slot: slot, len: int32(t.End - len(d.Tail)), tail: d.Tail})
			continue
		}
		if len(d.Tail) > 0 { // tails come only with super-frames (bump.TailSender)
			i++
			bad++
			p.txFree = append(p.txFree, slot)
			continue
		}
		j := i + 1
		partial := d.Csum == bump.CsumPartial
		if !p.noMerge && r.start(f, partial) {
			for j < len(q) && q[j].GSO == 0 && len(q[j].Tail) == 0 && r.join(p.Frame(q[j]), q[j].Csum == bump.CsumPartial) {
				j++
			}
		}
		if j-i < 2 {
			h := afpacket.VnetHdr{}
			if partial {
				// Alone, it still goes with NEEDS_CSUM: the kernel or
				// the NIC computes its sum.
				var err error
				if h, err = afpacket.PrepareGSO(f, 0xffff); err != nil {
					bad++
					p.txFree = append(p.txFree, slot)
					i = j
					continue
				}
			}
			_ = h.Encode(hb)
			p.ready = append(p.ready, sendMsg{slot: slot, len: int32(d.Len)})
			i = j
			continue
		}
		// The merged frame goes out in pieces (scatter-gather): the
		// head, then each joined frame's payload from its own slot. Its
		// headers are set for the merged length, which PrepareGSO takes
		// from the slice's length alone (it reads only the headers).
		m := len(f)
		for _, e := range q[i+1 : j] {
			m += int(e.Len) - r.p.Payload
		}
		h, err := r.finish(buf[frameOff : frameOff+m])
		if err != nil { // cannot happen: join kept the IP length in range
			bad += uint64(j - i)
			p.txFree = append(p.txFree, slot)
			for _, e := range q[i+1 : j] {
				p.txFree = append(p.txFree, p.slotOf(e.Addr))
			}
			i = j
			continue
		}
		_ = h.Encode(hb)
		p.ready = append(p.ready, sendMsg{slot: slot, len: int32(len(f)), joined: int32(j - i - 1), payload: int32(r.p.Payload)})
		p.joined = append(p.joined, q[i+1:j]...)
		super++
		segs += uint64(j - i)
		coal += uint64(j - i - 1)
		i = j
	}
	clear(p.queued) // no tail kept alive
	p.queued = p.queued[:0]
	if super > 0 {
		p.txSuper.Add(super)
		p.txSegs.Add(segs)
	}
	if coal > 0 {
		p.txCoal.Add(coal)
	}
	if tails > 0 {
		p.txTail.Add(tails)
	}
	if bad > 0 {
		p.txBad.Add(bad)
	}
}

// send writes the ready messages, a batch per sendmmsg, until they are all
// gone or the socket is full; sent (or refused) frames free their slots,
// and the slots of the frames merged into them.
func (p *Port) send() error {
	done, joinedDone := 0, 0
	var err error
	for done < len(p.ready) {
		n := min(len(p.ready)-done, p.batch)
		p.wPiece = p.wPiece[:0]
		jat := joinedDone
		for i, m := range p.ready[done : done+n] {
			b := p.slotBuf(m.slot)
			first := len(p.wPiece)
			p.wPiece = append(p.wPiece, b[frameOff-afpacket.VnetHdrLen:frameOff+int(m.len)])
			if len(m.tail) > 0 {
				p.wPiece = append(p.wPiece, m.tail)
			}
			for _, e := range p.joined[jat : jat+int(m.joined)] {
				p.wPiece = append(p.wPiece, p.Frame(e)[m.payload:])
			}
			jat += int(m.joined)
			p.wFrame[i] = p.wPiece[first:len(p.wPiece):len(p.wPiece)]
		}
		var k int
		k, err = p.sock.WriteGather(p.wFrame[:n])
		// The pieces are the kernel's now: no tail (an engine ring, of a
		// flow perhaps long gone) stays reachable from these arrays.
		clear(p.wPiece)
		clear(p.wFrame[:n])
		for _, m := range p.ready[done : done+k] {
			p.txFree = append(p.txFree, m.slot)
			for _, e := range p.joined[joinedDone : joinedDone+int(m.joined)] {
				p.txFree = append(p.txFree, p.slotOf(e.Addr))
			}
			joinedDone += int(m.joined)
		}
		done += k
		if err != nil || k < n {
			break
		}
	}
	left := copy(p.ready, p.ready[done:])
	clear(p.ready[left:]) // no tail kept alive
	p.ready = p.ready[:left]
	p.joined = p.joined[:copy(p.joined, p.joined[joinedDone:])]
	// What waits for room in the socket keeps no tail: the sender may
	// write over a tail once Kick returns (bump.Desc), so its bytes move
	// into the slot, behind the headers, now.
	for i := range p.ready {
		if m := &p.ready[i]; len(m.tail) > 0 {
			copy(p.slotBuf(m.slot)[frameOff+int(m.len):], m.tail)
			m.len += int32(len(m.tail))
			m.tail = nil
		}
	}
	return err
}

// pending reports whether frames wait for room in the socket.
func (p *Port) pending() bool { return len(p.ready) > 0 }

// Wait implements bump.Port: poll(2) until a frame may be read, or until
// timeout; with frames waiting to be sent, also until there is room for
// them, which it then sends.
func (p *Port) Wait(timeout time.Duration) error {
	fds := p.self
	if p.pending() {
		fds[0].Events |= unix.POLLOUT
	}
	if _, err := ppoll(fds[:], timeout); err != nil {
		return err
	}
	if p.pending() {
		_ = p.send()
	}
	return nil
}

// WaitPair implements bump.PairWaiter: one poll(2) over p's socket,
// other's (a worker's inside and outside port) and the wake source's
// eventfd, as appliance/afxdp does for AF_XDP sockets.
func (p *Port) WaitPair(other bump.Port, wake *bump.Wake, timeout time.Duration) (handled, woke bool, err error) {
	o, ok := other.(*Port)
	if !ok {
		return false, false, nil
	}
	fds := [3]unix.PollFd{p.self[0], o.self[0], {Fd: -1}}
	if p.pending() {
		fds[0].Events |= unix.POLLOUT
	}
	if o.pending() {
		fds[1].Events |= unix.POLLOUT
	}
	if wake != nil && wake.Fd() >= 0 {
		fds[2] = unix.PollFd{Fd: int32(wake.Fd()), Events: unix.POLLIN}
	}
	if _, err := ppoll(fds[:], timeout); err != nil {
		return true, false, err
	}
	// A port poll(2) found nothing to read on (no event but POLLOUT) skips
	// its next Receive. The round after a wait receives from both ports,
	// and one of them at most had frames (neither, when the wake source
	// or the timeout ended the wait): at thousands of short connections a
	// second, where most waits end with a frame or two, that was a
	// recvmmsg for nothing per wait. For one Receive only: a frame that
	// came after poll(2) is read in the round after, or the next poll(2)
	// returns at once for it.
	p.rxIdle = fds[0].Revents&^unix.POLLOUT == 0
	o.rxIdle = fds[1].Revents&^unix.POLLOUT == 0
	for _, q := range []*Port{p, o} {
		if q.pending() {
			_ = q.send()
		}
	}
	return true, fds[2].Revents != 0, nil
}

// Segment implements bump.Segmenter (afpacket.Segment).
func (p *Port) Segment(frame []byte, mss int, out [][]byte, sizes []int) (int, error) {
	return afpacket.Segment(frame, mss, out, sizes)
}

// OffloadsChecksums implements bump.ChecksumOffloader: a frame queued with
// bump.CsumPartial leaves with NEEDS_CSUM, and the kernel (software GSO or
// the device's checksum offload) computes its TCP checksum.
func (p *Port) OffloadsChecksums() bool { return true }

// SendsGSO implements bump.GSOSender: a frame queued with Desc.GSO leaves
// with a virtio_net_hdr that has the kernel cut it into its segments
// (prepare). Not when the port sends the engine's frames one by one
// (noMerge, for the tests that measure merging).
func (p *Port) SendsGSO() bool { return !p.noMerge }

// SendsTails implements bump.TailSender: a super-frame's Desc.Tail goes
// out as a second piece of its message (sendmmsg's scatter-gather), read
// by the kernel's copy into its buffer; a frame that must wait for room in
// the socket gets its tail copied into its slot before Kick returns.
func (p *Port) SendsTails() bool { return p.SendsGSO() }

// WaitsInPoll implements bump.FdPoller.
func (p *Port) WaitsInPoll() {}

// ppoll is poll(2) with a timeout of nanosecond resolution; EINTR is no
// error.
func ppoll(fds []unix.PollFd, timeout time.Duration) (int, error) {
	ts := unix.NsecToTimespec(int64(max(timeout, 0)))
	n, err := unix.Ppoll(fds, &ts, nil)
	if err == unix.EINTR {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("afpacketport: poll: %w", err)
	}
	return n, nil
}

// Stats returns the port's counters. Safe from any goroutine.
func (p *Port) Stats() Stats {
	p.statsMu.Lock()
	s := p.sock.Stats()
	p.statsMu.Unlock()
	return Stats{
		RxFrames:             p.rxFrames.Load(),
		RxSuperSegments:      p.rxSuper.Load(),
		RxSegments:           p.rxSegs.Load(),
		RxChecksumsCompleted: p.rxDone.Load(),
		RxKernelDrops:        s.RxKernelDrops,
		RxTruncated:          s.RxTruncated,
		RxBad:                p.rxBad.Load(),
		RxEncapCut:           p.rxEncap.Load(),
		RxRoutedCut:          p.rxRouted.Load(),
		RxCutNoRoom:          p.rxCutNoRoom.Load(),
		RxErrors:             p.rxErr.Load(),
		TxFrames:             s.TxFrames,
		TxSuperSegments:      p.txSuper.Load(),
		TxSegments:           p.txSegs.Load(),
		TxCoalesced:          p.txCoal.Load(),
		TxTails:              p.txTail.Load(),
		TxDropped:            s.TxDropped,
		TxErrors:             s.TxErrors + p.txBad.Load(),
		BypassOff:            s.BypassOff,
	}
}

// Close closes the socket. Stop the worker first.
func (p *Port) Close() error { return p.sock.Close() }
