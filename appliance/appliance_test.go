package appliance

import (
	"bytes"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/appliance/memport"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"github.com/tcpinc/tcpinc/flow"
)

// rig is two memport.Ports per queue behind a memport.Bump: frames arrive with
// Arrive, leave on out[port] (worker-transmitted and fast-path frames in one
// ordered stream).
type rig struct {
	a    *Appliance
	bump *memport.Bump
	in   []*memport.Port // inside port, per queue
	outp []*memport.Port // outside port, per queue
	out  [2][][]byte
	now  time.Duration
}

type rigOpts struct {
	queues     int
	fastPath   bool
	frames     int
	frameSize  [2]int // per port
	flows      config.Flows
	batch      int
	countOnly  bool // sinks count instead of keeping copies (alloc tests)
	handler    NewHandlerFunc
	sinkFrames [2]uint64
	sinkBytes  [2]uint64
	nicRSS     *flow.RSS // how the in-memory NIC spreads TCP over queues (nil: the workers' keyed hash)
	ownerRSS   *flow.RSS // Options.RSS
	maxFrame   int       // Options.MaxFrame
}

func newRig(t testing.TB, o rigOpts) *rig {
	t.Helper()
	if o.queues == 0 {
		o.queues = 1
	}
	if o.frames == 0 {
		o.frames = 256
	}
	for i := range o.frameSize {
		if o.frameSize[i] == 0 {
			o.frameSize[i] = 2048
		}
	}
	r := &rig{}
	var sinks [2]func([]byte)
	for p := range 2 {
		if o.countOnly {
			sinks[p] = func(f []byte) { _ = f }
		} else {
			sinks[p] = func(f []byte) { r.out[p] = append(r.out[p], bytes.Clone(f)) }
		}
	}
	var ports [2][]Port
	for p := range 2 {
		for range o.queues {
			mp, err := memport.New(o.frames, o.frameSize[p], sinks[p])
			if err != nil {
				t.Fatal(err)
			}
			if p == 0 {
				r.in = append(r.in, mp)
			} else {
				r.outp = append(r.outp, mp)
			}
			ports[p] = append(ports[p], mp)
		}
	}
	if o.flows == (config.Flows{}) {
		o.flows = config.Flows{Max: 1024, HandshakeTimeout: time.Second, IdleTimeout: 10 * time.Second, CloseGrace: 2 * time.Second}
	}
	r.bump = memport.NewBump(r.in, r.outp, sinks, o.fastPath, 1024)
	r.bump.SetRSS(o.nicRSS)
	opt := Options{BatchSize: o.batch, Flows: o.flows, NewHandler: o.handler, RSS: o.ownerRSS, MaxFrame: o.maxFrame}
	if o.fastPath {
		opt.FastPath = r.bump
	}
	a, err := New(ports[0], ports[1], opt)
	if err != nil {
		t.Fatal(err)
	}
	r.a = a
	return r
}

// send delivers one frame and runs the workers until they are idle (the last
// Poll also applies events handed between workers).
func (r *rig) send(port PortID, frame []byte) {
	r.now += time.Millisecond
	r.bump.Arrive(port, frame)
	r.settle()
}

func (r *rig) settle() {
	for r.a.Poll(r.now) > 0 {
	}
}

// advance moves the clock and lets the workers expire flows.
func (r *rig) advance(d time.Duration) {
	r.now += d
	r.a.Poll(r.now)
	r.now += agePeriodDuration
	r.a.Poll(r.now)
}

const agePeriodDuration = time.Duration(agePeriod)

type step struct {
	name string
	port PortID
	b    []byte
}

var (
	a4, b4 = packettest.HostA4, packettest.HostB4
	a6, b6 = packettest.HostA6, packettest.HostB6
)

func tcpFrame(src, dst netip.Addr, sp, dp uint16, flags uint8, seq, ack uint32, payload []byte, tags ...packettest.Tag) []byte {
	return packettest.Frame{Tags: tags, Src: src, Dst: dst, TCP: &packettest.TCP{
		SrcPort: sp, DstPort: dp, Seq: seq, Ack: ack, Flags: flags, Window: 65535, Payload: payload,
	}}.Bytes()
}

