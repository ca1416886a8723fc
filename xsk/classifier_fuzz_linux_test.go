package xsk

import (
	"testing"

	"github.com/tcpinc/tcpinc/xsk/classifiertest"
)

// FuzzClassifier runs arbitrary frames through the loaded BPF classifier
// (BPF_PROG_TEST_RUN) and requires the verdict and the counters that the Go
// reference (classifiertest.Classify) predicts, with the table's standard
// map. Needs root.
func FuzzClassifier(f *testing.F) {
	seen := map[string]bool{}
	for _, c := range classifiertest.Cases() {
		if !seen[string(c.Frame)] {
			seen[string(c.Frame)] = true
			f.Add(c.Frame)
		}
	}
	if testing.Short() {
		f.Skip("needs BPF")
	}
	requireRoot(f)
	b, err := newBump(1, 1) // devmap entries point at lo; nothing is attached
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	isListed := classifiertest.Lists(classifiertest.StandardMap)
	for _, k := range keysOf(classifiertest.StandardMap) {
		if err := b.AllowFastPath(k); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 3000 {
			return // BPF_PROG_TEST_RUN refuses runts; XDP never sees them
		}
		for _, on := range []bool{true, false} {
			if err := b.SetFastPath(on); err != nil {
				t.Fatal(err)
			}
			reason := counterOf(t, classifiertest.Classify(frame, on, isListed))
			want, wantRet := wantDelta(reason, cntNoSocket), uint32(xdpDrop)
			if reason == cntFastPath || reason == cntNonTCP {
				want, wantRet = wantDelta(reason, cntToPeer), xdpRedirect
			}
			before := b.Stats()
			ret := runXDP(t, b.progs[Inside], frame)
			after := b.Stats()
			if got := diffStats(before.Inside, after.Inside); ret != wantRet || got != want {
				t.Fatalf("fast path %v, frame %x: ret %d counters %+v; reference: ret %d counters %+v", on, frame, ret, got, wantRet, want)
			}
		}
	})
}
