package afpacketport

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"testing"
	"weak"

	"github.com/tcpinc/tcpinc/afpacket"
	"github.com/tcpinc/tcpinc/bump"
)

// tailFrame is a super-frame queued as the engine lends it: its headers in
// the slot, its payload in a buffer of the sender's (bump.Desc.Tail).
type tailFrame struct {
	whole []byte // the frame as the wire's segmentation starts from it
	hl    int    // its headers' length
	gso   uint16
}

// queueTails queues frames on p, each tailFrame's payload lent from a
// buffer of its own (returned, to be scribbled over), a frame with hl 0 as
// a whole frame in its slot.
func queueTails(t *testing.T, p *Port, frames []tailFrame) [][]byte {
	t.Helper()
	d := make([]bump.Desc, len(frames))
	if n := p.GetTx(d); n != len(frames) {
		t.Fatalf("GetTx: %d of %d", n, len(frames))
	}
	lent := make([][]byte, len(frames))
	for i, f := range frames {
		b := p.Frame(d[i])[:cap(p.Frame(d[i]))]
		if f.hl == 0 {
			d[i].Len = uint32(copy(b, f.whole))
		} else {
			d[i].Len = uint32(copy(b, f.whole[:f.hl]))
			lent[i] = bytes.Clone(f.whole[f.hl:])
			d[i].Tail = lent[i]
			d[i].Csum = bump.CsumPartial
		}
		d[i].GSO = f.gso
	}
	if n := p.Transmit(d); n != len(d) {
		t.Fatalf("Transmit: %d of %d", n, len(d))
	}
	return lent
}

// wireOf is what the kernel's segmentation makes of f.
func wireOf(t *testing.T, f tailFrame) [][]byte {
	t.Helper()
	if f.gso == 0 {
		return [][]byte{f.whole}
	}
	segs := make([][]byte, len(f.whole)/int(f.gso)+1)
	for i := range segs {
		segs[i] = make([]byte, afpacket.MaxFrame)
	}
	sizes := make([]int, len(segs))
	k, err := afpacket.Segment(bytes.Clone(f.whole), int(f.gso), segs, sizes)
	if err != nil {
		t.Fatal(err)
	}
	for i := range k {
		segs[i] = segs[i][:sizes[i]]
	}
	return segs[:k]
}

// TestTransmitTails: a super-frame whose payload the sender lends
// (bump.Desc.Tail, the engine's super-frames sent from its rings) leaves
// as the same segments as the frame whole in its slot would, IPv4 and
// IPv6, between frames without tails; a tail on a frame that is not a
// super-frame is refused and counted.
func TestTransmitTails(t *testing.T) {
	newPair(t)
	ethtoolK(t, nsPkt, "x", "tx", "off", "tso", "off", "gso", "off")
	px := openPort(t, nsPkt, "x", Options{Slots: 32})
	y := openSocket(t, nsPkt, "y", afpacket.Options{})
	if !px.SendsTails() {
		t.Fatal("the port takes no tails")
	}
	v4 := seg{seq: 100000, ack: 9, id: 80, tsval: 5, payload: 20000, flags: tcpPSH}
	v6 := seg{v6: true, srcPort: 7, seq: 50, ack: 9, tsval: 4, payload: 5000, fill: 3}
	// An IPv6 super-frame as large as a slot takes (more than the
	// largest IPv4 frame, afpacket.MaxFrame).
	big := seg{v6: true, srcPort: 8, seq: 70, ack: 9, tsval: 6, payload: slotSize - frameOff - (14 + 40 + 32), fill: 5}
	frames := []tailFrame{
		{whole: v4.build(), hl: 14 + 20 + 32, gso: 1448},
		{whole: seg{srcPort: 12, seq: 1, ack: 9, id: 9, payload: 100}.build()},
		{whole: v6.build(), hl: 14 + 40 + 32, gso: 1428},
		{whole: seg{srcPort: 13, seq: 7, ack: 9, id: 3, payload: 3000}.build(), gso: 1448},
		{whole: big.build(), hl: 14 + 40 + 32, gso: 1428},
	}
	if n := len(frames[4].whole); n <= afpacket.MaxFrame || n != slotSize-frameOff {
		t.Fatalf("the large frame has %d bytes, want a full slot", n)
	}
	queueTails(t, px, frames)
	if err := px.Kick(); err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for _, f := range frames {
		want = append(want, wireOf(t, f)...)
	}
	readWant(t, y, px, want)
	if st := px.Stats(); st.TxFrames != 5 || st.TxSuperSegments != 4 || st.TxTails != 3 || st.TxErrors != 0 {
		t.Errorf("stats %+v", st)
	}

	// A tail on a frame that is no super-frame: refused, its slot back.
	f := seg{srcPort: 14, seq: 1, ack: 9, id: 4, payload: 500}.build()
	queueTails(t, px, []tailFrame{{whole: f, hl: 14 + 20 + 20}})
	if err := px.Kick(); err != nil {
		t.Fatal(err)
	}
	if st := px.Stats(); st.TxErrors != 1 || st.TxFrames != 5 {
		t.Errorf("a tail without GSO: stats %+v", st)
	}
	if n := px.GetTx(make([]bump.Desc, 64)); n != 32 {
		t.Errorf("%d TX slots free, want 32", n)
	}
}

