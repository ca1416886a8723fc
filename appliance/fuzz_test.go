package appliance

import (
	"bytes"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

func fuzzSeeds(f *testing.F) {
	for _, s := range script() {
		f.Add(s.b)
	}
	f.Add([]byte{})
	f.Add(make([]byte, 14))
}

// FuzzWorkerPassthrough: whatever the bytes, a frame that arrives on one port
// leaves the other port exactly once and unchanged, with and without the
// fast path, and nothing panics.
func FuzzWorkerPassthrough(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) > 2048 {
			frame = frame[:2048]
		}
		for _, fast := range []bool{false, true} {
			r := newRig(t, rigOpts{fastPath: fast})
			// A handshake first, so that frames of that flow take the
			// fast path when it is on.
			for _, s := range conn("fz", a4, b4, 40000, 80, packettest.FIN)[:2] {
				r.send(s.port, s.b)
			}
			r.out = [2][][]byte{}
			r.send(Inside, frame)
			r.send(Outside, frame)
			for p := range 2 {
				if len(r.out[p]) != 1 || !bytes.Equal(r.out[p][0], frame) {
					t.Fatalf("fast=%v: port %d sent %d frames, want the input once", fast, p, len(r.out[p]))
				}
			}
		}
	})
}

// FuzzWorkerEngine: arbitrary frames, from either port, through workers with
// the real engine behind them (after a handshake that leaves a flow under
// negotiation, so frames reach a tracked flow): nothing panics, the engine
// uses its TxSinks correctly and returns only valid verdicts.
func FuzzWorkerEngine(f *testing.F) {
	fuzzSeeds(f)
	f.Add(tcpFrame(b4, a4, 80, 40000, packettest.SYN|packettest.ACK, 900, 101, nil))
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) > 2048 {
			frame = frame[:2048]
		}
		e, err := engine.New(engine.Config{}, engine.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		r := newRig(t, rigOpts{fastPath: true, handler: func(int) (FrameHandler, error) { return e, nil }})
		r.send(Inside, tcpFrame(a4, b4, 40000, 80, packettest.SYN, 100, 0, nil))
		r.send(Inside, frame)
		r.send(Outside, frame)
		r.advance(time.Second)
		s := r.a.Stats()
		for p := range 2 {
			if s[p].BadCommits != 0 || s[p].Verdicts[0] != 0 {
				t.Fatalf("port %d: %d bad commits, %d invalid verdicts", p, s[p].BadCommits, s[p].Verdicts[0])
			}
		}
	})
}