// conn is a whole TCP connection, client on the inside, as steps.
func conn(name string, c, s netip.Addr, cp, sp uint16, closeFlag uint8, tags ...packettest.Tag) []step {
	const S, A, F, P = packettest.SYN, packettest.ACK, packettest.FIN, packettest.PSH
	data := bytes.Repeat([]byte(name), 40)
	st := []step{
		{name + " SYN", Inside, tcpFrame(c, s, cp, sp, S, 100, 0, nil, tags...)},
		{name + " SYN-ACK", Outside, tcpFrame(s, c, sp, cp, S|A, 500, 101, nil, tags...)},
		{name + " ACK", Inside, tcpFrame(c, s, cp, sp, A, 101, 501, nil, tags...)},
	}
	for i := range 4 {
		st = append(st,
			step{name + " data", Inside, tcpFrame(c, s, cp, sp, A|P, 101+uint32(i*len(data)), 501, data, tags...)},
			step{name + " reply", Outside, tcpFrame(s, c, sp, cp, A|P, 501+uint32(i*len(data)), 101+uint32((i+1)*len(data)), data[:20], tags...)},
		)
	}
	end := uint32(101 + 4*len(data))
	st = append(st,
		step{name + " close", Inside, tcpFrame(c, s, cp, sp, closeFlag|A, end, 581, nil, tags...)},
	)
	if closeFlag == F {
		st = append(st,
			step{name + " FIN back", Outside, tcpFrame(s, c, sp, cp, F|A, 581, end+1, nil, tags...)},
			step{name + " last ACK", Inside, tcpFrame(c, s, cp, sp, A, end+1, 582, nil, tags...)},
		)
	}
	return st
}

// script is a mixed traffic sample: non-TCP frames of every kind the
// classifier passes, TCP over IPv4, IPv6 and VLAN, and frames it cannot parse.
func script() []step {
	arp := packettest.Frame{EtherType: 0x0806, L4: bytes.Repeat([]byte{1}, 28)}.Bytes()
	ping := packettest.Frame{Src: a4, Dst: b4, Proto: 1, L4: packettest.ICMP(8, 0, 0x10001, []byte("ping"))}.Bytes()
	pong := packettest.Frame{Src: b4, Dst: a4, Proto: 1, L4: packettest.ICMP(0, 0, 0x10001, []byte("ping"))}.Bytes()
	ping6 := packettest.Frame{Src: a6, Dst: b6, Proto: 58, L4: packettest.ICMP(128, 0, 7, []byte("ping6"))}.Bytes()
	udp := packettest.Frame{Src: a4, Dst: b4, Proto: 17, L4: packettest.UDP(5000, 53, []byte("query"))}.Bytes()
	udp6 := packettest.Frame{Src: b6, Dst: a6, Proto: 17, L4: packettest.UDP(53, 5000, []byte("answer"))}.Bytes()
	ext6 := packettest.Frame{Src: a6, Dst: b6, Ext: []packettest.Ext{{Proto: 60, Data: make([]byte, 6)}},
		TCP: &packettest.TCP{SrcPort: 1, DstPort: 2, Flags: packettest.ACK}}.Bytes()
	vlan := packettest.Tag{TPID: 0x8100, TCI: 100}

	st := []step{
		{"arp", Inside, arp},
		{"ping", Inside, ping}, {"pong", Outside, pong}, {"ping6", Inside, ping6},
		{"udp", Inside, udp}, {"udp6", Outside, udp6},
		{"truncated", Outside, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"ipv6 ext", Inside, ext6},
		{"mid-stream", Outside, tcpFrame(b4, a4, 80, 999, packettest.ACK, 1, 1, []byte("old"))},
	}
	st = append(st, conn("v4", a4, b4, 40000, 80, packettest.FIN)...)
	st = append(st, conn("v6", a6, b6, 40001, 443, packettest.RST)...)
	st = append(st, conn("vlan", a4, b4, 40002, 22, packettest.FIN, vlan)...)
	return st
}

