package appliance

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/afpacket"
	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

func engineRigQueues(t *testing.T, queues int) *rig {
	t.Helper()
	return newRig(t, rigOpts{queues: queues, fastPath: true, handler: func(int) (FrameHandler, error) {
		return engine.New(engine.Config{}, engine.Deps{})
	}})
}

// Fragments of a connection no engine handles leave unchanged, whichever
// queue each arrives on and in whatever order: the datagram's steering
// worker holds the later fragments until the first names the flow's owner.
// Before, a non-first fragment was "other" and left at once (and a first
// one of an encrypted flow was dropped).
func TestFragmentsSteeredToOwner(t *testing.T) {
	for _, c := range []struct {
		queues int
		v6     bool
	}{{1, false}, {2, false}, {4, false}, {1, true}, {2, true}, {4, true}} {
		queues := c.queues
		r := engineRigQueues(t, queues)
		src, dst := a4, b4
		if c.v6 {
			src, dst = a6, b6
		}
		seg := tcpFrame(src, dst, 40000, 8080, packettest.ACK, 1, 1, bytes.Repeat([]byte("fragment data. "), 100))
		frags := packettest.Fragments(seg, 512, 7)
		for i, k := range []int{2, 1, 0} {
			r.in[i%queues].Inject(frags[k])
			r.now += time.Millisecond
			r.settle()
			if k != 0 && len(r.out[1]) != 0 {
				t.Fatalf("%d queues: a non-first fragment left before its first", queues)
			}
		}
		if len(r.out[1]) != 3 {
			t.Fatalf("%d queues: %d fragments left, want 3", queues, len(r.out[1]))
		}
		for _, f := range frags {
			if !slices.ContainsFunc(r.out[1], func(o []byte) bool { return bytes.Equal(o, f) }) {
				t.Fatalf("%d queues: a fragment changed or went missing", queues)
			}
		}
		if len(r.out[0]) != 0 {
			t.Fatalf("%d queues: %d frames back inside", queues, len(r.out[0]))
		}
		for _, w := range r.a.workers {
			if len(w.frag.routes) != 0 || w.frag.nheld != 0 {
				t.Fatalf("%d queues: worker %d keeps %d routes, %d held after the datagram went by", queues, w.id, len(w.frag.routes), w.frag.nheld)
			}
		}
	}
}

// A non-first fragment whose first never comes is never forwarded: held,
// then dropped (counted) at the timeout.
func TestLoneFragmentNotForwarded(t *testing.T) {
	for _, queues := range []int{1, 3} {
		r := engineRigQueues(t, queues)
		seg := tcpFrame(a4, b4, 40000, 8080, packettest.ACK, 1, 1, bytes.Repeat([]byte("MARKER "), 200))
		r.send(Inside, packettest.Fragments(seg, 512, 9)[1])
		r.advance(6 * time.Second)
		r.advance(time.Second)
		if len(r.out[0])+len(r.out[1]) != 0 {
			t.Fatalf("%d queues: the lone fragment left", queues)
		}
	}
}

// segPort is a port that cuts super-segments as the AF_PACKET port does.
type segPort struct{ Port }

func (segPort) Segment(frame []byte, mss int, out [][]byte, sizes []int) (int, error) {
	return afpacket.Segment(frame, mss, out, sizes)
}

