package engine

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/afpacket"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// sink records committed frames.
type sink struct {
	buf []byte
	out [][]byte
	// lent: super-frames committed with a tail (gsoTestSink), each in out
	// as a nil until take reads its tail, as a port reads a tail when it
	// flushes; flushes counts takes (TailSink.Flushes).
	lent    []lentFrame
	flushes uint64
}

// lentFrame is a super-frame whose tail the engine lent: its headers, the
// tail, its segment size, and its place in sink.out.
type lentFrame struct {
	at         int
	head, tail []byte
	gso        int
}

func newSink() *sink           { return &sink{buf: make([]byte, 9000)} }
func (s *sink) Buffer() []byte { return s.buf }
func (s *sink) Commit(n int)   { s.out = append(s.out, slices.Clone(s.buf[:n])) }

// take returns the frames committed since the last take, as the wire gets
// them: a lent super-frame's tail is read now, and the frame cut into its
// segments.
func (s *sink) take() (o [][]byte) {
	if len(s.lent) > 0 {
		for i, f := range s.out {
			if len(s.lent) > 0 && s.lent[0].at == i {
				l := s.lent[0]
				s.lent = s.lent[1:]
				segs, err := cutSuperFrame(append(l.head, l.tail...), l.gso)
				if err != nil {
					panic(fmt.Sprintf("CommitTail of a frame the port refuses: %v", err))
				}
				o = append(o, segs...)
				continue
			}
			o = append(o, f)
		}
		s.out = o
	}
	o, s.out, s.lent = s.out, nil, nil
	s.flushes++
	return o
}

// withGSOSinks: the tests' gateways send through gsoTestSinks, ports with
// checksum and segmentation offload as the AF_PACKET backend is (set
// TCPINC_ENGINE_GSO=1; scripts/test.sh runs this package both ways). The
// frames the tests see are the same either way: what the port's offload
// gives the wire.
var withGSOSinks = os.Getenv("TCPINC_ENGINE_GSO") == "1"

// gsoTestSink is a sink whose port computes TCP checksums and cuts
// super-frames into segments (engine.GSOSink), done here in software as the
// kernel does (afpacket.Segment): out holds the frames the wire would carry.
//
// With tails (the default) it is a TailSink too: a super-frame's tail is
// read only when the frames are taken (sink.take), so a test that hands
// the engine several frames before it takes any finds a tail the engine
// wrote over before the port read it.
type gsoTestSink struct {
	sink
	supers int  // super-frames committed
	tails  bool // CommitTail may be used
}

func newGSOTestSink() *gsoTestSink {
	return &gsoTestSink{sink: sink{buf: make([]byte, afpacket.MaxFrame)}, tails: true}
}

func (s *gsoTestSink) OffloadsChecksums() bool { return true }
func (s *gsoTestSink) SendsGSO() bool          { return true }
func (s *gsoTestSink) SendsTails() bool        { return s.tails }
func (s *gsoTestSink) Flushes() uint64         { return s.flushes }

func (s *gsoTestSink) CommitTail(n int, tail []byte, gso int) {
	if !s.tails || len(tail) == 0 || n+len(tail) > len(s.buf) {
		panic("CommitTail the sink does not take")
	}
	if n+len(tail) > bump.MaxSuperFrame {
		panic(fmt.Sprintf("a super-frame of %d bytes: the kernel would segment it in software, which the port's queue bypass drops", n+len(tail)))
	}
	s.lent = append(s.lent, lentFrame{at: len(s.out), head: slices.Clone(s.buf[:n]), tail: tail, gso: gso})
	s.out = append(s.out, nil)
	s.supers++
}

func (s *gsoTestSink) CommitPartial(n int) {
	f := slices.Clone(s.buf[:n])
	var p packet.Packet
	if p.Decode(f) != nil || !p.FixL4Checksum() {
		panic("CommitPartial of a frame that is not TCP")
	}
	s.out = append(s.out, f)
}

func (s *gsoTestSink) CommitGSO(n, gso int) {
	if n > bump.MaxSuperFrame {
		panic(fmt.Sprintf("a super-frame of %d bytes: the kernel would segment it in software, which the port's queue bypass drops", n))
	}
	segs, err := cutSuperFrame(s.buf[:n], gso)
	if err != nil {
		panic(fmt.Sprintf("CommitGSO of a frame the port refuses: %v", err))
	}
	s.out = append(s.out, segs...)
	s.supers++
}

// cutSuperFrame returns the segments of a super-frame committed with
// CommitGSO as the wire gets them: what the AF_PACKET port and the kernel's
// GSO make of it (afpacket.PrepareGSO, then afpacket.Segment, its software
// twin), with complete checksums. f is not changed.
func cutSuperFrame(f []byte, gso int) ([][]byte, error) {
	f = slices.Clone(f)
	if _, err := afpacket.PrepareGSO(f, gso); err != nil {
		return nil, err
	}
	out, sizes := make([][]byte, len(f)/gso+1), make([]int, len(f)/gso+1)
	for i := range out {
		out[i] = make([]byte, len(f))
	}
	k, err := afpacket.Segment(f, gso, out, sizes)
	if err != nil {
		return nil, err
	}
	for i := range k {
		out[i] = out[i][:sizes[i]]
	}
	return out[:k], nil
}