// TestSameFramesWithAndWithoutFastPath runs one script through the workers
// with the fast path modelled and without it: what leaves each port must be
// the same frames in the same order, and every frame must leave unchanged on
// the other port (passthrough). docs/architecture.md §3: correctness never depends on
// the fast path.
func TestSameFramesWithAndWithoutFastPath(t *testing.T) {
	for _, queues := range []int{1, 2} {
		t.Run(fmt.Sprintf("queues=%d", queues), func(t *testing.T) {
			var outs [2][2][][]byte
			var rigs [2]*rig
			for i, fast := range []bool{false, true} {
				r := newRig(t, rigOpts{queues: queues, fastPath: fast})
				var want [2][][]byte
				for _, s := range script() {
					r.send(s.port, s.b)
					want[1-s.port.Index()] = append(want[1-s.port.Index()], s.b)
				}
				for p := range 2 {
					if len(r.out[p]) != len(want[p]) {
						t.Fatalf("fast=%v: %d frames left port %d, want %d", fast, len(r.out[p]), p, len(want[p]))
					}
					for j := range want[p] {
						if !bytes.Equal(r.out[p][j], want[p][j]) {
							t.Fatalf("fast=%v: frame %d out of port %d changed", fast, j, p)
						}
					}
				}
				outs[i], rigs[i] = r.out, r
			}
			for p := range 2 {
				for j := range outs[0][p] {
					if !bytes.Equal(outs[0][p][j], outs[1][p][j]) {
						t.Fatalf("port %d frame %d differs between the paths", p, j)
					}
				}
			}
			slow, fast := rigs[0].a.Stats(), rigs[1].a.Stats()
			slowFrames := slow[0].Frames + slow[1].Frames
			fastFrames := fast[0].Frames + fast[1].Frames
			if slowFrames != uint64(len(script())) {
				t.Errorf("without fast path the workers saw %d frames, want all %d", slowFrames, len(script()))
			}
			if fastFrames >= slowFrames {
				t.Errorf("fast path: workers saw %d frames, not fewer than %d", fastFrames, slowFrames)
			}
			// One per completed handshake. The two flows seen only
			// mid-stream and from one side (older than the process,
			// or forged) stay off it.
			if got := fast[0].FastInserts + fast[1].FastInserts; got != 3 {
				t.Errorf("fast-path inserts = %d, want 3 (3 completed handshakes, none for 2 flows seen mid-stream one way)", got)
			}
			if got := slow[0].FastInserts + slow[1].FastInserts; got != 0 {
				t.Errorf("fast-path inserts without fast path = %d", got)
			}
			red := rigs[1].bump.Redirected(Inside) + rigs[1].bump.Redirected(Outside)
			if red+fastFrames != slowFrames {
				t.Errorf("redirected %d + through workers %d != %d frames", red, fastFrames, slowFrames)
			}
		})
	}
}

func key4(c, s netip.Addr, cp, sp uint16) flow.Key {
	return flow.KeyFrom(netip.AddrPortFrom(c, cp), netip.AddrPortFrom(s, sp))
}

