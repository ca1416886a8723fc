package appliance

import (
	"bytes"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// segSizeHandler records the segment size of every frame it is handed.
type segSizeHandler struct{ seg []int }

func (h *segSizeHandler) HandlePacket(_ int64, _ engine.PortID, p *packet.Packet, _ [2]TxSink) Verdict {
	h.seg = append(h.seg, p.SegSize())
	return engine.Consumed
}

func (h *segSizeHandler) Tick(int64, [2]TxSink) {}

// TestHandlerSeesSegmentSize: the handler is told the segment size of a
// super-segment its port coalesced (the engine frames a host's data by it),
// and none for a frame as sent.
func TestHandlerSeesSegmentSize(t *testing.T) {
	h := &segSizeHandler{}
	r := newRig(t, rigOpts{frameSize: [2]int{16384, 16384}, handler: func(int) (FrameHandler, error) { return h, nil }})
	w := r.a.workers[0]
	super := tcpFrame(a4, b4, 40000, 80, packettest.ACK, 1000, 1, bytes.Repeat([]byte("s"), 3*1024))
	w.gso = 1024
	w.dispatch(Inside, super, 0)
	w.gso = 0
	w.dispatch(Inside, tcpFrame(a4, b4, 40000, 80, packettest.ACK, 4072, 1, []byte("one")), 0)
	if len(h.seg) != 2 || h.seg[0] != 1024 || h.seg[1] != 0 {
		t.Fatalf("segment sizes seen %v, want [1024 0]", h.seg)
	}
}
