package memport

import (
	"bytes"
	"testing"

	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/flow"
	"github.com/tcpinc/tcpinc/xsk/classifiertest"
)

// TestBumpClassifierTable runs the classifier's table
// (xsk/classifiertest, which xsk runs against the BPF program) through
// Bump.Arrive: a Peer verdict must leave on the other port's wire
// untouched and count as redirected, a Worker verdict must land in the
// arrival port's queue. Bump has one fast-path switch for both ports
// (NewBump's fastPath, like Bump.SetFastPath); a frame's verdict depends
// only on its arrival port's switch (the table says so, and xsk checks it
// on the program), so each case runs with that port's setting.
func TestBumpClassifierTable(t *testing.T) {
	var wired [2][][]byte
	var ports [2]*Port
	for p := range ports {
		mp, err := New(4, 2048, nil)
		if err != nil {
			t.Fatal(err)
		}
		ports[p] = mp
	}
	wires := [2]func([]byte){
		func(f []byte) { wired[0] = append(wired[0], bytes.Clone(f)) },
		func(f []byte) { wired[1] = append(wired[1], bytes.Clone(f)) },
	}
	descs := make([]bump.Desc, 4)
	n := 0
	for _, c := range classifiertest.Cases() {
		n++
		port := bump.PortID(c.Port)
		p := int(port)
		b := NewBump([]*Port{ports[0]}, []*Port{ports[1]}, wires, c.FastPath[c.Port], len(c.Listed))
		for _, f := range c.Listed {
			k := flow.MakeKey(f.Src.Addr().AsSlice(), f.Dst.Addr().AsSlice(), f.Src.Port(), f.Dst.Port())
			if err := b.AllowFastPath(k); err != nil {
				t.Fatal(err)
			}
		}
		wired = [2][][]byte{}
		if !b.Arrive(port, c.Frame) {
			t.Fatalf("%s: queue full", c)
		}
		var queued [2][][]byte
		for i, mp := range ports {
			k := mp.Receive(descs)
			for _, d := range descs[:k] {
				queued[i] = append(queued[i], bytes.Clone(mp.Frame(d)))
			}
			mp.Release(descs[:k])
		}
		got := -1 // the port whose wire or queue has the frame
		toPeer := false
		switch {
		case len(wired[1-p]) == 1 && len(wired[p]) == 0 && len(queued[0])+len(queued[1]) == 0:
			got, toPeer = 1-p, true
			if !bytes.Equal(wired[1-p][0], c.Frame) {
				t.Errorf("%s: forwarded frame changed", c)
			}
		case len(queued[p]) == 1 && len(queued[1-p]) == 0 && len(wired[0])+len(wired[1]) == 0:
			got = p
			if !bytes.Equal(queued[p][0], c.Frame) {
				t.Errorf("%s: queued frame changed", c)
			}
		}
		switch {
		case got == -1:
			t.Errorf("%s: frame went to wires %d/%d, queues %d/%d", c,
				len(wired[0]), len(wired[1]), len(queued[0]), len(queued[1]))
		case toPeer != (c.Want == classifiertest.Peer):
			verdict := classifiertest.Worker
			if toPeer {
				verdict = classifiertest.Peer
			}
			t.Errorf("%s: %s, want %s (%s)", c, verdict, c.Want, c.Reason)
		case toPeer && b.Redirected(port) != 1:
			t.Errorf("%s: Redirected(%s) = %d, want 1", c, port, b.Redirected(port))
		}
	}
	t.Logf("%d cases run", n)
}
