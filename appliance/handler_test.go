package appliance

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/memport"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// scripted is a FrameHandler whose decision per frame is a function, to
// drive every verdict path of the worker.
type scripted struct {
	decide func(from engine.PortID, frame []byte, tx [2]TxSink) Verdict
	seen   [][]byte
	ticks  []int64
}

func (s *scripted) HandlePacket(now int64, from engine.PortID, p *packet.Packet, tx [2]TxSink) Verdict {
	frame := p.Frame()
	s.seen = append(s.seen, bytes.Clone(frame))
	return s.decide(from, frame, tx)
}

func (s *scripted) Tick(now int64, tx [2]TxSink) { s.ticks = append(s.ticks, now) }

func scriptedRig(t *testing.T, fast bool, decide func(engine.PortID, []byte, [2]TxSink) Verdict) (*rig, *scripted) {
	h := &scripted{decide: decide}
	r := newRig(t, rigOpts{fastPath: fast, handler: func(int) (FrameHandler, error) { return h, nil }})
	return r, h
}

// TestHandlerSeesOwnedFlowFrames: the handler gets TCP frames and ICMP errors
// quoting TCP; ARP, ping and UDP are forwarded without it.
func TestHandlerSeesOwnedFlowFrames(t *testing.T) {
	r, h := scriptedRig(t, false, func(engine.PortID, []byte, [2]TxSink) Verdict { return engine.Passthrough })
	syn := tcpFrame(a4, b4, 1000, 80, packettest.SYN, 1, 0, nil)
	ptb := packettest.Frame{Src: b4, Dst: a4, Proto: 1, L4: packettest.ICMP(3, 4, 1400, packettest.Quote(syn, 28))}.Bytes()
	for _, f := range [][]byte{
		packettest.Frame{EtherType: 0x0806, L4: bytes.Repeat([]byte{1}, 28)}.Bytes(),
		packettest.Frame{Src: a4, Dst: b4, Proto: 1, L4: packettest.ICMP(8, 0, 1, []byte("ping"))}.Bytes(),
		packettest.Frame{Src: a6, Dst: b6, Proto: 17, L4: packettest.UDP(1, 2, []byte("udp"))}.Bytes(),
	} {
		r.send(Inside, f)
	}
	if len(r.out[1]) != 3 {
		t.Fatalf("%d non-TCP frames forwarded, want 3", len(r.out[1]))
	}
	if len(h.seen) != 0 {
		t.Fatalf("handler saw %d non-TCP frames", len(h.seen))
	}
	r.send(Inside, syn)
	r.send(Outside, ptb)
	if len(h.seen) != 2 || !bytes.Equal(h.seen[0], syn) || !bytes.Equal(h.seen[1], ptb) {
		t.Fatalf("handler saw %d frames, want the SYN and the ICMP error quoting it", len(h.seen))
	}
}

// TestVerdicts: each verdict does what the Engine API says, and is counted.
func TestVerdicts(t *testing.T) {
	var next Verdict
	var rewrite, send bool
	r, _ := scriptedRig(t, true, func(from engine.PortID, frame []byte, tx [2]TxSink) Verdict {
		if rewrite {
			frame[len(frame)-1] ^= 0xff // same length, rewritten in place
		}
		if send {
			// Two frames onward, one back toward the sender.
			for i, to := range []engine.PortID{1 - from, 1 - from, from} {
				buf := tx[to].Buffer()
				if buf == nil {
					t.Fatal("no TX buffer")
				}
				buf[0] = byte(i)
				tx[to].Commit(copy(buf[1:], "engine") + 1)
			}
		}
		return next
	})
	data := tcpFrame(a4, b4, 1000, 80, packettest.ACK, 1, 1, []byte("payload"))
	cases := []struct {
		v             Verdict
		rewrite, send bool
		out, back     [][]byte
	}{
		{engine.ForwardInPlace, true, false, [][]byte{flipLast(data)}, nil},
		{engine.Forwarded, false, true, [][]byte{[]byte("\x00engine"), []byte("\x01engine")}, [][]byte{[]byte("\x02engine")}},
		{engine.Consumed, false, false, nil, nil},
		{engine.Dropped, false, false, nil, nil},
		{0, false, false, nil, nil}, // not a verdict: dropped
		// Last: a mid-stream frame passed unchanged (its flow stays off
		// the fast path until the other side's segments pass too).
		{engine.Passthrough, false, false, [][]byte{data}, nil},
	}
	for _, c := range cases {
		next, rewrite, send = c.v, c.rewrite, c.send
		r.out = [2][][]byte{}
		before := r.a.Stats()[0].Verdicts[c.v]
		r.send(Inside, data)
		if !sameFrames(r.out[1], c.out) || !sameFrames(r.out[0], c.back) {
			t.Errorf("%v: out %q back %q, want %q and %q", VerdictName(c.v), r.out[1], r.out[0], c.out, c.back)
		}
		if got := r.a.Stats()[0].Verdicts[c.v] - before; got != 1 {
			t.Errorf("%v counted %d times", VerdictName(c.v), got)
		}
	}
}

