package scenario

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// TestBlindAttackDuringExchange: while a and b exchange data and close, an
// attacker off the path who knows the 4-tuple (not the sequence numbers)
// sends each appliance 25 forged segments every millisecond, numbers drawn
// at random: RSTs, SYNs, FINs, ACKs and data. A TCP endpoint shrugs these
// off (RFC 9293 §3.10.7.4, RFC 5961), and so must the appliances: the
// exchange completes intact, with both FINs acknowledged, no host ever gets
// an RST (simHost fails on one) and the marker stays off the link. Before
// the appliances checked segments as a TCP does, a random RST within
// ±1 MiB reset the connection and any forged FIN hung its close.
func TestBlindAttackDuringExchange(t *testing.T) {
	for seed := range 8 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { blindRun(t, seed) })
	}
}

func blindRun(t *testing.T, seed int) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0xb11d))
	f := full(t)
	f.handshake(t)
	w := f.w
	lr := rand.New(rand.NewPCG(uint64(seed), 0x1111))
	for _, d := range []Dir{AtoB, BtoA} { // some loss and reordering too
		w.Link.Add(Rule{Dir: d, Times: -1, Match: func(int, Seg) bool { return lr.Float64() < 0.03 }, Drop: true})
		w.Link.Add(Rule{Dir: d, Times: -1, Match: func(int, Seg) bool { return lr.Float64() < 0.05 }, Delay: int64(time.Duration(1+lr.IntN(20)) * time.Millisecond)})
	}
	hosts := [2]*simHost{
		{side: SideA, h: f.a, peer: f.b, rng: rng, data: simData(rng, 20000+rng.IntN(40000)), rcv: NewStream(isnB), active: true, est: true},
		{side: SideB, h: f.b, peer: f.a, rng: rng, data: simData(rng, 20000+rng.IntN(40000)), rcv: NewStream(isnA), est: true},
	}
	done := func() bool {
		for i, h := range hosts {
			if !h.gotFIN || !bytes.Equal(h.rcv.Contiguous(), hosts[1-i].data) || !h.finAcked {
				return false
			}
		}
		return true
	}
	ar := rand.New(rand.NewPCG(uint64(seed), 0xa77a))
	kinds := []uint8{packettest.RST, packettest.RST | packettest.ACK, packettest.SYN, packettest.ACK | packettest.FIN,
		packettest.FIN, packettest.ACK, packettest.ACK | packettest.PSH}
	forged := 0
	const perStep = 25
	deadline := w.Now + int64(60*time.Second)
	for !done() {
		if w.Now > deadline {
			t.Fatalf("not done after 60 s (fake): a sent %d/%d acked %d fin %v, b sent %d/%d acked %d fin %v; a got %d fin %v, b got %d fin %v",
				hosts[0].nxt, len(hosts[0].data), hosts[0].una, hosts[0].finAcked, hosts[1].nxt, len(hosts[1].data), hosts[1].una, hosts[1].finAcked,
				hosts[0].rcvNxt, hosts[0].gotFIN, hosts[1].rcvNxt, hosts[1].gotFIN)
		}
		for _, h := range hosts {
			h.step(w)
		}
		// The attacker's segments arrive at each appliance's outside port
		// as if from the far host (never on the link's log: they are not
		// the appliances' wire streams).
		for i := range 2 * perStep {
			s := Side(i % 2)
			from := f.b
			if s == SideB {
				from = f.a
			}
			fl := kinds[ar.IntN(len(kinds))]
			var pl []byte
			if fl&packettest.PSH != 0 {
				pl = make([]byte, 100)
				for i := range pl {
					pl[i] = byte(ar.Uint32())
				}
			}
			w.handle(s, engine.Outside, from.Seg(fl, ar.Uint32(), ar.Uint32(), pl))
			forged++
		}
		w.Run(time.Millisecond)
		for _, h := range hosts {
			segs := w.Take(h.side)
			if h.gotFIN && h.finAcked {
				// Closed, in TIME-WAIT: it only acknowledges the other
				// side's FIN again, nothing reaches the application and
				// an RST changes nothing (RFC 1337). Once both FINs are
				// acknowledged the appliance may give the tuple to a new
				// connection (RFC 6191), which a forged SYN can start as
				// it can with the hosts themselves; what follows it is
				// then plain TCP, up to the host.
				segs = slices.DeleteFunc(segs, func(g Seg) bool {
					return !g.Has(packettest.FIN) || g.Has(packettest.RST|packettest.SYN) || h.rcv.Off(g.Seq)+len(g.Payload) != h.rcvNxt
				})
			}
			h.receive(t, w, segs)
		}
	}
	for s := range 2 {
		if c := w.G[s].Counters(); c.Aborts.Load() != 0 || c.AuthFailures.Load() != 0 {
			t.Fatalf("side %d: %d aborts, %d authentication failures", s, c.Aborts.Load(), c.AuthFailures.Load())
		}
	}
	for _, e := range w.Link.Log {
		if bytes.Contains(e.Seg.Payload, []byte(marker)) {
			t.Fatalf("plaintext marker on the link: %v", e.Seg)
		}
	}
	t.Logf("%d + %d bytes exchanged and closed under %d forged segments, %.2f s (fake)", len(hosts[0].data), len(hosts[1].data), forged, float64(w.Now)/1e9)
}
