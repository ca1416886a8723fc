package afxdp

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/xsk"
)

// Ports is the kernel side of the appliance: the XDP classifier on both
// interfaces and one AF_XDP socket per (port, queue), registered with it.
type Ports struct {
	Bump  *xsk.Bump
	socks [2][]*xsk.Socket
	ports [2][]bump.Port
	names [2]string
	index [2]int // the interfaces the classifier and sockets are on

	fastPath bool // config fast_path
	paths    portPaths
}

// xskPort is the AF_XDP implementation of bump.Port: the socket itself, plus Wait.
// One worker drives both halves of the socket (and of its partner on the
// other port). While a TX half has frames a busy device did not take,
// xsk.Wait caps the sleep at xsk.TxRetry and its poll(2) retries the
// transmission.
type xskPort struct {
	*xsk.Socket
	self [1]*xsk.Socket
}

func (p *xskPort) Wait(timeout time.Duration) error {
	_, err := xsk.Wait(p.self[:], timeout)
	return err
}

// WaitPair implements bump.PairWaiter: one poll(2) over p's socket,
// other's (a worker's inside and outside queue) and the wake source's
// eventfd.
func (p *xskPort) WaitPair(other bump.Port, wake *bump.Wake, timeout time.Duration) (handled, woke bool, err error) {
	o, ok := other.(*xskPort)
	if !ok {
		return false, false, nil
	}
	fd := -1
	if wake != nil {
		fd = wake.Fd()
	}
	pair := [2]*xsk.Socket{p.Socket, o.Socket}
	_, woke, err = xsk.WaitFd(pair[:], fd, timeout)
	return true, woke, err
}

// WaitsInPoll implements bump.FdPoller: the worker's wake source needs its
// eventfd.
func (p *xskPort) WaitsInPoll() {}

// ErrNoInterface is returned by Open when a configured interface does not
// exist in the current network namespace.
var ErrNoInterface = errors.New("no such network interface")

// LookupInterfaces returns the interface indexes of cfg's inside and outside
// ports in the current network namespace.
func LookupInterfaces(cfg config.Config) ([2]int, error) {
	var idx [2]int
	for i, name := range []string{cfg.Inside, cfg.Outside} {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return idx, fmt.Errorf("%s interface %q: %w", bump.PortID(i), name, ErrNoInterface)
		}
		idx[i] = ifi.Index
	}
	return idx, nil
}

// Open sets up both ports of cfg in the current network namespace: it
// first detaches XDP programs a crashed earlier run left behind (so a restart
// works), then attaches the classifier (cfg.XDPMode, with native-to-generic
// fallback under "auto") with its fast path switched as cfg.FastPath says
// (off: every frame, non-TCP included, comes to the sockets; also off for a
// port whose redirect to the other cannot deliver, see CheckPaths), then opens and
// registers one socket per queue (cfg.BindMode, zero-copy-to-copy fallback
// under "auto"). It ignores cfg.Backend: this is the AF_XDP backend
// (package appliance/backend chooses).
func Open(cfg config.Config) (*Ports, error) { return open(cfg, xsk.SlowPathXSK) }

// OpenStack is Open for another backend on the same ports: it attaches the
// classifier with xsk.SlowPathStack (worker-bound frames are passed to the
// kernel, where an AF_PACKET socket on the port takes them and the stack
// never sees them) and opens no sockets: Queues is empty.
func OpenStack(cfg config.Config) (*Ports, error) { return open(cfg, xsk.SlowPathStack) }

