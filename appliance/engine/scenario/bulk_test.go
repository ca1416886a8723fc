package scenario

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// TestRandomBulkReorder is TestRandomExchanges at the scale of a bulk
// transfer: megabytes both ways at once through rings that wrap many times
// (re-delivery and retransmit caps from 48 KiB, some not a power of two),
// flights of up to 384 KiB that respect the window each host was given, a
// receiving application that reads only every few milliseconds (its window
// closes and opens), sequence numbers that wrap past 2^32 in the middle of
// the transfer, and a link that reorders a large share of the frames and
// duplicates some, with or without loss; most seeds with timestamps on
// every segment, and hosts that apply PAWS; one to three connections at
// once. Both transfers must complete
// (no stall: the fake clock's deadline is far beyond any retransmission
// backoff the hosts use), byte for byte, and the wire must carry the same
// bytes for the same sequence numbers (TC-45).
func TestRandomBulkReorder(t *testing.T) {
	seeds := 24
	if testing.Short() {
		seeds = 6
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { bulkRun(t, seed, 0) })
	}
}

// TestRandomBulkReorderTightBudget is TestRandomBulkReorder through engines
// whose memory budgets (1 MiB, the least allowed) the transfers fill: their
// buffers are refused growth, and R's bytes held past holes are dropped to
// make room (prune.go), SACKed ones too, as Linux prunes its out-of-order
// queue. R sends them again, and every transfer still completes, byte for
// byte.
func TestRandomBulkReorderTightBudget(t *testing.T) {
	seeds := 12
	if testing.Short() {
		seeds = 6
	}
	pruned := uint64(0)
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			w := bulkRun(t, seed, 1<<20)
			for s := range 2 {
				pruned += w.G[s].Counters().HeldPruned.Load()
			}
		})
	}
	if pruned == 0 {
		t.Fatal("no held bytes were pruned: the budget was never short")
	}
}

