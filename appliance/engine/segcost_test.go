package engine

import (
	"bytes"
	"crypto/cipher"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// The engine's cost per full segment against the AEAD alone (issue 10, item
// 4). One round is segBatch host segments of segPayload bytes from host a
// through G_A (seal: plaintext in, one encrypted frame out), the same
// frames through G_B (open: encrypted frame in, one plaintext segment to b
// out), and b's one ACK of all of them back through G_B and G_A.

const (
	segPayload = 1400
	segBatch   = 32
)

// slotSink is a TxSink with segBatch preallocated frame buffers.
type slotSink struct {
	bufs [segBatch][2048]byte
	lens [segBatch]int
	n    int
}

func (s *slotSink) Buffer() []byte {
	if s.n == len(s.bufs) {
		return nil
	}
	return s.bufs[s.n][:]
}
func (s *slotSink) Commit(n int)       { s.lens[s.n] = n; s.n++ }
func (s *slotSink) frame(i int) []byte { return s.bufs[i][:s.lens[i]] }

// segRig is an established pair under one AEAD suite and everything a round
// needs, allocated once.
type segRig struct {
	pr             *pair
	aIn, aOut      slotSink
	bIn, bOut      slotSink
	txA, txB       [2]TxSink
	data           [segBatch][]byte // a's segments, renumbered every round
	ack            []byte           // b's ACK of a round
	pkt            packet.Packet
	next           uint32 // a's next host sequence number
	payload        []byte
	sealNS, openNS time.Duration // of the last round
	ackNS          time.Duration
	rounds         int
	// wire, when set, gets a copy of G_A's frames before G_B opens them
	// in place (tests only; the copy is not timed).
	wire *slotSink
}

func newSegRig(t testing.TB, s cryptopool.Suite) *segRig {
	// No rekey: the default one per GiB would put an empty frame into a
	// round that expects none, and costs nothing per segment over a GiB.
	cfg := Config{TEPs: testTEPs, AEADs: []cryptopool.Suite{s}, RekeyBytes: 1 << 50}
	r := &segRig{pr: handshakeOn(t, newGW(t, cfg), newGW(t, cfg))}
	if fi := flowInfo(t, r.pr.ga.e); fi.AEAD != s.String() {
		t.Fatalf("negotiated %s, want %s", fi.AEAD, s)
	}
	r.txA = [2]TxSink{&r.aIn, &r.aOut}
	r.txB = [2]TxSink{&r.bIn, &r.bOut}
	r.next = isnA + 1
	r.payload = make([]byte, segPayload)
	for i := range r.payload {
		r.payload[i] = byte(i*7 + 1)
	}
	for i := range r.data {
		r.data[i] = tcpFrame(addrA, addrB, 0, isnB+1, ackF|pshF, 502, tsOpt(7, 7), r.payload)
	}
	r.ack = tcpFrame(addrB, addrA, isnB+1, 0, ackF, 509, tsOpt(8, 8), nil)
	return r
}

// round runs one round, timing the three parts; it reports false on any
// surprise (a verdict or a frame count other than the steady state's).
func (r *segRig) round() bool {
	for i := range r.data {
		r.pkt.Decode(r.data[i])
		r.pkt.SetSeq(r.next + uint32(i*segPayload))
	}
	r.aIn.n, r.aOut.n, r.bIn.n, r.bOut.n = 0, 0, 0, 0
	ga, gb := r.pr.ga.e, r.pr.gb.e
	now := r.pr.ga.now

	t0 := time.Now()
	for i := range r.data {
		if ga.Handle(now, Inside, r.data[i], r.txA) != Forwarded {
			return false
		}
	}
	t1 := time.Now()
	if r.wire != nil {
		*r.wire = r.aOut
		t1 = time.Now()
	}
	for i := range r.aOut.n {
		if gb.Handle(now, Outside, r.aOut.frame(i), r.txB) != Forwarded {
			return false
		}
	}
	t2 := time.Now()
	if r.aOut.n != segBatch || r.bIn.n != segBatch || r.aIn.n != 0 || r.bOut.n != 0 {
		return false
	}
	r.next += segBatch * segPayload
	r.pkt.Decode(r.ack)
	r.pkt.SetAck(r.next)
	r.aIn.n, r.bOut.n = 0, 0
	t3 := time.Now()
	if gb.Handle(now, Inside, r.ack, r.txB) != Forwarded {
		return false
	}
	if r.bOut.n != 1 || ga.Handle(now, Outside, r.bOut.frame(0), r.txA) != Forwarded {
		return false
	}
	t4 := time.Now()
	r.sealNS, r.openNS, r.ackNS = t1.Sub(t0), t2.Sub(t1), t4.Sub(t3)
	r.rounds++
	return r.aIn.n == 1
}

// rawAEAD is the reference: the same AEAD built from crypto/aes with
// crypto/cipher (GCM) or x/crypto (ChaCha20-Poly1305), called directly on
// what the engine seals per segment: the flags byte and the data (1401
// bytes), 3 bytes of associated data, one nonce per frame.
type rawAEAD struct {
	aead   cipher.AEAD
	nonces [segBatch][12]byte
	ad     [3]byte
	pt     [segBatch][]byte // sealed in place each round
	ct     [segBatch][]byte // sealed once; opened into out each round
	out    []byte
}

func newRawAEAD(t testing.TB, s cryptopool.Suite) *rawAEAD {
	key := make([]byte, s.KeyLen())
	for i := range key {
		key[i] = byte(i + 3)
	}
	a, err := cryptopool.NewAEAD(s, key)
	if err != nil {
		t.Fatal(err)
	}
	n := 1 + segPayload
	r := &rawAEAD{aead: a, ad: [3]byte{0, byte((n + 16) >> 8), byte(n + 16)}, out: make([]byte, n)}
	for i := range r.pt {
		r.nonces[i][11] = byte(i)
		r.pt[i] = make([]byte, n, n+16)
		r.ct[i] = a.Seal(nil, r.nonces[i][:], r.pt[i], r.ad[:])
	}
	return r
}

func (r *rawAEAD) seal() {
	for i := range r.pt {
		r.aead.Seal(r.pt[i][:0], r.nonces[i][:], r.pt[i], r.ad[:])
	}
}

func (r *rawAEAD) open() bool {
	for i := range r.ct {
		if _, err := r.aead.Open(r.out[:0], r.nonces[i][:], r.ct[i], r.ad[:]); err != nil {
			return false
		}
	}
	return true
}

var segSuites = []cryptopool.Suite{cryptopool.AES128GCM, cryptopool.ChaCha20Poly1305}

// The rig is what the benchmark measures, so it must do the real work:
// every frame decodes with valid checksums, b gets exactly a's bytes in
// order, and a round allocates nothing, under both suites.
func TestSegRig(t *testing.T) {
	for _, s := range segSuites {
		t.Run(s.String(), func(t *testing.T) {
			r := newSegRig(t, s)
			r.wire = new(slotSink)
			for i := range 3 {
				want := r.next
				if !r.round() {
					t.Fatalf("round %d failed", i)
				}
				for j := range segBatch {
					w := parse(t, r.wire.frame(j))
					if len(w.payload) != segPayload+tcpcrypt.Overhead || bytes.Contains(w.payload, r.payload[:64]) {
						t.Fatalf("wire segment %d: %d bytes, or plaintext in it", j, len(w.payload))
					}
					h := parse(t, r.bIn.frame(j))
					if h.seq != want+uint32(j*segPayload) || !bytes.Equal(h.payload, r.payload) {
						t.Fatalf("segment %d to b: seq %x (want %x), %d bytes, same=%v", j, h.seq, want+uint32(j*segPayload), len(h.payload), bytes.Equal(h.payload, r.payload))
					}
				}
				for j := range r.data {
					// Sealed from where it lay, the host segment is left
					// as it came (the byte in front of the payload too).
					if got := parse(t, r.data[j]); got.seq != want+uint32(j*segPayload) || !bytes.Equal(got.payload, r.payload) || !bytes.Equal(got.opts, tsOpt(7, 7)) {
						t.Fatalf("host segment %d changed by sealing: %+v", j, got)
					}
				}
				if a := parse(t, r.aIn.frame(0)); a.ack != r.next || a.flags != ackF {
					t.Fatalf("ACK to a: %+v, want ack %x", a, r.next)
				}
			}
			r.wire = nil
			for range 200 { // rings reach their size
				if !r.round() {
					t.Fatal("warm-up round failed")
				}
			}
			if allocs := testing.AllocsPerRun(200, func() {
				if !r.round() {
					t.Fatal("round failed")
				}
			}); allocs != 0 {
				t.Fatalf("%.1f allocations per round of %d segments, want 0", allocs, segBatch)
			}
		})
	}
}

// BenchmarkSegmentCost reports, per suite, the engine's ns per 1400-byte
// segment sealing (G_A: host segment in, wire frame out) and opening (G_B:
// wire frame in, host segment out) beside the raw AEAD's seal and open of
// the same frame size, and their ratios (x_raw_seal, x_raw_open); ack-ns is
// one pure ACK through one engine (b's ACK of a round, at G_B and G_A).
//
// Each op is one round of every variant, run back to back in rotating
// order and timed separately; the metrics are medians over the rounds, so
// that a preemption on a shared machine lands in one round of one variant
// and leaves the ratio alone.
func BenchmarkSegmentCost(b *testing.B) {
	for _, s := range segSuites {
		b.Run(fmt.Sprintf("%v/%d", s, segPayload), func(b *testing.B) {
			rig, raw := newSegRig(b, s), newRawAEAD(b, s)
			for range 200 {
				if !rig.round() {
					b.Fatal("warm-up round failed")
				}
			}
			const maxRounds = 1 << 16
			mk := func() []time.Duration { return make([]time.Duration, 0, maxRounds) }
			seal, open, ack, rawSeal, rawOpen := mk(), mk(), mk(), mk(), mk()
			variants := [3]func(){
				func() {
					if !rig.round() {
						b.Fatal("round failed")
					}
					seal, open, ack = append(seal, rig.sealNS), append(open, rig.openNS), append(ack, rig.ackNS)
				},
				func() {
					t0 := time.Now()
					raw.seal()
					rawSeal = append(rawSeal, time.Since(t0))
				},
				func() {
					t0 := time.Now()
					if !raw.open() {
						b.Fatal("raw open failed")
					}
					rawOpen = append(rawOpen, time.Since(t0))
				},
			}
			b.SetBytes(segBatch * segPayload)
			b.ReportAllocs()
			round := 0
			for b.Loop() {
				if len(seal) >= maxRounds {
					seal, open, ack, rawSeal, rawOpen = seal[:0], open[:0], ack[:0], rawSeal[:0], rawOpen[:0]
				}
				for v := range variants {
					variants[(v+round)%len(variants)]()
				}
				round++
			}
			med := func(d []time.Duration, per int) float64 {
				slices.Sort(d)
				return float64(d[len(d)/2].Nanoseconds()) / float64(per)
			}
			es, eo, rs, ro := med(seal, segBatch), med(open, segBatch), med(rawSeal, segBatch), med(rawOpen, segBatch)
			b.ReportMetric(rs, "raw-seal-ns/seg")
			b.ReportMetric(es, "seal-ns/seg")
			b.ReportMetric(es/rs, "x_raw_seal")
			b.ReportMetric(ro, "raw-open-ns/seg")
			b.ReportMetric(eo, "open-ns/seg")
			b.ReportMetric(eo/ro, "x_raw_open")
			b.ReportMetric(med(ack, 2), "ack-ns")
		})
	}
}