// TestSuperSegmentHandedOverInSegments: a TCP super-segment that reached a
// worker other than its flow's owner (one the port's steering could not
// place) goes to the owner as segments of its gso_size that fit the lane's
// slots, in order, each with the right sequence number, bytes and valid
// checksums; a big frame that is not a super-segment is dropped and counted.
func TestSuperSegmentHandedOverInSegments(t *testing.T) {
	w := &worker{nwork: 2, out: []*lane{nil, newLane(64, handoffSlotSize)}, handed: make([]bool, 2)}
	w.ports[Inside] = segPort{}
	payload := make([]byte, 10000)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	frame := tcpFrame(a4, b4, 40000, 443, packettest.ACK|packettest.PSH, 1000, 77, payload, packettest.Tag{TPID: 0x88a8, TCI: 5}, packettest.Tag{TPID: 0x8100, TCI: 6})
	w.gso = 1448
	if !w.handOffSegments(1, Inside, frame) {
		t.Fatal("held back with room in the lane")
	}
	var got []byte
	for i := 0; ; i++ {
		h, ok := w.out[1].frames.Pop()
		if !ok {
			break
		}
		f := w.out[1].frame(h)
		var p packet.Packet
		if err := p.Decode(f); err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if !p.VerifyL4Checksum() {
			t.Fatalf("segment %d: bad TCP checksum", i)
		}
		if p.Seq() != 1000+uint32(len(got)) || len(p.Payload()) > 1448 {
			t.Fatalf("segment %d: seq %d, %d bytes", i, p.Seq(), len(p.Payload()))
		}
		if psh := p.Flags()&packet.FlagPSH != 0; psh != (len(got)+len(p.Payload()) == len(payload)) {
			t.Fatalf("segment %d: PSH %v", i, psh)
		}
		got = append(got, p.Payload()...)
	}
	if !bytes.Equal(got, payload) || w.t[Inside].handoffs != 7 || !w.handed[1] {
		t.Fatalf("%d of %d bytes arrived in %d hand-offs", len(got), len(payload), w.t[Inside].handoffs)
	}

	w.gso = 0
	w.handOff(1, Inside, frame, false, 0)
	if w.t[Inside].drops[DropTooBig] != 1 {
		t.Fatalf("a big frame without gso_size: drops %v", w.t[Inside].drops)
	}
}

// TestJumboFramesHandedOver: on ports of MTU 9000 (AF_PACKET), a frame of
// another worker's flow changes worker whole, and a super-segment in its
// MTU-sized wire segments, the lanes' slots being sized from the ports'
// MTU (Options.MaxFrame). Before, slots held 4096 bytes: the 8948-byte FIN
// segment and every segment of the super-segment were dropped
// (DropTooBig), and Linux resent them at the same size forever.
func TestJumboFramesHandedOver(t *testing.T) {
	const mtu, mss = 9000, 9000 - 40 - 12
	r := newRig(t, rigOpts{queues: 2, frameSize: [2]int{16384, 16384}, maxFrame: mtu + 14 + 8})
	if f := r.a.HandoffFrame(); f < mtu+14+8 || f > mtu+14+8+63 {
		t.Fatalf("lanes carry frames of up to %d bytes", f)
	}
	w0 := r.a.workers[0]
	w0.ports[Inside] = segPort{w0.ports[Inside]}
	sp := ownedBy(1, 2)
	qinq := []packettest.Tag{{TPID: 0x88a8, TCI: 5}, {TPID: 0x8100, TCI: 6}}
	payload := bytes.Repeat([]byte("jumbo data. "), 3*mss/12)
	super := tcpFrame(a4, b4, sp, 80, packettest.ACK, 1000, 1, payload, qinq...)
	fin := tcpFrame(a4, b4, sp, 80, packettest.ACK|packettest.FIN, 1000+uint32(len(payload)), 1, payload[:mss], qinq...)
	w0.gso = mss
	if !w0.dispatch(Inside, super, 0) {
		t.Fatal("the super-segment was held back")
	}
	w0.gso = 0
	if !w0.dispatch(Inside, fin, 0) {
		t.Fatal("the FIN segment was held back")
	}
	r.settle()
	s := r.a.Stats()
	if d := s[0].Drop(DropTooBig); d != 0 {
		t.Fatalf("%d frames dropped as too big", d)
	}
	if h := s[0].Handoffs; h != 4 {
		t.Fatalf("%d hand-offs, want 4 (3 segments and the FIN)", h)
	}
	if len(r.out[1]) != 4 || !bytes.Equal(r.out[1][3], fin) {
		t.Fatalf("%d frames left, want the 3 segments and the FIN unchanged", len(r.out[1]))
	}
	var got []byte
	for _, f := range r.out[1][:3] {
		var p packet.Packet
		if err := p.Decode(f); err != nil || len(f) > mtu+14+8 {
			t.Fatalf("segment of %d bytes: %v", len(f), err)
		}
		got = append(got, p.Payload()...)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("the super-segment's bytes changed")
	}
}

// gsoPort receives frames longer than a 1500-byte MTU as super-segments
// of gso payload bytes per segment, as the AF_PACKET port does after GRO.
type gsoPort struct {
	segPort
	gso uint16
}

