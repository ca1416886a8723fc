package afpacket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxFrame is the largest frame a socket can hand over: an IP packet of
// 64 KiB (the most an IPv4 length or a GRO super-segment without BIG TCP
// says) behind an Ethernet header and two VLAN tags. A receive buffer needs
// MaxFrame bytes after its offset, plus VnetHdrLen before it.
const MaxFrame = 65535 + ethHdrLen + 8

// DefaultBatch is the number of frames one Read or Write moves at most when
// Options.Batch is zero.
const DefaultBatch = 64

// Options configure Open.
type Options struct {
	// VnetHdr turns on PACKET_VNET_HDR: every frame read or written is
	// preceded by a virtio_net_hdr, super-segments come in whole and may go
	// out whole. Without it, frames are plain and no larger than the MTU.
	VnetHdr bool
	// QdiscBypass turns on PACKET_QDISC_BYPASS: frames go to the driver
	// directly, without the interface's qdisc (no queueing, no backpressure).
	// The kernel then drops what the device cannot take as it is: a GSO
	// frame it cannot segment itself (no TSO, TSO6 or TSO_ECN where the
	// frame needs it, or as long as its gso_max_size), which the queueing
	// path would have segmented in software, and any frame while the
	// driver is busy. The first such drop turns the bypass off for good
	// and the frame is sent again (Stats.BypassOff).
	QdiscBypass bool
	// Batch is the most frames one Read or Write moves (DefaultBatch if 0).
	Batch int
	// BufBytes sizes the socket's receive and send buffers (SO_RCVBUFFORCE,
	// SO_SNDBUFFORCE); 0 means 32 MiB. A 64 KiB super-segment costs about
	// 66 KiB of it, a small frame a page or more: 8 MiB overflowed when a
	// thousand connections answered at once (docs/performance.md).
	BufBytes int
}

// Stats are a socket's counters since Open.
type Stats struct {
	RxFrames      uint64 // frames handed out by Read
	RxBytes       uint64 // their bytes (frames, without virtio_net_hdr)
	RxTruncated   uint64 // frames larger than the caller's buffer, dropped
	RxKernelDrops uint64 // frames the kernel dropped for a full receive buffer (PACKET_STATISTICS)
	TxFrames      uint64 // frames the kernel took
	TxBytes       uint64
	TxDropped     uint64 // frames the device dropped (ENOBUFS)
	TxErrors      uint64 // frames the kernel refused (a bad header, too long without GSO)
	BypassOff     uint64 // 1 once a drop turned PACKET_QDISC_BYPASS off (Options.QdiscBypass)
}

// Socket is one AF_PACKET socket bound to one interface. Its receive half
// (Read) and send half (Write) may each be driven by its own goroutine;
// neither half may be used by two goroutines at once.
type Socket struct {
	fd      int
	ifindex int
	vnet    bool
	closed  atomic.Bool

	rxMsgs []unix.Mmsghdr
	rxIovs []unix.Iovec
	rxCtl  []byte // per message auxCtlLen bytes for PACKET_AUXDATA
	txMsgs []unix.Mmsghdr
	txIovs []unix.Iovec // one per message (Write)
	gIovs  []unix.Iovec // the pieces of WriteGather's messages, grown as needed

	rxFrames, rxBytes, rxTrunc, rxKDrops atomic.Uint64
	txFrames, txBytes, txDropped, txErr  atomic.Uint64
	bypass                               bool // PACKET_QDISC_BYPASS is on (the send half's)
	bypassOff                            atomic.Uint64
}

