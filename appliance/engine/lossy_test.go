package engine

import (
	"bytes"
	"math/rand"
	"testing"
)

// A bulk transfer a -> b over a wire that drops and reorders segments both
// ways. a is a go-back-N sender (it resends from its oldest unacknowledged
// byte when ACKs stop), b a receiver that takes bytes in order only and
// acknowledges every segment. Whatever the loss, b ends with exactly a's
// bytes and the FIN, and nothing is aborted: the store serves every
// retransmission, G_B reassembles, re-delivers and answers duplicates.
func TestLossyBulkTransfer(t *testing.T) {
	for _, reverse := range []bool{false, true} {
		for _, loss := range []float64{0, 0.05, 0.2} {
			lossyTransfer(t, loss, reverse)
		}
	}
}

// lossyTransfer sends a -> b, or b -> a when reverse (G_B then encrypts as
// host B and G_A decrypts as host A).
func lossyTransfer(t *testing.T, loss float64, reverse bool) {
	{
		pr := handshake(t)
		sAddr, rAddr, sGW, rGW, sISN, rISN := addrA, addrB, pr.ga, pr.gb, isnA, isnB
		if reverse {
			sAddr, rAddr, sGW, rGW, sISN, rISN = addrB, addrA, pr.gb, pr.ga, isnB, isnA
		}
		sGW.e.cfg.RekeyBytes = 40_000 // several rekeys during the loss (TC-59: retransmissions keep their key)
		rng := rand.New(rand.NewSource(int64(loss * 1000)))
		data := make([]byte, 300_000)
		rng.Read(data)
		const mss = 1400
		base := sISN + 1
		una, nxt := 0, 0 // a's view, host offsets
		var got []byte
		gotFIN, finSent := false, false
		stall := 0
		for round := 0; round < 5000 && !(gotFIN && una == len(data)+1); round++ {
			// a sends up to 16 segments past una.
			var wire [][]byte
			for k := 0; k < 16 && nxt < una+16*mss; k++ {
				pr.tsA++
				var fr []byte
				if nxt < len(data) {
					end := min(nxt+mss, len(data))
					fr = tcpFrame(sAddr, rAddr, base+uint32(nxt), rISN+1, ackF|pshF, 65535, tsOpt(pr.tsA, pr.tsB), data[nxt:end])
					nxt = end
				} else if nxt == len(data) {
					fr = tcpFrame(sAddr, rAddr, base+uint32(nxt), rISN+1, ackF|finF, 65535, tsOpt(pr.tsA, pr.tsB), nil)
					nxt++
					finSent = true
				} else {
					break
				}
				_, o := sGW.push(Inside, fr)
				wire = append(wire, o...)
			}
			rng.Shuffle(len(wire), func(i, j int) { wire[i], wire[j] = wire[j], wire[i] })
			var back [][]byte
			for _, w := range wire {
				if rng.Float64() < loss {
					continue
				}
				toIn, toOut := rGW.push(Outside, w)
				back = append(back, toOut...)
				for _, f := range toIn {
					s := parse(t, f)
					if s.flags&rstF != 0 {
						t.Fatalf("loss %.2f: G_B reset b", loss)
					}
					if rng.Float64() < loss/2 {
						continue // lost on the inside link: G_B must re-deliver
					}
					off := int(s.seq - base)
					if off <= len(got) && off+len(s.payload) > len(got) {
						got = append(got, s.payload[len(got)-off:]...)
					}
					if s.flags&finF != 0 && off+len(s.payload) == len(got) {
						gotFIN = true
					}
					ack := base + uint32(len(got))
					if gotFIN {
						ack++
					}
					pr.tsB++
					_, o := rGW.push(Inside, tcpFrame(rAddr, sAddr, rISN+1, ack, ackF, 65535, tsOpt(pr.tsB, pr.tsA), nil))
					back = append(back, o...)
				}
			}
			// Timers: the rekey answers G_B owns are retransmitted.
			for _, g := range []*gw{sGW, rGW} {
				_, o := g.tick(50e6)
				if g == rGW {
					back = append(back, o...)
				}
			}
			progress := false
			for _, w := range back {
				if rng.Float64() < loss {
					continue
				}
				toIn, _ := sGW.push(Outside, w)
				for _, f := range toIn {
					s := parse(t, f)
					if s.flags&rstF != 0 {
						t.Fatalf("loss %.2f: G_A reset a", loss)
					}
					if a := int(s.ack - base); a > una && a <= nxt {
						una, progress = a, true
					}
				}
			}
			if !progress {
				if stall++; stall > 2 {
					nxt, stall = una, 0 // a's retransmission timeout: go back
					if una <= len(data) {
						finSent = false
					}
				}
			}
		}
		_ = finSent
		if !bytes.Equal(got, data) || !gotFIN {
			t.Fatalf("loss %.2f: b got %d of %d bytes, FIN %v (a's una %d)", loss, len(got), len(data), gotFIN, una)
		}
		c := rGW.e.Counters()
		t.Logf("reverse %v loss %.2f: frames opened %d, dup ACKs %d, re-delivered %d, retransmitted by the sender's appliance %d, rekeys %d answered %d",
			reverse, loss, c.FramesOpened.Load(), c.DupAcksOriginated.Load(), c.Redelivered.Load(), sGW.e.Counters().FrameRetransmits.Load(),
			sGW.e.Counters().Rekeys.Load(), c.RekeysAnswered.Load())
		if loss > 0 && c.Redelivered.Load() == 0 {
			t.Fatal("no re-delivery after inside loss")
		}
		for _, f := range sGW.e.flows {
			if _, err := f.keys.Sealer(0); err == nil {
				t.Fatal("generation-0 sending key kept after every frame was acknowledged (TC-60)")
			}
		}
		if sGW.e.Counters().Rekeys.Load() < 5 {
			t.Fatal("no rekeys during the transfer")
		}
	}
}