func (p gsoPort) Receive(descs []Desc) int {
	n := p.Port.Receive(descs)
	for i := range descs[:n] {
		if descs[i].Len > 1514 {
			descs[i].GSO = p.gso
		}
	}
	return n
}

// TestSuperSegmentWaitsForLane: a super-segment with more segments than
// its owner's lane has slots is held, like a whole frame, until the owner
// drained the lane, and goes on from the segment where it stopped: every
// byte arrives once, in order. Before, the segments past a full lane were
// dropped (handoff drops), and each resend of them too when the lane was
// busy.
func TestSuperSegmentWaitsForLane(t *testing.T) {
	const mss = 200
	r := newRig(t, rigOpts{queues: 2, frameSize: [2]int{1 << 16, 2048}})
	w0 := r.a.workers[0]
	w0.ports[Inside] = gsoPort{segPort{w0.ports[Inside]}, mss}
	sp := ownedBy(1, 2)
	payload := make([]byte, 60000) // 300 segments; a lane holds laneSlots(2, 4096) = 256
	for i := range payload {
		payload[i] = byte(i * 13)
	}
	for i := range 2 {
		seq := 1000 + uint32(i*len(payload))
		if !r.in[0].Inject(tcpFrame(a4, b4, sp, 80, packettest.ACK, seq, 1, payload)) {
			t.Fatal("inject failed")
		}
	}
	r.now += time.Millisecond
	r.settle()
	s := r.a.Stats()
	if s[0].HandoffDrops != 0 || s[0].Drop(DropTooBig) != 0 {
		t.Fatalf("%d hand-off drops, %d too big", s[0].HandoffDrops, s[0].Drop(DropTooBig))
	}
	var got []byte
	for i, f := range r.out[1] {
		var p packet.Packet
		if err := p.Decode(f); err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if p.Seq() != 1000+uint32(len(got)) {
			t.Fatalf("segment %d: seq %d, want %d", i, p.Seq(), 1000+len(got))
		}
		got = append(got, p.Payload()...)
	}
	if want := append(bytes.Clone(payload), payload...); !bytes.Equal(got, want) || s[0].Frames != 2 {
		t.Fatalf("%d of %d bytes arrived in %d segments; %d frames received", len(got), len(want), len(r.out[1]), s[0].Frames)
	}
}

// gsoRecorder records the Desc.GSO of every frame a port transmits.
type gsoRecorder struct {
	Port
	gso []uint16
}

func (r *gsoRecorder) Transmit(descs []Desc) int {
	n := r.Port.Transmit(descs)
	for _, d := range descs[:n] {
		r.gso = append(r.gso, d.GSO)
	}
	return n
}

// TestSmallSuperSegmentHandedOverWhole: a super-segment that fits a lane
// slot goes to its owner whole and keeps its gso_size, so the owner's port
// sends it as the segments it stands for. Before, the hand-off dropped
// the gso_size: the owner sent a 2,962-byte frame as one, which a port of
// MTU 1500 refuses (EMSGSIZE) and one of MTU 9000 sends as a segment
// larger than the connection's MSS.
func TestSmallSuperSegmentHandedOverWhole(t *testing.T) {
	const mss = 1448
	r := newRig(t, rigOpts{queues: 2, frameSize: [2]int{16384, 16384}})
	rec := &gsoRecorder{Port: r.a.workers[1].tx[Outside].port}
	r.a.workers[1].tx[Outside].port = rec
	w0 := r.a.workers[0]
	w0.ports[Inside] = segPort{w0.ports[Inside]}
	super := tcpFrame(a4, b4, ownedBy(1, 2), 80, packettest.ACK, 1000, 1, bytes.Repeat([]byte("s"), 2*mss))
	w0.gso = mss
	if len(super) > w0.out[1].size || !w0.dispatch(Inside, super, 0) {
		t.Fatalf("a %d-byte super-segment was not handed over whole", len(super))
	}
	w0.gso = 0
	r.settle()
	if s := r.a.Stats(); s[0].Handoffs != 1 || len(r.out[1]) != 1 || !bytes.Equal(r.out[1][0], super) {
		t.Fatalf("%d hand-offs, %d frames out; want the super-segment in one hand-off, unchanged", s[0].Handoffs, len(r.out[1]))
	}
	if len(rec.gso) != 1 || rec.gso[0] != mss {
		t.Fatalf("the owner sent it with GSO %v, want [%d]", rec.gso, mss)
	}
}