// ErrClosed is returned by a Socket's methods after Close.
var ErrClosed = errors.New("afpacket: socket closed")

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Open creates a socket on the interface ifindex of the calling thread's
// network namespace and binds it for every protocol. The interface is put in
// promiscuous mode for as long as the socket lives (a bump's frames are
// addressed to other machines).
func Open(ifindex int, o Options) (*Socket, error) {
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	if o.BufBytes <= 0 {
		o.BufBytes = 32 << 20
	}
	// Protocol 0 until bind: the socket receives nothing before its
	// options are set.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("afpacket: socket: %w", err)
	}
	s := &Socket{
		fd: fd, ifindex: ifindex, vnet: o.VnetHdr,
		rxMsgs: make([]unix.Mmsghdr, o.Batch), rxIovs: make([]unix.Iovec, o.Batch),
		rxCtl:  make([]byte, o.Batch*auxCtlLen),
		txMsgs: make([]unix.Mmsghdr, o.Batch), txIovs: make([]unix.Iovec, o.Batch),
	}
	fail := func(what string, err error) (*Socket, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("afpacket: %s: %w", what, err)
	}
	if o.VnetHdr {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			return fail("PACKET_VNET_HDR", err)
		}
	}
	// The kernel moves a frame's outer VLAN tag out of the data before a
	// packet socket sees it; PACKET_AUXDATA reports it, and Read puts it back.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return fail("PACKET_AUXDATA", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return fail("PACKET_IGNORE_OUTGOING", err)
	}
	if o.QdiscBypass {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fail("PACKET_QDISC_BYPASS", err)
		}
		s.bypass = true
	}
	for _, opt := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt[0], o.BufBytes) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt[1], o.BufBytes) // capped by rmem_max/wmem_max without CAP_NET_ADMIN
		}
	}
	mr := unix.PacketMreq{Ifindex: int32(ifindex), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mr); err != nil {
		return fail("PACKET_ADD_MEMBERSHIP", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		return fail("bind", err)
	}
	for i := range s.rxMsgs {
		s.rxMsgs[i].Hdr.Iov = &s.rxIovs[i]
		s.rxMsgs[i].Hdr.Iovlen = 1
		s.rxMsgs[i].Hdr.Control = &s.rxCtl[i*auxCtlLen]
	}
	return s, nil
}

// VnetHdr reports whether frames carry a virtio_net_hdr.
func (s *Socket) VnetHdr() bool { return s.vnet }

// Ifindex is the interface the socket is bound to.
func (s *Socket) Ifindex() int { return s.ifindex }

// Fd is the socket's file descriptor, for a caller that polls several
// sockets (and an eventfd) at once. It stays owned by the Socket: do not
// close it or read from it.
func (s *Socket) Fd() int { return s.fd }

func (s *Socket) hdrLen() int {
	if s.vnet {
		return VnetHdrLen
	}
	return 0
}

// Read receives up to min(len(bufs), len(sizes), Options.Batch) frames
// with one recvmmsg and returns how many. Frame i is bufs[i][offset :
// offset+sizes[i]]; with VnetHdr its virtio_net_hdr is in bufs[i][offset-
// VnetHdrLen : offset] (so offset must be at least VnetHdrLen). A frame that
// does not fit its buffer is dropped and counted; to keep the frames first,
// Read may swap elements of bufs. Read does not block: with nothing to
// read it returns 0, nil.
func (s *Socket) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	hl := s.hdrLen()
	if offset < hl {
		return 0, fmt.Errorf("afpacket: offset %d leaves no room for the virtio_net_hdr", offset)
	}
	n := min(len(bufs), len(sizes), len(s.rxMsgs))
	if n == 0 {
		return 0, nil
	}
	for i := range n {
		b := bufs[i]
		if len(b) <= offset {
			return 0, ErrNoRoom
		}
		s.rxIovs[i].Base = &b[offset-hl]
		s.rxIovs[i].SetLen(len(b) - offset + hl)
		s.rxMsgs[i].Hdr.Flags = 0
		s.rxMsgs[i].Hdr.SetControllen(auxCtlLen)
		s.rxMsgs[i].Len = 0
	}
	var r uintptr
	for {
		var e unix.Errno
		r, _, e = unix.Syscall6(unix.SYS_RECVMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.rxMsgs[0])), uintptr(n), unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
		if e == 0 {
			break
		}
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, nil
		case unix.EBADF:
			return 0, ErrClosed
		}
		return 0, fmt.Errorf("afpacket: recvmmsg: %w", e)
	}
	k, bytes, trunc := 0, 0, 0
	for i := range int(r) {
		l := int(s.rxMsgs[i].Len) - hl
		if s.rxMsgs[i].Hdr.Flags&unix.MSG_TRUNC != 0 || l < 0 || l > len(bufs[i])-offset {
			trunc++
			continue
		}
		if tpid, tci, ok := s.vlanTag(i); ok {
			if l < 12 || l+4 > len(bufs[i])-offset {
				trunc++
				continue
			}
			insertVLAN(bufs[i][offset-hl:], hl, l, tpid, tci)
			l += 4
		}
		bufs[k], bufs[i] = bufs[i], bufs[k]
		sizes[k] = l
		bytes += l
		k++
	}
	s.rxFrames.Add(uint64(k))
	s.rxBytes.Add(uint64(bytes))
	if trunc > 0 {
		s.rxTrunc.Add(uint64(trunc))
	}
	return k, nil
}

