package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet"
)

// holeRig drives an established pair through rounds in which every other
// wire segment of a's comes late: G_B holds the others, holes separate
// ranges past holes, until the late ones fill the holes and the plaintext
// goes to b at once; b acknowledges it all and G_A gets that ACK. No
// allocation in the rig itself.
type holeRig struct {
	pr          *pair
	holes, size int
	aIn, aOut   *manySink
	bIn, bOut   *manySink
	txA, txB    [2]TxSink
	wire        [][]byte
	data, ack   []byte
	pd, pa      packet.Packet
	aNext       uint32
	now         int64
	segs        int
}

func newHoleRig(t testing.TB, holes, size int) *holeRig {
	pr := handshake(t)
	r := &holeRig{pr: pr, holes: holes, size: size, aNext: isnA + 1}
	r.aIn, r.aOut, r.bIn, r.bOut = newManySink(8), newManySink(8), newManySink(4*holes+8), newManySink(4*holes+8)
	r.txA, r.txB = [2]TxSink{r.aIn, r.aOut}, [2]TxSink{r.bIn, r.bOut}
	r.wire = make([][]byte, 2*holes)
	for i := range r.wire {
		r.wire[i] = make([]byte, 0, 9000)
	}
	r.data = tcpFrame(addrA, addrB, r.aNext, isnB+1, ackF|pshF, 502, tsOpt(7, 7), make([]byte, size))
	r.ack = tcpFrame(addrB, addrA, isnB+1, r.aNext, ackF, 509, tsOpt(8, 8), nil)
	return r
}

// round runs one round; it reports false on any surprise.
func (r *holeRig) round() bool {
	ga, gb := r.pr.ga.e, r.pr.gb.e
	r.now += int64(time.Millisecond)
	for i := range r.wire {
		r.pd.Decode(r.data)
		r.pd.SetSeq(r.aNext + uint32(i*r.size))
		r.aOut.n, r.aIn.n = 0, 0
		if ga.Handle(r.now, Inside, r.data, r.txA) != Forwarded || r.aOut.n != 1 {
			return false
		}
		r.wire[i] = append(r.wire[i][:0], r.aOut.frame(0)...)
	}
	r.bIn.n, r.bOut.n = 0, 0
	for i := 1; i < len(r.wire); i += 2 { // past the holes
		gb.Handle(r.now, Outside, r.wire[i], r.txB)
	}
	for i := 0; i < len(r.wire); i += 2 { // the holes filled
		gb.Handle(r.now, Outside, r.wire[i], r.txB)
	}
	r.segs += len(r.wire)
	r.aNext += uint32(len(r.wire) * r.size)
	if f := gb.flows[flowKey{in: addrB, out: addrA}]; f == nil || f.rcv.sentH != int64(r.aNext-isnA-1) {
		return false // b did not get every byte
	}
	r.bOut.n = 0
	r.pa.Decode(r.ack)
	r.pa.SetAck(r.aNext)
	gb.Handle(r.now, Inside, r.ack, r.txB)
	if r.bOut.n == 0 { // the ACK of a release waits for the tick (release.go)
		gb.Tick(r.now, r.txB)
	}
	if r.bOut.n == 0 {
		return false
	}
	r.aIn.n = 0
	ga.Handle(r.now, Outside, r.bOut.frame(r.bOut.n-1), r.txA)
	return gb.Counters().Drops[DropReasmFull].Load() == 0
}

// BenchmarkHeldRanges is a's segments through both engines when every
// other one comes late: per segment (seg-ns), with G_B holding 8, 16 or
// 28 ranges past holes at a time (at 5 % loss Linux receivers hold 23 to
// 30), and no allocation per round.
func BenchmarkHeldRanges(b *testing.B) {
	for _, holes := range []int{8, 16, 28} {
		b.Run(fmt.Sprintf("holes=%d", holes), func(b *testing.B) {
			r := newHoleRig(b, holes, 1000)
			for range 50 {
				if !r.round() {
					b.Fatal("warm-up round failed")
				}
			}
			r.segs = 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if !r.round() {
					b.Fatal("round failed")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(r.segs), "seg-ns")
		})
	}
}

// Past inlineSpans ranges a round allocates nothing either: the block a
// flow widens to comes from the engine's free list (spans.go), to which
// it went back when the round's holes were filled. held_widened rising
// once a round shows the rig went past inlineSpans each time.
func TestHeldRangesNoAllocs(t *testing.T) {
	r := newHoleRig(t, 28, 1000)
	for range 50 {
		if !r.round() {
			t.Fatal("warm-up round failed")
		}
	}
	w0 := r.pr.gb.e.Counters().HeldWidened.Load()
	if n := testing.AllocsPerRun(20, func() {
		if !r.round() {
			t.Fatal("round failed")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per round", n)
	}
	if w := r.pr.gb.e.Counters().HeldWidened.Load() - w0; w < 20 {
		t.Fatalf("held_widened rose by %d in 21 rounds: the rig did not go past %d ranges", w, inlineSpans)
	}
}