func flipLast(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)-1] ^= 0xff
	return c
}

func sameFrames(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// TestFastPathFollowsVerdict: a flow enters the fast path only once the
// handler passed it through after its handshake; a flow the handler keeps
// (ForwardInPlace, as for an encrypted flow) never does; a flow let go at
// the third segment (ENO-28 fallback) enters it then.
func TestFastPathFollowsVerdict(t *testing.T) {
	for _, tc := range []struct {
		name   string
		verdic func(flags uint8) Verdict
		listed [3]bool // after SYN, SYN-ACK, third segment
	}{
		{"passthrough", func(uint8) Verdict { return engine.Passthrough }, [3]bool{false, true, true}},
		{"kept by the engine", func(uint8) Verdict { return engine.ForwardInPlace }, [3]bool{false, false, false}},
		{"let go at the third segment", func(f uint8) Verdict {
			if f&packet.FlagSYN != 0 {
				return engine.ForwardInPlace
			}
			return engine.Passthrough
		}, [3]bool{false, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p packet.Packet
			r, _ := scriptedRig(t, true, func(_ engine.PortID, frame []byte, _ [2]TxSink) Verdict {
				if p.Decode(frame) != nil {
					t.Fatal("undecodable")
				}
				return tc.verdic(p.Flags())
			})
			k := key4(a4, b4, 1234, 80)
			for i, s := range conn("v", a4, b4, 1234, 80, packettest.FIN)[:3] {
				r.send(s.port, s.b)
				if got := r.bump.Listed(k) && r.bump.Listed(keyRev(k)); got != tc.listed[i] {
					t.Fatalf("after %s: listed %v, want %v", s.name, got, tc.listed[i])
				}
			}
		})
	}
}

// A passed mid-stream segment of a tuple the worker did not know put the
// tuple on the fast path at once: a flood of forged one-way segments (new
// tuples) cost two map updates, system calls, per frame and pushed live
// flows out of the LRU map (1000 forged ACKs: 1000 inserts). Now the tuple
// is listed only once a segment from each side passed, as a live
// connection's do (one that began before a restart, or that the table
// forgot).
func TestOneWaySegmentsStayOffFastPath(t *testing.T) {
	r, _ := scriptedRig(t, true, func(engine.PortID, []byte, [2]TxSink) Verdict { return engine.Passthrough })
	for i := range 1000 {
		r.send(Outside, tcpFrame(b4, a4, 80, uint16(10000+i), packettest.ACK, 1, 1, nil))
	}
	inserts := func() uint64 { s := r.a.Stats(); return s[0].FastInserts + s[1].FastInserts }
	t.Logf("fast-path inserts after 1000 forged one-way ACKs: %d", inserts())
	if got := inserts(); got != 0 {
		t.Fatalf("%d fast-path inserts for one-way segments, want 0", got)
	}
	if len(r.out[0]) != 1000 {
		t.Fatalf("%d of the one-way segments passed, want all", len(r.out[0]))
	}

	// The inside host's reply to one of them: both ends spoke.
	r.send(Inside, tcpFrame(a4, b4, 10007, 80, packettest.ACK, 1, 1, []byte("reply")))
	k := key4(a4, b4, 10007, 80)
	if !r.bump.Listed(k) || !r.bump.Listed(keyRev(k)) || inserts() != 1 {
		t.Fatalf("two-way connection: listed %v/%v, inserts %d; want listed once", r.bump.Listed(k), r.bump.Listed(keyRev(k)), inserts())
	}
}

// A SYN that no SYN-ACK answers (a blind one on the tuple of a live plain
// connection: the host answers with a challenge ACK) left the tuple in the
// workers' table as SYN-seen, refreshed by every segment of the live
// connection, so once the handler let the connection go again (Passthrough)
// it never went back on the fast path. Segments passed from both sides put
// it back, as for a connection known only mid-stream.
func TestUnansweredSYNBackOnFastPath(t *testing.T) {
	r, _ := scriptedRig(t, true, func(engine.PortID, []byte, [2]TxSink) Verdict { return engine.Passthrough })
	k := key4(a4, b4, 10007, 80)
	r.send(Outside, tcpFrame(b4, a4, 80, 10007, packettest.SYN, 77, 0, nil))
	for range 3 {
		r.send(Inside, tcpFrame(a4, b4, 10007, 80, packettest.ACK, 1, 1, []byte("data")))
		r.send(Outside, tcpFrame(b4, a4, 80, 10007, packettest.ACK, 1, 5, nil))
	}
	if !r.bump.Listed(k) || !r.bump.Listed(keyRev(k)) {
		t.Fatalf("live connection after an unanswered SYN: listed %v/%v, want both", r.bump.Listed(k), r.bump.Listed(keyRev(k)))
	}
}

// TestTxSinkMisuse: a Commit without a Buffer, or longer than the buffer,
// sends nothing and is counted.
func TestTxSinkMisuse(t *testing.T) {
	r, _ := scriptedRig(t, false, func(from engine.PortID, frame []byte, tx [2]TxSink) Verdict {
		tx[1-from].Commit(10)
		b := tx[1-from].Buffer()
		tx[1-from].Commit(cap(b) + 1)
		return engine.Consumed
	})
	r.send(Inside, tcpFrame(a4, b4, 1000, 80, packettest.ACK, 1, 1, nil))
	if s := r.a.Stats(); s[0].BadCommits+s[1].BadCommits != 2 || len(r.out[1]) != 0 {
		t.Fatalf("bad commits %d, out %d; want 2 and nothing sent", s[0].BadCommits+s[1].BadCommits, len(r.out[1]))
	}
}

// TestTick: the handler's timers run every tickPeriod while frames flow
// and while idle.
func TestTick(t *testing.T) {
	r, h := scriptedRig(t, false, func(engine.PortID, []byte, [2]TxSink) Verdict { return engine.Passthrough })
	for range 10 {
		r.now += time.Duration(tickPeriod) / 4
		r.a.Poll(r.now)
	}
	if len(h.ticks) < 3 || len(h.ticks) > 4 {
		t.Fatalf("%d ticks in 2.5 tick periods, want 3 or 4 (%v)", len(h.ticks), h.ticks)
	}
	if r.a.workers[0].idle != engineIdleWait {
		t.Fatalf("idle wait with a handler = %v, want %v", r.a.workers[0].idle, engineIdleWait)
	}
}

// TestInspect: Inspect reaches every worker's handler, in Poll mode and on
// running workers.
func TestInspect(t *testing.T) {
	hs := []*scripted{{}, {}}
	in, _ := memport.New(64, 2048, nil)
	in2, _ := memport.New(64, 2048, nil)
	out, _ := memport.New(64, 2048, nil)
	out2, _ := memport.New(64, 2048, nil)
	a, err := New([]Port{in, in2}, []Port{out, out2}, Options{NewHandler: func(q int) (FrameHandler, error) { return hs[q], nil }})
	if err != nil {
		t.Fatal(err)
	}
	for _, started := range []bool{false, true} {
		if started {
			if err := a.Start(); err != nil {
				t.Fatal(err)
			}
		}
		var got []int
		if err := a.Inspect(func(q int, h FrameHandler) {
			if h != hs[q] {
				t.Errorf("queue %d: wrong handler", q)
			}
			got = append(got, q)
		}); err != nil || len(got) != 2 {
			t.Fatalf("started=%v: Inspect visited %v, err %v", started, got, err)
		}
	}
	a.Stop()
	if err := a.Inspect(func(int, FrameHandler) {}); err != ErrStopped {
		t.Fatalf("Inspect after Stop: %v, want ErrStopped", err)
	}
}

// backlogHandler is Passthrough that records what the worker says of its
// outside port (Backlogged).
type backlogHandler struct {
	Passthrough
	said []bool
}

func (h *backlogHandler) SetBacklog(behind bool) { h.said = append(h.said, behind) }

// The worker tells a Backlogged handler, after each batch from the outside
// port, whether the batch was full (frames were left waiting): the engine
// then drops a SYN flood's SYNs instead of passing them on to the host.
func TestWorkerTellsBacklog(t *testing.T) {
	h := &backlogHandler{}
	r := newRig(t, rigOpts{batch: 4, handler: func(int) (FrameHandler, error) { return h, nil }})
	for i := range 10 {
		r.bump.Arrive(Outside, seg(b4, a4, 80, uint16(6000+i), packettest.SYN, 1, 0, nil))
	}
	r.settle()
	want := []bool{true, true, false} // 4, 4, then 2 of the 10
	if len(h.said) < len(want) || !slices.Equal(h.said[:3], want) {
		t.Fatalf("the worker said %v, want %v first", h.said, want)
	}
}

// With several workers, each handler is told whether ANY worker is behind
// its outside port: a SYN a busy worker hands over is judged by the
// appliance's state, not by its owner's quiet port (before, the owner's
// engine passed a flood's SYNs the busy worker received).
func TestBacklogSharedByWorkers(t *testing.T) {
	hs := []*backlogHandler{{}, {}}
	r := newRig(t, rigOpts{queues: 2, batch: 4, handler: func(q int) (FrameHandler, error) { return hs[q], nil }})
	for i := range 10 { // all on queue 0's outside port
		r.outp[0].Inject(seg(b4, a4, 80, uint16(6000+i), packettest.SYN, 1, 0, nil))
	}
	r.a.Poll(r.now) // one round: worker 0 takes a full batch, then worker 1 its (empty) one
	if len(hs[1].said) == 0 || !hs[1].said[len(hs[1].said)-1] {
		t.Fatalf("worker 1 (a quiet port) was told %v while worker 0 was behind, want behind", hs[1].said)
	}
	r.settle()
	r.a.Poll(r.now) // all taken: nobody behind
	if !slices.Equal(hs[0].said[len(hs[0].said)-1:], []bool{false}) || !slices.Equal(hs[1].said[len(hs[1].said)-1:], []bool{false}) {
		t.Fatalf("after the frames were taken: worker 0 told %v, worker 1 %v; want not behind", hs[0].said, hs[1].said)
	}
}

// A port that returns fewer frames a call than the worker's batch (the
// AF_PACKET port: its recvmmsg batch) is behind when it returns that many.
func TestBacklogFollowsPortBatch(t *testing.T) {
	h := &backlogHandler{}
	r := newRig(t, rigOpts{batch: 64, handler: func(int) (FrameHandler, error) { return h, nil }})
	r.a.workers[0].rxFull = 4 // as RxBatch would say
	for i := range 6 {
		r.bump.Arrive(Outside, seg(b4, a4, 80, uint16(6000+i), packettest.SYN, 1, 0, nil))
	}
	r.a.Poll(r.now)
	if len(h.said) == 0 || !h.said[0] {
		t.Fatalf("a batch of 6 from a port that returns at most 4: the worker said %v, want behind", h.said)
	}
}
