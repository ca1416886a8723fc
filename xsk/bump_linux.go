package xsk

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// XDPMode selects how AttachBump attaches the classifier.
type XDPMode int

const (
	// XDPAuto tries native (driver) mode and falls back to generic (SKB)
	// mode per port; Mode reports the result.
	XDPAuto XDPMode = iota
	XDPNative
	XDPGeneric
)

const (
	// MaxQueues is the XSKMAP size of each port: queues 0..MaxQueues-1.
	MaxQueues = 64
	// FastPathEntries is the size of the fast-path LRU map. When it is full
	// the least recently used flow is evicted and its frames go back to the
	// engine, which may insert it again: correctness never depends on the map.
	FastPathEntries = 1 << 16
)

// SlowPath says where the classifier sends the frames the workers must see
// (every verdict but the fast path and non-TCP).
type SlowPath int

const (
	// SlowPathXSK redirects them to the AF_XDP socket registered for the RX
	// queue (Register), dropping them when there is none.
	SlowPathXSK SlowPath = iota
	// SlowPathStack passes them to the kernel (XDP_PASS), counted as
	// ToStack, for an AF_PACKET socket on the port (package
	// appliance/afpacketport): GRO coalesces TCP segments into
	// super-segments on the way. A TC ingress program on each port, which
	// runs after the AF_PACKET taps, drops every such frame (StackDropped,
	// one per skb, so a GRO super-segment counts once): the appliance
	// namespace's own stack never processes or answers one, whatever its
	// addresses, forwarding or neighbour settings.
	SlowPathStack
)

func (s SlowPath) String() string {
	switch s {
	case SlowPathXSK:
		return "xsk"
	case SlowPathStack:
		return "stack"
	}
	return fmt.Sprintf("SlowPath(%d)", int(s))
}

// AttachOptions are AttachBump's choices.
type AttachOptions struct {
	Mode     XDPMode  // native, generic, or native falling back to generic
	SlowPath SlowPath // where worker-bound frames go
}

// ErrBadPort is returned for a PortID other than Inside and Outside.
var ErrBadPort = errors.New("xsk: bad port")

// Bump is the XDP classifier attached to the two ports of a bump-in-the-wire
// (docs/architecture.md §3): per port one program with its own XSKMAP and a devmap to
// the other port, one fast-path map and one counter map shared by both.
type Bump struct {
	ifindex  [2]int
	mode     [2]string
	slow     SlowPath
	progs    [2]*ebpf.Program
	links    [2]link.Link
	drops    [2]*ebpf.Program // SlowPathStack: TC ingress programs
	dlinks   [2]link.Link
	xsks     [2]*ebpf.Map
	peers    [2]*ebpf.Map
	flows    *ebpf.Map
	counters *ebpf.Map
	config   *ebpf.Map
	// used is set by the first AllowFastPath. Until then the fast-path map
	// is empty (it is this Bump's own, never pinned), and RemoveFastPath,
	// which the workers call for the tuple of every new connection, needs
	// no system call: an appliance whose connections are all encrypted
	// made two BPF map deletes per connection for nothing.
	used atomic.Bool
}

