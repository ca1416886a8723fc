package scenario

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
)

// TestRandomBulkReorder is TestRandomExchanges at the scale of a bulk
// transfer: megabytes both ways at once through rings that wrap many times
// (re-delivery and retransmit caps from 48 KiB, some not a power of two),
// flights of up to 384 KiB that respect the window each host was given, a
// receiving application that reads only every few milliseconds (its window
// closes and opens), sequence numbers that wrap past 2^32 in the middle of
// the transfer, and a link that reorders a large share of the frames and
// duplicates some, with or without loss; most seeds with timestamps on
// every segment, and hosts that apply PAWS. Both transfers must complete
// (no stall: the fake clock's deadline is far beyond any retransmission
// backoff the hosts use), byte for byte, and the wire must carry the same
// bytes for the same sequence numbers (TC-45).
func TestRandomBulkReorder(t *testing.T) {
	seeds := 24
	if testing.Short() {
		seeds = 6
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { bulkRun(t, seed) })
	}
}

func bulkRun(t *testing.T, seed int) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0xb01c))
	caps := []int{48 << 10, 100_000, 256 << 10, 1 << 20}
	deliver := caps[rng.IntN(len(caps))]
	store := caps[rng.IntN(len(caps))]
	f := newFixture(t, [2]bool{true, true}, false, func(_ Side, c *engine.Config) {
		c.DeliverBytes, c.RetransmitBytes = deliver, store
	})
	w := f.w
	// ISNs a little below 2^32: the sequence numbers wrap mid-transfer.
	f.a.ISN = -uint32(1+rng.IntN(1<<20)) - 1
	f.b.ISN = -uint32(1+rng.IntN(1<<20)) - 1
	loss := []float64{0, 0, 0.005, 0.01}[seed%4]
	reorder := []float64{0.1, 0.25, 0.4}[seed%3]
	lr := rand.New(rand.NewPCG(uint64(seed), 0x1eaf))
	for _, d := range []Dir{AtoB, BtoA} {
		w.Link.Add(Rule{Dir: d, Times: -1, Match: func(int, Seg) bool { return lr.Float64() < loss }, Drop: true})
		w.Link.Add(Rule{Dir: d, Times: -1, Match: func(int, Seg) bool { return lr.Float64() < 0.03 }, Dup: 1 + lr.IntN(2)})
		w.Link.Add(Rule{Dir: d, Times: -1, Match: func(int, Seg) bool { return lr.Float64() < reorder }, Delay: int64(time.Duration(100+lr.IntN(8000)) * time.Microsecond)})
	}
	size := func() int { return 1<<20 + rng.IntN(2<<20) }
	hosts := [2]*simHost{
		{side: SideA, h: f.a, peer: f.b, rng: rng, data: simData(rng, size()), rcv: NewStream(f.b.ISN), hs: true, active: true},
		{side: SideB, h: f.b, peer: f.a, rng: rng, data: simData(rng, size()), rcv: NewStream(f.a.ISN), hs: true},
	}
	for _, h := range hosts {
		h.flight = 64<<10 + rng.IntN(320<<10)
		h.wnd = true
		h.buf = 128<<10 + rng.IntN(896<<10)
		h.readEvery = int64(time.Duration(rng.IntN(6)) * time.Millisecond)
		h.h.Window, h.h.Exact = uint16(h.buf>>7), true
		h.ts = seed%4 != 3
	}
	done := func() bool {
		for i, h := range hosts {
			if !h.est || !h.gotFIN || !h.finAcked || !bytes.Equal(h.rcv.Contiguous(), hosts[1-i].data) {
				return false
			}
		}
		return true
	}
	deadline := w.Now + int64(300*time.Second)
	for !done() {
		if w.Now > deadline {
			for i, h := range hosts {
				t.Logf("host %d: sent %d/%d acked %d fin %v/%v edge %d; got %d fin %v read %d buf %d; PAWS drops %d", i,
					h.nxt, len(h.data), h.una, h.finSent, h.finAcked, h.sndEdge, h.rcvNxt, h.gotFIN, h.readNxt, h.buf, h.pawsDrops)
				c := w.G[i].Counters()
				for r := range engine.NumDropReasons {
					if n := c.Drops[r].Load(); n > 0 {
						t.Logf("  G%d drops %s: %d", i, engine.DropNames[r], n)
					}
				}
			}
			log := w.Link.Log
			for _, e := range log[max(0, len(log)-40):] {
				t.Logf("  link %v %v fate %d", e.At, e.Seg, e.Fate)
			}
			for i := range hosts {
				all := w.All[i]
				for _, g := range all[max(0, len(all)-10):] {
					t.Logf("  to host %d: %v", i, g)
				}
			}
			t.Fatalf("stalled: not done after 300 s (fake); deliver cap %d, store cap %d", deliver, store)
		}
		for _, h := range hosts {
			h.step(w)
		}
		w.Run(time.Millisecond)
		for _, h := range hosts {
			h.receive(t, w, w.Take(h.side))
			h.read(w)
		}
	}
	var dropped int
	for _, e := range w.Link.Log {
		if e.Fate == Dropped {
			dropped++
		}
	}
	t.Logf("%d + %d bytes, caps %d/%d, %d frames on the link, %d dropped, %.2f s (fake)",
		len(hosts[0].data), len(hosts[1].data), deliver, store, len(w.Link.Log), dropped, float64(w.Now)/1e9)
	wireStream(t, w, AtoB, f.a.ISN)
	wireStream(t, w, BtoA, f.b.ISN)
	for i, h := range hosts {
		if h.pawsDrops > 0 {
			t.Errorf("host %d dropped %d segments by PAWS: the engine sent it a timestamp older than one before (RFC 7323 §5)", i, h.pawsDrops)
		}
	}
}