func sinks() (*sink, *sink, [2]TxSink) {
	if withGSOSinks {
		i, o := newGSOTestSink(), newGSOTestSink()
		return &i.sink, &o.sink, [2]TxSink{i, o}
	}
	i, o := newSink(), newSink()
	return i, o, [2]TxSink{i, o}
}

// gw is one engine with its sinks, for back-to-back tests.
type gw struct {
	t       testing.TB
	e       *Engine
	in, out *sink
	tx      [2]TxSink
	now     int64
	// undrained skips the end-of-test check (drained).
	undrained bool
	// panics is how many panics the test means the engine to recover
	// (recover.go); any other fails it: recovery must not hide a bug.
	panics uint64
	// ownSet: the engine's negotiated set is its own (not given in
	// Deps), so drained can hold it to the engine's records.
	ownSet bool
	// corrupt: push hands the engine a copy of each frame with one TCP
	// header byte changed and the checksum left as it was first, and
	// fails unless the engine drops it untouched (pushCorrupted).
	corrupt bool
}

func newGW(t testing.TB, cfg Config) *gw {
	t.Helper()
	return newGWDeps(t, cfg, Deps{})
}

func newGWDeps(t testing.TB, cfg Config, deps Deps) *gw {
	t.Helper()
	if cfg.AEADs == nil {
		cfg.AEADs = []cryptopool.Suite{cryptopool.AES128GCM}
	}
	e, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	g := &gw{t: t, e: e, ownSet: deps.Negotiated == nil}
	g.in, g.out, g.tx = sinks()
	if tt, ok := t.(*testing.T); ok {
		tt.Cleanup(g.noPanics)
		tt.Cleanup(g.drained)
	}
	return g
}

// noPanics fails the test if the engine recovered a panic it did not mean
// to cause.
func (g *gw) noPanics() {
	if n := g.e.Counters().Panics.Load(); n != g.panics {
		g.t.Errorf("the engine recovered %d panics, want %d (see the log)", n, g.panics)
	}
}

// drained: whatever a test did, once nothing more arrives every flow
// expires and the memory budget holds nothing. Checked after every test
// that passed (a test that changes the budget itself, or keeps the engine
// for later, can opt out with keepUndrained).
func (g *gw) drained() {
	t := g.t
	if t.Failed() || g.undrained {
		return
	}
	now := max(g.now, 0) + int64(30*24*time.Hour) // past any test's clock
	for i := 0; i < 6*60 && g.e.NumFlows() > 0; i++ {
		now += int64(time.Minute)
		g.e.Tick(now, g.tx)
		g.in.take()
		g.out.take()
		checkCounts(t, g.e)
	}
	if n := g.e.NumFlows(); n != 0 {
		g.e.Flows(func(fi FlowInfo) { t.Logf("left: %+v", fi) })
		t.Errorf("%d flows left 6 h after the test", n)
	}
	if used := g.e.Memory().Used(); used != 0 {
		t.Errorf("%d bytes still charged with no flows", used)
	}
	// A tuple is held only by a live record: one left held with no
	// record is never evicted, and its connection's successors on the
	// tuple are reset as strays for good.
	if g.ownSet && g.e.NumFlows() == 0 {
		held := 0
		g.e.neg.mu.RLock()
		for _, d := range g.e.neg.m {
			if d == 0 {
				held++
			}
		}
		g.e.neg.mu.RUnlock()
		if held != 0 {
			t.Errorf("%d negotiated tuples still held with no flow left", held)
		}
	}
}

// push hands frame to the engine at port from and returns what came out of
// the inside and outside ports. A frame the verdict says to forward is
// included as the worker would send it.
func (g *gw) push(from PortID, frame []byte) (toIn, toOut [][]byte) {
	g.t.Helper()
	if g.corrupt {
		g.pushCorrupted(from, frame)
	}
	fr := slices.Clone(frame)
	v := g.e.Handle(g.now, from, fr, g.tx)
	switch v {
	case Passthrough, ForwardInPlace:
		s := g.out
		if from == Outside {
			s = g.in
		}
		s.out = append(s.out, fr)
	}
	toIn, toOut = g.in.take(), g.out.take()
	for _, f := range append(slices.Clone(toIn), toOut...) {
		checkFrame(g.t, f)
	}
	checkCounts(g.t, g.e)
	checkDue(g.t, g) // rv: every engine test holds the sweep's invariant
	return toIn, toOut
}

