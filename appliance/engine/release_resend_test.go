package engine

import (
	"fmt"
	"math/rand"
	"testing"
)

// After its timeout, R's sender resends everything it had outstanding
// (go-back-N): the hole's frame first, then the frames G_B held behind it,
// which G_B gets while b's ACKs of the release are on their way. b answers
// every segment it gets at once, as a host in quick-ACK mode does: with
// its cumulative ACK, and a D-SACK for a segment it already had (the
// release's nudge, G_B's re-deliveries). In every interleaving of R's
// resends with b's ACKs, R gets one ACK that moves: the release's.
// Before, a resend G_B answered while b's ACK was held told R part of the
// release, and the release's ACK then covered only frames R's sender had
// sent once, long before: a stale RTT sample (0.87 s in a capture behind
// a box that makes SACK useless, where the sender's timeout, inflated by
// it, then stalled the connection).
func TestReleaseOneACKWhateverResendsInterleave(t *testing.T) {
	for seed := int64(0); seed < 400; seed++ {
		rng := rand.New(rand.NewSource(seed))
		sack := seed%2 == 1
		pr, h, wire := heldBehindHole(t, sack)
		atB, toR := pr.toB(wire[:1]) // the hole fills: the release
		b := &ackingHost{}
		b.took(atB)
		var events []string
		for next := 1; len(b.queue) > 0 || next < len(wire); {
			if next < len(wire) && (len(b.queue) == 0 || rng.Intn(2) == 0) {
				atB, back := pr.toB(wire[next : next+1])
				events = append(events, fmt.Sprintf("R resends frame %d: %d to R", next, len(back)))
				toR = append(toR, back...)
				b.took(atB)
				next++
				continue
			}
			a := b.queue[0]
			b.queue = b.queue[1:]
			pr.tsB++
			opts := tsOpt(pr.tsB, pr.tsA)
			if a.dsack >= 0 && sack {
				opts = sackOpts(opts, isnA+1+uint32(a.dsack), isnA+1+uint32(a.dsack)+1)
			}
			_, out := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, isnA+1+a.ack, ackF, 509, opts, nil))
			events = append(events, fmt.Sprintf("b ACKs %d (D-SACK of %d): %d to R", a.ack, a.dsack, len(out)))
			toR = append(toR, frames(t, out)...)
		}
		var moved []uint32
		for last, i := wire[0].seq, 0; i < len(toR); i++ {
			if int32(toR[i].ack-last) > 0 {
				last = toR[i].ack
				moved = append(moved, last-wire[0].seq)
			}
		}
		if want := wire[10].seq + uint32(len(wire[10].payload)) - wire[0].seq; len(moved) != 1 || moved[0] != want {
			t.Fatalf("seed %d, SACK %v: R's ACK moved to %v, want once, to %d:\n%v", seed, sack, moved, want, events)
		}
	}
}

// ackingHost is b answering every segment at once: its cumulative ACK, and
// a D-SACK of the first byte of a segment it already had (-1: none).
type ackingHost struct {
	have  uint32
	queue []bAnswer
}

// bAnswer is one ACK of b's: cumulative, with a D-SACK of dsack (-1: none).
type bAnswer struct {
	ack   uint32
	dsack int64
}

func (b *ackingHost) took(segs []segv) {
	for _, s := range segs {
		off := s.seq - isnA - 1
		dsack := int64(off)
		if end := off + uint32(len(s.payload)); end > b.have {
			b.have, dsack = end, -1
		}
		b.queue = append(b.queue, bAnswer{b.have, dsack})
	}
}