// TestFastPathLifecycle: a flow enters the map (both directions) after SYN
// and SYN-ACK, not before; it leaves after FIN plus the grace period; a new
// SYN on a listed tuple (port reuse) takes it out at once.
func TestFastPathLifecycle(t *testing.T) {
	r := newRig(t, rigOpts{fastPath: true})
	k := key4(a4, b4, 1234, 80)
	listed := func() bool { return r.bump.Listed(k) && r.bump.Listed(keyRev(k)) }
	st := conn("x", a4, b4, 1234, 80, packettest.FIN)
	r.send(st[0].port, st[0].b) // SYN
	if r.bump.Listed(k) || r.bump.Listed(keyRev(k)) {
		t.Fatal("listed after SYN only")
	}
	r.send(st[1].port, st[1].b) // SYN-ACK
	if !listed() {
		t.Fatal("not listed (both directions) after the handshake")
	}
	for _, s := range st[2:] {
		r.send(s.port, s.b)
	}
	// The FINs reached the workers although the flow is listed (the
	// classifier sends SYN, FIN and RST to user space); the flow stays
	// listed for the grace period, so the closing exchange keeps its path.
	if s := r.a.Stats(); r.bump.Redirected(Inside)+r.bump.Redirected(Outside) == 0 || s[0].Frames+s[1].Frames != 4 {
		t.Fatalf("redirected %d, workers saw %d frames; want data on the fast path, SYN, SYN-ACK and both FINs in the workers",
			r.bump.Redirected(Inside)+r.bump.Redirected(Outside), s[0].Frames+s[1].Frames)
	}
	if !listed() {
		t.Fatal("removed at the FIN, before the grace period")
	}
	r.advance(time.Second)
	if !listed() {
		t.Fatal("removed before the grace period ended")
	}
	r.advance(2 * time.Second)
	if r.bump.Listed(k) || r.bump.Listed(keyRev(k)) {
		t.Fatal("still listed after FIN + grace period")
	}
	s := r.a.Stats()
	if s[0].FastRemoves+s[1].FastRemoves != 1 {
		t.Fatalf("fast-path removes = %d, want 1", s[0].FastRemoves+s[1].FastRemoves)
	}

	// Port reuse: handshake again, then a new SYN on the listed tuple.
	r.send(st[0].port, st[0].b)
	r.send(st[1].port, st[1].b)
	if !listed() {
		t.Fatal("not listed after the second handshake")
	}
	r.send(st[0].port, st[0].b)
	if r.bump.Listed(k) || r.bump.Listed(keyRev(k)) {
		t.Fatal("a new SYN on a listed tuple did not remove it")
	}
}

func keyRev(k flow.Key) flow.Key { return k.Reverse() }

// TestSynClearsStaleFastPath: a tuple the table forgot but the map still
// lists (the kernel forwarded its FIN) is cleared by the next SYN on it.
func TestSynClearsStaleFastPath(t *testing.T) {
	r := newRig(t, rigOpts{fastPath: true})
	k := key4(a4, b4, 4000, 80)
	r.bump.AllowFastPath(k)
	r.bump.AllowFastPath(keyRev(k))
	r.send(Inside, tcpFrame(a4, b4, 4000, 80, packettest.SYN, 1, 0, nil))
	if r.bump.Listed(k) || r.bump.Listed(keyRev(k)) {
		t.Fatal("a SYN on an unknown but listed tuple left it listed")
	}
}

// TestHandshakeTimeout: a SYN never answered is forgotten after the
// handshake timeout, so a late SYN-ACK does not list the flow.
func TestHandshakeTimeout(t *testing.T) {
	r := newRig(t, rigOpts{fastPath: true})
	st := conn("y", a4, b4, 2000, 80, packettest.FIN)
	r.send(st[0].port, st[0].b)
	r.advance(2 * time.Second)
	r.send(st[1].port, st[1].b)
	if r.bump.Listed(key4(a4, b4, 2000, 80)) {
		t.Fatal("listed by a SYN-ACK after the handshake timeout")
	}
}

// TestSynAckFromSameSideIsNotAHandshake: the SYN-ACK must come from the other
// endpoint than the SYN.
func TestSynAckFromSameSideIsNotAHandshake(t *testing.T) {
	r := newRig(t, rigOpts{fastPath: true})
	r.send(Inside, tcpFrame(a4, b4, 3000, 80, packettest.SYN, 1, 0, nil))
	r.send(Inside, tcpFrame(a4, b4, 3000, 80, packettest.SYN|packettest.ACK, 1, 0, nil))
	if r.bump.Listed(key4(a4, b4, 3000, 80)) {
		t.Fatal("listed after SYN and SYN-ACK from the same endpoint")
	}
}