// TestMaxFrameBounded: a MaxFrame no Ethernet frame can have is refused at
// start.
func TestMaxFrameBounded(t *testing.T) {
	for _, m := range []int{-1, handoffMaxSlotSize + 1} {
		if _, err := New([]Port{nil}, []Port{nil}, Options{MaxFrame: m}); err == nil {
			t.Fatalf("MaxFrame %d accepted", m)
		}
	}
}

// TestFragmentedDatagramsKeepTheirOrder: the datagrams of one connection,
// each cut into fragments, all arriving on one queue, reach the flow's
// owner in the order they came, whichever worker steers them. Before, each
// datagram's steering worker followed its identification, so some took a
// hop more than others and overtook them; the engine takes a host's bytes
// only in order, and a fragmented bulk transfer crawled.
func TestFragmentedDatagramsKeepTheirOrder(t *testing.T) {
	for _, queues := range []int{2, 3} {
		for arrive := range queues {
			r := engineRigQueues(t, queues)
			var want [][]byte
			for d := range 16 {
				seg := tcpFrame(a4, b4, 40000, 8080, packettest.ACK, uint32(1+d*1500), 1, bytes.Repeat([]byte{byte(d)}, 1500))
				for _, f := range packettest.Fragments(seg, 512, uint32(100+d)) {
					r.in[arrive].Inject(f)
					want = append(want, f)
				}
			}
			r.now += time.Millisecond
			r.settle()
			if len(r.out[1]) != len(want) {
				t.Fatalf("%d queues, arriving on %d: %d fragments left, want %d", queues, arrive, len(r.out[1]), len(want))
			}
			for i := range want {
				if !bytes.Equal(r.out[1][i], want[i]) {
					t.Fatalf("%d queues, arriving on %d: fragment %d left out of order", queues, arrive, i)
				}
			}
		}
	}
}

// A flood of forged non-first fragments does not shut fragmented
// connections out of the steering table. Each forged fragment is a route
// for fragHoldTime; before, a full table refused new routes, so a real
// datagram's first fragment went to its owner while its later fragments,
// with no route, were dropped, and the datagram never left: 4,096 forged
// fragments per 5 s blocked every fragmented connection a worker steers.
// Now a full table forgets its oldest route, and held fragments past
// fragHeldMax push out the oldest routes too.
func TestFragmentFloodDoesNotBlockSteering(t *testing.T) {
	for _, reorder := range []bool{false, true} {
		r := engineRigQueues(t, 2)
		junk := bytes.Repeat([]byte("forged "), 100)
		for id := range uint32(fragRoutes + 100) {
			// From outside, between the same two hosts: the same steering
			// worker as the real datagram's.
			seg := tcpFrame(b4, a4, 8080, 40000, packettest.ACK, 1, 1, junk)
			r.outp[id%2].Inject(packettest.Fragments(seg, 256, 1000+id)[1])
			if id%64 == 63 {
				r.settle()
			}
		}
		r.now += time.Millisecond
		r.settle()
		r.out = [2][][]byte{}
		seg := tcpFrame(a4, b4, 40000, 8080, packettest.ACK, 1, 1, bytes.Repeat([]byte("fragment data. "), 100))
		frags := packettest.Fragments(seg, 512, 7)
		order := []int{0, 1, 2}
		if reorder {
			order = []int{2, 1, 0} // the held limit is full of forged fragments
		}
		for _, k := range order {
			r.in[0].Inject(frags[k])
		}
		r.now += time.Millisecond
		r.settle()
		if len(r.out[1]) != len(frags) {
			t.Fatalf("reordered %v: %d of the real datagram's %d fragments left", reorder, len(r.out[1]), len(frags))
		}
		if len(r.out[0]) != 0 {
			t.Fatalf("reordered %v: %d forged fragments reached the inside", reorder, len(r.out[0]))
		}
		for _, w := range r.a.workers {
			if len(w.frag.routes) > fragRoutes || w.frag.nheld > fragHeldMax || len(w.frag.order) > 2*fragRoutes+64 {
				t.Fatalf("worker %d: %d routes, %d held, %d order entries", w.id, len(w.frag.routes), w.frag.nheld, len(w.frag.order))
			}
		}
	}
}

