package scenario

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestRandomEcho is the interop property against a far end that frames
// and rekeys its own way: for each seed, a frame size of the far end
// (100, 1,400, 16,384 or 65,000 bytes), a rekey it starts every 5 frames,
// loss, duplication and reordering on the link, and sometimes loss on the
// inside link, an echo of a few hundred kilobytes runs through one
// appliance and both directions half-close:
//
//   - appliance as A: a writes, then shuts its direction (FINp) while it
//     reads the echo from a far server (role B), which closes once it has
//     echoed everything (RFC 8548 §3.8: after its FINp G_A answers none of
//     the far end's rekeys but follows them);
//   - appliance as B: a far client (role A) writes and shuts its direction;
//     b echoes and closes after the far end's FINp.
//
// Each run must end with the whole echo and both FINs delivered, no RST,
// the far end's wire ACKs never ahead of the inside host's (custody), the
// same bytes for the same wire sequence numbers, and no plaintext marker on
// the link. ECHO_SEEDS=n runs n seeds instead.
func TestRandomEcho(t *testing.T) {
	seeds := 24
	if s := os.Getenv("ECHO_SEEDS"); s != "" {
		seeds, _ = strconv.Atoi(s)
	}
	if testing.Short() {
		seeds = 8
	}
	for seed := range seeds {
		size := []int{100, 1400, 16384, 65000}[seed%4]
		asA := seed/4%2 == 0
		loss := []float64{0, 0.01, 0.03}[seed%3]
		name := fmt.Sprintf("%d/frame%d/A=%v/loss%.2f", seed, size, asA, loss)
		t.Run(name, func(t *testing.T) { echoRun(t, seed, size, asA, loss) })
	}
}

func echoRun(t *testing.T, seed, size int, asA bool, loss float64) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0xec40))
	var f *fixture
	var far *farEnd
	var in *simHost
	n := 200_000 + rng.IntN(300_000)
	if asA {
		f = onlyA(t)
		p := peerB(t, f)
		far = newFarEnd(t, SideB, f.b, f.a, p, size)
		far.echo, far.closeAtEOF = true, true
		in = &simHost{side: SideA, h: f.a, peer: f.b, rng: rng, data: simData(rng, n), rcv: NewStream(isnB), est: true}
	} else {
		f = onlyB(t)
		p := peerA(t, f, nil)
		far = newFarEnd(t, SideA, f.a, f.b, p, size)
		far.closeDone = true
		in = &simHost{side: SideB, h: f.b, peer: f.a, rng: rng, rcv: NewStream(isnA), est: true, holdFIN: true}
	}
	far.rekeyEvery = 5
	w := f.w
	lr := rand.New(rand.NewPCG(uint64(seed), 0x1111))
	for _, d := range []Dir{AtoB, BtoA} {
		w.Link.Add(Rule{Dir: d, Times: -1, Match: func(int, Seg) bool { return lr.Float64() < loss }, Drop: true})
		w.Link.Add(Rule{Dir: d, Times: -1, Match: func(int, Seg) bool { return lr.Float64() < 0.02 }, Dup: 1})
		w.Link.Add(Rule{Dir: d, Times: -1, Match: func(int, Seg) bool { return lr.Float64() < 0.05 }, Delay: int64(time.Duration(1+lr.IntN(20)) * time.Millisecond)})
	}
	if seed%5 == 4 {
		in.insideLoss, in.lossRng = 0.01, rand.New(rand.NewPCG(uint64(seed), 7))
	}
	var sent []byte // what the far end wrote (appliance as B)
	if !asA {
		sent = simData(rng, n)
		far.write(w.Now, sent)
	}
	each := func() {
		if asA {
			return
		}
		// b echoes what it received, and closes after the far end's FIN.
		if got := in.rcv.Contiguous(); len(got) > len(in.data) {
			in.data = append(in.data, got[len(in.data):]...)
		}
		in.holdFIN = !(in.gotFIN && len(in.data) == len(in.rcv.Contiguous()))
	}
	done := func() bool {
		if asA {
			return in.gotFIN && in.finAcked && far.finAcked && bytes.Equal(in.rcv.Contiguous(), in.data)
		}
		return far.gotFIN && far.finAcked && in.finAcked && bytes.Equal(far.got, sent)
	}
	farRun(t, w, far, in, done, each, 120*time.Second)
	if asA && !bytes.Equal(far.got, in.data) {
		t.Fatalf("the far end got %d bytes, a sent %d", len(far.got), len(in.data))
	}
	wireStream(t, w, AtoB, isnA)
	wireStream(t, w, BtoA, isnB)
	for _, e := range w.Link.Log {
		if bytes.Contains(e.Seg.Payload, []byte(marker)) {
			t.Fatalf("plaintext marker on the link: %v", e.Seg)
		}
	}
	var dropped int
	for _, e := range w.Link.Log {
		if e.Fate == Dropped {
			dropped++
		}
	}
	t.Logf("%d bytes echoed in %d far-end frames (generation %d), %d frames on the link, %d dropped, %d lost inside, %d far-end timeouts, %.1f s (fake)",
		len(far.got), far.nsent, far.p.Ring.Local(), len(w.Link.Log), dropped, in.lostInside, far.timeouts, float64(w.Now)/1e9)
}