// TestDropsAreCounted: frames too large for the other port's TX frames, and
// frames beyond the free TX frames, are dropped and counted by reason.
func TestDropsAreCounted(t *testing.T) {
	r := newRig(t, rigOpts{frameSize: [2]int{4096, 2048}, frames: 16, batch: 8})
	big := packettest.Frame{Src: a4, Dst: b4, Proto: 17, L4: packettest.UDP(1, 2, make([]byte, 3000))}.Bytes()
	r.send(Inside, big)
	s := r.a.Stats()
	if s[0].Drop(DropTooBig) != 1 || len(r.out[1]) != 0 {
		t.Fatalf("too big: drops %v, out %d", s[0].Drops, len(r.out[1]))
	}
	small := packettest.Frame{Src: a4, Dst: b4, Proto: 17, L4: packettest.UDP(1, 2, []byte("x"))}.Bytes()
	r.send(Inside, small)
	if len(r.out[1]) != 1 {
		t.Fatalf("small frame after a drop: out %d", len(r.out[1]))
	}

	// The outside port has 8 TX frames: with all of them taken away, a
	// frame finds none.
	r = newRig(t, rigOpts{frames: 16, batch: 8})
	var grab [8]Desc
	if n := r.outp[0].GetTx(grab[:]); n != 8 {
		t.Fatalf("grabbed %d TX frames", n)
	}
	r.in[0].Inject(small)
	r.in[0].Inject(small)
	r.settle()
	s = r.a.Stats()
	if s[0].Drop(DropNoTxFrame) != 2 || s[0].Frames != 2 || s[0].TxFrames != 0 || len(r.out[1]) != 0 {
		t.Fatalf("no TX frame: %+v, out %d", s[0], len(r.out[1]))
	}
}

// ownedBy returns a client port whose flow a4:port -> b4:80 the worker
// `owner` of n owns.
func ownedBy(owner, n int) uint16 {
	sp := uint16(1000)
	for flow.MakeKey(a4.AsSlice(), b4.AsSlice(), sp, 80).Owner(n) != owner {
		sp++
	}
	return sp
}

// TestHandoff: frames of a flow another worker owns (no symmetric RSS) are
// copied to the owner, which handles and transmits them, in order; the
// non-owner keeps no flow state; a full lane drops and counts.
func TestHandoff(t *testing.T) {
	r := newRig(t, rigOpts{queues: 2, fastPath: true})
	sp := ownedBy(1, 2)
	st := conn("h", a4, b4, sp, 80, packettest.FIN)
	// Every frame of the connection arrives on queue 0, whose worker does
	// not own the flow.
	for _, s := range st {
		if s.port == Inside {
			r.in[0].Inject(s.b)
		} else {
			r.outp[0].Inject(s.b)
		}
		r.now += time.Millisecond
		r.settle()
	}
	var want [2][][]byte
	for _, s := range st {
		want[1-s.port.Index()] = append(want[1-s.port.Index()], s.b)
	}
	for p := range 2 {
		if len(r.out[p]) != len(want[p]) {
			t.Fatalf("port %d: %d frames out, want %d", p, len(r.out[p]), len(want[p]))
		}
		for j := range want[p] {
			if !bytes.Equal(r.out[p][j], want[p][j]) {
				t.Fatalf("port %d frame %d changed or reordered", p, j)
			}
		}
	}
	s := r.a.Stats()
	if got := s[0].Handoffs + s[1].Handoffs; got != uint64(len(st)) {
		t.Fatalf("%d hand-offs, want %d (every frame)", got, len(st))
	}
	// The owner ran the fast-path logic: the handshake listed the flow.
	if s[0].FastInserts != 1 {
		t.Fatalf("fast-path inserts = %d, want 1 by the owner", s[0].FastInserts)
	}
	ck := flow.MakeKey(a4.AsSlice(), b4.AsSlice(), sp, 80).Canonical()
	if _, ok := r.a.workers[1].flows.Lookup(ck); !ok {
		t.Fatal("the owner has no state for the flow")
	}
	if _, ok := r.a.workers[0].flows.Lookup(ck); ok {
		t.Fatal("a non-owner holds flow state")
	}
	// Only the owner transmitted: queue 1's ports sent everything.
	if s[0].TxFrames+s[1].TxFrames != uint64(len(st)) {
		t.Fatalf("tx frames %d, want %d", s[0].TxFrames+s[1].TxFrames, len(st))
	}

	// A lane holds laneSlots(2, handoffSlotSize) frames: a worker that finds it full holds
	// the frame back (dispatch reports false) instead of dropping it.
	data := tcpFrame(a4, b4, sp, 80, packettest.ACK, 1, 1, []byte("data"))
	w0 := r.a.workers[0]
	for i := range laneSlots(2, handoffSlotSize) + 10 {
		if taken := w0.dispatch(Inside, data, 0); taken != (i < laneSlots(2, handoffSlotSize)) {
			t.Fatalf("frame %d: dispatch took it = %v with %d lane slots", i, taken, laneSlots(2, handoffSlotSize))
		}
	}
	if w0.t[0].handoffDrops != 0 {
		t.Fatalf("full lane: %d drops, want 0 (held back)", w0.t[0].handoffDrops)
	}
	// Frames received while the lane is full stay held in the port, and
	// go once the owner drained the lane.
	for range 10 {
		if !r.in[0].Inject(data) {
			t.Fatal("inject failed")
		}
	}
	if n := w0.receive(Inside, 0); n != 1 || len(w0.held[Inside]) != 10 {
		t.Fatalf("receive with a full lane: %d handled, %d held; want 1 (busy) and 10", n, len(w0.held[Inside]))
	}
	r.out = [2][][]byte{}
	r.settle()
	if len(r.out[1]) != laneSlots(2, handoffSlotSize)+10 || len(w0.held[Inside]) != 0 {
		t.Fatalf("owner sent %d handed-off frames (want %d), %d still held", len(r.out[1]), laneSlots(2, handoffSlotSize)+10, len(w0.held[Inside]))
	}
	if d := w0.t[0].handoffDrops + r.a.Stats()[0].HandoffDrops; d != 0 {
		t.Fatalf("%d frames dropped", d)
	}
}