// newBump creates the maps and loads both programs without attaching them
// (tests run them with BPF_PROG_TEST_RUN).
func newBump(inside, outside int, slow SlowPath) (_ *Bump, err error) {
	b := &Bump{ifindex: [2]int{inside, outside}, slow: slow}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	b.flows, err = ebpf.NewMap(&ebpf.MapSpec{
		Name: "tcpinc_flows", Type: ebpf.LRUHash, KeySize: 40, ValueSize: 8, MaxEntries: FastPathEntries,
	})
	if err != nil {
		return nil, fmt.Errorf("xsk: fast-path map: %w", err)
	}
	b.counters, err = ebpf.NewMap(&ebpf.MapSpec{
		Name: "tcpinc_verdicts", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 2 * numCounters,
	})
	if err != nil {
		return nil, fmt.Errorf("xsk: counter map: %w", err)
	}
	b.config, err = ebpf.NewMap(&ebpf.MapSpec{
		Name: "tcpinc_config", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 2,
	})
	if err != nil {
		return nil, fmt.Errorf("xsk: config map: %w", err)
	}
	for p := range 2 {
		b.xsks[p], err = ebpf.NewMap(&ebpf.MapSpec{
			Name: "tcpinc_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: MaxQueues,
		})
		if err != nil {
			return nil, fmt.Errorf("xsk: %s XSKMAP: %w", PortID(p), err)
		}
		b.peers[p], err = ebpf.NewMap(&ebpf.MapSpec{
			Name: "tcpinc_peer", Type: ebpf.DevMap, KeySize: 4, ValueSize: 4, MaxEntries: 1,
		})
		if err != nil {
			return nil, fmt.Errorf("xsk: %s devmap: %w", PortID(p), err)
		}
		if err = b.peers[p].Put(uint32(0), uint32(b.ifindex[1-p])); err != nil {
			return nil, fmt.Errorf("xsk: %s devmap entry (ifindex %d): %w", PortID(p), b.ifindex[1-p], err)
		}
		b.progs[p], err = ebpf.NewProgram(&ebpf.ProgramSpec{
			Name:    "tcpinc_classify",
			Type:    ebpf.XDP,
			License: "Dual MIT/GPL",
			Instructions: classifierProgram(classifierMaps{
				xsks: b.xsks[p], peer: b.peers[p], flows: b.flows, counters: b.counters,
				config: b.config, base: p * numCounters, slow: slow,
				peerDev: b.ifindex[1-p], peerFit: frameFit(b.ifindex[1-p]),
			}),
		})
		if err != nil {
			return nil, fmt.Errorf("xsk: load %s classifier: %w", PortID(p), err)
		}
		if slow != SlowPathStack {
			continue
		}
		b.drops[p], err = ebpf.NewProgram(&ebpf.ProgramSpec{
			Name:         "tcpinc_stackdrop",
			Type:         ebpf.SchedCLS,
			License:      "Dual MIT/GPL",
			Instructions: stackDropProgram(b.counters, p*numCounters),
		})
		if err != nil {
			return nil, fmt.Errorf("xsk: load %s stack drop program: %w", PortID(p), err)
		}
	}
	return b, nil
}

// frameFit is the longest frame the kernel forwards to interface ifindex
// of the calling thread's namespace as it is now: its MTU, an Ethernet
// header and a VLAN tag (xdp_ok_fwd_dev); 0 if it cannot be read.
func frameFit(ifindex int) int {
	ifi, err := net.InterfaceByIndex(ifindex)
	if err != nil {
		return 0
	}
	return ifi.MTU + 14 + 4
}

// stackDropProgram is the TC ingress program of a SlowPathStack bump: it
// counts the frame in the port's StackDropped slot and drops it
// (TC_ACT_SHOT). TC ingress runs after the AF_PACKET taps
// (__netif_receive_skb_core delivers to ptype_all before sch_handle_ingress),
// so the port's socket has its copy by then.
func stackDropProgram(counters *ebpf.Map, base int) asm.Instructions {
	var b progBuilder
	b.count(counters, base+cntStackDropped)
	b.emit(asm.Mov.Imm(asm.R0, tcActShot), asm.Return())
	return b.insns
}

