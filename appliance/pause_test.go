package appliance

import (
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// tickWatch is a FrameHandler that notes how many frames it had handled
// when each Tick came, and the clock of each.
type tickWatch struct {
	handled int
	ticks   []int64
	at      []int // handled at each tick
}

func (h *tickWatch) HandlePacket(now int64, from engine.PortID, p *packet.Packet, tx [2]TxSink) Verdict {
	h.handled++
	return engine.Passthrough
}

func (h *tickWatch) Tick(now int64, tx [2]TxSink) {
	h.ticks = append(h.ticks, now)
	h.at = append(h.at, h.handled)
}

// TestTickAfterStallSeesBacklogFirst: the worker stops for 45 s (SIGSTOP
// of tcpincd, a paused virtual machine, a starved CPU) while frames queue
// in its ports. When it goes on, the clock has jumped 45 s: its handler's
// Tick judges idle and retransmission timers by it (a key exchange idle
// past HandshakeTimeout is aborted, a record idle past PlainRetention is
// dropped), and must not do so before the frames that waited in the rings
// through the stall were handled: they are the connections' latest
// segments, which the engine never saw only because it was stopped. (Or
// the stall is hidden from it: the clock it is given does not jump.) Before,
// poll ran Tick after one batch per port (batch_size, 64 by default), with
// the rest of a busy appliance's ring (thousands of frames) still waiting.
func TestTickAfterStallSeesBacklogFirst(t *testing.T) {
	h := &tickWatch{}
	r := newRig(t, rigOpts{batch: 4, handler: func(int) (FrameHandler, error) { return h, nil }})
	r.a.Poll(r.now)
	const queued = 10
	for i := range queued {
		r.bump.Arrive(Outside, seg(b4, a4, 80, uint16(6000+i), packettest.ACK, 1, 1, nil))
	}
	before := len(h.ticks)
	r.now += 45 * time.Second
	r.settle()
	// Each Tick whose clock moved by more than a second since the one
	// before (the worker ticks every millisecond when busy, every 2 ms when
	// idle) must come after the backlog.
	for i := max(before, 1); i < len(h.ticks); i++ {
		if h.ticks[i]-h.ticks[i-1] > int64(time.Second) && h.at[i] < queued {
			t.Fatalf("the first Tick after a 45 s stall saw the clock %v on, with %d of the %d frames that waited in the ring handled, want all",
				time.Duration(h.ticks[i]-h.ticks[i-1]), h.at[i], queued)
		}
	}
	if h.handled != queued {
		t.Fatalf("%d frames handled, want %d", h.handled, queued)
	}
}

// TestTickAfterStallWaitsForEveryWorker: as above, with two workers and
// every frame of the stall queued on worker 0's port, half of them for
// flows worker 1 owns (keyed-hash owners, a NIC whose hash they do not
// follow: the frames are handed over). Worker 1's own ports are empty at
// once; its Tick must still wait until worker 0 has read its ring and
// handed it its frames. Before, worker 1 ticked with the 45 s jump in its
// first round, its flows' latest segments unread in worker 0's ring.
func TestTickAfterStallWaitsForEveryWorker(t *testing.T) {
	hs := []*tickWatch{{}, {}}
	r := newRig(t, rigOpts{queues: 2, batch: 4, handler: func(i int) (FrameHandler, error) { return hs[i], nil }})
	r.a.Poll(r.now)
	const queued = 40
	for i := range queued {
		if !r.outp[0].Inject(seg(b4, a4, 80, uint16(6000+i), packettest.ACK, 1, 1, nil)) {
			t.Fatal("inject")
		}
	}
	before := [2]int{len(hs[0].ticks), len(hs[1].ticks)}
	r.now += 45 * time.Second
	r.settle()
	for w, h := range hs {
		if h.handled == 0 {
			t.Fatalf("worker %d handled none of the %d frames: the test needs both to own some", w, queued)
		}
		for i := max(before[w], 1); i < len(h.ticks); i++ {
			if h.ticks[i]-h.ticks[i-1] > int64(time.Second) && h.at[i] < h.handled {
				t.Errorf("worker %d: its first Tick after the stall came with %d of its %d frames handled", w, h.at[i], h.handled)
			}
		}
	}
}
