package engine

import (
	"bytes"
	"testing"
	"time"
)

// An encrypted connection that carries nothing for hours (a terminal
// session overnight, its hosts' keep-alive off) outlives IdleTimeout
// (2 h by default): each appliance rekeys by time every RekeyAfter (1 h)
// with an empty frame, the other acknowledges it, and that traffic keeps
// both records fresh, as plain TCP, which has no idle limit, would. After
// 6 h of silence a's data still reaches b.
//
// With rekeying by time off (rekey_interval: 0, RekeyAfter < 0) the records
// expired after IdleTimeout and the next segment was reset, where plain TCP
// would have carried it: an appliance now sends an empty frame once its
// record has been idle for half of IdleTimeout, whatever the rekey
// setting. The hosts are alive: they answer the appliances' keep-alive
// probes (hostprobe.go), as their TCPs would.
func TestIdleEncryptedConnectionLivesOn(t *testing.T) {
	for _, rekeyAfter := range []time.Duration{0, -1} {
		c := Config{TEPs: testTEPs, RekeyAfter: rekeyAfter}
		idleLivesOn(t, handshakeOn(t, newGW(t, c), newGW(t, c)), rekeyAfter)
	}
}

func idleLivesOn(t *testing.T, pr *pair, rekeyAfter time.Duration) {
	h := newHosts()
	relay := func(from, to *gw, frames [][]byte) {
		for len(frames) > 0 {
			var back [][]byte
			for _, f := range frames {
				toIn, toOut := to.push(Outside, f)
				if len(toIn) != 0 {
					t.Fatalf("a rekey frame reached the inside host: %d segments", len(toIn))
				}
				back = append(back, toOut...)
			}
			frames, from, to = back, to, from
		}
	}
	for step := 0; step < 6*6; step++ { // 6 h in 10 min steps
		for _, g := range []*gw{pr.ga, pr.gb} {
			g.now += int64(10 * time.Minute)
		}
		inA, outA := pr.ga.tick(int64(10 * time.Millisecond))
		relay(pr.ga, pr.gb, append(outA, pr.answerProbes(&h, 0, inA)...))
		inB, outB := pr.gb.tick(int64(10 * time.Millisecond))
		relay(pr.gb, pr.ga, append(outB, pr.answerProbes(&h, 1, inB)...))
		if pr.ga.e.NumFlows() != 1 || pr.gb.e.NumFlows() != 1 {
			t.Fatalf("rekey after %v: after %v of silence: %d and %d flows", rekeyAfter, time.Duration(step+1)*10*time.Minute, pr.ga.e.NumFlows(), pr.gb.e.NumFlows())
		}
	}
	rekeys := pr.ga.e.Counters().Rekeys.Load() + pr.gb.e.Counters().Rekeys.Load()
	refreshes := pr.ga.e.Counters().IdleRefreshes.Load() + pr.gb.e.Counters().IdleRefreshes.Load()
	if rekeyAfter >= 0 && (rekeys < 6 || refreshes != 0) || rekeyAfter < 0 && (rekeys != 0 || refreshes < 5) {
		t.Fatalf("rekey after %v: %d rekeys, %d idle refreshes in 6 h", rekeyAfter, rekeys, refreshes)
	}
	msg := []byte("still here after six hours")
	atB, _ := pr.toB(pr.aSends(&h, msg, pshF))
	if len(atB) != 1 || !bytes.Equal(atB[0].payload, msg) {
		t.Fatalf("rekey after %v: after 6 h b got %d segments, want the message", rekeyAfter, len(atB))
	}
}

// A half-closed connection whose open side stays silent (a server working
// on a long answer after the client's shutdown(SHUT_WR)): a sent its FIN,
// b acknowledged it and says nothing for hours. G_A may send no frame after
// its FINp, so G_B's rekey by time is never answered, and the next rekey
// by time would need a second empty rekey frame while the first is
// unanswered, which tcpcrypt forbids (TC-58). Before, G_B started it all
// the same, could then send no empty frame at all (each would carry the
// pending rekey): no refresh, so both records expired and b's answer,
// hours later, was reset where plain TCP would have carried it; and, with
// a longer idle limit, b's FIN without data never left. G_B now starts no
// rekey that an empty frame would have to carry while one is unanswered.
// Both hosts answer the appliances' keep-alive probes (hostprobe.go).
func TestHalfClosedIdleOpenSideLivesOn(t *testing.T) {
	for _, c := range []struct {
		name   string
		idle   time.Duration
		answer []byte
		flags  uint8
	}{
		{"answer", 0, []byte("the answer, six hours later"), pshF},
		{"FIN", 24 * time.Hour, nil, finF},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{TEPs: testTEPs, IdleTimeout: c.idle}
			pr := handshakeOn(t, newGW(t, cfg), newGW(t, cfg))
			halfClosedIdle(t, pr, c.answer, c.flags)
		})
	}
}

func halfClosedIdle(t *testing.T, pr *pair, answer []byte, flags uint8) {
	h := newHosts()
	pr.toB(pr.aSends(&h, []byte("request"), pshF|finF))
	pr.tsB++
	_, toOut := pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF, 509, tsOpt(pr.tsB, pr.tsA), nil))
	for _, f := range toOut {
		pr.ga.push(Outside, f)
	}
	relay := func(to *gw, frames [][]byte) {
		other := pr.ga
		if to == pr.ga {
			other = pr.gb
		}
		for len(frames) > 0 {
			var back [][]byte
			for _, f := range frames {
				_, o := to.push(Outside, f)
				back = append(back, o...)
			}
			frames, to, other = back, other, to
		}
	}
	for step := 0; step < 6*6; step++ { // 6 h in 10 min steps
		pr.ga.now += int64(10 * time.Minute)
		pr.gb.now += int64(10 * time.Minute)
		inA, outA := pr.ga.tick(int64(10 * time.Millisecond))
		relay(pr.gb, append(outA, pr.answerProbes(&h, 0, inA)...))
		inB, outB := pr.gb.tick(int64(10 * time.Millisecond))
		relay(pr.ga, append(outB, pr.answerProbes(&h, 1, inB)...))
		if pr.ga.e.NumFlows() != 1 || pr.gb.e.NumFlows() != 1 {
			t.Fatalf("after %v of silence: %d and %d flows", time.Duration(step+1)*10*time.Minute, pr.ga.e.NumFlows(), pr.gb.e.NumFlows())
		}
	}
	pr.tsB++
	_, toOut = pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF|flags, 509, tsOpt(pr.tsB, pr.tsA), answer))
	var got []byte
	fin := false
	for _, f := range toOut {
		toIn, _ := pr.ga.push(Outside, f)
		for _, s := range toIn {
			got = append(got, parse(t, s).payload...)
			fin = fin || parse(t, s).flags&finF != 0
		}
	}
	if !bytes.Equal(got, answer) || fin != (flags&finF != 0) {
		t.Fatalf("a got %q (FIN %v), want %q", got, fin, answer)
	}
}