// AttachBump loads the classifier and attaches one program to each port
// (interface indexes in the calling thread's network namespace) through
// bpf_link, so the programs go away with the process even if it crashes.
// With XDPAuto each port gets native mode if the driver supports it and
// generic mode otherwise; Mode reports which. Nothing is logged.
//
// Frames then take one of two paths (see the package documentation): TCP
// SYNs, flows not in the fast-path map and anything the classifier cannot
// parse go to the AF_XDP socket registered for the RX queue (Register),
// and so do TCP frames with FIN or RST set; non-TCP frames and fast-path
// flows are redirected to the other port. SetFastPath(false) sends every
// frame to the socket.
//
// veth caveat: in native mode the redirect to the other port is an
// ndo_xdp_xmit into a veth, which delivers only if the veth's peer (the
// interface in the neighbouring namespace) runs NAPI: an XDP program is
// attached to it or `ethtool -K <peer> gro on`. Otherwise the kernel drops
// the frames after the program returned XDP_REDIRECT (ToPeer counts them as
// redirected). The operator sees the drops as the xdp_xmit error counters
// of `ethtool -S <port>` and the xdp:xdp_redirect_err tracepoint
// (`perf stat -e xdp:xdp_redirect_err`). Real NICs have no such condition,
// and generic mode transmits through the normal skb path (a frame longer
// than the other port forwards goes to the workers: Oversize).
// RedirectReady tells whether the condition holds.
//
// o.SlowPath chooses where the frames for the workers go: to the AF_XDP
// sockets (SlowPathXSK, the zero value) or to the kernel for an AF_PACKET
// socket (SlowPathStack, see there); the rest of the program is the same.
func AttachBump(inside, outside int, o AttachOptions) (*Bump, error) {
	mode := o.Mode
	if inside == outside || inside <= 0 || outside <= 0 {
		return nil, fmt.Errorf("%w: interfaces %d and %d", ErrBadPort, inside, outside)
	}
	if mode < XDPAuto || mode > XDPGeneric {
		return nil, fmt.Errorf("xsk: bad XDP mode %d", mode)
	}
	if o.SlowPath != SlowPathXSK && o.SlowPath != SlowPathStack {
		return nil, fmt.Errorf("xsk: bad slow path %d", o.SlowPath)
	}
	b, err := newBump(inside, outside, o.SlowPath)
	if err != nil {
		return nil, err
	}
	// The programs start with the fast path off: until the caller says
	// otherwise nothing is forwarded in the kernel, not even in the
	// moment between attaching and the caller's SetFastPath.
	if err := b.SetFastPath(false); err != nil {
		b.Close()
		return nil, err
	}
	for p := range 2 {
		// The drop program first: nothing the classifier passes may
		// reach the stack, not even in the moment between the two.
		if b.drops[p] != nil {
			l, err := link.AttachTCX(link.TCXOptions{Interface: b.ifindex[p], Program: b.drops[p], Attach: ebpf.AttachTCXIngress})
			if err != nil {
				b.Close()
				return nil, fmt.Errorf("xsk: attach %s (ifindex %d) TC ingress drop: %w", PortID(p), b.ifindex[p], err)
			}
			b.dlinks[p] = l
		}
		if err := b.attach(p, mode); err != nil {
			b.Close()
			return nil, err
		}
	}
	return b, nil
}

// SlowPath reports where the classifier sends worker-bound frames.
func (b *Bump) SlowPath() SlowPath { return b.slow }

func (b *Bump) attach(p int, mode XDPMode) error {
	var nativeErr error
	if mode != XDPGeneric {
		l, err := link.AttachXDP(link.XDPOptions{Program: b.progs[p], Interface: b.ifindex[p], Flags: link.XDPDriverMode})
		if err == nil {
			b.links[p], b.mode[p] = l, "native"
			return nil
		}
		if mode == XDPNative {
			return fmt.Errorf("xsk: attach %s (ifindex %d) native: %w", PortID(p), b.ifindex[p], err)
		}
		nativeErr = err
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: b.progs[p], Interface: b.ifindex[p], Flags: link.XDPGenericMode})
	if err != nil {
		if nativeErr != nil {
			return fmt.Errorf("xsk: attach %s (ifindex %d) generic: %w (native: %v)", PortID(p), b.ifindex[p], err, nativeErr)
		}
		return fmt.Errorf("xsk: attach %s (ifindex %d) generic: %w", PortID(p), b.ifindex[p], err)
	}
	b.links[p], b.mode[p] = l, "generic"
	return nil
}

func validPort(p PortID) error {
	if p != Inside && p != Outside {
		return fmt.Errorf("%w: %d", ErrBadPort, int(p))
	}
	return nil
}