func open(cfg config.Config, slow xsk.SlowPath) (_ *Ports, err error) {
	x := &Ports{names: [2]string{cfg.Inside, cfg.Outside}, fastPath: cfg.FastPath}
	ifindex, err := LookupInterfaces(cfg)
	if err != nil {
		return nil, err
	}
	x.index = ifindex
	for i, idx := range ifindex {
		if err := xsk.CleanupStale(idx); err != nil {
			return nil, fmt.Errorf("%s interface %q: clean up stale XDP program: %w", bump.PortID(i), x.names[i], err)
		}
	}
	mode := map[string]xsk.XDPMode{"auto": xsk.XDPAuto, "native": xsk.XDPNative, "generic": xsk.XDPGeneric}[cfg.XDPMode]
	x.Bump, err = xsk.AttachBump(ifindex[0], ifindex[1], xsk.AttachOptions{Mode: mode, SlowPath: slow})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			x.Close()
		}
	}()
	// Before any socket is registered: until then the program drops what
	// it would send to user space, so nothing slips past the switch. A
	// port whose redirect cannot deliver gets its fast path off.
	if err := x.Bump.SetFastPath(false); err != nil {
		return nil, err
	}
	if _, err := x.checkPaths(); err != nil {
		return nil, err
	}
	if slow == xsk.SlowPathStack {
		return x, nil
	}
	bind := map[string]xsk.BindMode{"auto": xsk.BindAuto, "copy": xsk.BindCopy, "zerocopy": xsk.BindZeroCopy}[cfg.BindMode]
	for i := range 2 {
		for q := range cfg.Queues {
			s, err := xsk.Open(ifindex[i], xsk.Options{
				Queue: q, NumFrames: cfg.Frames, FrameSize: cfg.FrameSize, RingSize: cfg.RingSize, Bind: bind,
			})
			if err != nil {
				return nil, fmt.Errorf("%s interface %q queue %d: %w", bump.PortID(i), x.names[i], q, err)
			}
			x.socks[i] = append(x.socks[i], s)
			x.ports[i] = append(x.ports[i], &xskPort{Socket: s, self: [1]*xsk.Socket{s}})
			if err := x.Bump.Register(bump.PortID(i), q, s); err != nil {
				return nil, err
			}
		}
	}
	return x, nil
}

// Queues returns the inside and outside ports, one per queue.
func (x *Ports) Queues() (inside, outside []bump.Port) { return x.ports[0], x.ports[1] }

// QueuesOf returns port's queues (one with the afpacket backend).
func (x *Ports) QueuesOf(port bump.PortID) []bump.Port { return x.ports[port.Index()] }

// Ifindex is the interface index of port as Open found it: the interface
// the classifier and the sockets are on.
func (x *Ports) Ifindex(port bump.PortID) int { return x.index[port.Index()] }

// XDPMode reports how the classifier is attached to port ("native" or
// "generic"), BindMode how its sockets are bound ("zerocopy" or "copy").
func (x *Ports) XDPMode(port bump.PortID) string { return x.Bump.Mode(port) }

// BindMode: see XDPMode.
func (x *Ports) BindMode(port bump.PortID) string {
	if s := x.socks[port.Index()]; len(s) > 0 {
		return s[0].BindMode()
	}
	return ""
}

// SocketStats sums the AF_XDP statistics of port's sockets.
func (x *Ports) SocketStats(port bump.PortID) xsk.Stats {
	var t xsk.Stats
	for _, s := range x.socks[port.Index()] {
		st := s.Stats()
		t.RxDropped += st.RxDropped
		t.RxInvalidDescs += st.RxInvalidDescs
		t.TxInvalidDescs += st.TxInvalidDescs
		t.RxRingFull += st.RxRingFull
		t.RxFillRingEmptyDescs += st.RxFillRingEmptyDescs
		t.TxRingEmptyDescs += st.TxRingEmptyDescs
		t.RxFrames += st.RxFrames
		t.TxFrames += st.TxFrames
		t.TxCompleted += st.TxCompleted
		t.Kicks += st.Kicks
		t.KickBusy += st.KickBusy
		t.RxWakeups += st.RxWakeups
		t.TxExhausted += st.TxExhausted
		t.Misuse += st.Misuse
		t.TxFree += st.TxFree
	}
	return t
}

// RingLevels returns the levels of port's AF_XDP rings, one entry per
// queue (none with the afpacket backend: its sockets have no rings).
func (x *Ports) RingLevels(port bump.PortID) [][4]xsk.RingLevel {
	var out [][4]xsk.RingLevel
	for _, s := range x.socks[port.Index()] {
		out = append(out, s.RingLevels())
	}
	return out
}

// Close detaches the classifier from both interfaces, then closes the
// sockets. Stop the workers first.
func (x *Ports) Close() error {
	var errs []error
	if x.Bump != nil {
		errs = append(errs, x.Bump.Close())
	}
	for i := range x.socks {
		for _, s := range x.socks[i] {
			errs = append(errs, s.Close())
		}
		x.socks[i], x.ports[i] = nil, nil
	}
	return errors.Join(errs...)
}
