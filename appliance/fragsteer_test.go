package appliance

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

func engineRigQueues(t *testing.T, queues int) *rig {
	t.Helper()
	return newRig(t, rigOpts{queues: queues, fastPath: true, handler: func(int) (FrameHandler, error) {
		return engine.New(engine.Config{}, engine.Deps{})
	}})
}

// Fragments of a connection no engine handles leave unchanged, whichever
// queue each arrives on and in whatever order: the datagram's steering
// worker holds the later fragments until the first names the flow's owner.
// Before, a non-first fragment was "other" and left at once (and a first
// one of an encrypted flow was dropped).
func TestFragmentsSteeredToOwner(t *testing.T) {
	for _, queues := range []int{1, 2, 4} {
		r := engineRigQueues(t, queues)
		seg := tcpFrame(a4, b4, 40000, 8080, packettest.ACK, 1, 1, bytes.Repeat([]byte("fragment data. "), 100))
		frags := packettest.Fragments(seg, 512, 7)
		for i, k := range []int{2, 1, 0} {
			r.in[i%queues].Inject(frags[k])
			r.now += time.Millisecond
			r.settle()
			if k != 0 && len(r.out[1]) != 0 {
				t.Fatalf("%d queues: a non-first fragment left before its first", queues)
			}
		}
		if len(r.out[1]) != 3 {
			t.Fatalf("%d queues: %d fragments left, want 3", queues, len(r.out[1]))
		}
		for _, f := range frags {
			if !slices.ContainsFunc(r.out[1], func(o []byte) bool { return bytes.Equal(o, f) }) {
				t.Fatalf("%d queues: a fragment changed or went missing", queues)
			}
		}
		if len(r.out[0]) != 0 {
			t.Fatalf("%d queues: %d frames back inside", queues, len(r.out[0]))
		}
		for _, w := range r.a.workers {
			if len(w.frag.routes) != 0 || w.frag.nheld != 0 {
				t.Fatalf("%d queues: worker %d keeps %d routes, %d held after the datagram went by", queues, w.id, len(w.frag.routes), w.frag.nheld)
			}
		}
	}
}

// A non-first fragment whose first never comes is never forwarded: held,
// then dropped (counted) at the timeout.
func TestLoneFragmentNotForwarded(t *testing.T) {
	for _, queues := range []int{1, 3} {
		r := engineRigQueues(t, queues)
		seg := tcpFrame(a4, b4, 40000, 8080, packettest.ACK, 1, 1, bytes.Repeat([]byte("MARKER "), 200))
		r.send(Inside, packettest.Fragments(seg, 512, 9)[1])
		r.advance(6 * time.Second)
		r.advance(time.Second)
		if len(r.out[0])+len(r.out[1]) != 0 {
			t.Fatalf("%d queues: the lone fragment left", queues)
		}
	}
}
