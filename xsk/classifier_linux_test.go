package xsk

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"github.com/tcpinc/tcpinc/xsk/classifiertest"
	"golang.org/x/sys/unix"
)

// runXDPIn is runXDP in namespace ns, where the program's other port is:
// the classifier reads that port's MTU (peerFits), and a test run's
// device is the loopback of the calling thread's namespace.
func runXDPIn(t *testing.T, ns string, prog *ebpf.Program, frame []byte) uint32 {
	t.Helper()
	var ret uint32
	if err := inNetns(ns, func() error { ret = runXDP(t, prog, frame); return nil }); err != nil {
		t.Fatal(err)
	}
	return ret
}

// runXDP runs prog on frame with BPF_PROG_TEST_RUN and returns its action.
// The kernel refuses frames shorter than an Ethernet header (EINVAL), as it
// never gives one to an XDP program (bpf_xdp_adjust_head/tail enforce the
// same floor); such frames are checked for that refusal, and the
// classifier's own bounds checks start to matter at 14 bytes.
func runXDP(t *testing.T, prog *ebpf.Program, frame []byte) uint32 {
	t.Helper()
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
	if len(frame) < 14 {
		if !errors.Is(err, unix.EINVAL) {
			t.Fatalf("BPF_PROG_TEST_RUN of a %d-byte frame: %v, want EINVAL", len(frame), err)
		}
		return 0
	}
	if err != nil {
		t.Fatalf("BPF_PROG_TEST_RUN (%d-byte frame): %v", len(frame), err)
	}
	return ret
}

// reasonCounter maps the table's reasons to the program's counters.
var reasonCounter = map[classifiertest.Reason]int{
	classifiertest.FastPath: cntFastPath, classifiertest.NonTCP: cntNonTCP, classifiertest.SYN: cntSYN,
	classifiertest.FINRST: cntFINRST, classifiertest.UnknownFlow: cntUnknownFlow,
	classifiertest.Truncated: cntTruncated, classifiertest.Fragment: cntFragment,
	classifiertest.IPv6Ext: cntIPv6Ext, classifiertest.Unparsed: cntUnparsed,
	classifiertest.ICMPError: cntICMPError, classifiertest.AllToXSK: cntAllToXSK,
	classifiertest.Oversize: cntOversize,
}

func counterOf(t testing.TB, r classifiertest.Reason) int {
	t.Helper()
	i, ok := reasonCounter[r]
	if !ok {
		t.Fatalf("table reason %q has no counter", r)
	}
	return i
}

// flowKeyOf is the FlowKey of a TCP segment from src:sport to dst:dport.
func flowKeyOf(src, dst netip.Addr, sport, dport uint16) FlowKey {
	k := FlowKey{SrcPort: sport, DstPort: dport}
	if src.Is4() {
		k.Family = 4
		s, d := src.As4(), dst.As4()
		copy(k.Src[:], s[:])
		copy(k.Dst[:], d[:])
	} else {
		k.Family = 6
		k.Src, k.Dst = src.As16(), dst.As16()
	}
	return k
}

// keyOf is the fast-path map key of a table flow.
func keyOf(f classifiertest.Flow) FlowKey {
	return flowKeyOf(f.Src.Addr(), f.Dst.Addr(), f.Src.Port(), f.Dst.Port())
}

func keysOf(fs []classifiertest.Flow) []FlowKey {
	ks := make([]FlowKey, len(fs))
	for i, f := range fs {
		ks[i] = keyOf(f)
	}
	return ks
}

// tableState puts a bump into the state a table case asks for: the
// fast-path map and each port's switch (changed only where they differ).
type tableState struct {
	b      *Bump
	ns     string // where the bump's ports are
	listed []FlowKey
	sw     [2]bool
	known  bool
}

