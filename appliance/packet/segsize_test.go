package packet

import (
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// TestSegSize: a port's word on a super-segment's segment size stays with
// the decoding it was given for, and the next Decode forgets it.
func TestSegSize(t *testing.T) {
	frame := packettest.Frame{Src: packettest.HostA4, Dst: packettest.HostB4,
		TCP: &packettest.TCP{SrcPort: 1, DstPort: 2, Flags: packettest.ACK, Payload: make([]byte, 3000)}}.Bytes()
	var p Packet
	if err := p.Decode(frame); err != nil {
		t.Fatal(err)
	}
	p.SetSegSize(1000)
	if p.SegSize() != 1000 {
		t.Fatalf("SegSize %d after SetSegSize(1000)", p.SegSize())
	}
	if err := p.Decode(frame); err != nil || p.SegSize() != 0 {
		t.Fatalf("SegSize %d after a new Decode (%v), want 0", p.SegSize(), err)
	}
}