// bulkRun runs TestRandomBulkReorder's transfer of one seed through
// engines whose memory budgets hold limit bytes each (0: the default).
func bulkRun(t *testing.T, seed int, limit int64) *World {
	rng := rand.New(rand.NewPCG(uint64(seed), 0xb01c))
	caps := []int{48 << 10, 100_000, 256 << 10, 1 << 20}
	deliver := caps[rng.IntN(len(caps))]
	store := caps[rng.IntN(len(caps))]
	f := newFixture(t, [2]bool{true, true}, false, func(_ Side, c *engine.Config) {
		c.DeliverBytes, c.RetransmitBytes, c.MemoryLimit = deliver, store, limit
	})
	w := f.w
	loss := []float64{0, 0, 0.005, 0.01}[seed%4]
	reorder := []float64{0.1, 0.25, 0.4}[seed%3]
	lr := rand.New(rand.NewPCG(uint64(seed), 0x1eaf))
	for _, d := range []Dir{AtoB, BtoA} {
		w.Link.Add(Rule{Dir: d, Times: -1, Match: func(int, Seg) bool { return lr.Float64() < loss }, Drop: true})
		w.Link.Add(Rule{Dir: d, Times: -1, Match: func(int, Seg) bool { return lr.Float64() < 0.03 }, Dup: 1 + lr.IntN(2)})
		w.Link.Add(Rule{Dir: d, Times: -1, Match: func(int, Seg) bool { return lr.Float64() < reorder }, Delay: int64(time.Duration(100+lr.IntN(8000)) * time.Microsecond)})
	}
	// One to three connections at once (from a's ports 40000, 40001, ...
	// to b's port 80): the engines' frames interleave, so a flow found
	// for one frame is not the next frame's.
	conns := 1 + seed%3
	size := func() int { return (1<<20 + rng.IntN(2<<20)) / conns }
	var pairs [][2]*simHost
	for c := range conns {
		a, b := f.a, f.b
		if c > 0 {
			a = &Host{Addr: netip.AddrPortFrom(f.a.Addr.Addr(), f.a.Addr.Port()+uint16(c)), Peer: f.b.Addr}
			b = &Host{Addr: f.b.Addr, Peer: a.Addr}
		}
		// ISNs a little below 2^32: the sequence numbers wrap mid-transfer.
		a.ISN = -uint32(1+rng.IntN(1<<20)) - 1
		b.ISN = -uint32(1+rng.IntN(1<<20)) - 1
		hosts := [2]*simHost{
			{side: SideA, h: a, peer: b, rng: rng, data: simData(rng, size()), rcv: NewStream(b.ISN), hs: true, active: true},
			{side: SideB, h: b, peer: a, rng: rng, data: simData(rng, size()), rcv: NewStream(a.ISN), hs: true},
		}
		for _, h := range hosts {
			h.flight = 64<<10 + rng.IntN(320<<10)
			h.wnd = true
			h.buf = 128<<10 + rng.IntN(896<<10)
			h.readEvery = int64(time.Duration(rng.IntN(6)) * time.Millisecond)
			h.h.Window, h.h.Exact = uint16(h.buf>>7), true
			h.ts = seed%4 != 3
		}
		pairs = append(pairs, hosts)
	}
	done := func() bool {
		for _, hosts := range pairs {
			for i, h := range hosts {
				if !h.est || !h.gotFIN || !h.finAcked || !bytes.Equal(h.rcv.Contiguous(), hosts[1-i].data) {
					return false
				}
			}
		}
		return true
	}
	deadline := w.Now + int64(300*time.Second)
	for !done() {
		if w.Now > deadline {
			for c, hosts := range pairs {
				for i, h := range hosts {
					t.Logf("connection %d host %d: sent %d/%d acked %d fin %v/%v edge %d; got %d fin %v read %d buf %d; PAWS drops %d", c, i,
						h.nxt, len(h.data), h.una, h.finSent, h.finAcked, h.sndEdge, h.rcvNxt, h.gotFIN, h.readNxt, h.buf, h.pawsDrops)
				}
			}
			for i := range 2 {
				for _, fl := range w.Flows(Side(i)) {
					if fl.Stream != nil {
						t.Logf("  G%d flow %v: %+v %+v", i, fl.Inside, fl.Stream.Out, fl.Stream.In)
					}
				}
				c := w.G[i].Counters()
				for r := range engine.NumDropReasons {
					if n := c.Drops[r].Load(); n > 0 {
						t.Logf("  G%d drops %s: %d", i, engine.DropNames[r], n)
					}
				}
			}
			t.Fatalf("stalled: not done after 300 s (fake); deliver cap %d, store cap %d", deliver, store)
		}
		for _, hosts := range pairs {
			for _, h := range hosts {
				h.step(w)
			}
		}
		w.Run(time.Millisecond)
		for s := range 2 {
			segs := w.Take(Side(s))
			for _, hosts := range pairs {
				h := hosts[s]
				var mine []Seg
				for _, g := range segs {
					if g.Dst == h.h.Addr && g.Src == h.h.Peer {
						mine = append(mine, g)
					}
				}
				h.receive(t, w, mine)
				h.read(w)
			}
		}
	}
	var dropped int
	for _, e := range w.Link.Log {
		if e.Fate == Dropped {
			dropped++
		}
	}
	t.Logf("%d connections, caps %d/%d, %d frames on the link, %d dropped, %.2f s (fake)",
		conns, deliver, store, len(w.Link.Log), dropped, float64(w.Now)/1e9)
	for _, hosts := range pairs {
		for i, h := range hosts {
			// TC-45 on the wire, connection by connection.
			st := NewStream(h.h.ISN)
			for _, g := range w.Link.Sent([]Dir{AtoB, BtoA}[i]) {
				if g.Src != h.h.Addr || g.Dst != h.h.Peer || g.Has(packettest.SYN) || g.Has(packettest.RST) {
					continue
				}
				if err := st.AddSeg(g); err != nil {
					t.Fatalf("link %v: %v at %v", []Dir{AtoB, BtoA}[i], err, g)
				}
			}
			if h.pawsDrops > 0 {
				t.Errorf("host %v dropped %d segments by PAWS: the engine sent it a timestamp older than one before (RFC 7323 §5)", h.h.Addr, h.pawsDrops)
			}
		}
	}
	return w
}
