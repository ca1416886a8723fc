package engine

import (
	"bytes"
	"testing"
)

// TestSuperSegmentsBothWays: a port with segmentation offload hands the
// engine TCP super-segments (GRO) and cuts what it sends (GSO) only when
// adjacent segments of a flow are full-sized with PSH on the last alone. A
// 20 kB segment from a is sealed into full frames; the same frames arriving
// at G_B as one coalesced segment reach b as full-MSS segments with PSH on
// the last only (a push per frame made every frame's plaintext a short
// segment with PSH: nothing could be merged), and every byte arrives once,
// in order.
func TestSuperSegmentsBothWays(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	data := make([]byte, 20000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	wire := pr.aSends(&h, data, pshF)
	if len(wire) < 10 {
		t.Fatalf("a 20 kB segment became %d wire segments", len(wire))
	}
	super := wire[0]
	super.payload = nil
	for i, w := range wire {
		if w.seq != wire[0].seq+uint32(len(super.payload)) {
			t.Fatalf("wire segment %d not contiguous", i)
		}
		super.payload = append(super.payload, w.payload...)
		super.flags |= w.flags
	}
	atB, _ := pr.toB([]segv{super})
	var got []byte
	mssB := 0
	for i, s := range atB {
		if len(s.payload) == 0 {
			continue
		}
		if i == 0 {
			mssB = len(s.payload)
		}
		last := i == len(atB)-1
		if !last && (len(s.payload) != mssB || s.flags&pshF != 0) {
			t.Errorf("segment %d to b: %d bytes, flags %#x; want %d bytes without PSH", i, len(s.payload), s.flags, mssB)
		}
		if last && s.flags&pshF == 0 {
			t.Errorf("last segment to b without PSH")
		}
		got = append(got, s.payload...)
	}
	if mssB != 1448 {
		t.Errorf("segments to b carry %d bytes, want b's MSS less the timestamps (1448)", mssB)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("b got %d bytes, not the %d a sent", len(got), len(data))
	}
}