// Register puts s into port's XSKMAP at queue, so frames the classifier
// sends to user space from that RX queue reach s. s must be bound to the
// same interface and queue.
func (b *Bump) Register(port PortID, queue int, s *Socket) error {
	if err := validPort(port); err != nil {
		return err
	}
	if s.Ifindex() != b.ifindex[port] || s.Queue() != queue {
		return fmt.Errorf("%w: socket bound to ifindex %d queue %d, not %s (ifindex %d) queue %d",
			ErrBadPort, s.Ifindex(), s.Queue(), port, b.ifindex[port], queue)
	}
	if queue < 0 || queue >= MaxQueues {
		return fmt.Errorf("xsk: queue %d out of range 0..%d", queue, MaxQueues-1)
	}
	if err := b.xsks[port].Put(uint32(queue), uint32(s.FD())); err != nil {
		return fmt.Errorf("xsk: register %s queue %d: %w", port, queue, err)
	}
	return nil
}

// Unregister removes the socket of port's queue from the XSKMAP; the
// classifier then drops that queue's engine-bound frames (NoSocket).
func (b *Bump) Unregister(port PortID, queue int) error {
	if err := validPort(port); err != nil {
		return err
	}
	if err := b.xsks[port].Delete(uint32(queue)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("xsk: unregister %s queue %d: %w", port, queue, err)
	}
	return nil
}

// AllowFastPath puts one direction of a flow into the fast-path map: its
// TCP frames without SYN, FIN or RST are then redirected to the other port
// in the kernel and never reach a socket. The engine inserts both directions. The map is LRU,
// so idle flows age out when it fills.
func (b *Bump) AllowFastPath(k FlowKey) error {
	if k.Family != 4 && k.Family != 6 {
		return fmt.Errorf("xsk: fast path: family %d", k.Family)
	}
	b.used.Store(true) // before the entry exists, for a concurrent RemoveFastPath
	if err := b.flows.Update(k, uint64(0), ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("xsk: fast path insert: %w", err)
	}
	return nil
}

// RemoveFastPath deletes one direction of a flow from the fast-path map; its
// frames go to the engine again. Removing an absent key is not an error.
func (b *Bump) RemoveFastPath(k FlowKey) error {
	if !b.used.Load() {
		return nil
	}
	if err := b.flows.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("xsk: fast path delete: %w", err)
	}
	return nil
}

// SetFastPath turns the in-kernel forwarding on or off (off after
// AttachBump, until the caller turns it on). Off, both programs send every frame, non-TCP included,
// to the AF_XDP socket of its RX queue (counted as AllToXSK), whatever the
// fast-path map holds: user space then sees all traffic, as a daemon's
// --no-fast-path promises. It takes effect for the next frame; the map
// keeps its entries.
func (b *Bump) SetFastPath(on bool) error {
	for p := range 2 {
		if err := b.SetPortFastPath(PortID(p), on); err != nil {
			return err
		}
	}
	return nil
}

// SetPortFastPath is SetFastPath for the frames arriving at one port: off,
// its program forwards nothing to the other port itself and sends every
// frame to user space, which forwards what needs no work through its
// AF_XDP socket on the other port. That is how a port whose redirect
// cannot deliver (RedirectReady false) still carries everything.
func (b *Bump) SetPortFastPath(port PortID, on bool) error {
	if err := validPort(port); err != nil {
		return err
	}
	if b.config == nil {
		return errors.New("xsk: SetFastPath on a closed bump")
	}
	v := uint32(cfgFastPathOff)
	if on {
		v = 0
	}
	if err := b.config.Put(uint32(port), v); err != nil {
		return fmt.Errorf("xsk: set fast path of %s: %w", port, err)
	}
	return nil
}

// FastPathPackets returns how many frames of k the classifier redirected on
// the fast path, and whether k is in the map.
func (b *Bump) FastPathPackets(k FlowKey) (uint64, bool) {
	var n uint64
	if err := b.flows.Lookup(k, &n); err != nil {
		return 0, false
	}
	return n, true
}