func (s *tableState) set(t testing.TB, c classifiertest.Case) {
	t.Helper()
	if keys := keysOf(c.Listed); !s.known || !slices.Equal(keys, s.listed) {
		for _, k := range s.listed {
			if err := s.b.RemoveFastPath(k); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range keys {
			if err := s.b.AllowFastPath(k); err != nil {
				t.Fatal(err)
			}
		}
		s.listed = keys
	}
	for p := range 2 {
		if !s.known || s.sw[p] != c.FastPath[p] {
			if err := s.b.SetPortFastPath(PortID(p), c.FastPath[p]); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.sw, s.known = c.FastPath, true
}

func wantDelta(reason, outcome int) PortStats {
	var c [numCounters]uint64
	c[reason]++
	c[outcome]++
	return portStatsFrom(c[:])
}

func diffStats(a, b PortStats) PortStats {
	return PortStats{
		ToXSK: b.ToXSK - a.ToXSK, NoSocket: b.NoSocket - a.NoSocket, ToPeer: b.ToPeer - a.ToPeer,
		RedirectMiss: b.RedirectMiss - a.RedirectMiss, FastPath: b.FastPath - a.FastPath,
		NonTCP: b.NonTCP - a.NonTCP, SYN: b.SYN - a.SYN, UnknownFlow: b.UnknownFlow - a.UnknownFlow,
		Truncated: b.Truncated - a.Truncated, Fragment: b.Fragment - a.Fragment,
		IPv6Ext: b.IPv6Ext - a.IPv6Ext, Unparsed: b.Unparsed - a.Unparsed,
		FINRST: b.FINRST - a.FINRST, AllToXSK: b.AllToXSK - a.AllToXSK, ICMPError: b.ICMPError - a.ICMPError,
		ToStack: b.ToStack - a.ToStack, StackDropped: b.StackDropped - a.StackDropped, Oversize: b.Oversize - a.Oversize,
	}
}

// deliveryOf is the table's name for a bump's slow path.
func deliveryOf(s SlowPath) classifiertest.Delivery {
	if s == SlowPathStack {
		return classifiertest.Stack
	}
	return classifiertest.Socket
}

// runTable runs every case of the table with the bump's delivery on it with
// BPF_PROG_TEST_RUN; withSocket says on which ports a socket is registered
// for queue 0, withPeer on which the devmap holds the other port. A verdict
// with nowhere to go is a counted drop; a Worker verdict delivered to the
// stack is XDP_PASS whether a socket is registered or not.
func runTable(t *testing.T, state *tableState, withSocket, withPeer [2]bool) {
	b := state.b
	n := 0
	for _, c := range classifiertest.Cases() {
		if c.Delivery != deliveryOf(b.slow) {
			continue
		}
		state.set(t, c)
		port := PortID(c.Port)
		before := b.Stats()
		var pkBefore uint64
		if c.Reason == classifiertest.FastPath {
			pkBefore = fastPathTotal(b, state.listed)
		}
		ret := runXDPIn(t, state.ns, b.progs[port], c.Frame)
		if len(c.Frame) < 14 {
			continue
		}
		n++
		after := b.Stats()
		var want PortStats
		wantRet := uint32(xdpRedirect)
		reason := counterOf(t, c.Reason)
		switch {
		case c.Want == classifiertest.Peer && withPeer[port]:
			want = wantDelta(reason, cntToPeer)
		case c.Want == classifiertest.Peer:
			want, wantRet = wantDelta(reason, cntRedirectMiss), xdpDrop
		case c.Delivery == classifiertest.Stack:
			want, wantRet = wantDelta(reason, cntToStack), xdpPass
		case withSocket[port]:
			want = wantDelta(reason, cntToXSK)
		default:
			want, wantRet = wantDelta(reason, cntNoSocket), xdpDrop
		}
		got, other := diffStats(before.Inside, after.Inside), diffStats(before.Outside, after.Outside)
		if port == Outside {
			got, other = other, got
		}
		if ret != wantRet || got != want || other != (PortStats{}) {
			t.Errorf("%s: ret %d, counters %+v (other port %+v); want ret %d, counters %+v",
				c, ret, got, other, wantRet, want)
		}
		if c.Reason == classifiertest.FastPath && fastPathTotal(b, state.listed) != pkBefore+1 {
			t.Errorf("%s: per-flow packet count did not move", c)
		}
	}
	t.Logf("%d cases run", n)
}

// TestClassifier runs the table of xsk/classifiertest through the loaded
// programs with BPF_PROG_TEST_RUN and checks the return code and which
// counters moved (redirect_map returns XDP_REDIRECT for either map; the
// counters tell which one was used): with no socket registered (a worker
// verdict is a counted drop), with one on the inside port's queue, and
// with the outside port's devmap entry gone (a peer verdict there is a
// counted drop); then the cases delivered to the stack on a bump built
// with SlowPathStack, with and without a socket (which it does not use).
func TestClassifier(t *testing.T) {
	requireRoot(t)
	const ns = "xskt-cls"
	newNetns(t, ns)
	vethPair(t, ns, "c0", ns, "c1")
	in, out := ifindexIn(t, ns, "c0"), ifindexIn(t, ns, "c1")

	var b, bs *Bump
	var sock *Socket
	if err := inNetns(ns, func() (err error) {
		if b, err = newBump(in, out, SlowPathXSK); err != nil {
			return err
		}
		if bs, err = newBump(in, out, SlowPathStack); err != nil {
			return err
		}
		sock, err = Open(in, Options{NumFrames: 64, RingSize: 32})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(); bs.Close(); sock.Close() })
	state := &tableState{b: b, ns: ns}

	peers := [2]bool{true, true}
	t.Run("stack", func(t *testing.T) {
		st := &tableState{b: bs, ns: ns}
		runTable(t, st, [2]bool{}, peers)
		if err := bs.Register(Inside, 0, sock); err != nil {
			t.Fatal(err)
		}
		runTable(t, st, [2]bool{true, false}, peers)
	})
	t.Run("no socket", func(t *testing.T) { runTable(t, state, [2]bool{}, peers) })
	if err := b.Register(Inside, 0, sock); err != nil {
		t.Fatal(err)
	}
	t.Run("socket on inside", func(t *testing.T) { runTable(t, state, [2]bool{true, false}, peers) })
	t.Run("no devmap entry on outside", func(t *testing.T) {
		if err := b.peers[Outside].Delete(uint32(0)); err != nil {
			t.Fatal(err)
		}
		runTable(t, state, [2]bool{true, false}, [2]bool{true, false})
		if err := b.peers[Outside].Put(uint32(0), uint32(in)); err != nil {
			t.Fatal(err)
		}
	})
	if err := b.Register(Outside, 0, sock); err == nil {
		t.Error("Register accepted a socket bound to the other port")
	}

	// The table's frames up to 1518 bytes fit the MTU the program read
	// when it was loaded; a longer one is checked against the MTU as it
	// is now: raised, the other port takes it.
	t.Run("other port's MTU raised", func(t *testing.T) {
		state.set(t, classifiertest.Case{Listed: classifiertest.StandardMap, FastPath: [2]bool{true, true}})
		f := classifiertest.Flow4
		frame := packettest.Frame{Src: f.Src.Addr(), Dst: f.Dst.Addr(), TCP: &packettest.TCP{
			SrcPort: f.Src.Port(), DstPort: f.Dst.Port(), Flags: packettest.ACK, Payload: make([]byte, 3000)}}.Bytes()
		for _, c := range []struct {
			mtu  string
			want PortStats
		}{{"9000", wantDelta(cntFastPath, cntToPeer)}, {"1500", wantDelta(cntOversize, cntToXSK)}} {
			sh(t, "ip", "-n", ns, "link", "set", "c1", "mtu", c.mtu)
			before := b.Stats().Inside
			runXDPIn(t, ns, b.progs[Inside], frame)
			if d := diffStats(before, b.Stats().Inside); d != c.want {
				t.Errorf("%d-byte frame, outside MTU %s: %+v, want %+v", len(frame), c.mtu, d, c.want)
			}
		}
	})

	t.Run("remove fast path", func(t *testing.T) {
		state.set(t, classifiertest.Case{Listed: classifiertest.StandardMap, FastPath: [2]bool{true, true}})
		k := keyOf(classifiertest.Flow4)
		if err := b.RemoveFastPath(k); err != nil {
			t.Fatal(err)
		}
		if err := b.RemoveFastPath(k); err != nil {
			t.Fatalf("removing an absent key: %v", err)
		}
		before := b.Stats().Inside
		runXDP(t, b.progs[Inside], packettest.Frame{Src: classifiertest.A4, Dst: classifiertest.B4,
			TCP: &packettest.TCP{SrcPort: 40000, DstPort: 443, Flags: packettest.ACK}}.Bytes())
		if d := diffStats(before, b.Stats().Inside); d != wantDelta(cntUnknownFlow, cntToXSK) {
			t.Errorf("after RemoveFastPath: %+v", d)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		if err := b.AllowFastPath(FlowKey{Family: 5}); err == nil {
			t.Error("AllowFastPath accepted family 5")
		}
		if err := b.Register(PortID(7), 0, sock); err == nil {
			t.Error("Register accepted port 7")
		}
	})
}

func fastPathTotal(b *Bump, listed []FlowKey) uint64 {
	var sum uint64
	for _, k := range listed {
		n, _ := b.FastPathPackets(k)
		sum += n
	}
	return sum
}

// RemoveFastPath on a bump whose map never had an entry is a no-op without
// a system call (the workers call it for every new connection's tuple);
// once AllowFastPath has run it deletes as before.
func TestRemoveFastPathBeforeAnyEntry(t *testing.T) {
	requireRoot(t)
	b, err := newBump(1, 1, SlowPathStack) // devmap entries point at lo; nothing attached
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	k := keyOf(classifiertest.Flow4)
	if err := b.RemoveFastPath(k); err != nil || b.used.Load() {
		t.Fatalf("RemoveFastPath on an unused map: %v, used %v", err, b.used.Load())
	}
	if err := b.AllowFastPath(k); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.FastPathPackets(k); !ok {
		t.Fatal("AllowFastPath did not list the flow")
	}
	if err := b.RemoveFastPath(k); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.FastPathPackets(k); ok {
		t.Fatal("RemoveFastPath left the flow listed")
	}
}

// TestFastPathLen: the map's entries are counted, one per direction of a
// flow, as flows come and go (the admin API's tcpinc_fastpath_flows: the
// engine forgets a plain connection it no longer sees).
func TestFastPathLen(t *testing.T) {
	requireRoot(t)
	b, err := newBump(1, 1, SlowPathStack) // devmap entries point at lo; nothing attached
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	count := func(want int) {
		t.Helper()
		if n, err := b.FastPathLen(); n != want || err != nil {
			t.Fatalf("FastPathLen %d, %v; want %d", n, err, want)
		}
	}
	count(0)
	const flows = 5000 // more than one batch of entries
	k := keyOf(classifiertest.Flow4)
	for i := range flows {
		k.SrcPort = uint16(1000 + i)
		for _, d := range []FlowKey{k, k.Reverse()} {
			if err := b.AllowFastPath(d); err != nil {
				t.Fatal(err)
			}
		}
	}
	count(2 * flows)
	if err := b.RemoveFastPath(k); err != nil {
		t.Fatal(err)
	}
	count(2*flows - 1)
}