// pushCorrupted hands the engine frame with the last byte of its TCP
// header (an option's, else the urgent pointer's) changed and its checksum
// not: what a receiver drops. The engine must drop it too, send nothing and
// count it: what it does after (the intact frame) shows nothing moved.
func (g *gw) pushCorrupted(from PortID, frame []byte) {
	g.t.Helper()
	var p packet.Packet
	if p.Decode(frame) != nil || !p.IsTCP() || p.IsFragment() {
		return
	}
	bad := slices.Clone(frame)
	bad[p.L4Offset()+p.TCPHeaderLen()-1] ^= 0x01
	before := g.e.Counters().Drops[DropChecksum].Load()
	if v := g.e.Handle(g.now, from, bad, g.tx); v != Dropped {
		g.t.Fatalf("a corrupted copy from port %d: %v, want dropped", from, v)
	}
	if in, out := g.in.take(), g.out.take(); len(in)+len(out) != 0 {
		g.t.Fatalf("a corrupted copy from port %d: %d frames in, %d out; want none", from, len(in), len(out))
	}
	if g.e.Counters().Drops[DropChecksum].Load() != before+1 {
		g.t.Fatalf("a corrupted copy from port %d: not counted as a bad checksum", from)
	}
}

func (g *gw) tick(dt int64) (toIn, toOut [][]byte) {
	g.now += dt
	g.e.Tick(g.now, g.tx)
	checkCounts(g.t, g.e)
	checkDue(g.t, g) // rv: every engine test holds the sweep's invariant
	return g.in.take(), g.out.take()
}

// checkFrame fails unless frame decodes as TCP with valid checksums.
func checkFrame(t testing.TB, frame []byte) *packet.Packet {
	t.Helper()
	var p packet.Packet
	if err := p.Decode(frame); err != nil {
		t.Fatalf("output frame does not decode: %v", err)
	}
	if p.IPVersion() == 4 && !p.VerifyIPv4Checksum() {
		t.Fatalf("bad IPv4 checksum")
	}
	if !p.VerifyL4Checksum() {
		t.Fatalf("bad L4 checksum in %x", frame)
	}
	return &p
}

type segv struct {
	seq, ack uint32
	flags    uint8
	win, urg uint16
	opts     []byte
	payload  []byte
	src, dst netip.AddrPort
}

func parse(t testing.TB, frame []byte) segv {
	t.Helper()
	p := checkFrame(t, frame)
	if !p.IsTCP() {
		t.Fatalf("not TCP")
	}
	return segv{seq: p.Seq(), ack: p.Ack(), flags: p.Flags(), win: p.Window(), urg: p.Urgent(),
		opts: slices.Clone(p.OptionBytes()), payload: slices.Clone(p.Payload()),
		src: netip.AddrPortFrom(p.SrcAddr(), p.SrcPort()), dst: netip.AddrPortFrom(p.DstAddr(), p.DstPort())}
}

// option returns the first option of kind k in an options area.
func option(opts []byte, k uint8) []byte {
	it := packet.ParseOptions(opts)
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		if o.Kind == k {
			return opts[o.Off-0 : o.Off+o.Total]
		}
	}
	return nil
}

func mss(opts []byte) uint16 {
	o := option(opts, 2)
	if o == nil {
		return 0
	}
	return binary.BigEndian.Uint16(o[2:])
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Host endpoints: a behind G_A, b behind G_B.
var (
	addrA = netip.AddrPortFrom(packettest.HostA4, 40000)
	addrB = netip.AddrPortFrom(packettest.HostB4, 80)
)

const (
	isnA0        = 0xfffffff0 // wraps early: the unwrap helper is exercised
	isnB  uint32 = 0x10000000
)

// synOpts is what Linux puts in a SYN: MSS, SACK-permitted, timestamps,
// window scale.
func synOpts(mssv uint16, ts uint32) []byte {
	o := packettest.MSSOption(mssv)
	o = append(o, 4, 2)
	o = append(o, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(o[8:], ts)
	o = append(o, 1, 3, 3, 7)
	return o
}

func tsOpt(val, ecr uint32) []byte { return packettest.TimestampOption(val, ecr) }

// tcpFrame builds a TCP segment as Linux sends it (DF set over IPv4).
func tcpFrame(src, dst netip.AddrPort, seq, ack uint32, flags uint8, win uint16, opts, payload []byte) []byte {
	return packettest.Frame{Src: src.Addr(), Dst: dst.Addr(), DF: true, TCP: &packettest.TCP{
		SrcPort: src.Port(), DstPort: dst.Port(), Seq: seq, Ack: ack, Flags: flags,
		Window: win, Options: opts, Payload: payload}}.Bytes()
}

func one(t testing.TB, what string, frames [][]byte) segv {
	t.Helper()
	if len(frames) != 1 {
		t.Fatalf("%s: %d frames, want 1", what, len(frames))
	}
	return parse(t, frames[0])
}

func none(t testing.TB, what string, frames [][]byte) {
	t.Helper()
	if len(frames) != 0 {
		t.Fatalf("%s: %d frames, want none", what, len(frames))
	}
}

func hasBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %x, want %x", what, got, want)
	}
}

var _ = tcpcrypt.Overhead

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

var isnA uint32 = isnA0
