package appliance

import (
	"testing"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// BenchmarkWorkerEngine measures the worker loop with an engine as its
// handler over in-memory ports (memport): one established TCP flow the engine left in plain
// TCP (the far side has no TCP-ENO), fast path off, so every 1500-byte
// frame goes through the worker's parse and the engine (flow lookup,
// verdict). ns/op is per frame, memport.Port's copies included.
func BenchmarkWorkerEngine(b *testing.B) {
	e, err := engine.New(engine.Config{}, engine.Deps{})
	if err != nil {
		b.Fatal(err)
	}
	r := newRig(b, rigOpts{frames: 512, countOnly: true, handler: func(int) (FrameHandler, error) { return e, nil }})
	r.send(Inside, seg(a4, b4, 5001, 80, packettest.SYN, 100, 0, nil))
	r.send(Outside, seg(b4, a4, 80, 5001, packettest.SYN|packettest.ACK, 900, 101, nil))
	frame := seg(a4, b4, 5001, 80, packettest.ACK, 101, 901, make([]byte, 1500-14-20-20))
	r.send(Inside, frame)
	const batch = 64
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		for range n {
			r.in[0].Inject(frame)
		}
		for r.a.Poll(r.now) > 0 {
		}
	}
	b.StopTimer()
	if st := r.a.Stats(); st[Inside].Verdict(engine.Passthrough) < uint64(b.N) {
		b.Fatalf("the engine passed %d frames of %d", st[Inside].Verdict(engine.Passthrough), b.N)
	}
}
