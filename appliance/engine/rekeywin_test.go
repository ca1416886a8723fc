package engine

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// The far side's rekey arrives while its receive window is closed: the
// empty answer frame (TC-57) waits for room, because past R's right edge R
// drops it and every later segment with the ACK it carries (RFC 9293
// §3.8.6, §3.10.7.4); a Linux peer then never learns its data was
// acknowledged. The window update that opens room lets the answer out.
func TestRekeyAnswerWaitsForWindow(t *testing.T) {
	pr := handshake(t)
	pr.ga.e.cfg.RekeyBytes = 2000
	h := newHosts()
	chunk := bytes.Repeat([]byte{7}, 1400)
	pr.toB(pr.aSends(&h, chunk, pshF))
	pr.toB(pr.aSends(&h, chunk, pshF))
	w3 := pr.aSends(&h, chunk, pshF)
	if len(w3) != 1 || w3[0].payload[0] != 1 {
		t.Fatalf("want one frame with the rekey bit: %+v", w3)
	}
	closed := w3[0]
	closed.win = 0
	atB, back := pr.toB([]segv{closed})
	if len(atB) != 1 || !bytes.Equal(atB[0].payload, chunk) {
		t.Fatal("frame under the new generation not delivered")
	}
	for _, s := range back {
		if len(s.payload) > 0 {
			t.Fatalf("G_B sent %d bytes into a closed window", len(s.payload))
		}
	}
	// R opens its window (a pure window update).
	upd := closed
	upd.seq += uint32(len(closed.payload))
	upd.payload = nil
	upd.win = 502
	_, back = pr.toB([]segv{upd})
	if len(back) != 1 || len(back[0].payload) != 20 || back[0].payload[0] != 1 {
		t.Fatalf("rekey answer after the window opened: %+v", back)
	}
	if pr.gb.e.Counters().RekeysAnswered.Load() != 1 {
		t.Fatal("answer not counted")
	}
}

// The window L gets ends where R's window ends on the wire: wire bytes
// already framed beyond L's data (rekey answers, the 20 bytes of each short
// frame) are taken off it, so L's data never passes R's right edge (RFC 9293
// §3.8.6).
func TestScaleWinCountsFramedBytes(t *testing.T) {
	f := &flow{mssR: 1400}
	f.enc.store.max = 1 << 20
	// L's 1000 bytes, acknowledged up to 0, went out as 50 frames of 20 +
	// 20 bytes, plus 10 empty rekey answers: 2200 wire bytes.
	f.enc.nextH, f.enc.nextW = 1000, 2200
	// R advertises 3000 bytes from its ACK at 0: 800 wire bytes are left,
	// 788 of plaintext in frames of 1400.
	got := int(f.scaleWin(3000))
	if want := 1000 + 800*(1400-20)/1400; got != want {
		t.Fatalf("window to L %d, want %d", got, want)
	}
	// R's window already full: L may have nothing beyond its own data.
	g := &flow{mssR: 1400}
	g.enc.store.max = 1 << 20
	g.enc.nextH, g.enc.nextW = 1000, 2200
	if got := g.scaleWin(2000); got != 1000 {
		t.Fatalf("window to L %d, want 1000", got)
	}
	// Unless L was given a further edge before: it stands (RFC 9293
	// §3.8.6), and what L sends up to it waits for R's window (sealNew).
	if got := f.scaleWin(2000); got != uint16(1000+800*(1400-20)/1400) {
		t.Fatalf("window to L %d after it was %d, want it unchanged", got, 1000+800*(1400-20)/1400)
	}
}

// farRekeysWindowClosed has a send one-byte segments through G_A, which
// starts a rekey on every frame, until n rekey frames have reached G_B
// with R's window closed: G_B owes an answer to each and can send none.
// It returns the last frame and what G_B sent back for it.
func farRekeysWindowClosed(t *testing.T, pr *pair, h *hosts, n int) (last segv, toB, back []segv) {
	t.Helper()
	pr.ga.e.cfg.RekeyBytes = 1
	for rekeys := 0; rekeys < n; {
		last = one(t, "a's frame", toFrames(pr.aSends(h, []byte{'x'}, pshF)))
		if last.payload[0] == 1 {
			rekeys++
		}
		last.win = 0
		toB, back = pr.toB([]segv{last})
		for _, s := range back {
			if len(s.payload) > 0 {
				t.Fatalf("G_B sent %d bytes into a closed window", len(s.payload))
			}
		}
	}
	return last, toB, back
}