// Making room for held fragments takes the oldest route that holds some,
// not the route of a datagram whose first fragment already went by: that
// one holds nothing, and its later fragments, finding no route, waited
// until they expired (a burst of 257 forged fragments did it).
func TestHeldFragmentsDoNotEvictRoutedDatagram(t *testing.T) {
	r := engineRigQueues(t, 2)
	seg := tcpFrame(a4, b4, 40000, 8080, packettest.ACK, 1, 1, bytes.Repeat([]byte("fragment data. "), 100))
	frags := packettest.Fragments(seg, 512, 7)
	r.in[0].Inject(frags[0])
	r.now += time.Millisecond
	r.settle()
	junk := bytes.Repeat([]byte("forged "), 100)
	for id := range uint32(fragHeldMax + 50) {
		fs := packettest.Fragments(tcpFrame(b4, a4, 8080, 40000, packettest.ACK, 1, 1, junk), 256, 1000+id)
		r.outp[id%2].Inject(fs[1])
		if id%64 == 63 {
			r.settle()
		}
	}
	r.now += time.Millisecond
	r.settle()
	for _, f := range frags[1:] {
		r.in[0].Inject(f)
	}
	r.now += time.Millisecond
	r.settle()
	if len(r.out[1]) != len(frags) {
		t.Fatalf("%d of the real datagram's %d fragments left", len(r.out[1]), len(frags))
	}
}

// A full route table evicts expired routes before a live one, also between
// two expiry passes (agePeriod), when add forgets nothing itself. The
// oldest route by creation is a datagram's whose first fragment came late
// and renewed its deadline; younger ones, a burst of forged first
// fragments, expired since the last pass. Evicted by creation order (a
// review of 27bc034), the real datagram's last fragment found no route and
// never left; the order now follows the deadlines (requeue).
func TestFullRouteTableEvictsExpiredFirst(t *testing.T) {
	r := engineRigQueues(t, 2)
	seg := tcpFrame(a4, b4, 40000, 8080, packettest.ACK, 1, 1, bytes.Repeat([]byte("fragment data. "), 100))
	frags := packettest.Fragments(seg, 512, 7)
	// t0: the datagram's middle fragment, held: its route is the oldest.
	r.in[0].Inject(frags[1])
	r.settle()
	junk := bytes.Repeat([]byte("forged "), 100)
	forged := func(id uint32) {
		fs := packettest.Fragments(tcpFrame(b4, a4, 8080, 40000, packettest.ACK, 1, 1, junk), 256, 1000+id)
		r.outp[id%2].Inject(fs[0]) // a first fragment: routed, holds nothing
	}
	// t0+1ms: forged first fragments, all but one of the table's routes.
	r.now += time.Millisecond
	for id := range uint32(fragRoutes - 2) {
		forged(id)
		if id%64 == 63 {
			r.settle()
		}
	}
	r.settle()
	// t0+4.95s: the datagram's first fragment; its route lives 5 s
	// more. The worker's expire runs (nothing expired yet).
	r.now += 4950 * time.Millisecond
	r.in[0].Inject(frags[0])
	r.settle()
	// t0+5.02s, 5.03s: the burst's routes have expired, less than
	// agePeriod after the last expire; two new datagrams fill the table,
	// then make room.
	r.now += 70 * time.Millisecond
	forged(fragRoutes)
	r.settle()
	r.now += 10 * time.Millisecond
	forged(fragRoutes + 1)
	r.settle()
	// t0+5.04s: the datagram's last fragment.
	r.now += 10 * time.Millisecond
	r.in[0].Inject(frags[2])
	r.settle()
	r.now += time.Millisecond
	r.settle()
	n := 0
	for _, o := range r.out[1] {
		for _, f := range frags {
			if bytes.Equal(o, f) {
				n++
			}
		}
	}
	if n != len(frags) {
		t.Fatalf("%d of the real datagram's %d fragments left (a live route evicted while %d expired ones stayed)", n, len(frags), fragRoutes-2)
	}
}
