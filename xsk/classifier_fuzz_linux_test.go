package xsk

import (
	"os"
	"strconv"
	"testing"

	"github.com/tcpinc/tcpinc/xsk/classifiertest"
)

// FuzzClassifier runs arbitrary frames through the loaded BPF classifier
// (BPF_PROG_TEST_RUN) and requires the verdict and the counters that the Go
// reference (classifiertest.Classify) predicts, with the table's standard
// map and ports of the table's MTU. Needs root.
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
	// Ports of classifiertest.PeerMTU (a veth's default); nothing is
	// attached. One bump per slow path. The namespace is this process's:
	// with -fuzz, every worker process runs this set-up too, and a shared
	// name would have each delete the one before (netnstest.New).
	ns := "xskt-fuzz" + strconv.Itoa(os.Getpid())
	newNetns(f, ns)
	vethPair(f, ns, "f0", ns, "f1")
	sh(f, "ip", "-n", ns, "link", "set", "f1", "mtu", strconv.Itoa(classifiertest.PeerMTU))
	in, out := ifindexIn(f, ns, "f0"), ifindexIn(f, ns, "f1")
	var bumps []*Bump
	for _, slow := range []SlowPath{SlowPathXSK, SlowPathStack} {
		var b *Bump
		if err := inNetns(ns, func() (err error) { b, err = newBump(in, out, slow); return }); err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { b.Close() })
		for _, k := range keysOf(classifiertest.StandardMap) {
			if err := b.AllowFastPath(k); err != nil {
				f.Fatal(err)
			}
		}
		bumps = append(bumps, b)
	}
	isListed := classifiertest.Lists(classifiertest.StandardMap)
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 3000 {
			return // BPF_PROG_TEST_RUN refuses runts; XDP never sees them
		}
		for _, b := range bumps {
			for _, on := range []bool{true, false} {
				if err := b.SetFastPath(on); err != nil {
					t.Fatal(err)
				}
				reason := counterOf(t, classifiertest.Classify(frame, on, isListed))
				want, wantRet := wantDelta(reason, cntNoSocket), uint32(xdpDrop)
				switch {
				case reason == cntFastPath || reason == cntNonTCP:
					want, wantRet = wantDelta(reason, cntToPeer), xdpRedirect
				case b.slow == SlowPathStack:
					want, wantRet = wantDelta(reason, cntToStack), xdpPass
				}
				before := b.Stats()
				ret := runXDPIn(t, ns, b.progs[Inside], frame)
				after := b.Stats()
				if got := diffStats(before.Inside, after.Inside); ret != wantRet || got != want {
					t.Fatalf("slow path %s, fast path %v, frame %x: ret %d counters %+v; reference: ret %d counters %+v", b.slow, on, frame, ret, got, wantRet, want)
				}
			}
		}
	})
}