// TestCounters: frames and bytes per direction.
func TestCounters(t *testing.T) {
	r := newRig(t, rigOpts{})
	var bytesIn [2]uint64
	var framesIn [2]uint64
	for _, s := range script() {
		r.send(s.port, s.b)
		bytesIn[s.port.Index()] += uint64(len(s.b))
		framesIn[s.port.Index()]++
	}
	st := r.a.Stats()
	for p := range 2 {
		if st[p].Frames != framesIn[p] || st[p].Bytes != bytesIn[p] || st[p].TxFrames != framesIn[p] || st[p].TxBytes != bytesIn[p] {
			t.Errorf("port %d: %+v, want %d frames %d bytes", p, st[p], framesIn[p], bytesIn[p])
		}
	}
	if st[0].Unparsed+st[1].Unparsed != 1 {
		t.Errorf("unparsed = %d, want 1 (the truncated frame)", st[0].Unparsed+st[1].Unparsed)
	}
}

// TestWorkerZeroAllocs: the per-packet path (receive, parse, flow events,
// hand-off, flow table, transmit, counters) allocates nothing, with and
// without the fast path.
func TestWorkerZeroAllocs(t *testing.T) {
	for _, fast := range []bool{false, true} {
		t.Run(fmt.Sprintf("fast=%v", fast), func(t *testing.T) {
			r := newRig(t, rigOpts{queues: 2, fastPath: fast, countOnly: true})
			steps := script()
			// Warm up: first use of every path.
			for _, s := range steps {
				r.send(s.port, s.b)
			}
			allocs := testing.AllocsPerRun(50, func() {
				for _, s := range steps {
					r.send(s.port, s.b)
				}
				r.advance(3 * time.Second) // expiry and fast-path removal too
			})
			if allocs != 0 {
				t.Fatalf("%v allocations per run of %d frames, want 0", allocs, len(steps))
			}
		})
	}
}