// TestTransmitTailsBackpressure: super-frames that must wait for room in
// the socket after Kick no longer need their lent tails: the sender writes
// over them as soon as Kick returns, and the frames still leave with the
// bytes they had, in order.
func TestTransmitTailsBackpressure(t *testing.T) {
	newPair(t)
	ethtoolK(t, nsPkt, "x", "tx", "off", "tso", "off", "gso", "off")
	const n = 100
	px, y := slowPair(t, n, "40mbit", "64kb", "8mb", 16<<20)
	frames := make([]tailFrame, n)
	var want [][]byte
	for i := range frames {
		s := seg{seq: uint32(i) * 8000, ack: 9, id: uint16(i), payload: 4 * 1448, fill: byte(i)}
		frames[i] = tailFrame{whole: s.build(), hl: 14 + 20 + 20, gso: 1448}
		want = append(want, wireOf(t, frames[i])...)
	}
	lent := queueTails(t, px, frames)
	if err := px.Kick(); err != nil {
		t.Fatal(err)
	}
	if !px.pending() {
		t.Fatalf("all %d frames went at once: the send buffer never filled (%+v)", n, px.Stats())
	}
	for _, l := range lent {
		for i := range l {
			l[i] = 0xee // the sender's ring moves on
		}
	}
	drain(t, px)
	got := readAll(t, y, 0, len(want))
	if len(got) != len(want) {
		t.Fatalf("y read %d frames, want %d; x %+v", len(got), len(want), px.Stats())
	}
	for i := range want {
		if !sameFrame(got[i], want[i]) {
			t.Fatalf("segment %d differs (frame %d): got seq %d", i, i/4, binary.BigEndian.Uint32(got[i][38:]))
		}
	}
	if st := px.Stats(); st.TxFrames != n || st.TxErrors != 0 || st.TxDropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestTransmitKeepsNoTail: once sent, a lent tail is no longer reachable
// from the port or its socket. The arrays that gathered the pieces were
// only resliced, so each kept the last batch's tails (the engine's rings,
// of flows perhaps long gone) alive outside the engine's memory budget: a
// daemon soak saw up to 37 MB of them after the churn had ended.
func TestTransmitKeepsNoTail(t *testing.T) {
	newPair(t)
	ethtoolK(t, nsPkt, "x", "tx", "off", "tso", "off", "gso", "off")
	px := openPort(t, nsPkt, "x", Options{Slots: 32})
	y := openSocket(t, nsPkt, "y", afpacket.Options{})
	f := tailFrame{whole: seg{seq: 1, ack: 9, id: 1, payload: 4 * 1448}.build(), hl: 14 + 20 + 20, gso: 1448}
	lent := queueTails(t, px, []tailFrame{f})
	tail := weak.Make(&lent[0][0])
	lent = nil
	if err := px.Kick(); err != nil {
		t.Fatal(err)
	}
	readWant(t, y, px, wireOf(t, f))
	runtime.GC()
	runtime.GC()
	if tail.Value() != nil {
		t.Fatal("the sent frame's tail is still reachable from the port")
	}
	runtime.KeepAlive(px)
}
