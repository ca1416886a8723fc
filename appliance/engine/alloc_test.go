package engine

import (
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
)

// manySink keeps the frames of one call in n preallocated buffers, so that
// measuring the engine does not measure the sink.
type manySink struct {
	bufs [][9000]byte
	lens []int
	n    int
}

func newManySink(n int) *manySink {
	return &manySink{bufs: make([][9000]byte, n), lens: make([]int, n)}
}

func (s *manySink) Buffer() []byte {
	if s.n == len(s.bufs) {
		return nil
	}
	return s.bufs[s.n][:]
}
func (s *manySink) Commit(n int)       { s.lens[s.n] = n; s.n++ }
func (s *manySink) frame(i int) []byte { return s.bufs[i][:s.lens[i]] }

// steady drives an established pair through one data segment a -> b and
// its ACK back, with no allocation in the harness itself.
type steady struct {
	pr          *pair
	aIn, aOut   *manySink
	bIn, bOut   *manySink
	txA, txB    [2]TxSink
	data, ack   []byte
	pd, pa      packet.Packet
	aNext, bAck uint32
	size        int
}

func newSteady(t testing.TB, size int) *steady {
	pr := handshake(t)
	s := &steady{pr: pr, size: size, aIn: newManySink(8), aOut: newManySink(8), bIn: newManySink(8), bOut: newManySink(8)}
	s.txA = [2]TxSink{s.aIn, s.aOut}
	s.txB = [2]TxSink{s.bIn, s.bOut}
	s.aNext = isnA + 1
	s.data = tcpFrame(addrA, addrB, s.aNext, isnB+1, ackF|pshF, 502, tsOpt(7, 7), make([]byte, size))
	s.ack = tcpFrame(addrB, addrA, isnB+1, s.aNext, ackF, 509, tsOpt(8, 8), nil)
	return s
}

// round sends one segment and its ACK; it reports false on any surprise.
func (s *steady) round() bool {
	s.pd.Decode(s.data)
	s.pd.SetSeq(s.aNext)
	s.aOut.n, s.aIn.n, s.bIn.n, s.bOut.n = 0, 0, 0, 0
	if s.pr.ga.e.Handle(0, Inside, s.data, s.txA) != Forwarded || s.aOut.n != 1 {
		return false
	}
	if s.pr.gb.e.Handle(0, Outside, s.aOut.frame(0), s.txB) != Forwarded || s.bIn.n != 1 {
		return false
	}
	s.aNext += uint32(s.size)
	s.pa.Decode(s.ack)
	s.pa.SetAck(s.aNext)
	if s.pr.gb.e.Handle(0, Inside, s.ack, s.txB) != Forwarded || s.bOut.n != 1 {
		return false
	}
	s.aIn.n = 0
	return s.pr.ga.e.Handle(0, Outside, s.bOut.frame(0), s.txA) == Forwarded && s.aIn.n == 1
}

// Zero allocations per packet on the encrypted data path in steady state:
// seal, send, reassemble, open, deliver, and the ACK translated back.
func TestSteadyStateAllocs(t *testing.T) {
	s := newSteady(t, 1400)
	for i := 0; i < 200; i++ { // warm up: rings and frame queues reach size
		if !s.round() {
			t.Fatalf("round %d failed", i)
		}
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if !s.round() {
			t.Fatal("round failed")
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per round trip, want 0", allocs)
	}
}

// BenchmarkEncryptedSegment is one 1400-byte segment through both engines
// (seal at G_A, open at G_B) and its ACK back through both.
func BenchmarkEncryptedSegment(b *testing.B) {
	s := newSteady(b, 1400)
	for i := 0; i < 200; i++ {
		s.round()
	}
	b.ReportAllocs()
	b.SetBytes(1400)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !s.round() {
			b.Fatal("round failed")
		}
	}
}
