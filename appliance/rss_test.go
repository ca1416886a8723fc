package appliance

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/memport"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"github.com/tcpinc/tcpinc/flow"
)

func testRSS(t *testing.T, key []byte, queues int) *flow.RSS {
	t.Helper()
	indir := make([]uint32, 128)
	for i := range indir {
		indir[i] = uint32(i % queues)
	}
	r, err := flow.NewRSS(key, indir, flow.NoTransform)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// rssTraffic runs 64 connections (handshake, data both ways, close)
// through r and checks every frame came out once on the other side.
func rssTraffic(t *testing.T, r *rig) {
	t.Helper()
	sent := [2]int{}
	for i := range 64 {
		c := netip.AddrFrom4([4]byte{10, 1, byte(i / 200), byte(1 + i%200)})
		for _, s := range conn(fmt.Sprint("rss", i), c, b4, uint16(40000+i), 443, packettest.FIN) {
			r.send(s.port, s.b)
			sent[s.port]++
		}
	}
	for p := range 2 {
		if got := len(r.out[1-p]); got != sent[p] {
			t.Fatalf("%d frames sent from the %s, %d came out", sent[p], PortID(p), got)
		}
	}
}

// TestRSSOwners: with symmetric RSS on the (in-memory) NIC and the same
// RSS picking owners, the NIC brings each worker exactly its flows' frames
// and none is handed over; with a NIC hash the workers do not know (the
// situation the keyed hash leaves on a real multi-queue NIC) most frames
// change worker, and still arrive.
func TestRSSOwners(t *testing.T) {
	spec, _ := hex.DecodeString("6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa")
	sym := testRSS(t, flow.SymmetricKey(), 4)

	r := newRig(t, rigOpts{queues: 4, nicRSS: sym, ownerRSS: sym})
	rssTraffic(t, r)
	s := r.a.Stats()
	if h := s[0].Handoffs + s[1].Handoffs; h != 0 {
		t.Fatalf("symmetric RSS owners: %d frames handed over, want 0", h)
	}
	busy := 0
	for i := range r.a.cnt {
		if c := &r.a.cnt[i]; c[0].frames.Load()+c[1].frames.Load() > 0 {
			busy++
		}
	}
	if busy < 2 {
		t.Fatalf("only %d of 4 workers received frames: RSS did not spread the flows", busy)
	}

	r = newRig(t, rigOpts{queues: 4, nicRSS: testRSS(t, spec, 4)})
	rssTraffic(t, r)
	s = r.a.Stats()
	if h := s[0].Handoffs + s[1].Handoffs; h == 0 {
		t.Fatal("keyed-hash owners behind an asymmetric NIC hash: no hand-off; the test cannot see the mismatch")
	}
}

func TestNewRefusesAsymmetricRSS(t *testing.T) {
	spec, _ := hex.DecodeString("6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa")
	in, _ := memport.New(8, 2048, nil)
	out, _ := memport.New(8, 2048, nil)
	if _, err := New([]Port{in}, []Port{out}, Options{RSS: testRSS(t, spec, 1)}); err == nil {
		t.Fatal("New took an RSS whose hash differs between a flow's directions")
	}
	if _, err := New([]Port{in}, []Port{out}, Options{RSS: testRSS(t, flow.SymmetricKey(), 2)}); err == nil {
		t.Fatal("New took an RSS that names a queue it does not have")
	}
}

// sleepyTwoQueues returns an appliance of two queues per port (memports)
// whose workers sleep an hour when idle, unstarted, with its inside ports
// and a channel that gets every frame sent on its outside ports.
func sleepyTwoQueues(t *testing.T) (*Appliance, [2][]*memport.Port, chan []byte) {
	t.Helper()
	out := make(chan []byte, 4)
	var ports [2][]*memport.Port
	for p := range 2 {
		for range 2 {
			sink := func([]byte) {}
			if p == 1 {
				sink = func(f []byte) { out <- bytes.Clone(f) }
			}
			mp, err := memport.New(64, 2048, sink)
			if err != nil {
				t.Fatal(err)
			}
			ports[p] = append(ports[p], mp)
		}
	}
	a, err := New([]Port{ports[0][0], ports[0][1]}, []Port{ports[1][0], ports[1][1]}, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range a.workers {
		w.idle = time.Hour
	}
	return a, ports, out
}

// ownedBy1 returns a SYN of a flow that worker 1 of 2 owns.
func ownedBy1() []byte {
	for sp := uint16(1000); ; sp++ {
		k := flow.KeyFrom(netip.AddrPortFrom(a4, sp), netip.AddrPortFrom(b4, 80))
		if k.Owner(2) == 1 {
			return tcpFrame(a4, b4, sp, 80, packettest.SYN, 1, 0, nil)
		}
	}
}

// TestHandoffWakesOwner: workers that sleep an hour when idle; a frame
// arrives on the queue of a worker that does not own its flow. It comes
// out only if the hand-off wakes the owner.
func TestHandoffWakesOwner(t *testing.T) {
	a, ports, out := sleepyTwoQueues(t)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	// A flow owned by worker 1, arriving on queue 0.
	frame := ownedBy1()
	if !ports[0][0].Inject(frame) {
		t.Fatal("inject failed")
	}
	select {
	case f := <-out:
		if !bytes.Equal(f, frame) {
			t.Fatal("a different frame came out")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handed-over frame stayed in the lane: the owner was not woken")
	}
	if s := a.Stats(); s[0].Handoffs != 1 {
		t.Fatalf("%d hand-offs, want 1", s[0].Handoffs)
	}
}

// TestHandoffBetweenLanesAndWake: a frame handed over just after its
// owner took what its lanes held, in the same round. The owner must not
// lose the hand-off's signal: before, the round drained the wake source
// after the lanes, so that signal went with it and the frame waited in the
// lane for the owner's next idle timeout (an hour here; the same window
// delayed Stop).
func TestHandoffBetweenLanesAndWake(t *testing.T) {
	a, ports, out := sleepyTwoQueues(t)
	frame := ownedBy1()
	var once sync.Once
	testHookAfterLanes = func(w *worker) {
		if w.id != 1 {
			return
		}
		once.Do(func() {
			if !ports[0][0].Inject(frame) {
				t.Error("inject failed")
				return
			}
			// Worker 0 hands it over and signals worker 1 now, while
			// worker 1 is past its lanes.
			for deadline := time.Now().Add(5 * time.Second); a.Stats()[0].Handoffs == 0 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond) // worker 0's round ends (its wake of the owner)
		})
	}
	defer func() { testHookAfterLanes = nil }()
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	select {
	case f := <-out:
		if !bytes.Equal(f, frame) {
			t.Fatal("a different frame came out")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the frame handed over between the owner's lanes and its wake check stayed in the lane")
	}
}
