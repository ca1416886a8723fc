package engine

import (
	"bytes"
	"testing"
)

// The wire stream cut differently from the frames (as a host-based peer or
// a middlebox may): frames spanning segments, several frames per segment,
// segments reordered and duplicated. b gets exactly a's bytes, in order.
func TestWireResegmentedReorderedDuplicated(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	var want, stream []byte
	start := uint32(0)
	for i, n := range []int{10, 500, 1, 1400, 77, 0} {
		p := bytes.Repeat([]byte{byte('a' + i)}, n)
		fl := uint8(pshF)
		if n == 0 {
			fl = finF
		}
		for _, w := range pr.aSends(&h, p, fl) {
			if start == 0 {
				start = w.seq
			}
			stream = append(stream, w.payload...)
		}
		want = append(want, p...)
	}
	tmpl := pr.aSends(&h, nil, 0) // a pure ACK from a, suppressed or not
	_ = tmpl
	// Cut the wire stream at odd places and send the pieces out of order,
	// with one duplicate.
	cuts := []int{0, 7, 300, 301, 1200, 2000, len(stream) - 5, len(stream)}
	order := []int{1, 0, 3, 2, 2, 4, 6, 5}
	var got []byte
	fin := false
	for _, i := range order {
		if i+1 >= len(cuts) {
			continue
		}
		s := segv{src: addrA, dst: addrB, seq: start + uint32(cuts[i]), ack: isnB + 1 + 74, flags: ackF,
			win: 502, opts: tsOpt(pr.tsA, pr.tsB), payload: stream[cuts[i]:cuts[i+1]]}
		if i+1 == len(cuts)-1 {
			s.flags |= finF
		}
		atB, _ := pr.toB([]segv{s})
		for _, x := range atB {
			if x.flags&rstF != 0 {
				t.Fatalf("aborted after piece %d", i)
			}
			off := int(x.seq - (isnA + 1))
			if off == len(got) {
				got = append(got, x.payload...)
			}
			if x.flags&finF != 0 {
				fin = true
			}
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("b got %d bytes, want %d", len(got), len(want))
	}
	if !fin {
		t.Fatal("no FIN delivered to b")
	}
}