// Write sends bufs[i][offset : offset+sizes[i]] for i below min(len(bufs),
// len(sizes), Options.Batch) with sendmmsg; with VnetHdr each frame's
// virtio_net_hdr must be in the VnetHdrLen bytes before offset. It returns
// how many frames it consumed, in order: sent, or dropped and counted
// (Stats.TxDropped when the device had no room, Stats.TxErrors when the
// kernel refused the frame). It does not block: when the socket's send
// buffer is full it returns early, and the caller may Wait(…, true) and
// write the rest.
func (s *Socket) Write(bufs [][]byte, sizes []int, offset int) (int, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	hl := s.hdrLen()
	if offset < hl {
		return 0, fmt.Errorf("afpacket: offset %d leaves no room for the virtio_net_hdr", offset)
	}
	n := min(len(bufs), len(sizes), len(s.txMsgs))
	for i := range n {
		if sizes[i] <= 0 || offset+sizes[i] > len(bufs[i]) {
			return 0, ErrNoRoom
		}
		s.txIovs[i].Base = &bufs[i][offset-hl]
		s.txIovs[i].SetLen(sizes[i] + hl)
		s.txMsgs[i].Hdr.Iov = &s.txIovs[i]
		s.txMsgs[i].Hdr.Iovlen = 1
	}
	return s.sendmmsg(n, func(i int) int { return sizes[i] })
}

// WriteGather is Write for frames in pieces, sent without joining them
// first (scatter-gather): frame i is the concatenation of frames[i], for i
// below min(len(frames), Options.Batch), and with VnetHdr its first piece
// begins with the virtio_net_hdr. No piece may be empty. It returns how many
// frames it consumed, as Write does.
func (s *Socket) WriteGather(frames [][][]byte) (int, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	hl := s.hdrLen()
	n := min(len(frames), len(s.txMsgs))
	s.gIovs = s.gIovs[:0]
	// The iovecs point into the callers' buffers: none may stay
	// reachable from here once the frames are sent (a buffer lent by
	// the engine is a flow's ring).
	defer func() { clear(s.gIovs) }()
	for _, f := range frames[:n] {
		if len(f) == 0 || len(f[0]) <= hl {
			return 0, ErrNoRoom
		}
		for _, piece := range f {
			if len(piece) == 0 {
				return 0, ErrNoRoom
			}
			v := unix.Iovec{Base: &piece[0]}
			v.SetLen(len(piece))
			s.gIovs = append(s.gIovs, v)
		}
	}
	at := 0
	for i, f := range frames[:n] {
		s.txMsgs[i].Hdr.Iov = &s.gIovs[at]
		s.txMsgs[i].Hdr.Iovlen = uint64(len(f))
		at += len(f)
	}
	return s.sendmmsg(n, func(i int) int {
		l := -hl
		for _, piece := range frames[i] {
			l += len(piece)
		}
		return l
	})
}

// sendmmsg sends the first n of txMsgs, as Write describes; size(i) is
// frame i's length without its virtio_net_hdr.
func (s *Socket) sendmmsg(n int, size func(i int) int) (int, error) {
	done, sent, bytes := 0, 0, 0
	for done < n {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.txMsgs[done])), uintptr(n-done), unix.MSG_DONTWAIT, 0, 0)
		if e == 0 {
			for i := done; i < done+int(r); i++ {
				bytes += size(i)
			}
			done += int(r)
			sent += int(r)
			continue
		}
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			s.addTx(sent, bytes)
			return done, nil
		case unix.EBADF:
			s.addTx(sent, bytes)
			return done, ErrClosed
		case unix.ENOBUFS:
			if s.bypass && unix.SetsockoptInt(s.fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 0) == nil {
				// Options.QdiscBypass: the queueing path carries what the
				// bypass dropped. The same frame again, that way.
				s.bypass = false
				s.bypassOff.Add(1)
				continue
			}
			s.txDropped.Add(1)
		default:
			s.txErr.Add(1)
		}
		done++ // the frame sendmmsg stopped at is gone
	}
	s.addTx(sent, bytes)
	return done, nil
}

