package engine

import (
	"bytes"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// TestSuperSegmentFramedByHostSegments: a port that coalesces (GRO) hands
// the engine a's segments as one super-segment with their size. a
// lowered its segments to 1024 bytes (its black-hole detection, or a path
// MTU it learned some other way): G_A seals one frame per segment of a's,
// 1024 bytes each, so that a's segments plus the frame overhead cross the
// path a sized them for. Before, the super-segment was cut at R's MSS
// (1428-byte frames): a black hole again for every flight. A super-segment
// of full segments is sealed as before, in full frames.
func TestSuperSegmentFramedByHostSegments(t *testing.T) {
	for _, c := range []struct {
		seg, frame int
	}{{1024, 1024}, {1428, 1428}, {0, 1428}} {
		pr := handshake(t)
		h := newHosts()
		data := bytes.Repeat([]byte("super "), 10*1024/6+1)[:10*1024]
		pr.tsA++
		var p packet.Packet
		if err := p.Decode(tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF|pshF, 502, tsOpt(pr.tsA, pr.tsB), data)); err != nil {
			t.Fatal(err)
		}
		p.SetSegSize(c.seg)
		pr.ga.e.HandlePacket(pr.ga.now, Inside, &p, pr.ga.tx)
		pr.ga.in.take()
		n := 0
		for _, f := range pr.ga.out.take() {
			s := parse(t, f)
			if want := min(c.frame, len(data)-n) + tcpcrypt.Overhead; len(s.payload) != want {
				t.Fatalf("segment size %d: wire segment of %d bytes after %d of a's, want a frame of %d", c.seg, len(s.payload), n, want)
			}
			n += len(s.payload) - tcpcrypt.Overhead
		}
		if n != len(data) {
			t.Fatalf("segment size %d: %d of a's %d bytes on the wire", c.seg, n, len(data))
		}
	}
}