// depthSink records how deep in the stack each frame was committed.
type depthSink struct {
	TxSink
	depths []int
}

func (s *depthSink) Commit(n int) {
	s.depths = append(s.depths, runtime.Callers(0, make([]uintptr, 1<<14)))
	s.TxSink.Commit(n)
}

// The far side starts 64 rekeys while its window is closed; the window
// update that opens it lets all the answers out (TC-57). Before, each
// answer's frame sealing called for the next answer (sealNew, sendOwed),
// one stack level per rekey owed with nothing to bound them: a peer's
// 20-byte rekey frames could pile up hundreds of thousands and overflow
// the stack, a fatal error for the daemon. Now the answers go out in a
// loop, each from the same depth.
func TestOwedRekeysAnsweredInALoop(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	last, _, _ := farRekeysWindowClosed(t, pr, &h, tcpcrypt.MaxGenerations)
	ds := &depthSink{TxSink: pr.gb.tx[Outside]}
	pr.gb.tx[Outside] = ds
	upd := last
	upd.seq += uint32(len(last.payload))
	upd.payload = nil
	upd.win = 502
	_, back := pr.toB([]segv{upd})
	if len(back) != tcpcrypt.MaxGenerations {
		t.Fatalf("%d segments after the window opened, want %d answers", len(back), tcpcrypt.MaxGenerations)
	}
	for _, s := range back {
		if len(s.payload) != tcpcrypt.Overhead || s.payload[0] != 1 {
			t.Fatalf("rekey answer: %+v", s)
		}
	}
	if d := ds.depths; d[0] != d[len(d)-1] {
		t.Fatalf("answers sent from stack depth %d to %d", d[0], d[len(d)-1])
	}
	if n := pr.gb.e.Counters().RekeysAnswered.Load(); n != tcpcrypt.MaxGenerations {
		t.Fatalf("%d answers counted", n)
	}
}

// 66 of R's rekey frames wait behind a hole on the wire, R's window open;
// the hole fills and they all open in one go. Each is answered, as it
// opens (RFC 8548 §3.8), and the connection goes on.
func TestHeldRekeysAnsweredAsOpened(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	pr.ga.e.cfg.RekeyBytes = 1
	var frames []segv
	for range tcpcrypt.MaxGenerations + 2 {
		frames = append(frames, one(t, "a's frame", toFrames(pr.aSends(&h, []byte{'x'}, pshF))))
	}
	pr.toB(frames[1:]) // held: the first is late
	atB, back := pr.toB(frames[:1])
	if pr.gb.e.NumFlows() != 1 || len(atB) == 0 {
		t.Fatalf("G_B aborted the connection (%d aborts)", pr.gb.e.Counters().Aborts.Load())
	}
	answers := 0
	for _, s := range back {
		if len(s.payload) == tcpcrypt.Overhead && s.payload[0] == 1 {
			answers++
		}
	}
	if answers != tcpcrypt.MaxGenerations+1 { // the first frame started no rekey
		t.Fatalf("%d rekey answers, want %d", answers, tcpcrypt.MaxGenerations+1)
	}
}

// A rekey by time that falls due while R's rekeys are owed and R's window is
// closed sends nothing: before, keepFresh (and the rekey-by-time code before
// it) sealed an empty frame at every tick, past R's window, one answer more
// each time, and none counted as answered. Owed answers go through sendOwed,
// which waits for R's window, and no empty frame of ours goes past it.
func TestRekeyByTimeWaitsForWindow(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	pr.gb.e.cfg.RekeyAfter = time.Second
	farRekeysWindowClosed(t, pr, &h, 10)
	for range 40 {
		_, out := pr.gb.tick(int64(250 * time.Millisecond))
		for _, f := range out {
			if s := parse(t, f); len(s.payload) > 0 {
				t.Fatalf("G_B sent a %d-byte frame into R's closed window", len(s.payload))
			}
		}
	}
}