// auxCtlLen is the control buffer for one PACKET_AUXDATA message.
var auxCtlLen = unix.CmsgSpace(sizeofAuxdata)

const sizeofAuxdata = int(unsafe.Sizeof(unix.TpacketAuxdata{}))

// vlanTag reports the outer VLAN tag PACKET_AUXDATA gave for message i.
func (s *Socket) vlanTag(i int) (tpid, tci uint16, ok bool) {
	m := &s.rxMsgs[i].Hdr
	if uint64(m.Controllen) < uint64(unix.CmsgLen(sizeofAuxdata)) || m.Flags&unix.MSG_CTRUNC != 0 {
		return 0, 0, false
	}
	ctl := s.rxCtl[i*auxCtlLen : (i+1)*auxCtlLen]
	c := (*unix.Cmsghdr)(unsafe.Pointer(&ctl[0]))
	if c.Level != unix.SOL_PACKET || c.Type != unix.PACKET_AUXDATA || uint64(c.Len) < uint64(unix.CmsgLen(sizeofAuxdata)) {
		return 0, 0, false
	}
	aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&ctl[unix.CmsgLen(0)]))
	if aux.Status&unix.TP_STATUS_VLAN_VALID == 0 {
		return 0, 0, false
	}
	tpid = ethP8021Q
	if aux.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
		tpid = aux.Vlan_tpid
	}
	return tpid, aux.Vlan_tci, true
}

// insertVLAN puts a tag back after the MAC addresses of the frame of l
// bytes that starts hl bytes into b (after its virtio_net_hdr, if hl is
// not 0), moving the rest of the frame up by 4 bytes: a copy of the whole
// frame, paid only by tagged frames. The header's offsets move with it.
func insertVLAN(b []byte, hl, l int, tpid, tci uint16) {
	f := b[hl : hl+l+4]
	copy(f[16:], f[12:l])
	binary.BigEndian.PutUint16(f[12:], tpid)
	binary.BigEndian.PutUint16(f[14:], tci)
	if hl == 0 {
		return
	}
	var h VnetHdr
	_ = h.Decode(b)
	if h.Flags&FlagNeedsCsum != 0 {
		h.CsumStart += 4
	}
	if h.HdrLen != 0 {
		h.HdrLen += 4
	}
	_ = h.Encode(b)
}

func (s *Socket) addTx(frames, bytes int) {
	s.txFrames.Add(uint64(frames))
	s.txBytes.Add(uint64(bytes))
}

// Wait blocks until the socket has a frame to read (write false) or room
// to write (write true), or until timeout; it reports which.
func (s *Socket) Wait(timeout time.Duration, write bool) (bool, error) {
	if s.closed.Load() {
		return false, ErrClosed
	}
	ev := int16(unix.POLLIN)
	if write {
		ev = unix.POLLOUT
	}
	fds := [1]unix.PollFd{{Fd: int32(s.fd), Events: ev}}
	n, err := unix.Poll(fds[:], int(timeout/time.Millisecond))
	if err == unix.EINTR {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("afpacket: poll: %w", err)
	}
	return n > 0 && fds[0].Revents&ev != 0, nil
}

// Stats returns the counters. It reads PACKET_STATISTICS (which the kernel
// resets on every read), so call it from one goroutine at a time.
func (s *Socket) Stats() Stats {
	if !s.closed.Load() {
		if st, err := unix.GetsockoptTpacketStats(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			s.rxKDrops.Add(uint64(st.Drops))
		}
	}
	return Stats{
		RxFrames: s.rxFrames.Load(), RxBytes: s.rxBytes.Load(), RxTruncated: s.rxTrunc.Load(),
		RxKernelDrops: s.rxKDrops.Load(),
		TxFrames:      s.txFrames.Load(), TxBytes: s.txBytes.Load(), TxDropped: s.txDropped.Load(), TxErrors: s.txErr.Load(),
		BypassOff: s.bypassOff.Load(),
	}
}

// Close closes the socket. Calls after the first do nothing. The caller must
// not Close while another goroutine is inside Read, Write or Wait.
func (s *Socket) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return unix.Close(s.fd)
}
