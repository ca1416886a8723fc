package memport

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/flow"
	"github.com/tcpinc/tcpinc/xsk/classifiertest"
)

// bumpBench is a Bump's surroundings: one Port queue per port and
// both wires, recorded.
type bumpBench struct {
	ports [2]*Port
	wired [2][][]byte
	descs []bump.Desc
}

func newBumpBench(t testing.TB) *bumpBench {
	bb := &bumpBench{descs: make([]bump.Desc, 4)}
	for p := range bb.ports {
		mp, err := New(4, 4096, nil)
		if err != nil {
			t.Fatal(err)
		}
		bb.ports[p] = mp
	}
	return bb
}

// arrive runs frame through a fresh Bump with the fast path on or off
// and the map listed, arriving at port, and reports where it went: Peer if
// it left the other port's wire untouched and was counted as redirected,
// Worker if it landed in the arrival port's queue untouched.
func (bb *bumpBench) arrive(fastPath bool, listed []classifiertest.Flow, port bump.PortID, frame []byte) (classifiertest.Verdict, error) {
	wires := [2]func([]byte){
		func(f []byte) { bb.wired[0] = append(bb.wired[0], bytes.Clone(f)) },
		func(f []byte) { bb.wired[1] = append(bb.wired[1], bytes.Clone(f)) },
	}
	b := NewBump([]*Port{bb.ports[0]}, []*Port{bb.ports[1]}, wires, fastPath, len(listed))
	b.SetMTU(bump.Inside, classifiertest.PeerMTU)
	b.SetMTU(bump.Outside, classifiertest.PeerMTU)
	for _, f := range listed {
		k := flow.MakeKey(f.Src.Addr().AsSlice(), f.Dst.Addr().AsSlice(), f.Src.Port(), f.Dst.Port())
		if err := b.AllowFastPath(k); err != nil {
			return 0, err
		}
	}
	bb.wired = [2][][]byte{}
	if !b.Arrive(port, frame) {
		return 0, fmt.Errorf("queue full")
	}
	var queued [2][][]byte
	for i, mp := range bb.ports {
		n := mp.Receive(bb.descs)
		for _, d := range bb.descs[:n] {
			queued[i] = append(queued[i], bytes.Clone(mp.Frame(d)))
		}
		mp.Release(bb.descs[:n])
	}
	p := int(port)
	switch {
	case len(bb.wired[1-p]) == 1 && len(bb.wired[p]) == 0 && len(queued[0])+len(queued[1]) == 0:
		if !bytes.Equal(bb.wired[1-p][0], frame) {
			return 0, fmt.Errorf("forwarded frame changed")
		}
		if n := b.Redirected(port); n != 1 {
			return 0, fmt.Errorf("forwarded, but Redirected(%s) = %d", port, n)
		}
		return classifiertest.Peer, nil
	case len(queued[p]) == 1 && len(queued[1-p]) == 0 && len(bb.wired[0])+len(bb.wired[1]) == 0:
		if !bytes.Equal(queued[p][0], frame) {
			return 0, fmt.Errorf("queued frame changed")
		}
		return classifiertest.Worker, nil
	}
	return 0, fmt.Errorf("frame went to wires %d/%d, queues %d/%d",
		len(bb.wired[0]), len(bb.wired[1]), len(queued[0]), len(queued[1]))
}

// TestBumpClassifierTable runs the classifier's table
// (xsk/classifiertest, which xsk runs against the BPF program) through
// Bump.Arrive. Bump has one fast-path switch for both ports
// (NewBump's fastPath, like Bump.SetFastPath); a frame's verdict depends
// only on its arrival port's switch (the table says so, and xsk checks it
// on the program), so each case runs with that port's setting. The case's
// Delivery (AF_XDP socket or the stack's AF_PACKET tap) is how a Worker
// frame leaves the kernel; in memory both are the arrival port's queue, so
// every case must land where its verdict says under either.
func TestBumpClassifierTable(t *testing.T) {
	bb := newBumpBench(t)
	n := 0
	for _, c := range classifiertest.Cases() {
		n++
		got, err := bb.arrive(c.FastPath[c.Port], c.Listed, bump.PortID(c.Port), c.Frame)
		switch {
		case err != nil:
			t.Errorf("%s: %v", c, err)
		case got != c.Want:
			t.Errorf("%s: %s, want %s (%s)", c, got, c.Want, c.Reason)
		}
	}
	t.Logf("%d cases run", n)
}

// FuzzBumpMatchesReference: whatever the bytes, Bump sends a frame
// where the Go reference of the classifier (classifiertest.Classify, which
// xsk's FuzzClassifier holds the BPF program to) says, on either port,
// with the fast path on and off and the table's standard map.
func FuzzBumpMatchesReference(f *testing.F) {
	seen := map[string]bool{}
	for _, c := range classifiertest.Cases() {
		if !seen[string(c.Frame)] {
			seen[string(c.Frame)] = true
			f.Add(c.Frame)
		}
	}
	bb := newBumpBench(f)
	isListed := classifiertest.Lists(classifiertest.StandardMap)
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) > 4096 {
			frame = frame[:4096]
		}
		for _, port := range []bump.PortID{bump.Inside, bump.Outside} {
			for _, on := range []bool{true, false} {
				want := classifiertest.Classify(frame, on, isListed)
				got, err := bb.arrive(on, classifiertest.StandardMap, port, frame)
				if err != nil || got != want.Verdict() {
					t.Fatalf("frame %x on %s, fast path %v: %s %v; reference: %s (%s)", frame, port, on, got, err, want.Verdict(), want)
				}
			}
		}
	})
}