// BenchmarkWorkerPassthrough measures the worker loop over in-memory ports (memport):
// established TCP flows (one, or 64 interleaved), batches of 64, fast path
// off so every frame goes through a worker (receive, parse, Passthrough
// handler, flow table, copy into a TX frame, Kick). "handoff" runs two
// queues with every frame arriving at the worker that does not own its flow
// (copy into a hand-off slot, ring, the owner's round). ns/op is per frame;
// it includes memport.Port's copies in and out, which stand in for the kernel's.
func BenchmarkWorkerPassthrough(b *testing.B) {
	for _, bc := range []struct {
		size, flows int
		handoff     bool
	}{{64, 1, false}, {1500, 1, false}, {64, 64, false}, {1500, 1, true}} {
		name := fmt.Sprintf("%dB-%dflows", bc.size, bc.flows)
		queues, owner := 1, 0
		if bc.handoff {
			name, queues, owner = name+"-handoff", 2, 1
		}
		b.Run(name, func(b *testing.B) {
			r := newRig(b, rigOpts{queues: queues, frames: 512, countOnly: true})
			var frames [][]byte
			for f := range bc.flows {
				port := ownedBy(owner, queues) + uint16(f)
				for _, s := range conn("bench", a4, b4, port, 80, packettest.FIN)[:3] {
					r.send(s.port, s.b)
				}
				frames = append(frames, tcpFrame(a4, b4, port, 80, packettest.ACK, 1000, 1, make([]byte, bc.size-14-20-20)))
			}
			const batch = 64
			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				n := min(batch, b.N-i)
				for j := range n {
					r.in[0].Inject(frames[j%len(frames)])
				}
				for r.a.Poll(r.now) > 0 {
				}
			}
		})
	}
}

// TestStartStop runs the workers on their own pinned threads (the daemon's
// mode) over in-memory ports (memport) while frames arrive from another goroutine, then stops
// them: every frame must come out, and Stop must return.
func TestStartStop(t *testing.T) {
	var mu sync.Mutex
	var got [2]int
	sinks := [2]func([]byte){
		func([]byte) { mu.Lock(); got[0]++; mu.Unlock() },
		func([]byte) { mu.Lock(); got[1]++; mu.Unlock() },
	}
	in, err := memport.New(256, 2048, sinks[0])
	if err != nil {
		t.Fatal(err)
	}
	out, err := memport.New(256, 2048, sinks[1])
	if err != nil {
		t.Fatal(err)
	}
	bump := memport.NewBump([]*memport.Port{in}, []*memport.Port{out}, sinks, true, 64)
	cpus := []int{0}
	if runtime.NumCPU() > 1 {
		cpus = []int{1, 0}
	}
	a, err := New([]Port{in}, []Port{out}, Options{CPUs: cpus, FastPath: bump})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	steps := script()
	for _, s := range steps {
		for !bump.Arrive(s.port, s.b) {
			time.Sleep(time.Millisecond) // queue full: let the workers catch up
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := got[0] + got[1]
		mu.Unlock()
		if n == len(steps) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d frames came out", n, len(steps))
		}
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() { a.Stop(); a.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Stop did not return")
	}
	if err := a.Start(); err == nil {
		t.Fatal("Start after Stop succeeded")
	}
}

// TestStartPinError: a CPU the machine does not have fails Start with an
// error that names it, and leaves no worker running.
func TestStartPinError(t *testing.T) {
	r := newRig(t, rigOpts{})
	a, err := New([]Port{r.in[0]}, []Port{r.outp[0]}, Options{CPUs: []int{1023}})
	if err != nil {
		t.Fatal(err)
	}
	err = a.Start()
	if err == nil || !strings.Contains(err.Error(), "CPU 1023") {
		t.Fatalf("Start = %v, want a pinning error naming CPU 1023", err)
	}
}

func TestNewRejectsBadPorts(t *testing.T) {
	r := newRig(t, rigOpts{queues: 2})
	for _, tc := range []struct {
		name    string
		in, out []Port
		opt     Options
	}{
		{"no queues", nil, nil, Options{}},
		{"queue counts differ", []Port{r.in[0], r.in[1]}, []Port{r.outp[0]}, Options{}},
		{"negative cpu", []Port{r.in[0]}, []Port{r.outp[0]}, Options{CPUs: []int{-1}}},
		{"no flow capacity", []Port{r.in[0]}, []Port{r.outp[0]}, Options{Flows: config.Flows{IdleTimeout: 1}}},
	} {
		if _, err := New(tc.in, tc.out, tc.opt); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
}
