package impair

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Forwarder moves frames between two interfaces of the current network
// namespace through two Cores (A->B and B->A). Frames are read and written
// with a virtio_net_hdr (PACKET_VNET_HDR), so checksum-offload state travels
// with them; a TCP super-segment (GRO on the receiving interface, or a
// sender's GSO) goes through a Core whole and is cut into its segments when
// it is written (segment.go says why the kernel must not cut it).
type Forwarder struct {
	socks [2]int
	cores [2]*Core
	names [2]string
	stop  atomic.Bool
	wg    sync.WaitGroup
	// Errors counts the frames per direction that writing lost (each
	// segment of a split super-segment counts).
	Errors [2]atomic.Uint64
	// Split counts the super-segments each direction cut into segments.
	Split [2]atomic.Uint64
	// Shift, when set before Start, rewrites the TCP segments' sequence
	// numbers as they come in (a sequence-randomising firewall).
	Shift *SeqShift
}

// NewForwarder opens AF_PACKET sockets on ifaces a and b. cfg applies to
// both directions; the B->A direction uses Seed+1.
func NewForwarder(a, b string, cfg Config) (*Forwarder, error) {
	f := &Forwarder{names: [2]string{a, b}, socks: [2]int{-1, -1}}
	for i, name := range f.names {
		c := cfg
		c.Seed += uint64(i)
		core, err := NewCore(c)
		if err != nil {
			return nil, err
		}
		f.cores[i] = core
		fd, err := openPacket(name)
		if err != nil {
			f.Close()
			return nil, err
		}
		f.socks[i] = fd
	}
	return f, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func openPacket(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return -1, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	for _, o := range []struct {
		level, opt, v int
	}{
		{unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1},
		{unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1}, // our own writes are not input
		{unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16 << 20},
		{unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4 << 20},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.v); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("setsockopt %d/%d on %s: %w", o.level, o.opt, name, err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind %s: %w", name, err)
	}
	return fd, nil
}

// Core returns the core of direction i (0: frames received on a, sent on b).
func (f *Forwarder) Core(i int) *Core { return f.cores[i] }

// Start runs one goroutine per direction until Stop.
func (f *Forwarder) Start() {
	for i := range 2 {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.loop(i)
		}()
	}
}

// Stop ends both loops; held frames are sent before it returns.
func (f *Forwarder) Stop() {
	f.stop.Store(true)
	f.wg.Wait()
}

// Close releases the sockets (after Stop).
func (f *Forwarder) Close() {
	for i, fd := range f.socks {
		if fd >= 0 {
			unix.Close(fd)
			f.socks[i] = -1
		}
	}
}

func (f *Forwarder) loop(dir int) {
	in, out := f.socks[dir], f.socks[1-dir]
	core := f.cores[dir]
	buf := make([]byte, vnetHdrLen+65536+64)
	seg := newSegmenter()
	tx := newSender(out)
	emit := func(b []byte) {
		frames, cut := seg.split(b)
		if cut {
			f.Split[dir].Add(1)
		}
		if lost := tx.send(frames, &f.stop); lost > 0 {
			f.Errors[dir].Add(uint64(lost))
		}
	}
	pfd := []unix.PollFd{{Fd: int32(in), Events: unix.POLLIN}}
	for !f.stop.Load() {
		wait := 100 * time.Millisecond
		if d, ok := core.NextDeadline(); ok {
			wait = min(wait, time.Duration(d-time.Now().UnixNano()))
		}
		ms := int((wait + time.Millisecond - 1) / time.Millisecond)
		if ms > 0 {
			if _, err := unix.Poll(pfd, ms); err != nil && !errors.Is(err, unix.EINTR) {
				f.Errors[dir].Add(1)
			}
		}
		for range 256 {
			n, err := unix.Read(in, buf)
			if err != nil || n <= vnetHdrLen {
				break
			}
			if f.Shift != nil {
				f.Shift.Apply(dir, buf[:n])
			}
			core.Push(time.Now().UnixNano(), buf[:n], emit)
		}
		core.Tick(time.Now().UnixNano(), emit)
	}
	core.Flush(emit)
}

// sender writes frames to one socket, a batch with one sendmmsg.
type sender struct {
	fd   int
	msgs []unix.Mmsghdr
	iovs []unix.Iovec
}

func newSender(fd int) *sender {
	return &sender{fd: fd, msgs: make([]unix.Mmsghdr, maxSegments), iovs: make([]unix.Iovec, maxSegments)}
}

// send writes frames (at most maxSegments) in order. While the device queue
// pushes back it waits for room, until stop; it returns the number of
// frames lost (refused by the kernel, or not sent at stop).
func (s *sender) send(frames [][]byte, stop *atomic.Bool) (lost int) {
	n := len(frames)
	for i, b := range frames {
		s.iovs[i].Base = &b[0]
		s.iovs[i].SetLen(len(b))
		s.msgs[i].Hdr.Iov = &s.iovs[i]
		s.msgs[i].Hdr.Iovlen = 1
	}
	for done := 0; done < n; {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.msgs[done])), uintptr(n-done), 0, 0, 0)
		switch e {
		case 0:
			done += int(r)
		case unix.EINTR:
		case unix.EAGAIN, unix.ENOBUFS:
			// The device queue pushes back: wait for room.
			pfd := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLOUT}}
			_, _ = unix.Poll(pfd, 10)
			if stop.Load() {
				return lost + n - done
			}
		default:
			lost++ // the frame sendmmsg stopped at is refused
			done++
		}
	}
	return lost
}

// SocketDrops returns the frames each socket's receive queue dropped
// (PACKET_STATISTICS; reading resets the kernel's counter).
func (f *Forwarder) SocketDrops() [2]uint64 {
	var r [2]uint64
	for i, fd := range f.socks {
		var st unix.TpacketStats
		l := uint32(unsafe.Sizeof(st))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS,
			uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&l)), 0)
		if e == 0 {
			r[i] = uint64(st.Drops)
		}
	}
	return r
}

// Report is a one-line summary of both directions' counters.
func (f *Forwarder) Report() string {
	drops := f.SocketDrops()
	s := ""
	for i, c := range f.cores {
		s += fmt.Sprintf("%s->%s: in=%d out=%d held=%d overtaken=%d duplicated=%d full=%d write_errors=%d socket_drops=%d split=%d",
			f.names[i], f.names[1-i], c.C.In.Load(), c.C.Out.Load(), c.C.Held.Load(), c.C.Overtaken.Load(),
			c.C.Duplicated.Load(), c.C.Full.Load(), f.Errors[i].Load(), drops[i], f.Split[i].Load())
		if f.Shift != nil {
			s += fmt.Sprintf(" shifted=%d sack_left=%d", f.Shift.Shifted[i].Load(), f.Shift.SACKLeft[i].Load())
		}
		s += "\n"
	}
	return s
}