// FastPathLen counts the entries of the fast-path map, one per direction of
// each flow the classifier forwards in the kernel. It reads the whole map,
// in batches (about 20 ms at 60,000 entries): call it rarely. The entry of
// a connection that ended without a FIN or RST through the workers stays
// until the LRU map reuses it.
func (b *Bump) FastPathLen() (int, error) {
	if !b.used.Load() {
		return 0, nil // never had an entry
	}
	const batch = 4096
	keys, vals := make([]FlowKey, batch), make([]uint64, batch)
	var cursor ebpf.MapBatchCursor
	total := 0
	for {
		n, err := b.flows.BatchLookup(&cursor, keys, vals, nil)
		total += n
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist): // the end of the map
			return total, nil
		case err != nil:
			return 0, fmt.Errorf("xsk: fast-path map: %w", err)
		}
	}
}

// Mode reports how the classifier is attached to port: "native" or
// "generic" ("" if not attached).
func (b *Bump) Mode(port PortID) string {
	if validPort(port) != nil {
		return ""
	}
	return b.mode[port]
}

// RedirectReady reports whether frames port's classifier redirects to the
// other port can be delivered. In generic mode they always can (the skb
// path; a frame longer than the other port forwards, such as a GRO
// super-segment, goes to the workers instead: Oversize). In native mode the other port's driver must accept XDP frames
// (NETDEV_XDP_ACT_NDO_XMIT); a veth does so only while its peer runs NAPI
// (an XDP program on the peer, or `ethtool -K <peer> gro on`), and the
// answer changes when the peer changes. A daemon should check it at start
// and warn: while it is false, non-TCP and fast-path frames are dropped by
// the kernel (see AttachBump). Like AttachBump it works on interface
// indexes, so call it from the network namespace the bump was attached in.
func (b *Bump) RedirectReady(port PortID) (bool, error) {
	if err := validPort(port); err != nil {
		return false, err
	}
	if b.mode[port] != "native" {
		return b.mode[port] == "generic", nil
	}
	f, err := xdpFeatures(b.ifindex[1-port])
	if err != nil {
		return false, err
	}
	return f&netdevXDPActNdoXmit != 0, nil
}

// BumpStats are the classifier's verdict counters of both ports.
type BumpStats struct {
	Inside, Outside PortStats
}

// Stats sums the per-CPU verdict counters. After Close it returns zeros.
func (b *Bump) Stats() BumpStats {
	var sums [2 * numCounters]uint64
	var per []uint64
	for i := range sums {
		if b.counters == nil || b.counters.Lookup(uint32(i), &per) != nil {
			return BumpStats{}
		}
		for _, v := range per {
			sums[i] += v
		}
	}
	return BumpStats{
		Inside:  portStatsFrom(sums[:numCounters]),
		Outside: portStatsFrom(sums[numCounters:]),
	}
}

// Close detaches both programs and frees the maps. Sockets registered with
// the bump stay open (they belong to the caller). Close is idempotent.
func (b *Bump) Close() error {
	var errs []error
	for p := range 2 {
		// XDP first, so no frame is passed while the drop program is gone.
		if b.links[p] != nil {
			errs = append(errs, b.links[p].Close())
			b.links[p], b.mode[p] = nil, ""
		}
		if b.dlinks[p] != nil {
			errs = append(errs, b.dlinks[p].Close())
			b.dlinks[p] = nil
		}
		for _, pr := range []**ebpf.Program{&b.progs[p], &b.drops[p]} {
			if *pr != nil {
				errs = append(errs, (*pr).Close())
				*pr = nil
			}
		}
		for _, m := range []**ebpf.Map{&b.xsks[p], &b.peers[p]} {
			if *m != nil {
				errs = append(errs, (*m).Close())
				*m = nil
			}
		}
	}
	for _, m := range []**ebpf.Map{&b.flows, &b.counters, &b.config} {
		if *m != nil {
			errs = append(errs, (*m).Close())
			*m = nil
		}
	}
	return errors.Join(errs...)
}
